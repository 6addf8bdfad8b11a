import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  applyOutcome,
  backoffBase,
  type DeviceHealth,
  firstPollDelay,
  initialHealth,
  jittered,
  nextDueAt,
  nextPollDelay,
  type PollPlanConfig,
  spreadFraction,
  type Transition,
} from "../../src/core/poll-plan.js";

const unit = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
const cfgArb = fc.record({
  intervalMs: fc.integer({ min: 1000, max: 3_600_000 }),
  jitterPct: fc.integer({ min: 0, max: 50 }),
  backoffMaxMs: fc.integer({ min: 0, max: 86_400_000 }),
  missesBeforeUnreachable: fc.integer({ min: 1, max: 10 }),
  lostAfterMs: fc.integer({ min: 0, max: 86_400_000 }),
});

describe("poll plan: timing", () => {
  it("jitter stays within ±jitterPct of the base", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10_000_000 }),
        fc.integer({ min: 0, max: 50 }),
        unit,
        (base, pct, r) => {
          const d = jittered(base, pct, r);
          expect(d).toBeGreaterThanOrEqual(Math.floor(base * (1 - pct / 100)));
          expect(d).toBeLessThanOrEqual(Math.ceil(base * (1 + pct / 100)));
        },
      ),
    );
    expect(jittered(10_000, 10, 0)).toBe(9000);
    expect(jittered(10_000, 10, 0.5)).toBe(10_000);
    expect(jittered(10_000, 80, 0)).toBe(5000);
  });

  it("first polls fall inside the first interval and spread evenly", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000_000 }), fc.nat(), unit, (interval, n, seed) => {
        const f = spreadFraction(n, seed);
        expect(f).toBeGreaterThanOrEqual(0);
        expect(f).toBeLessThan(1);
        const d = firstPollDelay(interval, f);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(Math.max(1, interval));
      }),
    );
    // Any count of devices: no tenth of the interval holds more than ~1.5× its share.
    for (const count of [10, 97, 500, 2000]) {
      const buckets = new Array<number>(10).fill(0);
      for (let i = 0; i < count; i++) {
        const b = Math.floor(spreadFraction(i, 0.3) * 10);
        buckets[b] = (buckets[b] ?? 0) + 1;
      }
      expect(Math.max(...buckets)).toBeLessThanOrEqual(Math.ceil((count / 10) * 1.5));
    }
  });

  it("backoff is the interval below the miss threshold, then non-decreasing and capped", () => {
    fc.assert(
      fc.property(cfgArb, fc.integer({ min: 0, max: 200 }), unit, (cfg, failures, r) => {
        const cap = Math.max(cfg.backoffMaxMs, cfg.intervalMs);
        const b = backoffBase(failures, cfg);
        expect(b).toBeLessThanOrEqual(cap);
        expect(b).toBeGreaterThanOrEqual(cfg.intervalMs);
        expect(backoffBase(failures + 1, cfg)).toBeGreaterThanOrEqual(b);
        if (failures < cfg.missesBeforeUnreachable) expect(b).toBe(cfg.intervalMs);
        const d = nextPollDelay(failures, cfg, r);
        expect(d).toBeLessThanOrEqual(Math.ceil(cap * (1 + cfg.jitterPct / 100)));
        expect(nextPollDelay(failures + 1, cfg, r)).toBeGreaterThanOrEqual(d);
      }),
    );
    const cfg: PollPlanConfig = {
      intervalMs: 10_000,
      jitterPct: 0,
      backoffMaxMs: 60_000,
      missesBeforeUnreachable: 3,
      lostAfterMs: 0,
    };
    expect([0, 1, 2, 3, 4, 5, 6].map((f) => backoffBase(f, cfg))).toEqual([
      10_000, 10_000, 10_000, 20_000, 40_000, 60_000, 60_000,
    ]);
  });

  it("keeps the phase and catches up once when late", () => {
    expect(nextDueAt(1000, 500, 1200)).toBe(1500);
    expect(nextDueAt(1000, 500, 2000)).toBe(2000);
  });
});

describe("poll plan: reachability state machine", () => {
  const run = (
    outcomes: boolean[],
    cfg: { missesBeforeUnreachable: number; lostAfterMs: number },
    stepMs = 1000,
  ) => {
    let h: DeviceHealth = initialHealth(0);
    const log: { i: number; t: Transition }[] = [];
    outcomes.forEach((ok, i) => {
      const r = applyOutcome(h, ok, (i + 1) * stepMs, cfg);
      h = r.health;
      for (const t of r.transitions) log.push({ i, t });
    });
    return { h, log };
  };

  it("matches a reference model on any outcome sequence", () => {
    fc.assert(
      fc.property(
        fc.array(fc.boolean(), { maxLength: 60 }),
        fc.integer({ min: 1, max: 6 }),
        (outcomes, n) => {
          const { log } = run(outcomes, {
            missesBeforeUnreachable: n,
            lostAfterMs: Number.POSITIVE_INFINITY,
          });
          // Reference: count consecutive misses; down at exactly the n-th, up at the first success after down.
          const expected: { i: number; reachable: boolean }[] = [];
          let misses = 0;
          let down = false;
          outcomes.forEach((ok, i) => {
            if (ok) {
              if (down) expected.push({ i, reachable: true });
              down = false;
              misses = 0;
            } else {
              misses++;
              if (!down && misses === n) {
                expected.push({ i, reachable: false });
                down = true;
              }
            }
          });
          expect(log.map(({ i, t }) => ({ i, reachable: t.type === "reachability" && t.reachable }))).toEqual(
            expected,
          );
        },
      ),
    );
  });

  it("never flaps on a single failure (threshold ≥ 2)", () => {
    fc.assert(
      fc.property(
        fc
          .array(fc.boolean(), { maxLength: 80 })
          .map((xs) => xs.flatMap((x) => (x ? [true] : [false, true]))),
        fc.integer({ min: 2, max: 6 }),
        (outcomes, n) => {
          expect(run(outcomes, { missesBeforeUnreachable: n, lostAfterMs: 0 }).log).toEqual([]);
        },
      ),
    );
  });

  it("reachability transitions alternate: never two downs or two ups in a row", () => {
    fc.assert(
      fc.property(
        fc.array(fc.boolean(), { maxLength: 100 }),
        fc.integer({ min: 1, max: 5 }),
        (outcomes, n) => {
          const ups = run(outcomes, { missesBeforeUnreachable: n, lostAfterMs: 5000 })
            .log.filter((x) => x.t.type === "reachability")
            .map((x) => x.t.type === "reachability" && x.t.reachable);
          for (let i = 1; i < ups.length; i++) expect(ups[i]).not.toBe(ups[i - 1]);
          if (ups.length > 0) expect(ups[0]).toBe(false);
        },
      ),
    );
  });

  it("goes lost once after the absence limit and comes back reachable", () => {
    const outcomes = [true, ...new Array<boolean>(20).fill(false), true];
    const { log, h } = run(outcomes, { missesBeforeUnreachable: 3, lostAfterMs: 10_000 });
    expect(log.map((x) => x.t)).toEqual([
      { type: "reachability", reachable: false, missedPolls: 3 },
      // Last seen at t=1000; lost at the first miss 10 s later (t=11000, the 10th miss).
      { type: "lost", missedPolls: 10, absentMs: 10_000 },
      { type: "reachability", reachable: true, missedPolls: 20 },
    ]);
    expect(h.state).toBe("reachable");
    // A device never seen counts its absence from when it was first tracked.
    const never = run(new Array<boolean>(5).fill(false), { missesBeforeUnreachable: 1, lostAfterMs: 2000 });
    expect(never.log.map((x) => x.t.type)).toEqual(["reachability", "lost"]);
  });

  it("reports lost at most once per absence for any configuration", () => {
    fc.assert(
      fc.property(cfgArb, fc.array(fc.boolean(), { maxLength: 60 }), (cfg, outcomes) => {
        const { log } = run(outcomes, cfg, 60_000);
        let lostSinceUp = 0;
        for (const x of log) {
          if (x.t.type === "lost") lostSinceUp++;
          else if (x.t.reachable) lostSinceUp = 0;
          expect(lostSinceUp).toBeLessThanOrEqual(1);
        }
      }),
    );
  });
});
