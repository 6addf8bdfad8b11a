import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  reportedVersionOf,
  sameRelease,
  splitVideoOsVersion,
  validTargetVersion,
} from "../../src/core/update-version.js";

describe("update versions", () => {
  it("accepts catalog-style targets per family and refuses the rest", () => {
    expect(validTargetVersion("uc", "7.2.2.1094")).toBe(true);
    expect(validTargetVersion("uc", "8.1.3.1301A")).toBe(true);
    expect(validTargetVersion("uc", "7.2.2")).toBe(false);
    expect(validTargetVersion("uc", "../../etc")).toBe(false);
    expect(validTargetVersion("videoos", "4.1.0")).toBe(true);
    expect(validTargetVersion("videoos", "4.1.0-401117")).toBe(true);
    expect(validTargetVersion("videoos", "4.1")).toBe(false);
    expect(validTargetVersion("videoos", "7.2.2.1094")).toBe(false);
  });

  it("matches what phones report (application text with build date) against the target", () => {
    expect(
      sameRelease(
        "uc",
        reportedVersionOf("uc", { reachable: true, version: "7.2.2.1094 28-Feb-22 15:29" }) ?? "",
        "7.2.2.1094",
      ),
    ).toBe(true);
    expect(sameRelease("uc", "7.2.2.1094", "7.2.2.1095")).toBe(false);
    expect(sameRelease("uc", "7.2.2.1094", "7.2.20.1094")).toBe(false);
    expect(sameRelease("uc", "garbage", "7.2.2.1094")).toBe(false);
  });

  it("matches VideoOS version and build, the build only when both name one", () => {
    const r = reportedVersionOf("videoos", { reachable: true, version: "4.1.0", build: "401117" });
    expect(r).toBe("4.1.0-401117");
    expect(sameRelease("videoos", "4.1.0-401117", "4.1.0-401117")).toBe(true);
    expect(sameRelease("videoos", "4.1.0-401117", "4.1.0")).toBe(true);
    expect(sameRelease("videoos", "4.1.0-401117", "4.1.0-401118")).toBe(false);
    expect(sameRelease("videoos", "4.1.0-401117", "4.2.0-401117")).toBe(false);
  });

  it("reports nothing for a device that said nothing", () => {
    expect(reportedVersionOf("uc", { reachable: false })).toBeUndefined();
    expect(reportedVersionOf("uc", { reachable: true, version: "  " })).toBeUndefined();
  });

  it("splits a VideoOS target into manifest version and build", () => {
    expect(splitVideoOsVersion("4.1.0-401117")).toEqual({ version: "4.1.0", build: "401117" });
    expect(splitVideoOsVersion("4.1.0")).toEqual({ version: "4.1.0" });
  });

  it("a UC version reported with any build date is the same release as its core (property)", () => {
    const part = fc.integer({ min: 0, max: 99_999 });
    const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    fc.assert(
      fc.property(
        fc.tuple(part, part, part, part),
        fc.integer({ min: 1, max: 28 }),
        fc.constantFrom(...months),
        fc.integer({ min: 0, max: 99 }),
        (p, day, mon, yy) => {
          const core = p.join(".");
          const text = `${core} ${String(day).padStart(2, "0")}-${mon}-${String(yy).padStart(2, "0")} 15:29`;
          const reported = reportedVersionOf("uc", { reachable: true, version: text });
          expect(reported).toBe(core);
          expect(sameRelease("uc", reported ?? "", core)).toBe(true);
          const other = [...p.slice(0, 3), (p[3] ?? 0) + 1].join(".");
          expect(sameRelease("uc", reported ?? "", other)).toBe(false);
        },
      ),
    );
  });

  it("sameRelease is symmetric and reflexive on valid VideoOS versions (property)", () => {
    const v = fc
      .tuple(
        fc.nat(99),
        fc.nat(99),
        fc.nat(99),
        fc.option(fc.integer({ min: 1, max: 999_999 }), { nil: undefined }),
      )
      .map(([a, b, c, build]) => (build === undefined ? `${a}.${b}.${c}` : `${a}.${b}.${c}-${build}`));
    fc.assert(
      fc.property(v, v, (a, b) => {
        expect(sameRelease("videoos", a, a)).toBe(true);
        expect(sameRelease("videoos", a, b)).toBe(sameRelease("videoos", b, a));
      }),
    );
  });
});
