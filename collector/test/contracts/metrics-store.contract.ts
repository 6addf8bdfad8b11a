// One behavioural contract for every MetricsStore adapter (MemoryMetricsStore, InfluxMetricsStore):
// write readings, then query raw and bucketed series. Run it with describeMetricsStoreContract().

import { randomBytes } from "node:crypto";
import { waitFor } from "@polyfleet/scripts/testing";
import type { Reading } from "@polyfleet/shared";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MetricsStore, SeriesPoint } from "../../src/ports/metrics-store.js";

export interface MetricsStoreHarness {
  store: MetricsStore;
  /** Frees what the harness made (the store is stopped by the suite). */
  cleanup(): Promise<void>;
}

/** A reading of `deviceId` at `ts` with the given metric fields. */
export function metricReading(
  deviceId: string,
  ts: number,
  m: {
    cpuPct?: number;
    memPct?: number;
    reachable?: boolean;
    pollLatencyMs?: number;
    rxPacketsPerSec?: number;
    packetLossPct?: number;
  } = {},
  seq = 1,
): Reading {
  return {
    v: 1,
    kind: "reading",
    agentId: "agent-c",
    siteId: "site-c",
    seq,
    ts,
    deviceId,
    driver: "poly-ucs",
    reachable: m.reachable ?? true,
    pollLatencyMs: m.pollLatencyMs ?? 10,
    identity: { address: "10.1.2.3", family: "uc", model: "VVX 450" },
    firmware: [],
    health: [],
    peripherals: [],
    lines: [],
    ...(m.cpuPct === undefined ? {} : { cpuPct: m.cpuPct }),
    ...(m.memPct === undefined ? {} : { memPct: m.memPct }),
    network: {
      ...(m.rxPacketsPerSec === undefined ? {} : { rxPacketsPerSec: m.rxPacketsPerSec }),
      ...(m.packetLossPct === undefined ? {} : { packetLossPct: m.packetLossPct }),
    },
    errors: [],
  };
}

/** Epoch-aligned bucket means, the reference both adapters must match. */
function expectedBuckets(points: SeriesPoint[], step: number): SeriesPoint[] {
  const sums = new Map<number, { sum: number; n: number }>();
  for (const p of points) {
    const b = Math.floor(p.ts / step) * step;
    const e = sums.get(b) ?? { sum: 0, n: 0 };
    e.sum += p.value;
    e.n++;
    sums.set(b, e);
  }
  return [...sums.entries()].sort((a, b) => a[0] - b[0]).map(([ts, e]) => ({ ts, value: e.sum / e.n }));
}

function expectClose(actual: SeriesPoint[], expected: SeriesPoint[]): void {
  expect(actual.map((p) => p.ts)).toEqual(expected.map((p) => p.ts));
  actual.forEach((p, i) => {
    expect(p.value).toBeCloseTo(expected[i]?.value ?? Number.NaN, 9);
  });
}

/**
 * Registers the contract tests. `make` is called once for the suite; the store is started before and
 * stopped after. Writes are asynchronous for buffered adapters, so the suite waits for `buffered === 0`.
 */
export function describeMetricsStoreContract(name: string, make: () => Promise<MetricsStoreHarness>): void {
  describe(`MetricsStore contract: ${name}`, () => {
    let h: MetricsStoreHarness;
    let store: MetricsStore;
    // Half an hour ago, on a minute boundary: inside every adapter's retention.
    const base = Math.floor(Date.now() / 60_000) * 60_000 - 30 * 60_000;
    const dev = (): string => `dev-${randomBytes(5).toString("hex")}`;
    const settle = (): Promise<void> =>
      waitFor(() => store.stats().buffered === 0, 20_000, "metrics flushed", 10);

    beforeAll(async () => {
      h = await make();
      store = h.store;
      await store.start();
    });
    afterAll(async () => {
      await store?.stop();
      await h?.cleanup();
    });

    it("returns the raw points of one field of one device in [from, to], in time order", async () => {
      const a = dev();
      const b = dev();
      const cpu = [5, 7.25, 99.5, 0, 42];
      // Written out of order, with another device interleaved.
      const order = [3, 0, 4, 1, 2];
      store.write(order.map((i) => metricReading(a, base + i * 10_000, { cpuPct: cpu[i] ?? 0 })));
      store.write([metricReading(b, base + 10_000, { cpuPct: 77 })]);
      await settle();
      const all = await store.query({ deviceId: a, field: "cpuPct", from: base, to: base + 40_000 });
      expect(all).toEqual(cpu.map((value, i) => ({ ts: base + i * 10_000, value })));
      // Both ends inclusive.
      const mid = await store.query({ deviceId: a, field: "cpuPct", from: base + 10_000, to: base + 30_000 });
      expect(mid).toEqual([
        { ts: base + 10_000, value: 7.25 },
        { ts: base + 20_000, value: 99.5 },
        { ts: base + 30_000, value: 0 },
      ]);
      expect(await store.query({ deviceId: b, field: "cpuPct", from: base, to: base + 40_000 })).toEqual([
        { ts: base + 10_000, value: 77 },
      ]);
      expect(store.stats().written).toBeGreaterThanOrEqual(6);
    });

    it("leaves out readings that lack the field, and answers [] for an unknown device", async () => {
      const a = dev();
      store.write([
        metricReading(a, base, { memPct: 10 }),
        metricReading(a, base + 1000, {}),
        metricReading(a, base + 2000, { memPct: 30, packetLossPct: 2.5 }),
      ]);
      await settle();
      expect(await store.query({ deviceId: a, field: "memPct", from: base, to: base + 5000 })).toEqual([
        { ts: base, value: 10 },
        { ts: base + 2000, value: 30 },
      ]);
      expect(await store.query({ deviceId: a, field: "packetLossPct", from: base, to: base + 5000 })).toEqual(
        [{ ts: base + 2000, value: 2.5 }],
      );
      expect(
        await store.query({ deviceId: a, field: "rxPacketsPerSec", from: base, to: base + 5000 }),
      ).toEqual([]);
      expect(await store.query({ deviceId: dev(), field: "cpuPct", from: base, to: base + 5000 })).toEqual(
        [],
      );
    });

    it("averages per epoch-aligned bucket and leaves out empty buckets", async () => {
      const a = dev();
      // Buckets of 60 s from `base` (a minute boundary): [base, +60 s) gets 10, 20, 30; the next minute
      // nothing; the one after 50 and 70.
      store.write([
        metricReading(a, base + 1_000, { cpuPct: 10 }),
        metricReading(a, base + 30_000, { cpuPct: 20 }),
        metricReading(a, base + 59_999, { cpuPct: 30 }),
        metricReading(a, base + 120_000, { cpuPct: 50 }),
        metricReading(a, base + 170_000, { cpuPct: 70 }),
      ]);
      await settle();
      const series = await store.query({
        deviceId: a,
        field: "cpuPct",
        from: base,
        to: base + 179_999,
        stepMs: 60_000,
      });
      expect(series).toEqual([
        { ts: base, value: 20 },
        { ts: base + 120_000, value: 60 },
      ]);
      // A range starting mid-bucket: that bucket keeps its epoch-aligned start and averages what is in range.
      const late = await store.query({
        deviceId: a,
        field: "cpuPct",
        from: base + 30_000,
        to: base + 179_999,
        stepMs: 60_000,
      });
      expect(late).toEqual([
        { ts: base, value: 25 },
        { ts: base + 120_000, value: 60 },
      ]);
    });

    it("stores reachable as 0/1, so a bucket's mean is the availability", async () => {
      const a = dev();
      store.write([
        metricReading(a, base, { reachable: true }),
        metricReading(a, base + 10_000, { reachable: false }),
        metricReading(a, base + 20_000, { reachable: true }),
        metricReading(a, base + 30_000, { reachable: true }),
      ]);
      await settle();
      expect(await store.query({ deviceId: a, field: "reachable", from: base, to: base + 30_000 })).toEqual([
        { ts: base, value: 1 },
        { ts: base + 10_000, value: 0 },
        { ts: base + 20_000, value: 1 },
        { ts: base + 30_000, value: 1 },
      ]);
      expect(
        await store.query({ deviceId: a, field: "reachable", from: base, to: base + 59_999, stepMs: 60_000 }),
      ).toEqual([{ ts: base, value: 0.75 }]);
    });

    it("replaces a point written again for the same device and time", async () => {
      const a = dev();
      store.write([metricReading(a, base + 5000, { cpuPct: 1 })]);
      await settle();
      store.write([metricReading(a, base + 5000, { cpuPct: 2 })]);
      await settle();
      expect(await store.query({ deviceId: a, field: "cpuPct", from: base, to: base + 10_000 })).toEqual([
        { ts: base + 5000, value: 2 },
      ]);
    });

    it("refuses an unknown field with POLYFLEET_ERR_METRICS_FIELD_UNKNOWN", async () => {
      await expect(
        store.query({ deviceId: dev(), field: "bogus", from: base, to: base + 1 }),
      ).rejects.toMatchObject({
        code: "POLYFLEET_ERR_METRICS_FIELD_UNKNOWN",
      });
      await expect(
        store.query({ deviceId: dev(), field: 'cpuPct") FROM x; DROP DATABASE y; --', from: 0, to: 1 }),
      ).rejects.toMatchObject({ code: "POLYFLEET_ERR_METRICS_FIELD_UNKNOWN" });
    });

    it("answers generated series exactly like the reference (raw and bucketed)", async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.uniqueArray(fc.integer({ min: 0, max: 20 * 60_000 - 1 }), { minLength: 1, maxLength: 60 }),
          fc.array(fc.double({ min: 0, max: 100, noNaN: true }), { minLength: 60, maxLength: 60 }),
          fc.constantFrom(1000, 15_000, 60_000, 300_000),
          fc.integer({ min: 0, max: 10 * 60_000 }),
          fc.integer({ min: 1, max: 20 * 60_000 }),
          async (offsets, values, step, fromOff, span) => {
            const a = dev();
            const written = offsets.map((o, i) => ({ ts: base - 25 * 60_000 + o, value: values[i] ?? 0 }));
            store.write(written.map((p) => metricReading(a, p.ts, { cpuPct: p.value })));
            await settle();
            const from = base - 25 * 60_000 + fromOff;
            const to = from + span;
            const inRange = written.filter((p) => p.ts >= from && p.ts <= to).sort((x, y) => x.ts - y.ts);
            expect(await store.query({ deviceId: a, field: "cpuPct", from, to })).toEqual(inRange);
            expectClose(
              await store.query({ deviceId: a, field: "cpuPct", from, to, stepMs: step }),
              expectedBuckets(inRange, step),
            );
          },
        ),
        { numRuns: 25 },
      );
    });

    it("never throws from write(), whatever the values", async () => {
      const a = dev();
      expect(() =>
        store.write([
          metricReading(a, base, { cpuPct: Number.NaN, memPct: Number.POSITIVE_INFINITY }),
          metricReading(a, base + 1, { cpuPct: 1e300 }),
        ]),
      ).not.toThrow();
      store.write([]);
      await settle();
      expect(await store.query({ deviceId: a, field: "cpuPct", from: base, to: base + 1 })).toEqual([
        { ts: base + 1, value: 1e300 },
      ]);
      expect(await store.query({ deviceId: a, field: "reachable", from: base, to: base + 1 })).toEqual([
        { ts: base, value: 1 },
        { ts: base + 1, value: 1 },
      ]);
    });
  });
}
