import { existsSync } from "node:fs";
import { issuesOf, PolyfleetError } from "@polyfleet/shared";
import { z } from "zod";
import { canonicalJson } from "./canonical-json.js";
import { type CatalogSigned, parseCatalogFile, parseRootFile, RootSigned, signedDigest } from "./catalog.js";
import { readText, writeAtomic } from "./files.js";
import { verifyCatalog, verifyRoot } from "./verify.js";

/**
 * What a verifier remembers between runs, so that an older (or a changed same-version) root or catalog is
 * refused as a rollback, and a new root is verified against the one accepted before (key rotation).
 */
export const TrustState = z.strictObject({
  /** Highest root version accepted (0: none yet). */
  rootVersion: z.int().min(0),
  /** Highest catalog version accepted (0: none yet). */
  catalogVersion: z.int().min(0),
  /** `signedDigest` of the catalog accepted at `catalogVersion`. */
  catalogDigest: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  /** The last accepted root: a new root.json must carry its threshold of signatures. */
  root: RootSigned.optional(),
});
export type TrustState = z.infer<typeof TrustState>;

/** Reads the trust state; a missing file is the empty state (zeros). A malformed one is refused. */
export function loadTrustState(path: string): TrustState {
  if (!existsSync(path)) return { rootVersion: 0, catalogVersion: 0 };
  const text = readText(path);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new PolyfleetError("POLYFLEET_ERR_CATALOG_INVALID", `trust state ${path} is not valid JSON`, {
      cause: err,
    });
  }
  const r = TrustState.safeParse(data);
  if (!r.success) {
    const first = issuesOf(r.error)[0];
    throw new PolyfleetError(
      "POLYFLEET_ERR_CATALOG_INVALID",
      `trust state ${path} is malformed: ${first?.path ?? "(root)"}: ${first?.message ?? "invalid"}`,
    );
  }
  return r.data;
}

/** Writes the trust state atomically (temporary file + rename). */
export function saveTrustState(path: string, state: TrustState): void {
  writeAtomic(path, `${JSON.stringify(TrustState.parse(state), null, 2)}\n`);
}

export interface LoadVerifiedCatalogOptions {
  rootFile: string;
  catalogFile: string;
  /** Where the trust state lives; without it nothing is remembered (no rollback protection across runs). */
  trustStateFile?: string;
  now: number;
}

/**
 * Reads and verifies root.json and catalog.json against the trust state, then records what was accepted
 * (only when both verify; versions never go down). The first root ever seen is trusted as it is (trust on
 * first use); every later root must be signed by the threshold of the root accepted before it.
 */
export function loadVerifiedCatalog(opts: LoadVerifiedCatalogOptions): {
  root: RootSigned;
  catalog: CatalogSigned;
  trustState: TrustState;
} {
  const state = opts.trustStateFile
    ? loadTrustState(opts.trustStateFile)
    : { rootVersion: 0, catalogVersion: 0 };
  const rootFile = parseRootFile(readText(opts.rootFile), opts.rootFile);
  const root = verifyRoot(rootFile, {
    now: opts.now,
    ...(state.root ? { trusted: state.root } : {}),
    ...(state.rootVersion > 0 ? { minVersion: state.rootVersion } : {}),
  });
  const catalogFile = parseCatalogFile(readText(opts.catalogFile), opts.catalogFile);
  const catalog = verifyCatalog(catalogFile, root, {
    now: opts.now,
    ...(state.catalogVersion > 0 ? { lastVersion: state.catalogVersion } : {}),
    ...(state.catalogDigest ? { lastDigest: state.catalogDigest } : {}),
  });
  const next: TrustState = {
    rootVersion: Math.max(state.rootVersion, root.version),
    catalogVersion: Math.max(state.catalogVersion, catalog.version),
    catalogDigest: signedDigest(catalog),
    root,
  };
  if (opts.trustStateFile && canonicalJson(next) !== canonicalJson(state))
    saveTrustState(opts.trustStateFile, next);
  return { root, catalog, trustState: next };
}
