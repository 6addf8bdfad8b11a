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

/** Firmware family a driver updates, as the firmware catalog names it. */
export type UpdateFamily = "uc" | "videoos";

/** What a firmware update reads from a device while it runs: cheap (one or two requests). */
export interface DeviceUpdateStatus {
  /** The device answered (an HTTP error answer counts: it is there). */
  reachable: boolean;
  /** Running software as the device reports it: UC the `Application` text ("7.2.2.1094 28-Feb-22 15:29"), VideoOS `softwareVersion`. */
  version?: string;
  /** VideoOS build number (`build`). */
  build?: string;
  /** Model as reported ("VVX 350", "StudioX30"). */
  model?: string;
  inCall?: boolean;
  /** Seconds since boot as reported. */
  uptimeSec?: number;
  /** How coarse `uptimeSec` is (UC whole seconds: 1; VideoOS: 0.01). */
  uptimeResolutionSec?: number;
  /** Why the device could not be read, when it could not. */
  error?: PollError;
}

export type ConfigReadResult = { ok: true; values: Record<string, string> } | { ok: false; error: PollError };

/**
 * Firmware update support of a driver (optional part of the {@link DeviceDriver} port). The agent's update
 * manager points the device at its site provisioning server with {@link pointingConfig}, after saving the
 * previous values with {@link readConfig}, triggers the update, watches {@link status}, and writes the
 * previous values back when the update ends. None of the parameters involved is a secret.
 */
export interface DeviceUpdateSupport {
  readonly family: UpdateFamily;
  /**
   * How the device learns about the update: `fetch` — the trigger makes it fetch from the provisioning server
   * at once (UC `updateConfiguration`); `reboot` — it checks its update server at boot (VideoOS), so the
   * trigger is a reboot and the server offers the new version only once the reboot is under way.
   */
  readonly trigger: "fetch" | "reboot";
  /** Reachability, running version, call state and uptime; never throws. */
  status(target: DeviceTarget, opts: PollOptions): Promise<DeviceUpdateStatus>;
  /** The config parameters (name → value) that point the device at `baseUrl`, its own path on the server. */
  pointingConfig(baseUrl: string): Record<string, string>;
  /** Current values of config parameters; names the device does not know are left out. Never throws. */
  readConfig(target: DeviceTarget, names: string[], opts: PollOptions): Promise<ConfigReadResult>;
  /** Writes config parameters (all or nothing where the device allows it). Never throws. */
  writeConfig(target: DeviceTarget, values: Record<string, string>, opts: PollOptions): Promise<ActionResult>;
  /** Makes the device look for the update now (see {@link trigger}). Never throws. */
  triggerUpdate(target: DeviceTarget, opts: PollOptions): Promise<ActionResult>;
}

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
  /** Firmware updates through a provisioning server; absent when the driver cannot update devices. */
  readonly updates?: DeviceUpdateSupport;
  /** Drops per-device state (device removed). */
  forget(deviceId: string): void;
  close(): Promise<void>;
}
