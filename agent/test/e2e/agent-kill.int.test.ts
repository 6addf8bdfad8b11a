// Must show: against real Mosquitto, the agent process polling 500 simulated devices is SIGKILLed mid-stream
// and started again with the same config: everything that reached its outbox before the kill is delivered,
// sequence numbers continue after the restart, and the collector's store has no gap and no duplicate.
// Twice: once while connected (a few entries in flight), once with a backlog that never left the machine
// (the broker was away when the agent was killed).
import { type MosquittoHandle, startMosquitto, TestCollector, waitFor } from "@polyfleet/scripts/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AgentProcess,
  assertAgentBuilt,
  type E2eFleet,
  inspectOutbox,
  type OutboxSnapshot,
  promSum,
  randomId,
  sleep,
  startE2eFleet,
} from "./harness.js";

const cleanups: (() => Promise<void>)[] = [];
let mosquitto: MosquittoHandle;

beforeAll(async () => {
  assertAgentBuilt();
  mosquitto = await startMosquitto();
  cleanups.push(() => mosquitto.stop());
});

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

/** SIGKILLs the agent and checks that the outbox on disk holds everything it reported and had not had acked. */
async function killAndInspect(agent: AgentProcess, fleet: E2eFleet): Promise<OutboxSnapshot> {
  const h = await agent.health();
  await agent.kill();
  expect(agent.exit?.signal).toBe("SIGKILL");
  const disk = inspectOutbox(fleet.outboxDir);
  // Everything /healthz reported as written is on disk (the last commits too, from the WAL)...
  expect(disk.lastSeq).toBeGreaterThanOrEqual(h.lastSeq);
  expect(disk.ackedSeq).toBeGreaterThanOrEqual(h.ackedSeq);
  // ... and every entry above the ack watermark is still there, none skipped.
  const expected: number[] = [];
  for (let s = disk.ackedSeq + 1; s <= disk.lastSeq; s++) expected.push(s);
  expect(disk.seqs).toEqual(expected);
  expect(disk.droppedTotal).toBe(0);
  return disk;
}

describe("agent e2e: the agent SIGKILLed mid-stream and restarted", () => {
  it("delivers every seq that reached the outbox before a kill, then continues the sequence without a gap", async () => {
    const devices = 500;
    const intervalSec = 10;
    const agentId = randomId("e2e-kill");
    const siteId = "e2e-site";
    const fleet = await startE2eFleet({
      devices,
      subnetPrefix: 23,
      brokerUrl: mosquitto.url,
      agentId,
      siteId,
      pollIntervalSec: intervalSec,
    });
    cleanups.push(() => fleet.stop());
    const collector = new TestCollector({ url: mosquitto.url, siteId, agentId });
    await collector.start();
    cleanups.push(() => collector.stop());
    const runs: AgentProcess[] = [];
    const startRun = async (): Promise<AgentProcess> => {
      const a = new AgentProcess(fleet.configFile, fleet.httpPort);
      cleanups.push(() => a.dispose());
      runs.push(a);
      await a.start();
      return a;
    };

    // ---- run 1, killed mid-stream while connected ----
    const run1 = await startRun();
    await waitFor(() => collector.watermark() >= devices, intervalSec * 4000, "a first cycle stored", 200);
    expect((await run1.health()).connected).toBe(true);
    const kill1 = await killAndInspect(run1, fleet);
    const storedAtKill1 = collector.watermark();
    await sleep(1000);

    // ---- run 2: same config, same outbox ----
    const run2 = await startRun();
    const h2 = await run2.health();
    // The sequence goes on where the outbox left it: never reused.
    expect(h2.lastSeq).toBeGreaterThanOrEqual(kill1.lastSeq);
    await collector.waitForSeq(kill1.lastSeq, 60_000);
    await waitFor(
      () => collector.watermark() >= kill1.lastSeq + devices / 2,
      intervalSec * 4000,
      `new readings after seq ${kill1.lastSeq} stored`,
      200,
    );

    // ---- run 2 killed with a backlog that never left the machine (broker away) ----
    await mosquitto.kill("SIGKILL");
    await waitFor(
      async () => {
        const h = await run2.tryHealth();
        return h !== undefined && !h.connected && h.outboxDepth >= devices / 2;
      },
      60_000,
      "a backlog of undelivered readings in the outbox",
      200,
    );
    const kill2 = await killAndInspect(run2, fleet);
    const storedAtKill2 = collector.watermark();
    // A real backlog: these entries were only ever in the agent's outbox.
    expect(kill2.lastSeq - storedAtKill2).toBeGreaterThanOrEqual(devices / 2);
    await mosquitto.restart();

    // ---- run 3 delivers that backlog, then goes on ----
    const run3 = await startRun();
    const h3 = await run3.health();
    expect(h3.lastSeq).toBeGreaterThanOrEqual(kill2.lastSeq);
    await collector.waitForSeq(kill2.lastSeq, 60_000);
    await waitFor(
      () => collector.watermark() >= kill2.lastSeq + devices / 2,
      intervalSec * 4000,
      `new readings after seq ${kill2.lastSeq} stored`,
      200,
    );
    const metrics = await run3.metrics();
    expect(promSum(metrics, "polyfleet_agent_outbox_dropped_total")).toBe(0);
    expect(run3.exits).toEqual([]);
    expect(await run3.stop()).toEqual({ code: 0, signal: null });

    // ---- the whole stream: 1..watermark, each once, in order ----
    await sleep(500);
    const end = inspectOutbox(fleet.outboxDir);
    const wm = collector.watermark();
    const stored = collector.seqs();
    expect(collector.invalid).toBe(0);
    expect(collector.gaps()).toEqual([]);
    expect(new Set(stored).size).toBe(stored.length);
    expect(stored).toEqual(Array.from({ length: wm }, (_, i) => i + 1));
    expect(wm).toBeGreaterThan(kill2.lastSeq);
    expect(end.droppedTotal).toBe(0);
    // Whatever the collector does not have yet is still in the outbox for the next start.
    const tail: number[] = [];
    for (let s = wm + 1; s <= end.lastSeq; s++) tail.push(s);
    expect(end.seqs.filter((s) => s > wm)).toEqual(tail);
    // Every run announced itself with its own session; the first killed run's Last Will marked it offline.
    const births = collector.states.filter((s) => s.status === "online");
    expect(new Set(births.map((s) => s.sessionId)).size).toBe(3);
    const firstSession = births[0]?.sessionId;
    expect(
      collector.states.some(
        (s) => s.status === "offline" && s.reason === "will" && s.sessionId === firstSession,
      ),
    ).toBe(true);
    expect(runs.map((r) => r.exits.map((e) => e.signal ?? e.code))).toEqual([["SIGKILL"], ["SIGKILL"], [0]]);

    console.log(
      `[e2e agent-kill] ${JSON.stringify({
        devices,
        kill1: {
          lastSeq: kill1.lastSeq,
          acked: kill1.ackedSeq,
          onDisk: kill1.seqs.length,
          storedByCollector: storedAtKill1,
        },
        kill2: {
          lastSeq: kill2.lastSeq,
          acked: kill2.ackedSeq,
          onDisk: kill2.seqs.length,
          storedByCollector: storedAtKill2,
        },
        stored: wm,
        duplicates: collector.duplicates,
        lateArrivals: collector.lateArrivals,
        undeliveredTail: tail.length,
        finalLastSeq: end.lastSeq,
      })}`,
    );
  }, 240_000);
});
