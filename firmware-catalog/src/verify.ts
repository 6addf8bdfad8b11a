import { createHash, createPublicKey, type Hash, verify } from "node:crypto";
import { issuesOf, PolyfleetError } from "@polyfleet/shared";
import { canonicalJson } from "./canonical-json.js";
import {
  CatalogFile,
  type CatalogRelease,
  type CatalogSigned,
  type ReleaseImage,
  RootFile,
  type RootFile as RootFileType,
  type RootKey,
  type RootSigned,
  type Signature,
  signedDigest,
} from "./catalog.js";
import { releaseVersion } from "./resolve.js";
import { compareReleases, isValidVersion } from "./versions.js";

/**
 * Verification of the signed files, of an install against the catalog, and of image bytes. Every function
 * either returns a fully verified value or throws a PolyfleetError with the refusal's code.
 */

function isCanonicalB64(s: string, bytes: number): Buffer | undefined {
  const buf = Buffer.from(s, "base64");
  return buf.length === bytes && buf.toString("base64") === s ? buf : undefined;
}

/**
 * The keyids (from `keys`) with a valid signature over `canonicalJson(signed)`. Unknown keyids, malformed
 * signatures and repeated signatures by one key add nothing.
 */
export function validSigners(
  signed: unknown,
  signatures: readonly Signature[],
  keys: Readonly<Record<string, RootKey>>,
): Set<string> {
  const data = Buffer.from(canonicalJson(signed), "utf8");
  const ok = new Set<string>();
  for (const s of signatures) {
    if (ok.has(s.keyid) || !Object.hasOwn(keys, s.keyid)) continue;
    const key = keys[s.keyid];
    const sig = isCanonicalB64(s.sig, 64);
    const raw = key ? isCanonicalB64(key.publicKey, 32) : undefined;
    if (!sig || !raw) continue;
    const pub = createPublicKey({
      key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") },
      format: "jwk",
    });
    if (verify(null, data, pub, sig)) ok.add(s.keyid);
  }
  return ok;
}

function schemaCheck<T>(
  schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: unknown } },
  value: unknown,
  what: string,
): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issues = issuesOf(r.error as Parameters<typeof issuesOf>[0]);
  const first = issues[0];
  throw new PolyfleetError(
    "POLYFLEET_ERR_CATALOG_INVALID",
    `${what} is malformed: ${first?.path ?? "(root)"}: ${first?.message ?? "invalid"}`,
  );
}

function checkExpiry(what: string, expires: string, now: number): void {
  const at = Date.parse(expires);
  if (!(now < at))
    throw new PolyfleetError("POLYFLEET_ERR_CATALOG_EXPIRED", `${what} expired at ${expires}`, {
      details: { expires },
    });
}

export interface VerifyRootOptions {
  /** The root trusted so far; a newer root must also carry this root's threshold of signatures (rotation). */
  trusted?: RootSigned;
  now: number;
  /** Highest root version accepted before; an older root is a rollback. */
  minVersion?: number;
}

/**
 * Verifies a root file: its own threshold of distinct valid signatures by its own keys; with `trusted`, a
 * newer root must also carry `trusted.threshold` signatures by `trusted`'s keys (key rotation), an older one
 * is a rollback, and one of the same version must have the same signed content. Checks run in this order:
 * schema (CATALOG_INVALID), signatures (CATALOG_SIGNATURE), version (CATALOG_ROLLBACK), expiry
 * (CATALOG_EXPIRED).
 */
export function verifyRoot(root: RootFileType, opts: VerifyRootOptions): RootSigned {
  const file = schemaCheck(RootFile, root, "root");
  const r = file.signed;
  const own = validSigners(r, file.signatures, r.keys).size;
  if (own < r.threshold)
    throw new PolyfleetError(
      "POLYFLEET_ERR_CATALOG_SIGNATURE",
      `root v${r.version} has ${own} valid signature(s) by its own keys; its threshold is ${r.threshold}`,
    );
  const t = opts.trusted;
  if (t) {
    if (r.version < t.version)
      throw new PolyfleetError(
        "POLYFLEET_ERR_CATALOG_ROLLBACK",
        `root v${r.version} is older than the trusted root v${t.version}`,
      );
    if (r.version === t.version) {
      if (signedDigest(r) !== signedDigest(t))
        throw new PolyfleetError(
          "POLYFLEET_ERR_CATALOG_ROLLBACK",
          `root v${r.version} differs from the trusted root of the same version`,
        );
    } else {
      const byTrusted = validSigners(r, file.signatures, t.keys).size;
      if (byTrusted < t.threshold)
        throw new PolyfleetError(
          "POLYFLEET_ERR_CATALOG_SIGNATURE",
          `new root v${r.version} has ${byTrusted} valid signature(s) by the keys of the trusted root ` +
            `v${t.version}; a rotation needs ${t.threshold}`,
        );
    }
  }
  if (opts.minVersion !== undefined && r.version < opts.minVersion)
    throw new PolyfleetError(
      "POLYFLEET_ERR_CATALOG_ROLLBACK",
      `root v${r.version} is older than v${opts.minVersion}, accepted before`,
    );
  checkExpiry(`root v${r.version}`, r.expires, opts.now);
  return r;
}

export interface VerifyCatalogOptions {
  now: number;
  /** Highest catalog version accepted before: an older one is a rollback. */
  lastVersion?: number;
  /**
   * `signedDigest` of the catalog accepted at `lastVersion`. A catalog of that same version must have exactly
   * this signed content (re-signing is fine, changing content without a new version is a rollback). Without
   * it, a catalog of the same version is accepted.
   */
  lastDigest?: string;
}

/**
 * Verifies a catalog file against a verified root: the root's threshold of distinct valid signatures by the
 * root's keys (CATALOG_SIGNATURE), not older than `lastVersion` and, at the same version, the same signed
 * content as `lastDigest` (CATALOG_ROLLBACK), not expired (CATALOG_EXPIRED).
 */
export function verifyCatalog(cat: CatalogFile, root: RootSigned, opts: VerifyCatalogOptions): CatalogSigned {
  const file = schemaCheck(CatalogFile, cat, "catalog");
  const c = file.signed;
  const n = validSigners(c, file.signatures, root.keys).size;
  if (n < root.threshold)
    throw new PolyfleetError(
      "POLYFLEET_ERR_CATALOG_SIGNATURE",
      `catalog v${c.version} has ${n} valid signature(s) by the keys of root v${root.version}; ` +
        `the threshold is ${root.threshold}`,
    );
  const last = opts.lastVersion;
  if (last !== undefined && c.version < last)
    throw new PolyfleetError(
      "POLYFLEET_ERR_CATALOG_ROLLBACK",
      `catalog v${c.version} is older than v${last}, accepted before`,
    );
  if (last !== undefined && c.version === last && opts.lastDigest && signedDigest(c) !== opts.lastDigest)
    throw new PolyfleetError(
      "POLYFLEET_ERR_CATALOG_ROLLBACK",
      `catalog v${c.version} differs from the catalog v${last} accepted before; a changed catalog needs a new version`,
    );
  checkExpiry(`catalog v${c.version}`, c.expires, opts.now);
  return c;
}

/** The device an install is checked against. `runningVersion` as the device reports it. */
export interface InstallTarget {
  family: string;
  model?: string;
  runningVersion?: string;
}

function refuse(message: string): PolyfleetError {
  return new PolyfleetError("POLYFLEET_ERR_DOWNGRADE_REFUSED", message);
}

/**
 * May `release` be installed on `device`? Throws MODEL_MISMATCH when the family or model differs (or the
 * device's model is unknown); DOWNGRADE_REFUSED when the target is below the running version or below
 * `floors[model]` and the release is not an explicit downgrade, or when the running version is below the
 * release's `minVersion` (or unknown while the release has one); VERSION_INVALID when the running version does
 * not parse. The same version as the running one passes (the caller decides "already current").
 */
export function checkInstall(cat: CatalogSigned, release: CatalogRelease, device: InstallTarget): void {
  const target = releaseVersion(release);
  const name = `${release.model} ${target}`;
  if (!cat.releases.some((r) => r === release || canonicalJson(r) === canonicalJson(release)))
    throw new PolyfleetError(
      "POLYFLEET_ERR_NOT_FOUND",
      `${name} is not a release of catalog v${cat.version}`,
    );
  if (device.family !== release.family)
    throw new PolyfleetError(
      "POLYFLEET_ERR_MODEL_MISMATCH",
      `${name} is a ${release.family} release; the device is ${device.family}`,
    );
  if (device.model === undefined)
    throw new PolyfleetError(
      "POLYFLEET_ERR_MODEL_MISMATCH",
      `${name}: the device's model is unknown; refusing to install firmware of another model`,
    );
  if (device.model !== release.model)
    throw new PolyfleetError(
      "POLYFLEET_ERR_MODEL_MISMATCH",
      `${name} is for ${release.model}; the device is a ${device.model}`,
    );
  const fam = release.family;
  const running = device.runningVersion;
  if (running !== undefined && !isValidVersion(fam, running))
    throw new PolyfleetError(
      "POLYFLEET_ERR_VERSION_INVALID",
      `running version ${JSON.stringify(running)} is not a ${fam} version; cannot check ${name}`,
    );
  if (release.minVersion !== undefined) {
    if (running === undefined)
      throw refuse(
        `${name} cannot be installed over an unknown running version (it needs at least ${release.minVersion})`,
      );
    if (compareReleases(fam, running, release.minVersion) < 0)
      throw refuse(`${name} cannot be installed over ${running}: it needs at least ${release.minVersion}`);
  }
  if (release.downgrade === true) return;
  if (running !== undefined && compareReleases(fam, target, running) < 0)
    throw refuse(`${name} is below the running version ${running} and is not marked as a downgrade`);
  const floor =
    cat.floors && Object.hasOwn(cat.floors, release.model) ? cat.floors[release.model] : undefined;
  if (floor !== undefined && compareReleases(fam, target, floor) < 0)
    throw refuse(`${name} is below the floor ${floor} of ${release.model} and is not marked as a downgrade`);
}

/**
 * Verifies an image while it streams: `update()` throws IMAGE_TOO_LARGE as soon as more than `length` bytes
 * arrive (the excess is never hashed); `finish()` throws IMAGE_MISMATCH when bytes are missing or the sha256
 * differs. After a refusal every further call throws the same error.
 */
export class ImageVerifier {
  private readonly hash: Hash = createHash("sha256");
  private received = 0;
  private failed: PolyfleetError | undefined;
  private done: string | undefined;

  constructor(private readonly image: { length: number; sha256: string }) {}

  /** Bytes accepted so far. */
  get bytes(): number {
    return this.received;
  }

  update(chunk: Uint8Array): void {
    if (this.failed) throw this.failed;
    if (this.done !== undefined) throw new TypeError("ImageVerifier: update() after finish()");
    if (this.received + chunk.length > this.image.length) {
      this.failed = new PolyfleetError(
        "POLYFLEET_ERR_IMAGE_TOO_LARGE",
        `image is larger than its declared ${this.image.length} bytes`,
        { details: { length: this.image.length } },
      );
      throw this.failed;
    }
    this.received += chunk.length;
    this.hash.update(chunk);
  }

  /** Verifies length and sha256; returns the sha256 (hex). Idempotent once verified. */
  finish(): string {
    if (this.failed) throw this.failed;
    if (this.done !== undefined) return this.done;
    if (this.received !== this.image.length) {
      this.failed = new PolyfleetError(
        "POLYFLEET_ERR_IMAGE_MISMATCH",
        `image has ${this.received} bytes; the catalog says ${this.image.length}`,
      );
      throw this.failed;
    }
    const got = this.hash.digest("hex");
    if (got !== this.image.sha256.toLowerCase()) {
      this.failed = new PolyfleetError(
        "POLYFLEET_ERR_IMAGE_MISMATCH",
        `image sha256 is ${got}; the catalog says ${this.image.sha256}`,
      );
      throw this.failed;
    }
    this.done = got;
    return got;
  }

  /** Same as `finish()`. */
  digest(): string {
    return this.finish();
  }
}

/** Verifies a whole image in memory (length + sha256). Throws IMAGE_TOO_LARGE / IMAGE_MISMATCH. */
export function verifyImageBytes(buf: Uint8Array, image: Pick<ReleaseImage, "length" | "sha256">): void {
  const v = new ImageVerifier(image);
  v.update(buf);
  v.finish();
}
