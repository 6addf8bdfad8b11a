import { PolyfleetError } from "@polyfleet/shared";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  cidrContains,
  expandCidr,
  expandRanges,
  formatCidr,
  formatIpv4,
  hostCount,
  parseCidr,
  parseIpv4,
} from "../../src/core/cidr.js";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof PolyfleetError ? e.code : "not-a-PolyfleetError";
  }
  return undefined;
}

describe("cidr", () => {
  it("expands a /24 without network and broadcast", () => {
    const a = expandCidr("192.168.10.0/24");
    expect(a).toHaveLength(254);
    expect(a[0]).toBe("192.168.10.1");
    expect(a.at(-1)).toBe("192.168.10.254");
  });

  it("keeps both addresses of a /31 and the one of a /32; clears host bits", () => {
    expect(expandCidr("10.0.0.6/31")).toEqual(["10.0.0.6", "10.0.0.7"]);
    expect(expandCidr("10.0.0.9/32")).toEqual(["10.0.0.9"]);
    expect(expandCidr("10.0.0.9")).toEqual(["10.0.0.9"]);
    expect(expandCidr("10.0.0.5/30")).toEqual(["10.0.0.5", "10.0.0.6"]);
    expect(formatCidr(parseCidr("10.1.2.3/16"))).toBe("10.1.0.0/16");
  });

  it("refuses invalid text with CONFIG_INVALID", () => {
    for (const bad of [
      "",
      "10.0.0/24",
      "10.0.0.256/24",
      "10.0.0.1/33",
      "a.b.c.d/8",
      "10.0.0.01/24",
      "10.0.0.0/-1",
      "::1/128",
    ]) {
      expect(
        codeOf(() => parseCidr(bad)),
        bad,
      ).toBe("POLYFLEET_ERR_CONFIG_INVALID");
    }
    expect(parseIpv4("1.2.3")).toBeUndefined();
  });

  it("refuses ranges wider than the limit with a clear error, before allocating", () => {
    let err: unknown;
    try {
      expandCidr("10.0.0.0/15");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolyfleetError);
    expect((err as PolyfleetError).code).toBe("POLYFLEET_ERR_DISCOVERY_RANGE_TOO_LARGE");
    expect((err as PolyfleetError).message).toContain("10.0.0.0/15");
    expect((err as PolyfleetError).message).toContain("/16");
    expect(expandCidr("10.0.0.0/16")).toHaveLength(65_534);
    expect(codeOf(() => expandCidr("10.0.0.0/20", { minPrefix: 24 }))).toBe(
      "POLYFLEET_ERR_DISCOVERY_RANGE_TOO_LARGE",
    );
    expect(codeOf(() => expandCidr("0.0.0.0/0"))).toBe("POLYFLEET_ERR_DISCOVERY_RANGE_TOO_LARGE");
    expect(codeOf(() => expandRanges(["10.0.0.0/24", "10.0.1.0/24"], { maxAddresses: 300 }))).toBe(
      "POLYFLEET_ERR_DISCOVERY_RANGE_TOO_LARGE",
    );
  });

  it("lists each address once across overlapping ranges, in order", () => {
    const a = expandRanges(["10.0.0.0/30", "10.0.0.0/29", "10.0.0.2/32"]);
    expect(a).toEqual(["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]);
  });

  it("formats and parses every 32-bit address back to itself", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => {
        expect(parseIpv4(formatIpv4(n))).toBe(n);
      }),
    );
  });

  it("expands to exactly hostCount ascending addresses, all inside, without network/broadcast below /31", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 20, max: 32 }), (ip, prefix) => {
        const text = `${formatIpv4(ip)}/${prefix}`;
        const range = parseCidr(text);
        const a = expandCidr(text);
        const expected = 2 ** (32 - prefix) - (prefix < 31 ? 2 : 0);
        expect(a.length).toBe(expected);
        expect(hostCount(range)).toBe(expected);
        const nums = a.map((s) => parseIpv4(s) as number);
        expect(nums.every((n, i) => i === 0 || n === (nums[i - 1] as number) + 1)).toBe(true);
        expect(a.every((s) => cidrContains(range, s))).toBe(true);
        if (prefix < 31) {
          expect(nums[0]).toBe(range.network + 1);
          expect(nums.at(-1)).toBe(range.network + 2 ** (32 - prefix) - 2);
        }
        // Round trip: the canonical text parses to the same range.
        expect(parseCidr(formatCidr(range))).toEqual(range);
        // The addresses just outside are not contained.
        if (range.network > 0) expect(cidrContains(range, formatIpv4(range.network - 1))).toBe(false);
      }),
      { numRuns: 300 },
    );
  });
});
