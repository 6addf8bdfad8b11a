import type { SimFault } from "@polyfleet/shared";
import { findModel } from "../../src/simulator/catalog.js";
import {
  DEFAULT_TIMING,
  type DeviceInit,
  DeviceSim,
  type FirmwareState,
  type SimClock,
  type SimTiming,
} from "../../src/simulator/device.js";
import type { SimRequest } from "../../src/simulator/http-types.js";

/** A clock the test moves by hand. */
export interface FakeClock extends SimClock {
  advance(ms: number): void;
  set(ms: number): void;
}

export function fakeClock(start = Date.UTC(2024, 4, 1, 9, 0, 0)): FakeClock {
  let t = start;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
    set: (ms) => {
      t = ms;
    },
  };
}

export const TEST_PASSWORD = "8642";

export interface UcDeviceOverrides extends Partial<Omit<DeviceInit, "spec" | "firmware">> {
  /** Catalog model string, default `VVX 350`. */
  model?: string;
  firmware?: Partial<FirmwareState>;
  clock?: SimClock;
  timing?: SimTiming;
  faults?: SimFault[];
  /** Extra config parameters. */
  config?: Record<string, string>;
}

/** A UC phone with REST enabled, admin password TEST_PASSWORD and a fake clock unless given one. */
export function makeUcDevice(overrides: UcDeviceOverrides = {}): DeviceSim {
  const spec = findModel(overrides.model ?? "VVX 350");
  if (spec?.family !== "uc") throw new Error(`not a UC model: ${overrides.model}`);
  const base = spec.firmware[0];
  if (!base) throw new Error(`model ${spec.model} has no firmware`);
  const mac = overrides.mac ?? "64167f0a1b2c";
  const init: DeviceInit = {
    id: overrides.id ?? mac,
    index: overrides.index ?? 0,
    address: overrides.address ?? "127.0.10.5",
    httpsPort: overrides.httpsPort ?? 8443,
    snmpPort: overrides.snmpPort ?? null,
    spec,
    serial: overrides.serial ?? mac,
    mac,
    firmware: { version: base.version, date: base.date, ...overrides.firmware },
    admin: overrides.admin ?? { user: "Polycom", password: TEST_PASSWORD },
    snmp: overrides.snmp ?? null,
    restEnabled: overrides.restEnabled ?? true,
    seed: overrides.seed ?? 42,
  };
  const device = new DeviceSim(init, overrides.clock ?? fakeClock(), overrides.timing ?? DEFAULT_TIMING);
  if (overrides.faults) device.setFaults(overrides.faults);
  for (const [k, v] of Object.entries(overrides.config ?? {})) device.config.set(k, v);
  return device;
}

export function basicAuth(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
}

export interface UcRequestOptions {
  /** Authorization header; default valid Basic credentials, `null` for none. */
  auth?: string | null;
  /** A Buffer/string is sent as is, anything else as JSON. */
  body?: unknown;
}

export function ucRequest(method: string, path: string, opts: UcRequestOptions = {}): SimRequest {
  const auth = opts.auth === undefined ? basicAuth("Polycom", TEST_PASSWORD) : opts.auth;
  const body =
    opts.body === undefined
      ? Buffer.alloc(0)
      : Buffer.isBuffer(opts.body)
        ? opts.body
        : Buffer.from(typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body));
  return {
    method,
    path,
    query: new URLSearchParams(),
    headers: { ...(auth === null ? {} : { authorization: auth }), "content-type": "application/json" },
    body,
    remoteAddress: "127.0.0.1",
  };
}
