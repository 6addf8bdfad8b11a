import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  compareOids,
  feedWalk,
  inSubtree,
  nextRepetitions,
  parseOid,
  startWalk,
} from "../../src/core/snmp-walk.js";

const ROOT = "1.3.6.1.2.1.2.2";
const LIMITS = { maxVarbinds: 1000, maxMs: 10_000 };
const item = (oid: string, endOfView = false) => ({ oid, endOfView });

/** Random strictly increasing OIDs under ROOT. */
const increasing = fc
  .uniqueArray(fc.tuple(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 50 })), {
    minLength: 1,
    maxLength: 60,
    selector: (t) => `${t[0]}.${t[1]}`,
  })
  .map((pairs) => pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1]).map(([c, i]) => `${ROOT}.1.${c}.${i}`));

describe("snmp-walk", () => {
  it("parses and orders OIDs numerically, not as text", () => {
    expect(parseOid(".1.3.6")).toEqual([1, 3, 6]);
    expect(parseOid("1..3")).toBeUndefined();
    expect(parseOid("1.a")).toBeUndefined();
    expect(parseOid("")).toBeUndefined();
    expect(compareOids([1, 3, 10], [1, 3, 9])).toBeGreaterThan(0);
    expect(compareOids([1, 3], [1, 3, 0])).toBeLessThan(0);
    expect(inSubtree([1, 3], [1, 3, 0])).toBe(true);
    expect(inSubtree([1, 3], [1, 3])).toBe(false);
    expect(inSubtree([1, 3], [1, 4, 0])).toBe(false);
  });

  it("detects a repeated OID and a backwards OID as a loop", () => {
    const s = startWalk(ROOT, 0)!;
    const r = feedWalk(s, [item(`${ROOT}.1.1.1`), item(`${ROOT}.1.1.2`), item(`${ROOT}.1.1.2`)], LIMITS, 0);
    expect(r.accepted).toBe(2);
    expect(r.verdict).toEqual({ kind: "loop", previous: `${ROOT}.1.1.2`, oid: `${ROOT}.1.1.2` });
    const s2 = startWalk(ROOT, 0)!;
    expect(feedWalk(s2, [item(`${ROOT}.1.2.1`)], LIMITS, 0).verdict.kind).toBe("continue");
    expect(feedWalk(s2, [item(`${ROOT}.1.1.9`)], LIMITS, 0).verdict.kind).toBe("loop");
    // leaving the subtree backwards is a loop too; forwards is the end
    const s3 = startWalk(ROOT, 0)!;
    expect(feedWalk(s3, [item("1.3.6.1.2.1.1.5.0")], LIMITS, 0).verdict.kind).toBe("loop");
    const s4 = startWalk(ROOT, 0)!;
    expect(feedWalk(s4, [item("1.3.6.1.2.1.3.1")], LIMITS, 0).verdict.kind).toBe("done");
  });

  it("stops at maxVarbinds only when more would follow, and at maxMs", () => {
    const s = startWalk(ROOT, 0)!;
    const lim = { maxVarbinds: 2, maxMs: 100 };
    expect(nextRepetitions(s, lim, 20)).toBe(3);
    const r = feedWalk(s, [item(`${ROOT}.1.1.1`), item(`${ROOT}.1.1.2`), item(`${ROOT}.1.1.3`)], lim, 0);
    expect(r).toEqual({ accepted: 2, verdict: { kind: "limit", bound: "varbinds" } });
    const exact = startWalk(ROOT, 0)!;
    expect(
      feedWalk(exact, [item(`${ROOT}.1.1.1`), item(`${ROOT}.1.1.2`), item("1.3.6.1.2.1.3", false)], lim, 0)
        .verdict.kind,
    ).toBe("done");
    const slow = startWalk(ROOT, 0)!;
    expect(feedWalk(slow, [item(`${ROOT}.1.1.1`)], lim, 100).verdict).toEqual({
      kind: "limit",
      bound: "time",
    });
    const end = startWalk(ROOT, 0)!;
    expect(feedWalk(end, [item(`${ROOT}.1.1.1`), item(`${ROOT}.1.1.1`, true)], lim, 0)).toEqual({
      accepted: 1,
      verdict: { kind: "done" },
    });
    expect(feedWalk(startWalk(ROOT, 0)!, [item("bogus")], lim, 0).verdict.kind).toBe("malformed");
  });

  it("property: any increasing sequence fed in any batching is accepted whole, in order", () => {
    fc.assert(
      fc.property(increasing, fc.integer({ min: 1, max: 7 }), (oids, batch) => {
        const s = startWalk(ROOT, 0)!;
        const got: string[] = [];
        for (let i = 0; i < oids.length; i += batch) {
          const chunk = oids.slice(i, i + batch);
          const r = feedWalk(
            s,
            chunk.map((o) => item(o)),
            LIMITS,
            0,
          );
          got.push(...chunk.slice(0, r.accepted));
          expect(r.verdict.kind).toBe("continue");
        }
        expect(feedWalk(s, [item("1.3.6.1.2.1.3.0")], LIMITS, 0).verdict.kind).toBe("done");
        expect(got).toEqual(oids);
      }),
    );
  });

  it("property: a non-increasing OID anywhere is reported as a loop at exactly that position", () => {
    fc.assert(
      fc.property(increasing, fc.nat(), fc.nat(), (oids, a, b) => {
        const at = 1 + (a % oids.length); // insert after position at-1
        const back = oids[b % at] as string; // some OID already seen (<= the previous one)
        const seq = [...oids.slice(0, at), back, ...oids.slice(at)];
        const s = startWalk(ROOT, 0)!;
        const r = feedWalk(
          s,
          seq.map((o) => item(o)),
          LIMITS,
          0,
        );
        expect(r.accepted).toBe(at);
        expect(r.verdict.kind).toBe("loop");
      }),
    );
  });

  it("property: a walk never accepts more than maxVarbinds", () => {
    fc.assert(
      fc.property(increasing, fc.integer({ min: 0, max: 70 }), (oids, max) => {
        const s = startWalk(ROOT, 0)!;
        const r = feedWalk(
          s,
          oids.map((o) => item(o)),
          { maxVarbinds: max, maxMs: 1e9 },
          0,
        );
        expect(r.accepted).toBeLessThanOrEqual(max);
        expect(r.accepted).toBe(Math.min(max, oids.length));
        if (oids.length > max) expect(r.verdict).toEqual({ kind: "limit", bound: "varbinds" });
      }),
    );
  });
});
