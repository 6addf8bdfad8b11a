// Must show: against real Mosquitto, 500 simulated devices polled by the real agent process while the
// broker is SIGKILLed for 30 s and restarted on the same port: 0 readings lost, 0 stored twice, order kept,
// backlog drained within 60 s.
import { type MosquittoHandle, startMosquitto } from "@polyfleet/scripts/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertAgentBuilt } from "./harness.js";
import { type Cleanups, runOutageScenario } from "./outage-scenario.js";

const cleanups: Cleanups = [];
let mosquitto: MosquittoHandle;

beforeAll(async () => {
  assertAgentBuilt();
  mosquitto = await startMosquitto();
  cleanups.push(() => mosquitto.stop());
});

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

describe("agent e2e: Mosquitto killed for 30 s under 500 polled devices", () => {
  it("loses nothing, stores nothing twice, keeps order and drains the backlog within 60 s", async () => {
    const report = await runOutageScenario(
      {
        url: mosquitto.url,
        collectorProtocol: 5,
        expectAgentProtocol: 5,
        down: () => mosquitto.kill("SIGKILL"),
        up: () => mosquitto.restart(),
      },
      { label: "mosquitto", devices: 500, pollIntervalSec: 10, outageMs: 30_000, drainBoundMs: 60_000 },
      cleanups,
    );
    expect(report.drainMs).toBeLessThanOrEqual(60_000);
  }, 240_000);
});
