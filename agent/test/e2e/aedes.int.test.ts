// Must show: the same publishing test against the embedded aedes broker (MQTT 3.1.1 only: the agent's link
// falls back from MQTT 5), taken away for 30 s (every connection destroyed, every session forgotten) and
// started again on the same port.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AedesOnPort, assertAgentBuilt, startAedesOnPort } from "./harness.js";
import { type Cleanups, runOutageScenario } from "./outage-scenario.js";

const cleanups: Cleanups = [];
let aedes: AedesOnPort | undefined;

beforeAll(async () => {
  assertAgentBuilt();
  aedes = await startAedesOnPort();
  cleanups.push(async () => {
    await aedes?.stop();
    aedes = undefined;
  });
});

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

describe("agent e2e: aedes away for 30 s under 500 polled devices", () => {
  it("falls back to MQTT 3.1.1, loses nothing, stores nothing twice, keeps order, drains within 60 s", async () => {
    const first = aedes;
    if (!first) throw new Error("aedes did not start");
    const port = first.port;
    const report = await runOutageScenario(
      {
        url: first.url,
        collectorProtocol: 4,
        expectAgentProtocol: 4,
        down: async () => {
          await aedes?.stop();
          aedes = undefined;
        },
        up: async () => {
          aedes = await startAedesOnPort(port);
        },
      },
      { label: "aedes", devices: 500, pollIntervalSec: 10, outageMs: 30_000, drainBoundMs: 60_000 },
      cleanups,
    );
    expect(report.drainMs).toBeLessThanOrEqual(60_000);
  }, 240_000);
});
