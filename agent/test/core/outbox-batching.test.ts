import { Telemetry, validate } from "@polyfleet/shared";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  batchPrefix,
  defaultDropChunk,
  type OutboxEntry,
  overflowDropCount,
  planPublishUnits,
} from "../../src/core/outbox-batching.js";

const reading = (seq: number): OutboxEntry => ({
  seq,
  kind: "reading",
  json: JSON.stringify({
    v: 1,
    agentId: "a1",
    siteId: "s1",
    seq,
    ts: 1,
    kind: "reading",
    deviceId: "d1",
    driver: "snmp-generic",
    reachable: true,
    pollLatencyMs: 1,
    identity: { address: "127.0.0.1", family: "snmp" },
    firmware: [],
    health: [],
    peripherals: [],
    lines: [],
    network: {},
    errors: [],
  }),
});
const event = (seq: number): OutboxEntry => ({ seq, kind: "event", json: `{"seq":${seq}}` });

describe("planPublishUnits", () => {
  it("batches consecutive readings up to batchSize, sends events alone, keeps seq order", () => {
    const entries = [
      reading(1),
      reading(2),
      reading(3),
      event(4),
      reading(5),
      reading(6),
      reading(7),
      reading(8),
    ];
    const units = planPublishUnits(entries, 3, batchPrefix("a1", "s1"));
    expect(units.map((u) => [u.topic, u.firstSeq, u.lastSeq, u.count])).toEqual([
      ["telemetry", 1, 3, 3],
      ["events", 4, 4, 1],
      ["telemetry", 5, 7, 3],
      ["telemetry", 8, 8, 1],
    ]);
    const batch = validate(Telemetry, JSON.parse(units[0]!.payload));
    expect(batch.ok && batch.value.kind === "batch" && batch.value.items.map((i) => i.seq)).toEqual([
      1, 2, 3,
    ]);
    // A lone reading goes as a plain Reading.
    const single = validate(Telemetry, JSON.parse(units[3]!.payload));
    expect(single.ok && single.value.kind).toBe("reading");
  });

  it("covers every entry exactly once, in order (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.boolean(), { maxLength: 200 }),
        fc.integer({ min: 1, max: 20 }),
        (kinds, size) => {
          const entries = kinds.map((isEvent, i) => (isEvent ? event(i + 1) : reading(i + 1)));
          const units = planPublishUnits(entries, size, "P[");
          const covered = units.flatMap((u) => Array.from({ length: u.count }, (_, k) => u.firstSeq + k));
          expect(covered).toEqual(entries.map((e) => e.seq));
          for (const u of units) expect(u.count).toBeLessThanOrEqual(size);
        },
      ),
    );
  });
});

describe("overflowDropCount", () => {
  it("drops nothing while it fits, at least a chunk when full, never more than held", () => {
    expect(overflowDropCount(5, 1, 10, 3)).toBe(0);
    expect(overflowDropCount(9, 1, 10, 3)).toBe(0);
    expect(overflowDropCount(10, 1, 10, 3)).toBe(3);
    expect(overflowDropCount(10, 1, 10, 1)).toBe(2);
    expect(overflowDropCount(2, 1, 2, 50)).toBe(2);
    expect(defaultDropChunk(1_000_000)).toBe(10_000);
    expect(defaultDropChunk(10)).toBe(1);
  });
});
