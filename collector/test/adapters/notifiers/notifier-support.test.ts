import { SYSTEM_CLOCK } from "@polyfleet/shared";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { backoffDelay, DeliveryQueue, sleep } from "../../../src/adapters/notifiers/index.js";

describe("backoffDelay", () => {
  it("grows exponentially, is capped, and jitters within [0.5, 1) of the step", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 40 }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        (attempt, r) => {
          const step = Math.min(30_000, 100 * 2 ** attempt);
          const d = backoffDelay(attempt, 100, 30_000, () => r);
          expect(d).toBeGreaterThanOrEqual(Math.floor(step * 0.5));
          expect(d).toBeLessThanOrEqual(step);
        },
      ),
    );
    expect(backoffDelay(3, 100, 30_000, () => 0.999999)).toBeGreaterThan(
      backoffDelay(1, 100, 30_000, () => 0.999999),
    );
  });
});

describe("sleep", () => {
  it("resolves false at once when aborted", async () => {
    const ac = new AbortController();
    const p = sleep(SYSTEM_CLOCK, 60_000, ac.signal);
    ac.abort();
    await expect(p).resolves.toBe(false);
  });
});

describe("DeliveryQueue", () => {
  it("drops the oldest when full, keeps order, and reports idle", async () => {
    const handled: number[] = [];
    const dropped: Array<[number, string]> = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const q = new DeliveryQueue<number>(
      2,
      async (n) => {
        if (n === 1) await gate;
        handled.push(n);
      },
      (n, reason) => dropped.push([n, reason]),
    );
    for (let i = 1; i <= 5; i++) q.push(i);
    // 1 is in flight; 2 and 3 were pushed out by 4 and 5.
    expect(dropped).toEqual([
      [2, "queue_full"],
      [3, "queue_full"],
    ]);
    expect(q.pending()).toBe(2);
    release();
    await q.idle();
    expect(handled).toEqual([1, 4, 5]);
  });

  it("reports a throwing handler as a drop and keeps going", async () => {
    const dropped: string[] = [];
    const handled: number[] = [];
    const q = new DeliveryQueue<number>(
      10,
      (n) => {
        if (n === 1) return Promise.reject(new Error("boom"));
        handled.push(n);
        return Promise.resolve();
      },
      (_n, reason) => dropped.push(reason),
    );
    q.push(1);
    q.push(2);
    await q.idle();
    expect(dropped).toEqual(["handler_error"]);
    expect(handled).toEqual([2]);
  });
});
