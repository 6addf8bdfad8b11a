import { createHash } from "node:crypto";
import { issuesOf, PolyfleetError } from "@polyfleet/shared";
import { z } from "zod";
import { canonicalJson } from "./canonical-json.js";
import { matchRelease, releaseVersion } from "./resolve.js";
import { isValidVersion, parseVideoosVersion, versionCore } from "./versions.js";

export { canonicalJson } from "./canonical-json.js";

/**
 * The two signed files: `root.json` (the signing keys and the threshold) and `catalog.json` (the releases).
 * Both are `{ signed, signatures }` envelopes; a signature is ed25519 over `canonicalJson(signed)` (UTF-8).
 */

/** keyid = lowercase hex sha256 of the raw 32-byte ed25519 public key. */
export function keyIdOf(publicKeyB64: string): string {
  return createHash("sha256").update(Buffer.from(publicKeyB64, "base64")).digest("hex");
}

/** Lowercase hex sha256 of `canonicalJson(signed)`: identifies the signed content of a file. */
export function signedDigest(signed: unknown): string {
  return createHash("sha256").update(canonicalJson(signed), "utf8").digest("hex");
}

const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "sha256 must be 64 lowercase hex digits");
const KeyId = z.string().regex(/^[0-9a-f]{64}$/, "keyid must be 64 lowercase hex digits (sha256 of the key)");
const IsoDateTime = z.iso.datetime({
  offset: true,
  message: "must be an ISO 8601 date-time, e.g. 2027-12-31T00:00:00Z",
});
const IsoDate = z.iso.date({ message: "must be a date YYYY-MM-DD" });
const ModelName = z
  .string()
  .min(1)
  .max(100)
  .refine((s) => s === s.trim(), "model must not start or end with white space");

/** Base64 of a raw 32-byte ed25519 public key (canonical padding). */
export const PublicKeyB64 = z
  .string()
  .regex(/^[A-Za-z0-9+/]{43}=$/, "publicKey must be the base64 of a raw 32-byte ed25519 key")
  .refine((s) => Buffer.from(s, "base64").toString("base64") === s, "publicKey is not canonical base64");

/** One signature of an envelope. Malformed `sig` values are not a schema error: they simply never verify. */
export const Signature = z.strictObject({
  keyid: z.string().min(1).max(128),
  /** base64 of the 64-byte ed25519 signature over canonicalJson(signed). */
  sig: z.string().min(1).max(256),
});
export type Signature = z.infer<typeof Signature>;

export const RootKey = z.strictObject({ publicKey: PublicKeyB64 });
export type RootKey = z.infer<typeof RootKey>;

export const RootSigned = z
  .strictObject({
    type: z.literal("root"),
    version: z.int().min(1),
    expires: IsoDateTime,
    keys: z.record(KeyId, RootKey),
    threshold: z.int().min(1),
  })
  .superRefine((root, ctx) => {
    const ids = Object.keys(root.keys);
    if (ids.length === 0) ctx.addIssue({ code: "custom", path: ["keys"], message: "a root needs keys" });
    if (root.threshold > ids.length)
      ctx.addIssue({
        code: "custom",
        path: ["threshold"],
        message: `threshold ${root.threshold} is more than the ${ids.length} key(s)`,
      });
    for (const [id, key] of Object.entries(root.keys))
      if (keyIdOf(key.publicKey) !== id)
        ctx.addIssue({
          code: "custom",
          path: ["keys", id],
          message: `keyid must be the sha256 of the key (${keyIdOf(key.publicKey)})`,
        });
  });
export type RootSigned = z.infer<typeof RootSigned>;

export const ReleaseImage = z.strictObject({
  fileName: z.string().regex(/^[A-Za-z0-9._-]{1,200}$/, "image file name: 1-200 of A-Z a-z 0-9 . _ -"),
  length: z.int().positive(),
  sha256: Sha256Hex,
});
export type ReleaseImage = z.infer<typeof ReleaseImage>;

export const ReleaseFamily = z.enum(["uc", "videoos"]);
export type ReleaseFamily = z.infer<typeof ReleaseFamily>;

/**
 * One release of one model. UC versions carry the build as their fourth part (no `build` field, no timestamp);
 * VideoOS versions are `major.minor.patch` with the build, when known, in `build`.
 */
export const CatalogRelease = z
  .strictObject({
    family: ReleaseFamily,
    model: ModelName,
    version: z.string().min(1).max(64),
    build: z
      .string()
      .regex(/^\d{1,12}$/, "build must be digits")
      .optional(),
    channel: z.enum(["stable", "beta"]),
    image: ReleaseImage,
    notes: z.string().max(20_000),
    /** Lowest running version this release may be installed over. */
    minVersion: z.string().min(1).max(64).optional(),
    releaseDate: IsoDate,
    /** An explicit, signed downgrade: it may be installed below the running version and below the floor. */
    downgrade: z.boolean().optional(),
  })
  .superRefine((r, ctx) => {
    if (!isValidVersion(r.family, r.version)) {
      ctx.addIssue({ code: "custom", path: ["version"], message: `not a ${r.family} version` });
      return;
    }
    if (r.family === "uc") {
      if (versionCore("uc", r.version) !== r.version)
        ctx.addIssue({
          code: "custom",
          path: ["version"],
          message: "a release version has no build timestamp and single spacing",
        });
      if (r.build !== undefined)
        ctx.addIssue({
          code: "custom",
          path: ["build"],
          message: "UC Software versions carry the build as their fourth part; leave build out",
        });
    } else if (parseVideoosVersion(r.version)?.build !== undefined || /\s/.test(r.version)) {
      ctx.addIssue({
        code: "custom",
        path: ["version"],
        message: "a VideoOS release version is major.minor.patch; put the build in build",
      });
    }
    if (r.minVersion !== undefined && !isValidVersion(r.family, r.minVersion))
      ctx.addIssue({ code: "custom", path: ["minVersion"], message: `not a ${r.family} version` });
  });
export type CatalogRelease = z.infer<typeof CatalogRelease>;

export const CatalogSigned = z
  .strictObject({
    type: z.literal("catalog"),
    version: z.int().min(1),
    expires: IsoDateTime,
    releases: z.array(CatalogRelease).max(100_000),
    /** The approved version per model (compliance and "roll out the baseline"); must name a release. */
    baseline: z.record(ModelName, z.string().min(1).max(64)),
    /** Lowest version per model any install may go to, unless the release is an explicit downgrade. */
    floors: z.record(ModelName, z.string().min(1).max(64)).optional(),
  })
  .superRefine((cat, ctx) => {
    const familyOf = new Map<string, ReleaseFamily>();
    const seen = new Map<string, number>();
    cat.releases.forEach((r, i) => {
      const fam = familyOf.get(r.model);
      if (fam !== undefined && fam !== r.family)
        ctx.addIssue({
          code: "custom",
          path: ["releases", i, "family"],
          message: `model ${JSON.stringify(r.model)} already has ${fam} releases`,
        });
      familyOf.set(r.model, fam ?? r.family);
      const full = releaseVersion(r);
      // Numerically equal versions (5.9.5.0614 and 5.9.5.614) are the same release.
      const key = `${r.model}\u0000${isValidVersion(r.family, full) ? numericKey(full) : full}`;
      const prev = seen.get(key);
      if (prev !== undefined)
        ctx.addIssue({
          code: "custom",
          path: ["releases", i],
          message: `${r.model} ${full} is listed twice (also releases[${prev}])`,
        });
      else seen.set(key, i);
    });
    for (const [model, version] of Object.entries(cat.baseline)) {
      if (!matchRelease(cat.releases, { model, version }))
        ctx.addIssue({
          code: "custom",
          path: ["baseline", model],
          message: `no release ${JSON.stringify(version)} of ${JSON.stringify(model)} in the catalog`,
        });
    }
    for (const [model, version] of Object.entries(cat.floors ?? {})) {
      const fam = familyOf.get(model);
      if (fam === undefined)
        ctx.addIssue({
          code: "custom",
          path: ["floors", model],
          message: `no releases of ${JSON.stringify(model)}: its version family is unknown`,
        });
      else if (!isValidVersion(fam, version))
        ctx.addIssue({ code: "custom", path: ["floors", model], message: `not a ${fam} version` });
    }
  });
export type CatalogSigned = z.infer<typeof CatalogSigned>;

function numericKey(v: string): string {
  return v.replace(/\d+/g, (d) => d.replace(/^0+(?=\d)/, ""));
}

/** A signed file: the content and its signatures. */
export interface SignedEnvelope<T> {
  signed: T;
  signatures: Signature[];
}

export const RootFile = z.strictObject({ signed: RootSigned, signatures: z.array(Signature).max(256) });
export type RootFile = z.infer<typeof RootFile>;

export const CatalogFile = z.strictObject({
  signed: CatalogSigned,
  signatures: z.array(Signature).max(256),
});
export type CatalogFile = z.infer<typeof CatalogFile>;

function parseFile<S extends z.ZodType>(schema: S, text: string, fileName: string, what: string): z.infer<S> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new PolyfleetError(
      "POLYFLEET_ERR_CATALOG_INVALID",
      `${fileName}: not valid JSON: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const r = schema.safeParse(data);
  if (!r.success) {
    const issues = issuesOf(r.error);
    const first = issues[0];
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more issue(s))` : "";
    throw new PolyfleetError(
      "POLYFLEET_ERR_CATALOG_INVALID",
      `${fileName}: not a valid ${what}: ${first?.path ?? "(root)"}: ${first?.message ?? "invalid"}${more}`,
      { details: { file: fileName, issues } },
    );
  }
  return r.data;
}

/** Parses a root file (JSON text). Throws CATALOG_INVALID naming the file and the failing path. */
export function parseRootFile(text: string, fileName: string): RootFile {
  return parseFile(RootFile, text, fileName, "root file");
}

/** Parses a catalog file (JSON text). Throws CATALOG_INVALID naming the file and the failing path. */
export function parseCatalogFile(text: string, fileName: string): CatalogFile {
  return parseFile(CatalogFile, text, fileName, "catalog file");
}
