import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  baselineRelease,
  type CatalogRelease,
  type CatalogSigned,
  CatalogSigned as CatalogSignedSchema,
  checkInstall,
  compareVersions,
  complianceOf,
  findRelease,
  ImageVerifier,
  parseCatalogFile,
  releasesFor,
  releaseVersion,
  verifyImageBytes,
} from "../src/index.js";
import { catalogSigned, codeOf, release, sha256 } from "./helpers.js";

const RUNS = { numRuns: 150 };

const V598 = release({ model: "VVX 350", version: "5.9.8.5760" });
const V593 = release({ model: "VVX 350", version: "5.9.3.2857" });
const V560 = release({ model: "VVX 350", version: "5.6.0.18519", downgrade: true });
const V597 = release({ model: "VVX 350", version: "5.9.7.4477", minVersion: "5.9.0.1000" });
const X30 = release({ family: "videoos", model: "StudioX30", version: "3.12.0", build: "366027" });
const X30_OLD = release({ family: "videoos", model: "StudioX30", version: "3.10.0", build: "362035" });
const X30_NOBUILD = release({ family: "videoos", model: "StudioX30", version: "3.11.0" });
const CAT: CatalogSigned = catalogSigned([V598, V593, V560, V597, X30, X30_OLD, X30_NOBUILD], {
  baseline: { "VVX 350": "5.9.8.5760", StudioX30: "3.12.0-366027" },
  floors: { "VVX 350": "5.8.0.1000" },
});

describe("catalog schema", () => {
  it("accepts the fixture catalog", () => {
    expect(CatalogSignedSchema.parse(CAT)).toEqual(CAT);
  });

  it("refuses a release listed twice, a baseline without a release, mixed families, bad versions", () => {
    const bad: [string, CatalogSigned][] = [
      ["listed twice", catalogSigned([V598, { ...V598, channel: "beta" }])],
      ["listed twice", catalogSigned([V598, { ...V598, version: "5.9.8.05760" }])],
      ["no release", catalogSigned([V598], { baseline: { "VVX 350": "5.9.9.1" } })],
      ["already has uc", catalogSigned([V598, { ...X30, model: "VVX 350" }])],
      ["not a uc version", catalogSigned([{ ...V598, version: "5.9.8" }])],
      ["build timestamp", catalogSigned([{ ...V598, version: "5.9.8.5760 02-Jul-19 06:14" }])],
      ["leave build out", catalogSigned([{ ...V598, build: "5760" }])],
      ["put the build in build", catalogSigned([{ ...X30, version: "3.12.0-366027", build: undefined }])],
      ["not a uc version", catalogSigned([{ ...V598, minVersion: "five" }])],
      ["version family is unknown", catalogSigned([V598], { floors: { Trio: "1.2.3.4" } })],
      ["sha256", catalogSigned([{ ...V598, image: { ...V598.image, sha256: "A".repeat(64) } }])],
      ["image file name", catalogSigned([{ ...V598, image: { ...V598.image, fileName: "../etc/passwd" } }])],
      ["unknown key", catalogSigned([{ ...V598, evil: true } as CatalogRelease])],
      ["YYYY-MM-DD", catalogSigned([{ ...V598, releaseDate: "15.01.2026" }])],
    ];
    for (const [msg, c] of bad) {
      const text = JSON.stringify({ signed: c, signatures: [] });
      let err: Error | undefined;
      try {
        parseCatalogFile(text, "catalog.json");
      } catch (e) {
        err = e as Error;
      }
      expect(
        codeOf(() => parseCatalogFile(text, "catalog.json")),
        msg,
      ).toBe("POLYFLEET_ERR_CATALOG_INVALID");
      expect(err?.message, msg).toContain(msg);
      expect(err?.message).toMatch(/^catalog\.json: .*signed\./);
    }
    expect(codeOf(() => parseCatalogFile("{", "c.json"))).toBe("POLYFLEET_ERR_CATALOG_INVALID");
  });
});

describe("resolve", () => {
  it("finds releases by model and version", () => {
    expect(findRelease(CAT, { model: "VVX 350", version: "5.9.8.5760" })).toBe(V598);
    expect(findRelease(CAT, { model: "VVX 350", version: "5.9.8.5760 02-Jul-19 06:14" })).toBe(V598);
    expect(findRelease(CAT, { model: "VVX 350", version: "5.9.8.5761" })).toBeUndefined();
    expect(findRelease(CAT, { model: "VVX 450", version: "5.9.8.5760" })).toBeUndefined();
    expect(findRelease(CAT, { model: "StudioX30", version: "3.12.0" })).toBe(X30);
    expect(findRelease(CAT, { model: "StudioX30", version: "3.12.0-366027" })).toBe(X30);
    expect(findRelease(CAT, { model: "StudioX30", version: "3.12.0", build: "366027" })).toBe(X30);
    expect(findRelease(CAT, { model: "StudioX30", version: "3.12.0", build: "1" })).toBeUndefined();
    expect(findRelease(CAT, { model: "StudioX30", version: "3.11.0-5" })).toBe(X30_NOBUILD);
    expect(findRelease(CAT, { model: "StudioX30", version: "garbage" })).toBeUndefined();
    expect(releaseVersion(X30)).toBe("3.12.0-366027");
    expect(releasesFor(CAT, "VVX 350").map((r) => r.version)).toEqual([
      "5.9.8.5760",
      "5.9.7.4477",
      "5.9.3.2857",
      "5.6.0.18519",
    ]);
    expect(baselineRelease(CAT, "StudioX30")).toBe(X30);
    expect(baselineRelease(CAT, "Trio 8800")).toBeUndefined();
    expect(baselineRelease(CAT, "constructor")).toBeUndefined();
  });
});

describe("checkInstall", () => {
  const dev = (runningVersion?: string, model = "VVX 350", family = "uc") => ({
    family,
    model,
    ...(runningVersion !== undefined ? { runningVersion } : {}),
  });

  it("allows an upgrade and the same version", () => {
    expect(() => checkInstall(CAT, V598, dev("5.9.3.2857"))).not.toThrow();
    expect(() => checkInstall(CAT, V598, dev("5.9.8.5760 02-Jul-19 06:14"))).not.toThrow();
    expect(() => checkInstall(CAT, V598, dev())).not.toThrow();
    expect(() => checkInstall(CAT, X30, dev("3.12.0", "StudioX30", "videoos"))).not.toThrow();
    expect(() => checkInstall(CAT, X30, dev("3.10.0-362035", "StudioX30", "videoos"))).not.toThrow();
  });

  it("refuses the wrong model or family (MODEL_MISMATCH)", () => {
    expect(codeOf(() => checkInstall(CAT, V598, dev("5.9.3.2857", "VVX 450")))).toBe(
      "POLYFLEET_ERR_MODEL_MISMATCH",
    );
    expect(codeOf(() => checkInstall(CAT, V598, dev("5.9.3.2857", "VVX 350", "videoos")))).toBe(
      "POLYFLEET_ERR_MODEL_MISMATCH",
    );
    expect(codeOf(() => checkInstall(CAT, V598, { family: "uc" }))).toBe("POLYFLEET_ERR_MODEL_MISMATCH");
  });

  it("refuses a downgrade below the running version or the floor unless it is an explicit downgrade", () => {
    expect(codeOf(() => checkInstall(CAT, V593, dev("5.9.8.5760")))).toBe("POLYFLEET_ERR_DOWNGRADE_REFUSED");
    expect(codeOf(() => checkInstall(CAT, X30_OLD, dev("3.12.0-366027", "StudioX30", "videoos")))).toBe(
      "POLYFLEET_ERR_DOWNGRADE_REFUSED",
    );
    // Below the floor (5.8.0.1000) even on a device running something older.
    const belowFloor = release({ model: "VVX 350", version: "5.7.3.1797" });
    const cat = catalogSigned([...CAT.releases, belowFloor], { floors: CAT.floors });
    expect(codeOf(() => checkInstall(cat, belowFloor, dev("5.4.3.1138")))).toBe(
      "POLYFLEET_ERR_DOWNGRADE_REFUSED",
    );
    // The explicit, signed downgrade goes below both.
    expect(() => checkInstall(CAT, V560, dev("5.9.8.5760"))).not.toThrow();
  });

  it("refuses a release over a running version below its minVersion, naming it", () => {
    let msg = "";
    try {
      checkInstall(CAT, V597, dev("5.8.0.23953"));
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toContain("cannot be installed over 5.8.0.23953");
    expect(codeOf(() => checkInstall(CAT, V597, dev()))).toBe("POLYFLEET_ERR_DOWNGRADE_REFUSED");
    expect(() => checkInstall(CAT, V597, dev("5.9.3.2857"))).not.toThrow();
  });

  it("refuses an unparseable running version and a release that is not in the catalog", () => {
    expect(codeOf(() => checkInstall(CAT, V598, dev("banana")))).toBe("POLYFLEET_ERR_VERSION_INVALID");
    const stray = release({ model: "VVX 350", version: "9.9.9.9999" });
    expect(codeOf(() => checkInstall(CAT, stray, dev("5.9.3.2857")))).toBe("POLYFLEET_ERR_NOT_FOUND");
  });

  it("decides exactly like the reference rule for random releases and running versions (property)", () => {
    const v = fc
      .tuple(fc.integer({ min: 5, max: 7 }), fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 3 }))
      .map(([a, b, c]) => `${a}.${b}.${c}.1000`);
    fc.assert(
      fc.property(
        v,
        v,
        fc.option(v, { nil: undefined }),
        fc.option(v, { nil: undefined }),
        fc.boolean(),
        fc.boolean(),
        (target, running, floor, minVersion, downgrade, wrongModel) => {
          const r = release({
            model: "VVX 350",
            version: target,
            ...(minVersion ? { minVersion } : {}),
            ...(downgrade ? { downgrade } : {}),
          });
          const cat = catalogSigned([r], floor ? { floors: { "VVX 350": floor } } : {});
          const code = codeOf(() => checkInstall(cat, r, dev(running, wrongModel ? "VVX 450" : "VVX 350")));
          const cmp = (a: string, b: string) => compareVersions("uc", a, b);
          let want: string | undefined;
          if (wrongModel) want = "POLYFLEET_ERR_MODEL_MISMATCH";
          else if (minVersion && cmp(running, minVersion) < 0) want = "POLYFLEET_ERR_DOWNGRADE_REFUSED";
          else if (!downgrade && cmp(target, running) < 0) want = "POLYFLEET_ERR_DOWNGRADE_REFUSED";
          else if (!downgrade && floor && cmp(target, floor) < 0) want = "POLYFLEET_ERR_DOWNGRADE_REFUSED";
          expect(code).toBe(want);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("compliance", () => {
  it("classifies devices against the baseline of their model", () => {
    const r = complianceOf(CAT, [
      {
        deviceId: "a",
        siteId: "s1",
        family: "uc",
        model: "VVX 350",
        softwareVersion: "5.9.8.5760 02-Jul-19 06:14",
      },
      { deviceId: "b", family: "uc", model: "VVX 350", softwareVersion: "5.9.3.2857" },
      { deviceId: "c", family: "uc", model: "VVX 350", softwareVersion: "6.0.0.1" },
      { deviceId: "d", family: "uc", model: "Trio 8800", softwareVersion: "7.2.2.1094" },
      { deviceId: "e", family: "uc", model: "VVX 350", softwareVersion: "garbage" },
      { deviceId: "f", family: "uc", model: "VVX 350" },
      { deviceId: "g", family: "uc" },
      { deviceId: "h", family: "videoos", model: "StudioX30", softwareVersion: "3.12.0" },
      { deviceId: "i", family: "videoos", model: "StudioX30", softwareVersion: "3.12.0-366027" },
      { deviceId: "j", family: "videoos", model: "StudioX30", softwareVersion: "3.10.0-362035" },
      { deviceId: "k", family: "snmp", model: "StudioX30", softwareVersion: "3.12.0" },
    ]);
    expect(r.devices.map((d) => `${d.deviceId}:${d.status}`)).toEqual([
      "a:current",
      "b:behind",
      "c:ahead",
      "d:unknown",
      "e:unknown",
      "f:unknown",
      "g:unknown",
      "h:current",
      "i:current",
      "j:behind",
      "k:unknown",
    ]);
    expect(r.counts).toEqual({ current: 3, behind: 2, ahead: 1, unknown: 5 });
    expect(r.devices[0]).toEqual({
      deviceId: "a",
      siteId: "s1",
      model: "VVX 350",
      softwareVersion: "5.9.8.5760 02-Jul-19 06:14",
      baseline: "5.9.8.5760",
      status: "current",
    });
    expect(r.devices[7]?.baseline).toBe("3.12.0-366027");
  });

  it("counts add up and match the order against the baseline (property)", () => {
    const ver = fc.tuple(fc.nat(9), fc.nat(9)).map(([a, b]) => `5.${a}.${b}.1000`);
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            model: fc.constantFrom("VVX 350", "Trio 8800"),
            v: fc.option(ver, { nil: undefined }),
          }),
        ),
        (devs) => {
          const r = complianceOf(
            CAT,
            devs.map((d, i) => ({
              deviceId: `d${i}`,
              family: "uc",
              model: d.model,
              ...(d.v ? { softwareVersion: d.v } : {}),
            })),
          );
          const c = r.counts;
          expect(c.current + c.behind + c.ahead + c.unknown).toBe(devs.length);
          r.devices.forEach((row, i) => {
            const d = devs[i];
            if (!d) return;
            if (d.model !== "VVX 350" || !d.v) expect(row.status).toBe("unknown");
            else {
              const cmp = compareVersions("uc", d.v, "5.9.8.5760");
              expect(row.status).toBe(cmp === 0 ? "current" : cmp < 0 ? "behind" : "ahead");
            }
          });
        },
      ),
      RUNS,
    );
  });
});

describe("ImageVerifier", () => {
  const arbImage = fc.uint8Array({ minLength: 1, maxLength: 2048 });
  const chunksOf = (buf: Uint8Array, cuts: number[]): Uint8Array[] => {
    const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
    const out: Uint8Array[] = [];
    let prev = 0;
    for (const p of [...points, buf.length]) {
      out.push(buf.subarray(prev, Math.max(prev, p)));
      prev = Math.max(prev, p);
    }
    return out;
  };

  it("accepts the exact image in any chunking (property)", () => {
    fc.assert(
      fc.property(arbImage, fc.array(fc.nat(), { maxLength: 8 }), (buf, cuts) => {
        const v = new ImageVerifier({ length: buf.length, sha256: sha256(buf) });
        for (const c of chunksOf(buf, cuts)) v.update(c);
        expect(v.finish()).toBe(sha256(buf));
        expect(v.digest()).toBe(sha256(buf));
        expect(v.bytes).toBe(buf.length);
      }),
      RUNS,
    );
  });

  it("refuses any changed byte with IMAGE_MISMATCH (property)", () => {
    fc.assert(
      fc.property(
        arbImage,
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.array(fc.nat(), { maxLength: 4 }),
        (buf, at, x, cuts) => {
          const image = { length: buf.length, sha256: sha256(buf) };
          const t = Uint8Array.from(buf);
          const i = at % t.length;
          t[i] = (t[i] as number) ^ x;
          const v = new ImageVerifier(image);
          for (const c of chunksOf(t, cuts)) v.update(c);
          expect(codeOf(() => v.finish())).toBe("POLYFLEET_ERR_IMAGE_MISMATCH");
          expect(codeOf(() => v.finish())).toBe("POLYFLEET_ERR_IMAGE_MISMATCH");
          expect(codeOf(() => verifyImageBytes(t, image))).toBe("POLYFLEET_ERR_IMAGE_MISMATCH");
        },
      ),
      RUNS,
    );
  });

  it("refuses a short image with IMAGE_MISMATCH, and a wrong declared length (property)", () => {
    fc.assert(
      fc.property(arbImage, fc.nat(), (buf, cut) => {
        const image = { length: buf.length, sha256: sha256(buf) };
        const short = buf.subarray(0, cut % buf.length);
        expect(codeOf(() => verifyImageBytes(short, image))).toBe("POLYFLEET_ERR_IMAGE_MISMATCH");
        // The catalog declares more bytes than the image has.
        expect(codeOf(() => verifyImageBytes(buf, { ...image, length: buf.length + 1 }))).toBe(
          "POLYFLEET_ERR_IMAGE_MISMATCH",
        );
      }),
      RUNS,
    );
  });

  it("refuses an oversized image with IMAGE_TOO_LARGE as soon as it passes the declared length (property)", () => {
    fc.assert(
      fc.property(
        arbImage,
        fc.integer({ min: 1, max: 4096 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (buf, extra, cuts) => {
          const image = { length: buf.length, sha256: sha256(buf) };
          const big = new Uint8Array(buf.length + extra);
          big.set(buf);
          big.set(randomBytes(extra), buf.length);
          const v = new ImageVerifier(image);
          let fed = 0;
          let code: string | undefined;
          for (const c of chunksOf(big, cuts)) {
            code = codeOf(() => v.update(c));
            if (code) break;
            fed += c.length;
          }
          expect(code).toBe("POLYFLEET_ERR_IMAGE_TOO_LARGE");
          // It stopped at the chunk that crossed the limit and never counted a byte past it.
          expect(fed).toBeLessThanOrEqual(buf.length);
          expect(v.bytes).toBe(fed);
          expect(codeOf(() => v.update(new Uint8Array(0)))).toBe("POLYFLEET_ERR_IMAGE_TOO_LARGE");
          expect(codeOf(() => v.finish())).toBe("POLYFLEET_ERR_IMAGE_TOO_LARGE");
        },
      ),
      RUNS,
    );
  });
});

describe("catalog text", () => {
  it("parses a file written with any indentation", () => {
    const text = JSON.stringify({ signed: CAT, signatures: [] }, null, 4);
    expect(parseCatalogFile(text, "c.json").signed).toEqual(CAT);
    expect(releaseVersion(CAT.releases[4] as CatalogRelease)).toBe("3.12.0-366027");
  });
});
