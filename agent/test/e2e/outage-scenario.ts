// The "Must show" publishing test, shared by the Mosquitto and aedes files: 500 simulated devices polled by
// the real agent process while the broker is away for 30 s; every reading stored once, in order, backlog
// drained within 60 s of the broker's return.
import { TestCollector, waitFor } from "@polyfleet/scripts/testing";
import { expect } from "vitest";
import {
  AgentProcess,
  type E2eFleet,
  HealthSampler,
  inspectOutbox,
  promSum,
  randomId,
  sleep,
  startE2eFleet,
} from "./harness.js";

/** The broker under test, from the scenario's point of view. */
export interface BrokerUnderTest {
  url: string;
  /** 5 for Mosquitto, 4 for aedes (the TestCollector speaks it; the agent finds out by itself). */
  collectorProtocol: 4 | 5;
  /** The MQTT version the agent must end up using. */
  expectAgentProtocol: 4 | 5;
  /** Takes the broker away abruptly (SIGKILL, or every socket destroyed). */
  down(): Promise<void>;
  /** Brings it back on the same port, without any session or retained message. */
  up(): Promise<void>;
}

export interface OutageOptions {
  label: string;
  devices: number;
  pollIntervalSec: number;
  outageMs: number;
  /** Stated bound: the backlog must be drained within this long of the broker's return. */
  drainBoundMs: number;
}

export interface OutageReport {
  label: string;
  devices: number;
  lastSeqAtKill: number;
  lastSeqAtReturn: number;
  /** Entries (readings and events) assigned while the broker was away. */
  outageEntries: number;
  /** Of which readings (the rest are events: reachability and the like). */
  outageReadings: number;
  outboxDepthAtReturn: number;
  /** Broker back -> /healthz connected:true (mostly the link's reconnect backoff). */
  reconnectMs: number;
  drainMs: number;
  depthZeroMs: number;
  duplicates: number;
  lateArrivals: number;
  replays: number;
  reconnects: number;
  messages: number;
  stored: number;
  undeliveredTail: number;
  finalLastSeq: number;
}

/** Cleanups run in reverse order by the test file's afterAll. */
export type Cleanups = (() => Promise<void>)[];

export async function runOutageScenario(
  broker: BrokerUnderTest,
  o: OutageOptions,
  cleanups: Cleanups,
): Promise<OutageReport> {
  const agentId = randomId("e2e-outage");
  const siteId = "e2e-site";
  const fleet: E2eFleet = await startE2eFleet({
    devices: o.devices,
    subnetPrefix: o.devices > 254 ? 23 : 24,
    brokerUrl: broker.url,
    agentId,
    siteId,
    pollIntervalSec: o.pollIntervalSec,
  });
  cleanups.push(() => fleet.stop());
  expect(fleet.config.devices).toHaveLength(o.devices);

  const collector = new TestCollector({
    url: broker.url,
    siteId,
    agentId,
    protocolVersion: broker.collectorProtocol,
  });
  await collector.start();
  cleanups.push(() => collector.stop());

  const agent = new AgentProcess(fleet.configFile, fleet.httpPort);
  cleanups.push(() => agent.dispose());
  await agent.start();
  const sampler = new HealthSampler(agent, 200);
  sampler.start();
  cleanups.push(async () => sampler.stop());

  // Steady stream: two cycles stored (the first polls are spread over one interval; a device is re-keyed
  // by its MAC after its first answer) and the agent connected with the protocol the broker speaks.
  await waitFor(
    () => collector.watermark() >= 2 * o.devices,
    o.pollIntervalSec * 1000 * 6,
    `${2 * o.devices} entries stored by the collector`,
    200,
  );
  const h0 = await agent.health();
  expect(h0.connected).toBe(true);
  expect(h0.protocolVersion).toBe(broker.expectAgentProtocol);
  const births = collector.states.filter((s) => s.status === "online");
  expect(births.length).toBeGreaterThanOrEqual(1);
  expect(births[0]).toMatchObject({ agentId, siteId, protocolVersion: broker.expectAgentProtocol });

  // ---- outage ----
  const hKill = await agent.health();
  const killAt = Date.now();
  await broker.down();
  await sleep(o.outageMs);
  const hReturn = await agent.health();
  const upAt = Date.now();
  await broker.up();
  expect(agent.running).toBe(true);
  expect(hReturn.connected).toBe(false);
  // Readings kept being made and written to the outbox while the broker was away.
  expect(hReturn.lastSeq).toBeGreaterThan(hKill.lastSeq);
  expect(hReturn.outboxDepth).toBeGreaterThan(0);

  // ---- drain ----
  // Backlog drained: the collector acknowledged everything assigned up to the broker's return.
  await waitFor(
    async () => {
      const h = await agent.tryHealth();
      return h?.connected === true && h.ackedSeq >= hReturn.lastSeq;
    },
    o.drainBoundMs,
    `the backlog up to seq ${hReturn.lastSeq} acknowledged within ${o.drainBoundMs} ms of the broker's return`,
    100,
  );
  const drainMs = Date.now() - upAt;
  // And the outbox empties (new readings keep arriving at ~devices/interval per second, so depth 0 is a
  // moment between two polls: sample until one is seen, within the same bound).
  await waitFor(
    async () => (await agent.tryHealth())?.outboxDepth === 0,
    Math.max(1000, o.drainBoundMs - (Date.now() - upAt)),
    "outbox depth 0 after the broker's return",
    50,
  );
  const depthZeroMs = Date.now() - upAt;

  // A few more seconds of normal running after the drain.
  await sleep(3000);
  const hAfter = await agent.health();
  expect(hAfter.connected).toBe(true);
  expect(hAfter.lastSeq).toBeGreaterThan(hReturn.lastSeq);
  const metrics = await agent.metrics();
  const reconnects = promSum(metrics, "polyfleet_agent_mqtt_reconnects_total");
  const replays = promSum(metrics, "polyfleet_agent_outbox_replays_total");
  expect(reconnects).toBeGreaterThanOrEqual(1);
  expect(promSum(metrics, "polyfleet_agent_polls_total")).toBeGreaterThan(0);
  expect(promSum(metrics, "polyfleet_agent_outbox_dropped_total")).toBe(0);
  sampler.stop();

  // /healthz said connected:false through the outage (allowing 3 s for the socket loss to be noticed) and
  // connected:true again once drained.
  const during = sampler.between(killAt + 3000, upAt);
  expect(during.length).toBeGreaterThan(10);
  const duringAnswered = during.filter((s) => s.h !== undefined);
  expect(duringAnswered.length).toBeGreaterThan(10);
  expect(duringAnswered.filter((s) => s.h?.connected !== false)).toEqual([]);
  const reconnectedAt = sampler.samples.find((s) => s.at >= upAt && s.h?.connected === true)?.at;
  expect(reconnectedAt).toBeDefined();
  const after = sampler.between(upAt + drainMs, Date.now()).filter((s) => s.h !== undefined);
  expect(after.length).toBeGreaterThan(0);
  expect(after.every((s) => s.h?.connected === true)).toBe(true);

  // The agent never exited on its own; now a clean stop.
  expect(agent.exits).toEqual([]);
  const exit = await agent.stop();
  expect(exit).toEqual({ code: 0, signal: null });

  // ---- nothing lost, nothing stored twice, in order ----
  const disk = inspectOutbox(fleet.outboxDir);
  // Let anything still in flight land (the collector has stored whatever it acked by construction).
  await sleep(500);
  const wm = collector.watermark();
  const stored = collector.seqs();
  expect(collector.invalid).toBe(0);
  expect(collector.gaps()).toEqual([]);
  expect(stored.length).toBe(wm);
  expect(new Set(stored).size).toBe(stored.length);
  expect(stored).toEqual(Array.from({ length: wm }, (_, i) => i + 1));
  expect(wm).toBeGreaterThanOrEqual(hReturn.lastSeq);
  expect(wm).toBeGreaterThanOrEqual(disk.ackedSeq);
  expect(disk.droppedTotal).toBe(0);
  // Whatever the collector does not have yet is still in the outbox on disk (sent at the next start).
  const tail: number[] = [];
  for (let s = wm + 1; s <= disk.lastSeq; s++) tail.push(s);
  expect(disk.seqs.filter((s) => s > wm)).toEqual(tail);
  // No seq was assigned twice or skipped: the outbox's last seq is what the agent reported, or later.
  expect(disk.lastSeq).toBeGreaterThanOrEqual(hAfter.lastSeq);
  // Order: new entries arrive in seq order; an entry can arrive late only when the agent replayed from the
  // ack watermark after the collector missed part of a stream (a broker without sessions drops what it
  // gets before the collector has re-subscribed).
  if (collector.lateArrivals > 0) expect(replays).toBeGreaterThan(0);
  const outageEvents = collector.events.filter(
    (e) => e.seq > hKill.lastSeq && e.seq <= hReturn.lastSeq,
  ).length;
  const outageReadings = hReturn.lastSeq - hKill.lastSeq - outageEvents;
  // The outage is meaningful: every device was polled at least once while the broker was away (three
  // times expected at a 10 s interval over 30 s).
  expect(outageReadings).toBeGreaterThanOrEqual(o.devices);

  const report: OutageReport = {
    label: o.label,
    devices: o.devices,
    lastSeqAtKill: hKill.lastSeq,
    lastSeqAtReturn: hReturn.lastSeq,
    outageEntries: hReturn.lastSeq - hKill.lastSeq,
    outageReadings,
    outboxDepthAtReturn: hReturn.outboxDepth,
    reconnectMs: (reconnectedAt ?? upAt) - upAt,
    drainMs,
    depthZeroMs,
    duplicates: collector.duplicates,
    lateArrivals: collector.lateArrivals,
    replays,
    reconnects,
    messages: collector.messages,
    stored: wm,
    undeliveredTail: tail.length,
    finalLastSeq: disk.lastSeq,
  };
  console.log(`[e2e ${o.label}] ${JSON.stringify(report)}`);
  return report;
}
