import type { ReadingBody } from "../../../src/ports/driver.js";

/** A valid reading body (what a driver returns), numbered through the device id. */
export function readingBody(i: number): ReadingBody {
  return {
    deviceId: `dev-${i % 500}`,
    driver: "poly-ucs",
    reachable: true,
    pollLatencyMs: 12.5,
    identity: {
      address: `127.0.${Math.floor(i / 250) % 250}.${(i % 250) + 1}`,
      family: "uc",
      model: "VVX 450",
    },
    firmware: [{ component: "application", version: "6.4.3.5018" }],
    health: [{ name: "sipserver", state: "up" }],
    peripherals: [],
    lines: [{ line: 1, address: "1001@pbx.example", registered: true, state: "registered" }],
    cpuPct: 7,
    memPct: 41,
    uptimeSec: 86_400 + i,
    network: { rxBytesPerSec: 1200, txBytesPerSec: 800 },
    errors: [],
  };
}
