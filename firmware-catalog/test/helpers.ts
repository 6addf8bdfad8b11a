import { createHash } from "node:crypto";
import { PolyfleetError } from "@polyfleet/shared";
import fc from "fast-check";
import {
  type CatalogFile,
  type CatalogRelease,
  type CatalogSigned,
  generateKeyPair,
  keyIdOf,
  type RootFile,
  type RootSigned,
  signEnvelope,
} from "../src/index.js";

export interface TestKey {
  publicKey: string;
  privateKeyPem: string;
  keyid: string;
}

export function makeKeys(n: number): TestKey[] {
  return Array.from({ length: n }, () => {
    const k = generateKeyPair();
    return { ...k, keyid: keyIdOf(k.publicKey) };
  });
}

/** The error code a call throws (a non-PolyfleetError is reported as such), or undefined when it returns. */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof PolyfleetError ? e.code : `not-a-PolyfleetError: ${String(e)}`;
  }
  return undefined;
}

export const NOW = Date.parse("2026-06-01T00:00:00Z");
export const FUTURE = "2027-12-31T00:00:00Z";

export function rootSigned(keys: TestKey[], threshold: number, version = 1, expires = FUTURE): RootSigned {
  return {
    type: "root",
    version,
    expires,
    keys: Object.fromEntries(keys.map((k) => [k.keyid, { publicKey: k.publicKey }])),
    threshold,
  };
}

export function signRoot(signed: RootSigned, keys: TestKey[]): RootFile {
  return signEnvelope(
    signed,
    keys.map((k) => k.privateKeyPem),
  );
}

export function signCatalog(signed: CatalogSigned, keys: TestKey[]): CatalogFile {
  return signEnvelope(
    signed,
    keys.map((k) => k.privateKeyPem),
  );
}

export function sha256(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

export function release(
  over: Partial<CatalogRelease> & Pick<CatalogRelease, "model" | "version">,
): CatalogRelease {
  return {
    family: "uc",
    channel: "stable",
    image: { fileName: "sip.ld", length: 10, sha256: "0".repeat(64) },
    notes: "",
    releaseDate: "2026-01-15",
    ...over,
  };
}

export function catalogSigned(releases: CatalogRelease[], over: Partial<CatalogSigned> = {}): CatalogSigned {
  return { type: "catalog", version: 1, expires: FUTURE, releases, baseline: {}, ...over };
}

/** Models and their families for generated catalogs. */
export const MODELS: readonly { model: string; family: "uc" | "videoos" }[] = [
  { model: "VVX 350", family: "uc" },
  { model: "Trio 8800", family: "uc" },
  { model: "StudioX30", family: "videoos" },
  { model: "G7500", family: "videoos" },
];

const digits = fc.integer({ min: 0, max: 30 }).map(String);

/** A valid catalog: unique (model, version) releases, a baseline naming releases, optional floors. */
export const arbCatalog: fc.Arbitrary<CatalogSigned> = fc
  .record({
    version: fc.integer({ min: 1, max: 1000 }),
    entries: fc.array(
      fc.record({
        m: fc.integer({ min: 0, max: MODELS.length - 1 }),
        parts: fc.tuple(digits, digits, digits, fc.integer({ min: 1000, max: 99999 }).map(String)),
        build: fc.option(fc.integer({ min: 100000, max: 999999 }).map(String), { nil: undefined }),
        beta: fc.boolean(),
        downgrade: fc.boolean(),
        notes: fc.string({ maxLength: 20 }),
        length: fc.integer({ min: 1, max: 1 << 30 }),
        sha: fc.stringMatching(/^[0-9a-f]{64}$/),
      }),
      { maxLength: 8 },
    ),
    baselinePick: fc.array(fc.nat(), { maxLength: 4 }),
    floor: fc.boolean(),
  })
  .map(({ version, entries, baselinePick, floor }) => {
    const seen = new Set<string>();
    const releases: CatalogRelease[] = [];
    for (const e of entries) {
      const { model, family } = MODELS[e.m] ?? { model: "VVX 350", family: "uc" as const };
      const v = family === "uc" ? e.parts.join(".") : e.parts.slice(0, 3).join(".");
      const build = family === "videoos" ? e.build : undefined;
      const key = `${model}|${v}|${build ?? ""}`;
      if (seen.has(key)) continue;
      seen.add(key);
      releases.push({
        family,
        model,
        version: v,
        ...(build !== undefined ? { build } : {}),
        channel: e.beta ? "beta" : "stable",
        image: { fileName: `${model.replace(/ /g, "_")}-${v}.ld`, length: e.length, sha256: e.sha },
        notes: e.notes,
        releaseDate: "2026-02-01",
        ...(e.downgrade ? { downgrade: true } : {}),
      });
    }
    const baseline: Record<string, string> = {};
    for (const i of baselinePick) {
      const r = releases[i % Math.max(1, releases.length)];
      if (r) baseline[r.model] = r.family === "videoos" && r.build ? `${r.version}-${r.build}` : r.version;
    }
    const first = releases[0];
    return {
      type: "catalog" as const,
      version,
      expires: FUTURE,
      releases,
      baseline,
      ...(floor && first ? { floors: { [first.model]: first.version } } : {}),
    };
  });
