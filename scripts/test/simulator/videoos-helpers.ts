import { findModel } from "../../src/simulator/catalog.js";
import { type DeviceInit, DeviceSim, type SimClock, type SimTiming } from "../../src/simulator/device.js";
import type { SimRequest } from "../../src/simulator/http-types.js";

/** A clock the test moves by hand. */
export interface ManualClock extends SimClock {
  advance(ms: number): void;
  set(ms: number): void;
}

export function manualClock(start = Date.UTC(2025, 0, 15, 10, 0, 0)): ManualClock {
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

export const TEST_TIMING: SimTiming = {
  rebootDownMs: 5000,
  flapPeriodMs: 20_000,
  slowMs: 3000,
  rebootLoopUpMs: 10_000,
};

export interface VideoosDeviceOptions {
  model?: string;
  version?: string;
  build?: string;
  address?: string;
  snmpPort?: number | null;
  authProtocol?: "sha" | "sha256";
  clock?: SimClock;
  index?: number;
}

/** A VideoOS DeviceSim (Studio X30 on 3.12.0 by default) with SNMP credentials. */
export function makeVideoosDevice(opts: VideoosDeviceOptions = {}): DeviceSim {
  const spec = findModel(opts.model ?? "StudioX30");
  if (!spec) throw new Error(`unknown model ${opts.model}`);
  const index = opts.index ?? 7;
  const init: DeviceInit = {
    id: `videoos-${index}`,
    index,
    address: opts.address ?? "127.0.0.1",
    httpsPort: 8443,
    snmpPort: opts.snmpPort === undefined ? 16100 : opts.snmpPort,
    spec,
    serial: "8L2138A1B2C3FC",
    mac: "00e0dba1b2c3",
    firmware: { version: opts.version ?? "3.12.0", build: opts.build ?? "366027", date: "2022-12-01" },
    admin: { user: "admin", password: "Sim-Pass-1" },
    snmp: {
      v3: {
        user: "polyfleet",
        authProtocol: opts.authProtocol ?? "sha",
        authKey: "authpass123",
        privKey: "privpass123",
      },
      community: "simcommunity",
    },
    restEnabled: true,
    seed: 42 + index,
  };
  return new DeviceSim(init, opts.clock ?? manualClock(), TEST_TIMING);
}

export function request(
  method: string,
  path: string,
  opts: { body?: unknown; headers?: Record<string, string>; rawBody?: Buffer } = {},
): SimRequest {
  const body =
    opts.rawBody ?? (opts.body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(opts.body)));
  return {
    method,
    path,
    query: new URLSearchParams(),
    headers: { ...(opts.headers ?? {}) },
    body,
    remoteAddress: "10.9.8.7",
  };
}
