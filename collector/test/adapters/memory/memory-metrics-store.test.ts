import type { Clock } from "@polyfleet/shared";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemoryMetricsStore } from "../../../src/adapters/memory/memory-metrics-store.js";
import { describeMetricsStoreContract, metricReading } from "../../contracts/metrics-store.contract.js";

describeMetricsStoreContract("MemoryMetricsStore", async () => ({
  store: new MemoryMetricsStore({ retentionMinutes: 360 }),
  cleanup: async () => {},
}));

function manualClock(start: number): Clock & { now(): number; set(t: number): void } {
  let t = start;
  return {
    now: () => t,
    set: (v: number) => {
      t = v;
    },
    setTimeout: () => ({ id: 0 }),
    clearTimeout: () => {},
  };
}

describe("MemoryMetricsStore bounds", () => {
  const T0 = 1_700_000_000_000;

  it("forgets points older than retentionMinutes, counting them as expired, not dropped", async () => {
    const clock = manualClock(T0);
    const store = new MemoryMetricsStore({ retentionMinutes: 10, clock });
    await store.start();
    store.write([
      metricReading("d1", T0 - 9 * 60_000, { cpuPct: 1 }),
      metricReading("d1", T0, { cpuPct: 2 }),
    ]);
    // Already older than the window: not kept.
    store.write([metricReading("d1", T0 - 11 * 60_000, { cpuPct: 0 })]);
    expect(await store.query({ deviceId: "d1", field: "cpuPct", from: 0, to: T0 })).toEqual([
      { ts: T0 - 9 * 60_000, value: 1 },
      { ts: T0, value: 2 },
    ]);
    clock.set(T0 + 2 * 60_000);
    expect(await store.query({ deviceId: "d1", field: "cpuPct", from: 0, to: T0 + 1 })).toEqual([
      { ts: T0, value: 2 },
    ]);
    expect(store.stats()).toEqual({ written: 2, buffered: 0, dropped: 0, retries: 0 });
    await store.stop();
  });

  it("keeps at most maxPointsPerDevice per device, dropping (and counting) the oldest", async () => {
    const clock = manualClock(T0);
    const store = new MemoryMetricsStore({ retentionMinutes: 600, maxPointsPerDevice: 100, clock });
    await store.start();
    for (let i = 0; i < 250; i++) store.write([metricReading("d1", T0 - 250_000 + i * 1000, { cpuPct: i })]);
    store.write([metricReading("d2", T0, { cpuPct: 5 })]);
    const pts = await store.query({ deviceId: "d1", field: "cpuPct", from: 0, to: T0 });
    expect(pts).toHaveLength(100);
    expect(pts[0]).toEqual({ ts: T0 - 250_000 + 150_000, value: 150 });
    expect(pts[99]).toEqual({ ts: T0 - 250_000 + 249_000, value: 249 });
    expect(await store.query({ deviceId: "d2", field: "cpuPct", from: 0, to: T0 })).toEqual([
      { ts: T0, value: 5 },
    ]);
    expect(store.stats()).toMatchObject({ written: 251, dropped: 150 });
  });

  it("refuses devices beyond maxDevices and counts their readings as dropped", async () => {
    const store = new MemoryMetricsStore({ maxDevices: 2, clock: manualClock(T0) });
    await store.start();
    store.write([
      metricReading("a", T0),
      metricReading("b", T0),
      metricReading("c", T0),
      metricReading("a", T0 + 1),
    ]);
    expect(await store.query({ deviceId: "c", field: "reachable", from: 0, to: T0 + 1 })).toEqual([]);
    expect(await store.query({ deviceId: "a", field: "reachable", from: 0, to: T0 + 1 })).toHaveLength(2);
    expect(store.stats()).toMatchObject({ written: 3, dropped: 1 });
  });

  it("merges a rewrite of the same time field by field, like InfluxDB", async () => {
    const store = new MemoryMetricsStore({ clock: manualClock(T0) });
    await store.start();
    store.write([metricReading("d", T0, { cpuPct: 1, memPct: 50 })]);
    store.write([metricReading("d", T0, { cpuPct: 2 })]);
    expect(await store.query({ deviceId: "d", field: "cpuPct", from: T0, to: T0 })).toEqual([
      { ts: T0, value: 2 },
    ]);
    expect(await store.query({ deviceId: "d", field: "memPct", from: T0, to: T0 })).toEqual([
      { ts: T0, value: 50 },
    ]);
  });

  it("keeps any arrival order sorted, with the newest maxPointsPerDevice kept (ring wrap and growth)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 500 }), { minLength: 1, maxLength: 200 }),
        fc.integer({ min: 1, max: 64 }),
        async (offsets, cap) => {
          const store = new MemoryMetricsStore({ maxPointsPerDevice: cap, clock: manualClock(T0) });
          await store.start();
          // Reference: a sorted map, last write wins, oldest evicted when over cap; a late point older than
          // everything in a full ring is not kept.
          const ref = new Map<number, number>();
          offsets.forEach((o, i) => {
            const ts = T0 - 1000 + o;
            store.write([metricReading("d", ts, { cpuPct: i })]);
            if (ref.has(ts)) {
              ref.set(ts, i);
              return;
            }
            const keys = [...ref.keys()].sort((x, y) => x - y);
            if (keys.length >= cap) {
              if (ts < (keys[0] ?? 0)) return;
              ref.delete(keys[0] ?? 0);
            }
            ref.set(ts, i);
          });
          const expected = [...ref.entries()]
            .sort((x, y) => x[0] - y[0])
            .map(([ts, value]) => ({ ts, value }));
          expect(await store.query({ deviceId: "d", field: "cpuPct", from: 0, to: T0 })).toEqual(expected);
        },
      ),
      { numRuns: 300 },
    );
  });
});
