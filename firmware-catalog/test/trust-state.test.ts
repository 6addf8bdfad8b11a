import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type CatalogFile,
  loadTrustState,
  loadVerifiedCatalog,
  type RootFile,
  saveTrustState,
} from "../src/index.js";
import {
  catalogSigned,
  codeOf,
  makeKeys,
  NOW,
  release,
  rootSigned,
  signCatalog,
  signRoot,
} from "./helpers.js";

const [A, B, C, D, E, F] = makeKeys(6) as [
  ReturnType<typeof makeKeys>[0],
  ReturnType<typeof makeKeys>[0],
  ReturnType<typeof makeKeys>[0],
  ReturnType<typeof makeKeys>[0],
  ReturnType<typeof makeKeys>[0],
  ReturnType<typeof makeKeys>[0],
];
const ROOT1 = rootSigned([A, B, C], 2, 1);
const ROOT2 = rootSigned([D, E, F], 2, 2);

let dir: string;
let rootFile: string;
let catalogFile: string;
let trustStateFile: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "pf-trust-"));
  rootFile = join(dir, "root.json");
  catalogFile = join(dir, "catalog.json");
  trustStateFile = join(dir, "state", "trust.json");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function put(root: RootFile, cat: CatalogFile): void {
  writeFileSync(rootFile, JSON.stringify(root, null, 2));
  writeFileSync(catalogFile, JSON.stringify(cat, null, 2));
}

function load() {
  return loadVerifiedCatalog({ rootFile, catalogFile, trustStateFile, now: NOW });
}

const cat = (version: number, notes = "") =>
  catalogSigned([release({ model: "VVX 350", version: "5.9.8.5760", notes })], { version });

describe("trust state", () => {
  it("is zeros when missing, round-trips, and refuses a corrupt file", () => {
    expect(loadTrustState(trustStateFile)).toEqual({ rootVersion: 0, catalogVersion: 0 });
    saveTrustState(trustStateFile, { rootVersion: 3, catalogVersion: 9, root: ROOT1 });
    expect(loadTrustState(trustStateFile)).toEqual({ rootVersion: 3, catalogVersion: 9, root: ROOT1 });
    expect(readdirSync(join(dir, "state"))).toEqual(["trust.json"]);
    writeFileSync(trustStateFile, "{ nope");
    expect(codeOf(() => loadTrustState(trustStateFile))).toBe("POLYFLEET_ERR_CATALOG_INVALID");
    writeFileSync(trustStateFile, JSON.stringify({ rootVersion: -1, catalogVersion: 0 }));
    expect(codeOf(() => loadTrustState(trustStateFile))).toBe("POLYFLEET_ERR_CATALOG_INVALID");
  });

  it("trusts the first root (TOFU), records what it accepted and refuses rollbacks afterwards", () => {
    put(signRoot(ROOT1, [A, B]), signCatalog(cat(5), [A, C]));
    const first = load();
    expect(first.catalog.version).toBe(5);
    expect(loadTrustState(trustStateFile)).toMatchObject({ rootVersion: 1, catalogVersion: 5, root: ROOT1 });

    // Re-signed by other keys, same content: accepted.
    put(signRoot(ROOT1, [B, C]), signCatalog(cat(5), [B, C]));
    expect(load().catalog.version).toBe(5);

    // Older catalog.
    put(signRoot(ROOT1, [A, B]), signCatalog(cat(4), [A, B]));
    expect(codeOf(load)).toBe("POLYFLEET_ERR_CATALOG_ROLLBACK");
    // Same version, other content.
    put(signRoot(ROOT1, [A, B]), signCatalog(cat(5, "changed"), [A, B]));
    expect(codeOf(load)).toBe("POLYFLEET_ERR_CATALOG_ROLLBACK");
    // Newer: accepted and recorded.
    put(signRoot(ROOT1, [A, B]), signCatalog(cat(6, "changed"), [A, B]));
    expect(load().catalog.version).toBe(6);
    expect(loadTrustState(trustStateFile).catalogVersion).toBe(6);
  });

  it("rotates keys only through a root signed by the previous root's threshold", () => {
    put(signRoot(ROOT1, [A, B]), signCatalog(cat(1), [A, B]));
    load();
    const before = readFileSync(trustStateFile, "utf8");

    // A root signed only by new keys is refused, and the state is untouched.
    put(signRoot(ROOT2, [D, E, F]), signCatalog(cat(2), [D, E]));
    expect(codeOf(load)).toBe("POLYFLEET_ERR_CATALOG_SIGNATURE");
    expect(readFileSync(trustStateFile, "utf8")).toBe(before);

    // Cross-signed: accepted; the catalog must now be signed by the new keys.
    put(signRoot(ROOT2, [A, B, D, E]), signCatalog(cat(2), [A, B]));
    expect(codeOf(load)).toBe("POLYFLEET_ERR_CATALOG_SIGNATURE");
    expect(readFileSync(trustStateFile, "utf8")).toBe(before);
    put(signRoot(ROOT2, [A, B, D, E]), signCatalog(cat(2), [E, F]));
    expect(load().root).toEqual(ROOT2);
    expect(loadTrustState(trustStateFile)).toMatchObject({ rootVersion: 2, catalogVersion: 2, root: ROOT2 });

    // The old root is now a rollback, even with a catalog it signed.
    put(signRoot(ROOT1, [A, B, C]), signCatalog(cat(3), [A, B]));
    expect(codeOf(load)).toBe("POLYFLEET_ERR_CATALOG_ROLLBACK");

    // A later rotation is checked against root v2 (not v1): the old keys no longer count.
    const root3 = rootSigned([A, B, C], 2, 3);
    put(signRoot(root3, [A, B, C]), signCatalog(cat(3), [A, B]));
    expect(codeOf(load)).toBe("POLYFLEET_ERR_CATALOG_SIGNATURE");
    put(signRoot(root3, [A, B, E, F]), signCatalog(cat(3), [A, B]));
    expect(load().root.version).toBe(3);
  });

  it("without a trust state file nothing is remembered", () => {
    put(signRoot(ROOT1, [A, B]), signCatalog(cat(5), [A, C]));
    expect(loadVerifiedCatalog({ rootFile, catalogFile, now: NOW }).catalog.version).toBe(5);
    put(signRoot(ROOT1, [A, B]), signCatalog(cat(4), [A, C]));
    expect(loadVerifiedCatalog({ rootFile, catalogFile, now: NOW }).catalog.version).toBe(4);
    expect(codeOf(() => loadVerifiedCatalog({ rootFile: join(dir, "nope"), catalogFile, now: NOW }))).toBe(
      "POLYFLEET_ERR_NOT_FOUND",
    );
  });
});
