import type { CatalogRelease, CatalogSigned } from "./catalog.js";
import { compareVersions, isValidVersion, sameRelease, versionCore } from "./versions.js";

/** What to look for: a model and a version (VideoOS: `3.12.0`, `3.12.0-366027`, or `3.12.0` + build). */
export interface ReleaseQuery {
  model: string;
  version: string;
  build?: string;
}

/**
 * The full version of a release as a device reports it: UC `version`; VideoOS `version-build` when the build
 * is known, else `version`.
 */
export function releaseVersion(r: Pick<CatalogRelease, "family" | "version" | "build">): string {
  return r.family === "videoos" && r.build !== undefined ? `${r.version}-${r.build}` : r.version;
}

/**
 * Finds a release among `releases` (the matching rules of `findRelease`). Exported for the schema, which must
 * run before a `CatalogSigned` exists.
 */
export function matchRelease(
  releases: readonly CatalogRelease[],
  q: ReleaseQuery,
): CatalogRelease | undefined {
  const candidates = releases.filter((r) => r.model === q.model);
  const first = candidates[0];
  if (!first) return undefined;
  const family = first.family;
  const wanted =
    family === "videoos" && q.build !== undefined && isValidVersion(family, q.version)
      ? `${versionCore(family, q.version).replace(/-\d+$/, "")}-${q.build}`
      : q.version;
  if (!isValidVersion(family, wanted)) return undefined;
  const core = versionCore(family, wanted);
  const exact = candidates.find(
    (r) =>
      isValidVersion(family, releaseVersion(r)) && compareVersions(family, releaseVersion(r), core) === 0,
  );
  if (exact) return exact;
  // VideoOS: a version without a build matches the release of any build (the newest when several).
  let best: CatalogRelease | undefined;
  for (const r of candidates) {
    const v = releaseVersion(r);
    if (!isValidVersion(family, v) || !sameRelease(family, v, wanted)) continue;
    if (!best || compareVersions(family, v, releaseVersion(best)) > 0) best = r;
  }
  return best;
}

/**
 * The release of `model` at `version`: an exact match first (UC ignores a build timestamp in the query), then
 * for VideoOS the release whose build matches or, when either side has no build, the newest build of that
 * version. `undefined` when none.
 */
export function findRelease(cat: CatalogSigned, q: ReleaseQuery): CatalogRelease | undefined {
  return matchRelease(cat.releases, q);
}

/** Every release of `model`, newest first. */
export function releasesFor(cat: CatalogSigned, model: string): CatalogRelease[] {
  return cat.releases
    .filter((r) => r.model === model)
    .sort((a, b) => compareVersions(b.family, releaseVersion(b), releaseVersion(a)));
}

/** The release named by `baseline[model]`, if any. */
export function baselineRelease(cat: CatalogSigned, model: string): CatalogRelease | undefined {
  const version = Object.hasOwn(cat.baseline, model) ? cat.baseline[model] : undefined;
  return version === undefined ? undefined : findRelease(cat, { model, version });
}
