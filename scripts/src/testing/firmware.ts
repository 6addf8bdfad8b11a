import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type CatalogRelease,
  type CatalogSigned,
  generateKeyPair,
  keyIdOf,
  type RootSigned,
  signEnvelope,
} from "@polyfleet/firmware-catalog";
import { MODELS, type ModelSpec } from "../simulator/catalog.js";
import { makeSimImage } from "../simulator/image.js";

/** One release to put in a generated catalog, with a simulator image of `bytes` bytes. */
export interface DemoRelease {
  family: "uc" | "videoos";
  model: string;
  version: string;
  build?: string | undefined;
  bytes?: number;
  baseline?: boolean;
  downgrade?: boolean;
  minVersion?: string;
}

export interface SignedCatalogFiles {
  dir: string;
  rootFile: string;
  catalogFile: string;
  imagesDir: string;
  releases: CatalogRelease[];
  keys: { publicKey: string; privateKeyPem: string }[];
}

/**
 * Writes a ready trust setup into `dir`: `root.json` (2-of-3 keys by default), `catalog.json` signed by the
 * threshold, and `images/` with one simulator image per release (the format the simulated devices install).
 * For tests, benchmarks and the demo system; a real catalog is made with `polyfleet-catalog`.
 */
export function writeSignedCatalog(
  dir: string,
  opts: {
    releases: DemoRelease[];
    keys?: number;
    threshold?: number;
    version?: number;
    expiresInDays?: number;
  },
): SignedCatalogFiles {
  const imagesDir = join(dir, "images");
  mkdirSync(imagesDir, { recursive: true });
  const keys = Array.from({ length: opts.keys ?? 3 }, () => generateKeyPair());
  const threshold = opts.threshold ?? 2;
  const expires = new Date(Date.now() + (opts.expiresInDays ?? 365) * 86_400_000).toISOString();
  const root: RootSigned = {
    type: "root",
    version: 1,
    expires,
    keys: Object.fromEntries(keys.map((k) => [keyIdOf(k.publicKey), { publicKey: k.publicKey }])),
    threshold,
  };
  const releases: CatalogRelease[] = [];
  const baseline: Record<string, string> = {};
  for (const r of opts.releases) {
    const image = makeSimImage(
      { family: r.family, model: r.model, version: r.version, ...(r.build ? { build: r.build } : {}) },
      r.bytes ?? 64 * 1024,
    );
    const fileName = `${r.model.replace(/[^A-Za-z0-9]+/g, "_")}-${r.version}${r.build ? `-${r.build}` : ""}.bin`;
    writeFileSync(join(imagesDir, fileName), image);
    releases.push({
      family: r.family,
      model: r.model,
      version: r.version,
      ...(r.build ? { build: r.build } : {}),
      channel: "stable",
      image: { fileName, length: image.length, sha256: createHash("sha256").update(image).digest("hex") },
      notes: `simulated ${r.model} ${r.version}`,
      ...(r.minVersion ? { minVersion: r.minVersion } : {}),
      releaseDate: "2026-11-01",
      ...(r.downgrade ? { downgrade: true } : {}),
    });
    if (r.baseline) baseline[r.model] = r.version;
  }
  const catalog: CatalogSigned = {
    type: "catalog",
    version: opts.version ?? 1,
    expires,
    releases,
    baseline,
  };
  const signers = keys.slice(0, threshold).map((k) => k.privateKeyPem);
  const rootFile = join(dir, "root.json");
  const catalogFile = join(dir, "catalog.json");
  writeFileSync(rootFile, `${JSON.stringify(signEnvelope(root, signers), null, 2)}\n`);
  writeFileSync(catalogFile, `${JSON.stringify(signEnvelope(catalog, signers), null, 2)}\n`);
  return { dir, rootFile, catalogFile, imagesDir, releases, keys };
}

/**
 * A newer release for a simulated model (synthetic): UC `a.b.c.dddd` → `a.b.(c+1).(dddd+11)`, VideoOS
 * `x.y.z` + build → `x.(y+1).0` + build+11. Higher than every version the model may start with.
 */
export function nextSimRelease(spec: ModelSpec): DemoRelease {
  const latest = spec.firmware[spec.firmware.length - 1];
  if (!latest) throw new Error(`model ${spec.model} has no firmware`);
  const p = latest.version.split(".").map((x) => Number.parseInt(x, 10));
  if (spec.family === "uc") {
    const [a = 0, b = 0, c = 0, d = 0] = p;
    return {
      family: "uc",
      model: spec.model,
      version: `${a}.${b}.${c + 1}.${String(d + 11).padStart(4, "0")}`,
    };
  }
  const [x = 0, y = 0] = p;
  return {
    family: "videoos",
    model: spec.model,
    version: `${x}.${y + 1}.0`,
    build: String(Number.parseInt(latest.build ?? "100000", 10) + 11),
  };
}

/** The newer release of every simulated model (or of the listed ones), as the baseline. */
export function simBaselineReleases(models?: string[]): DemoRelease[] {
  return MODELS.filter((m) => !models || models.includes(m.model)).map((m) => ({
    ...nextSimRelease(m),
    baseline: true,
  }));
}
