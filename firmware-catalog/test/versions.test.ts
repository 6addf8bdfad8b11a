import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  compareReleases,
  compareVersions,
  formatUcVersion,
  formatVideoosVersion,
  parseUcVersion,
  parseVideoosVersion,
  sameRelease,
  tryCompareVersions,
  type UcVersion,
  type VersionFamily,
  type VideoosVersion,
  versionCore,
} from "../src/index.js";
import { codeOf } from "./helpers.js";

const RUNS = { numRuns: 200 };

/** Small domains so that equal and near-equal versions are common. */
const part = fc.oneof(
  fc.constantFrom("0", "1", "2", "9", "10", "01", "010", "100"),
  fc.integer({ min: 0, max: 99_999 }).map(String),
);
const buildPart = fc.oneof(fc.constantFrom("0614", "614", "1094", "5760", "26508"), part);
const suffix = fc.constantFrom("", "", "A", "AA", "AAA", "AB", "B", "Z");
const timestamp = fc.record({
  year: fc.integer({ min: 2000, max: 2099 }),
  month: fc.integer({ min: 1, max: 12 }),
  day: fc.integer({ min: 1, max: 28 }),
  hour: fc.integer({ min: 0, max: 23 }),
  minute: fc.integer({ min: 0, max: 59 }),
});
const arbUc: fc.Arbitrary<UcVersion> = fc
  .record({
    parts: fc.tuple(part, part, part, buildPart),
    suffix,
    ts: fc.option(fc.oneof(timestamp, fc.constant({ year: 2022, month: 2, day: 28, hour: 15, minute: 29 })), {
      nil: undefined,
    }),
  })
  .map(({ parts, suffix, ts }) => ({ parts, suffix, ...(ts ? { timestamp: ts } : {}) }));
const arbVideoos: fc.Arbitrary<VideoosVersion> = fc
  .record({ parts: fc.tuple(part, part, part), build: fc.option(buildPart, { nil: undefined }) })
  .map(({ parts, build }) => ({ parts, ...(build !== undefined ? { build } : {}) }));
const arbSnmp = fc.array(part, { minLength: 1, maxLength: 6 }).map((p) => p.join("."));

const ucString = arbUc.map(formatUcVersion);
const videoosString = arbVideoos.map(formatVideoosVersion);

/** Reference ordering: BigInt parts, then suffix, then timestamp (absent first). */
function refKeyUc(s: string): (bigint | string | number)[] {
  const v = parseUcVersion(s);
  if (!v) throw new Error(`unparseable ${s}`);
  const t = v.timestamp;
  return [
    ...v.parts.map(BigInt),
    v.suffix,
    t ? 1 : 0,
    t ? Date.UTC(t.year, t.month - 1, t.day, t.hour, t.minute) : 0,
  ];
}
function refKeyVideoos(s: string): (bigint | number)[] {
  const v = parseVideoosVersion(s);
  if (!v) throw new Error(`unparseable ${s}`);
  return [...v.parts.map(BigInt), v.build === undefined ? 0 : 1, BigInt(v.build ?? 0)];
}
function cmpKeys(a: readonly (bigint | string | number)[], b: readonly (bigint | string | number)[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (x < y) return -1;
    if (x > y) return 1;
  }
  return 0;
}

const families: [VersionFamily, fc.Arbitrary<string>][] = [
  ["uc", ucString],
  ["videoos", videoosString],
  ["snmp", arbSnmp],
];

describe("version parsing", () => {
  it("reads the UC versions devices report, with and without the build timestamp", () => {
    expect(parseUcVersion("7.2.2.1094 28-Feb-22 15:29")).toEqual({
      parts: ["7", "2", "2", "1094"],
      suffix: "",
      timestamp: { year: 2022, month: 2, day: 28, hour: 15, minute: 29 },
    });
    expect(parseUcVersion("5.9.3.2857")).toEqual({ parts: ["5", "9", "3", "2857"], suffix: "" });
    expect(parseUcVersion("5.4.3.1138AA")?.suffix).toBe("AA");
    expect(formatUcVersion(parseUcVersion("5.9.5.0614") as UcVersion)).toBe("5.9.5.0614");
    // Lenient input, canonical output.
    expect(versionCore("uc", " 7.2.2.1094   2-feb-22 5:29 ")).toBe("7.2.2.1094");
    expect(formatUcVersion(parseUcVersion("7.2.2.1094  2-feb-22 5:29") as UcVersion)).toBe(
      "7.2.2.1094 02-Feb-22 05:29",
    );
  });

  it("reads VideoOS versions with and without a build", () => {
    expect(parseVideoosVersion("3.12.0")).toEqual({ parts: ["3", "12", "0"] });
    expect(parseVideoosVersion("3.12.0-366027")).toEqual({ parts: ["3", "12", "0"], build: "366027" });
    expect(formatVideoosVersion(parseVideoosVersion("3.12.0 (366027)") as VideoosVersion)).toBe(
      "3.12.0-366027",
    );
  });

  it("rejects garbage and names the string and the expected form", () => {
    const bad = [
      "",
      "7",
      "7.2.2",
      "7.2.2.1094.1",
      "7.2.2.x",
      "v7.2.2.1094",
      "7.2.2.1094aa",
      "7.2.2.1094ABCD",
      "7.2.2.1094 31-Feb-22 15:29",
      "7.2.2.1094 28-Feb-22 24:00",
      "7.2.2.1094 28-Foo-22 15:29",
      "7..2.2",
      "-1.2.3.4",
      "1.2.3.4 junk",
    ];
    for (const s of bad) expect(parseUcVersion(s), s).toBeUndefined();
    for (const s of ["", "3.12", "3.12.0.1", "3.12.0-", "3.12.0-abc", "3.12.0-1-2", "3.x.0"])
      expect(parseVideoosVersion(s), s).toBeUndefined();
    let message = "";
    try {
      compareVersions("uc", "7.2.2.1094", "seven");
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain('"seven"');
    expect(message).toContain("major.minor.patch.build");
    expect(codeOf(() => compareVersions("uc", "7.2.2.1094", "seven"))).toBe("POLYFLEET_ERR_VERSION_INVALID");
    expect(codeOf(() => compareVersions("videoos", "3.12", "3.12.0"))).toBe("POLYFLEET_ERR_VERSION_INVALID");
    expect(codeOf(() => compareVersions("snmp", "1.a", "1"))).toBe("POLYFLEET_ERR_VERSION_INVALID");
    expect(tryCompareVersions("uc", "x", "7.2.2.1094")).toBeUndefined();
  });

  it("rejects random strings that do not have the shape (property)", () => {
    const ucShape = /^\s*\d+\.\d+\.\d+\.\d+[A-Z]{0,3}(\s+\d{1,2}-[A-Za-z]{3}-\d{2}\s+\d{1,2}:\d{2})?\s*$/;
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        if (!ucShape.test(s)) expect(parseUcVersion(s)).toBeUndefined();
        if (!/^\s*\d+\.\d+\.\d+(-\d+|\s+\(\d+\))?\s*$/.test(s))
          expect(parseVideoosVersion(s)).toBeUndefined();
        if (!/^\s*\d+(\.\d+)*\s*$/.test(s)) expect(tryCompareVersions("snmp", s, "1")).toBeUndefined();
      }),
      { numRuns: 500 },
    );
  });

  it("rejects a valid version with one character replaced by a letter or punctuation (property)", () => {
    fc.assert(
      fc.property(ucString, fc.nat(), fc.constantFrom("x", "-", "..", "/", "a", "_"), (s, i, junk) => {
        const core = versionCore("uc", s);
        const digitsAt = [...core].flatMap((c, j) => (/\d/.test(c) ? [j] : []));
        const at = digitsAt[i % digitsAt.length] ?? 0;
        const mutated = core.slice(0, at) + junk + core.slice(at + 1);
        expect(parseUcVersion(mutated)).toBeUndefined();
      }),
      RUNS,
    );
  });

  it("round-trips: format(parse(s)) === s for canonical strings, parse(format(v)) equals v (property)", () => {
    fc.assert(
      fc.property(arbUc, (v) => {
        const s = formatUcVersion(v);
        expect(parseUcVersion(s)).toEqual(v);
        expect(formatUcVersion(parseUcVersion(s) as UcVersion)).toBe(s);
      }),
      RUNS,
    );
    fc.assert(
      fc.property(arbVideoos, (v) => {
        const s = formatVideoosVersion(v);
        expect(parseVideoosVersion(s)).toEqual(v);
        expect(formatVideoosVersion(parseVideoosVersion(s) as VideoosVersion)).toBe(s);
      }),
      RUNS,
    );
  });
});

describe("version ordering", () => {
  it("compares numerically, not lexicographically", () => {
    expect(compareVersions("uc", "5.10.0.1000", "5.9.0.1000")).toBe(1);
    expect(compareVersions("uc", "5.9.8.5760", "5.9.10.1")).toBe(-1);
    expect(compareVersions("uc", "5.9.3.10000", "5.9.3.9999")).toBe(1);
    expect(compareVersions("uc", "5.9.5.0614", "5.9.5.614")).toBe(0);
    expect(compareVersions("videoos", "3.10.0", "3.9.9")).toBe(1);
    expect(compareVersions("videoos", "3.12.0-99", "3.12.0-100")).toBe(-1);
    expect(compareVersions("snmp", "6.10", "6.9.9")).toBe(1);
    expect(compareVersions("snmp", "6.2", "6.2.0")).toBe(-1);
  });

  it("orders the UC suffix (none < A < AA < B) and then the timestamp (absent first)", () => {
    const sorted = [
      "5.4.3.1138",
      "5.4.3.1138 01-Jan-16 00:00",
      "5.4.3.1138 02-Jan-16 00:00",
      "5.4.3.1138A",
      "5.4.3.1138AA",
      "5.4.3.1138B",
      "5.4.3.1139",
    ];
    for (let i = 0; i < sorted.length; i++)
      for (let j = 0; j < sorted.length; j++)
        expect(
          compareVersions("uc", sorted[i] as string, sorted[j] as string),
          `${sorted[i]} vs ${sorted[j]}`,
        ).toBe(Math.sign(i - j));
  });

  it("orders VideoOS builds after the version without a build", () => {
    expect(compareVersions("videoos", "3.12.0", "3.12.0-1")).toBe(-1);
    expect(compareVersions("videoos", "3.12.0-366027", "3.12.1")).toBe(-1);
  });

  it("matches UC and VideoOS numeric parts against a BigInt reference (property)", () => {
    fc.assert(
      fc.property(ucString, ucString, (a, b) => {
        expect(compareVersions("uc", a, b)).toBe(cmpKeys(refKeyUc(a), refKeyUc(b)));
      }),
      RUNS,
    );
    fc.assert(
      fc.property(videoosString, videoosString, (a, b) => {
        expect(compareVersions("videoos", a, b)).toBe(cmpKeys(refKeyVideoos(a), refKeyVideoos(b)));
      }),
      RUNS,
    );
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 10n ** 12n - 1n }),
        fc.bigInt({ min: 0n, max: 10n ** 12n - 1n }),
        (x, y) => {
          const want = x < y ? -1 : x > y ? 1 : 0;
          expect(compareVersions("uc", `5.9.${x}.1000`, `5.9.${y}.1000`)).toBe(want);
          expect(compareVersions("videoos", `3.${x}.0`, `3.${y}.0`)).toBe(want);
          expect(compareVersions("snmp", `1.${x}`, `1.${y}`)).toBe(want);
        },
      ),
      RUNS,
    );
  });

  for (const [family, arb] of families) {
    it(`${family}: is a total order (reflexive, antisymmetric, transitive, total) (property)`, () => {
      fc.assert(
        fc.property(arb, arb, arb, (a, b, c) => {
          const ab = compareVersions(family, a, b);
          expect([-1, 0, 1]).toContain(ab);
          expect(compareVersions(family, a, a)).toBe(0);
          expect(compareVersions(family, b, a)).toBe(0 - ab);
          // Equal under the order exactly when the canonical (numeric) forms are equal.
          const norm = (s: string) => versionCore(family, s).replace(/\d+/g, (d) => String(BigInt(d)));
          const tsOf = (s: string) => parseUcVersion(s)?.timestamp;
          const sameCanon =
            norm(a) === norm(b) && (family !== "uc" || JSON.stringify(tsOf(a)) === JSON.stringify(tsOf(b)));
          expect(ab === 0).toBe(sameCanon);
          const bc = compareVersions(family, b, c);
          if (ab <= 0 && bc <= 0) expect(compareVersions(family, a, c)).toBeLessThanOrEqual(0);
          if (ab === 0 && bc === 0) expect(compareVersions(family, a, c)).toBe(0);
          // Sorting agrees with pairwise comparison.
          const sorted = [a, b, c].sort((x, y) => compareVersions(family, x, y));
          for (let i = 1; i < sorted.length; i++)
            expect(compareVersions(family, sorted[i - 1] as string, sorted[i] as string)).toBeLessThanOrEqual(
              0,
            );
        }),
        RUNS,
      );
    });

    it(`${family}: ordering survives parse/format (property)`, () => {
      fc.assert(
        fc.property(arb, arb, (a, b) => {
          const ca = versionCore(family, a);
          expect(versionCore(family, ca)).toBe(ca);
          if (family !== "uc") expect(compareVersions(family, ca, b)).toBe(compareVersions(family, a, b));
        }),
        RUNS,
      );
    });
  }
});

describe("sameRelease and versionCore", () => {
  it("treats a UC application string with a timestamp as its release", () => {
    expect(sameRelease("uc", "7.2.2.1094 28-Feb-22 15:29", "7.2.2.1094")).toBe(true);
    expect(sameRelease("uc", "7.2.2.1094", "7.2.2.1094A")).toBe(false);
    expect(versionCore("uc", "7.2.2.1094 28-Feb-22 15:29")).toBe("7.2.2.1094");
    expect(compareReleases("uc", "7.2.2.1094 28-Feb-22 15:29", "7.2.2.1094")).toBe(0);
    expect(compareReleases("uc", "7.2.2.1094 28-Feb-22 15:29", "7.2.2.1095")).toBe(-1);
    // A garbled report is never the same release; ordering it is an error.
    expect(sameRelease("uc", "garbage", "garbage")).toBe(false);
    expect(sameRelease("videoos", "3.12.0", "3.12")).toBe(false);
    expect(codeOf(() => compareReleases("uc", "7.2.2.1094", "garbage"))).toBe(
      "POLYFLEET_ERR_VERSION_INVALID",
    );
  });

  it("matches a VideoOS version without a build to any build", () => {
    expect(sameRelease("videoos", "3.12.0", "3.12.0-366027")).toBe(true);
    expect(sameRelease("videoos", "3.12.0-366027", "3.12.0-366028")).toBe(false);
    expect(sameRelease("videoos", "3.12.0-366027", "3.12.1")).toBe(false);
    expect(compareReleases("videoos", "3.12.0", "3.12.0-5")).toBe(0);
    expect(compareReleases("videoos", "3.12.0-4", "3.12.0-5")).toBe(-1);
  });

  it("UC: same release iff equal ignoring the timestamp (property)", () => {
    fc.assert(
      fc.property(arbUc, arbUc, (a, b) => {
        const sa = formatUcVersion(a);
        const sb = formatUcVersion(b);
        const same = sameRelease("uc", sa, sb);
        expect(same).toBe(compareVersions("uc", versionCore("uc", sa), versionCore("uc", sb)) === 0);
        expect(sameRelease("uc", sa, formatUcVersion({ parts: a.parts, suffix: a.suffix }))).toBe(true);
        expect(compareReleases("uc", sa, sb) === 0).toBe(same);
        expect(compareReleases("uc", sa, sb)).toBe(0 - compareReleases("uc", sb, sa));
      }),
      RUNS,
    );
  });
});
