import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decideRange, etagMatches } from "../../src/http/byte-range.js";

describe("decideRange", () => {
  it("never throws, and a partial answer always lies within the body (any header, any length)", () => {
    const header = fc.oneof(
      fc.string(),
      fc
        .tuple(fc.constantFrom("bytes", "BYTES", " bytes ", "items"), fc.string())
        .map(([u, s]) => `${u}=${s}`),
      fc
        .tuple(fc.option(fc.nat(), { nil: undefined }), fc.option(fc.nat(), { nil: undefined }))
        .map(([a, b]) => `bytes=${a ?? ""}-${b ?? ""}`),
    );
    fc.assert(
      fc.property(fc.option(header, { nil: undefined }), fc.nat(1_000_000), (h, length) => {
        const d = decideRange(h, length);
        if (d.kind === "partial") {
          expect(d.start).toBeGreaterThanOrEqual(0);
          expect(d.start).toBeLessThanOrEqual(d.end);
          expect(d.end).toBeLessThan(length);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("handles the edges", () => {
    expect(decideRange(undefined, 10)).toEqual({ kind: "full" });
    expect(decideRange("bytes=0-0", 10)).toEqual({ kind: "partial", start: 0, end: 0 });
    expect(decideRange("bytes=9-", 10)).toEqual({ kind: "partial", start: 9, end: 9 });
    expect(decideRange("bytes=10-", 10)).toEqual({ kind: "unsatisfiable" });
    expect(decideRange("bytes=-10", 10)).toEqual({ kind: "partial", start: 0, end: 9 });
    expect(decideRange("bytes=-1", 0)).toEqual({ kind: "unsatisfiable" });
    expect(decideRange("bytes=0-", 0)).toEqual({ kind: "unsatisfiable" });
    expect(decideRange("Bytes = 2-4", 10)).toEqual({ kind: "partial", start: 2, end: 4 });
    expect(decideRange("bytes=2-4,", 10)).toEqual({ kind: "partial", start: 2, end: 4 });
    expect(decideRange("bytes=0-1,5-6", 10)).toEqual({ kind: "full" });
    expect(decideRange("bytes=99999999999999999999-", 10)).toEqual({ kind: "unsatisfiable" });
    expect(decideRange("bytes=", 10)).toEqual({ kind: "unsatisfiable" });
  });
});

describe("etagMatches", () => {
  it("compares weakly, accepts lists and *", () => {
    expect(etagMatches(undefined, '"a"')).toBe(false);
    expect(etagMatches('"a"', '"a"')).toBe(true);
    expect(etagMatches('W/"a"', '"a"')).toBe(true);
    expect(etagMatches('"b" , "a"', '"a"')).toBe(true);
    expect(etagMatches("*", '"a"')).toBe(true);
    expect(etagMatches('"b"', '"a"')).toBe(false);
    expect(etagMatches('"a', '"a"')).toBe(false);
  });
});
