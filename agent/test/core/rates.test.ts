import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { counterRate, counterRates, rebootedBetween } from "../../src/core/rates.js";

const U32 = 2 ** 32;

describe("counterRate", () => {
  it("is the delta over the elapsed time", () => {
    expect(counterRate(1000, 1600, 10, { kind: "plain" })).toBe(60);
  });
  it("gives no rate on the first poll or when no time passed", () => {
    expect(counterRate(undefined, 5, 10, { kind: "counter32" })).toBeUndefined();
    expect(counterRate(5, 10, 0, { kind: "counter32" })).toBeUndefined();
    expect(counterRate(5, 10, -3, { kind: "counter32" })).toBeUndefined();
  });
  it("handles a Counter32 wrap", () => {
    expect(counterRate(U32 - 100, 900, 10, { kind: "counter32" })).toBe(100);
  });
  it("treats a decrease of a plain counter as a reset", () => {
    expect(counterRate(5000, 10, 10, { kind: "plain" })).toBeUndefined();
  });
  it("treats an implausible wrap as a reset", () => {
    // From 1000 down to 10 in 10 s would be ~429 M/s through a wrap: a reset the uptime did not show.
    expect(counterRate(1000, 10, 10, { kind: "counter32", maxPerSec: 2_000_000 })).toBeUndefined();
  });
  it("is never negative, NaN or infinite (property)", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.double(), fc.integer({ min: 0, max: U32 - 1 }).map(Number)),
        fc.oneof(fc.double(), fc.integer({ min: 0, max: U32 - 1 }).map(Number)),
        fc.double(),
        fc.constantFrom("counter32", "counter64", "plain") as fc.Arbitrary<
          "counter32" | "counter64" | "plain"
        >,
        fc.option(fc.double({ min: 0, max: 1e12, noNaN: true }), { nil: undefined }),
        (prev, cur, dt, kind, maxPerSec) => {
          const r = counterRate(prev, cur, dt, maxPerSec === undefined ? { kind } : { kind, maxPerSec });
          if (r !== undefined) {
            expect(r).toBeGreaterThanOrEqual(0);
            expect(Number.isFinite(r)).toBe(true);
          }
        },
      ),
    );
  });
  it("recovers the true rate across a Counter32 wrap (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: U32 - 1 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.integer({ min: 1, max: 3600 }),
        (start, delta, dt) => {
          const cur = (start + delta) % U32;
          const r = counterRate(start, cur, dt, { kind: "counter32", maxPerSec: 1e9 });
          expect(r).toBeCloseTo(delta / dt, 6);
        },
      ),
    );
  });
});

describe("counterRates", () => {
  it("gives nothing on the first poll", () => {
    expect(counterRates(undefined, { atMs: 0, values: { rx: 5 } }, { kind: "counter32" })).toEqual({});
  });
  it("gives nothing across a reboot (uptime dropped), even if counters grew", () => {
    const prev = { atMs: 0, uptimeSec: 5000, values: { rx: 10 } };
    const cur = { atMs: 30_000, uptimeSec: 20, values: { rx: 900 } };
    expect(rebootedBetween(prev, cur)).toBe(true);
    expect(counterRates(prev, cur, { kind: "counter32" })).toEqual({});
  });
  it("computes each counter present in both samples", () => {
    const prev = { atMs: 0, uptimeSec: 100, values: { rx: 10, tx: 20, gone: 1 } };
    const cur = { atMs: 2000, uptimeSec: 102, values: { rx: 30, tx: 20, fresh: 5 } };
    expect(counterRates(prev, cur, { kind: "counter32" })).toEqual({ rx: 10, tx: 0 });
  });
});
