import { type Ack, type AgentEvent, type Reading, SYSTEM_CLOCK, topicFor } from "@polyfleet/shared";
import { describe, expect, it } from "vitest";
import { MemoryMetricsStore } from "../../src/adapters/memory/memory-metrics-store.js";
import { MemoryStateStore } from "../../src/adapters/memory/memory-state-store.js";
import { INGEST_METRICS, Ingestor } from "../../src/core/ingestor.js";
import type { IngestBatch, IngestResult } from "../../src/ports/state-store.js";

const SITE = "lab";
const AGENT = "a1";

function reading(seq: number, deviceId = "64167f000001", over: Partial<Reading> = {}): Reading {
  return {
    v: 1,
    kind: "reading",
    agentId: AGENT,
    siteId: SITE,
    seq,
    ts: 1_700_000_000_000 + seq,
    deviceId,
    driver: "poly-ucs",
    reachable: true,
    pollLatencyMs: 12,
    identity: { address: "10.0.0.5", family: "uc", model: "VVX 350", mac: deviceId },
    firmware: [{ component: "application", version: "5.9.7.4477" }],
    health: [],
    peripherals: [],
    lines: [],
    cpuPct: 10,
    network: {},
    errors: [],
    ...over,
  };
}

function setup(store = new MemoryStateStore()) {
  const acks: Ack[] = [];
  const counts = new Map<string, number>();
  const seen = { readings: [] as Reading[], events: [] as AgentEvent[], agents: 0 };
  const ingestor = new Ingestor({
    store,
    metrics: new MemoryMetricsStore({ retentionMinutes: 10 }),
    alerts: {
      onReading: (r) => seen.readings.push(r),
      onEvent: (e) => seen.events.push(e),
      onAgentState: () => {
        seen.agents++;
      },
    },
    publishAck: (_s, _a, ack) => {
      acks.push(ack);
      return Promise.resolve();
    },
    counters: { inc: (name, _l, n = 1) => counts.set(name, (counts.get(name) ?? 0) + n) },
    clock: SYSTEM_CLOCK,
    log: { warn: () => {}, error: () => {}, debug: () => {} },
    batchMs: 5,
  });
  const send = (key: "telemetry" | "events" | "state", payload: unknown, agent = AGENT): void =>
    ingestor.handle(
      topicFor(key, { site: SITE, agent }),
      Buffer.from(typeof payload === "string" ? payload : JSON.stringify(payload)),
    );
  return { ingestor, acks, counts, seen, send, store };
}

describe("Ingestor", () => {
  it("stores a batch, then acks its watermark, then feeds the alert engine", async () => {
    const t = setup();
    t.send("telemetry", {
      v: 1,
      kind: "batch",
      agentId: AGENT,
      siteId: SITE,
      items: [reading(1), reading(2, "64167f000002"), reading(3)],
    });
    await t.ingestor.flushAll();
    expect(t.acks.at(-1)?.seq).toBe(3);
    expect(t.seen.readings.map((r) => r.seq)).toEqual([1, 2, 3]);
    expect((await t.store.getDevice("64167f000002"))?.model).toBe("VVX 350");
    expect(t.counts.get(INGEST_METRICS.stored)).toBe(3);
  });

  it("a replay is counted as duplicates, acked again, and not evaluated twice", async () => {
    const t = setup();
    const batch = { v: 1, kind: "batch", agentId: AGENT, siteId: SITE, items: [reading(1), reading(2)] };
    t.send("telemetry", batch);
    await t.ingestor.flushAll();
    t.send("telemetry", batch);
    t.send("telemetry", reading(3));
    await t.ingestor.flushAll();
    expect(t.acks.map((a) => a.seq)).toEqual([2, 3]);
    expect(t.counts.get(INGEST_METRICS.duplicates)).toBe(2);
    expect(t.seen.readings.map((r) => r.seq)).toEqual([1, 2, 3]);
  });

  it("dead-letters invalid messages, counts them, and still stores the valid ones around them", async () => {
    const t = setup();
    t.send("telemetry", reading(1));
    t.send("telemetry", "{not json");
    t.send("telemetry", { ...reading(2), cpuPct: "high" });
    t.send("telemetry", reading(2), "other-agent");
    t.ingestor.handle("polyfleet/v1/x", Buffer.from("{}"));
    t.send("telemetry", reading(2));
    await t.ingestor.flushAll();
    expect(t.acks.at(-1)?.seq).toBe(2);
    expect(t.counts.get(INGEST_METRICS.invalid)).toBe(4);
    const dead = t.ingestor.deadLetters();
    expect(dead.map((d) => d.reason).join("\n")).toMatch(/cpuPct/);
    expect(dead.some((d) => /differ from the topic/.test(d.reason))).toBe(true);
  });

  it("an outbox.dropped event fills its range so the watermark moves past the lost entries", async () => {
    const t = setup();
    t.send("telemetry", reading(1));
    t.send("events", {
      v: 1,
      agentId: AGENT,
      siteId: SITE,
      seq: 7,
      ts: 1,
      type: "outbox.dropped",
      dropped: 5,
      fromSeq: 2,
      toSeq: 6,
      totalDropped: 5,
    });
    t.send("telemetry", reading(8));
    await t.ingestor.flushAll();
    expect(t.acks.at(-1)?.seq).toBe(8);
    expect(t.seen.events.map((e) => e.type)).toEqual(["outbox.dropped"]);
  });

  it("does not ack what the store failed to store", async () => {
    const store = new MemoryStateStore();
    let fail = true;
    const real = store.ingest.bind(store);
    store.ingest = (b: IngestBatch): Promise<IngestResult> =>
      fail ? Promise.reject(new Error("disk full")) : real(b);
    const t = setup(store);
    t.send("telemetry", reading(1));
    await t.ingestor.flushAll();
    expect(t.acks).toEqual([]);
    expect(t.counts.get(INGEST_METRICS.storeFailures)).toBe(1);
    fail = false;
    t.send("telemetry", reading(1));
    await t.ingestor.flushAll();
    expect(t.acks.map((a) => a.seq)).toEqual([1]);
  });

  it("applies a birth, and ignores a late Will from an old session", async () => {
    const t = setup();
    const birth = (sessionId: string) => ({
      v: 1,
      agentId: AGENT,
      siteId: SITE,
      status: "online",
      sessionId,
      ts: 1,
      version: "0.1.0",
      capabilities: [],
      protocolVersion: 5,
    });
    t.send("state", birth("s1"));
    await new Promise((r) => setTimeout(r, 10));
    t.send("state", birth("s2"));
    await new Promise((r) => setTimeout(r, 10));
    t.send("state", {
      v: 1,
      agentId: AGENT,
      siteId: SITE,
      status: "offline",
      sessionId: "s1",
      ts: 2,
      reason: "will",
    });
    await new Promise((r) => setTimeout(r, 10));
    expect((await t.store.getAgent(AGENT))?.status).toBe("online");
    expect(t.seen.agents).toBe(2);
    t.send("state", {
      v: 1,
      agentId: AGENT,
      siteId: SITE,
      status: "offline",
      sessionId: "s2",
      ts: 3,
      reason: "will",
    });
    await new Promise((r) => setTimeout(r, 10));
    expect((await t.store.getAgent(AGENT))?.status).toBe("offline");
  });
});
