import type { DeviceIdentity, PollError, Reading } from "@polyfleet/shared";
import type { ResolvedCredential } from "./credentials.js";

export type DriverName = Reading["driver"];

/** What a driver needs to reach one device. */
export interface DeviceTarget {
  /** Stable id: the MAC when known, else `ip-<address>`. */
  deviceId: string;
  address: string;
  httpsPort: number;
  snmpPort: number;
  /** Tried in order; the first that works is remembered by the driver. */
  credentials: ResolvedCredential[];
  tags: string[];
}

/** A reading without the stream header the outbox adds (v, agentId, siteId, seq, ts, kind). */
export type ReadingBody = Omit<Reading, "v" | "agentId" | "siteId" | "seq" | "ts" | "kind">;

export interface PollOptions {
  /** Aborts every request of this poll (the scheduler's per-device timeout). */
  signal: AbortSignal;
}

export type IdentifyResult =
  | { ok: true; identity: DeviceIdentity; driver: DriverName; via: ("snmp" | "https" | "http")[] }
  | { ok: false; error: PollError };

export type ActionResult = { ok: true; detail?: string } | { ok: false; error: PollError };

/**
 * One device family's adapter (port: `DeviceDriver`). Expected device failures are values, never
 * exceptions: `poll` always resolves with a reading (reachable false and `errors` filled when the device
 * did not answer). Drivers keep per-device state (sessions, cookies, keep-alive connections, previous
 * counters for rates) keyed by deviceId, and release it in `forget` / `close`.
 */
export interface DeviceDriver {
  readonly name: DriverName;
  /** Fingerprints a device at an address (discovery); never throws. */
  identify(target: DeviceTarget, opts: PollOptions): Promise<IdentifyResult>;
  /** One normalised poll; never throws. */
  poll(target: DeviceTarget, opts: PollOptions): Promise<ReadingBody>;
  /** Reboots the device (a phone's safe reboot waits for the call to end). */
  reboot(target: DeviceTarget, opts: PollOptions): Promise<ActionResult>;
  /** Drops per-device state (device removed). */
  forget(deviceId: string): void;
  close(): Promise<void>;
}
