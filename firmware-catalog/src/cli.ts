import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { isPolyfleetError, issuesOf, PolyfleetError } from "@polyfleet/shared";
import { z } from "zod";
import {
  type CatalogFile,
  type CatalogRelease,
  CatalogSigned,
  keyIdOf,
  PublicKeyB64,
  parseCatalogFile,
  parseRootFile,
  type RootFile,
  RootSigned,
  type SignedEnvelope,
} from "./catalog.js";
import { type ComplianceInput, complianceOf } from "./compliance.js";
import { readText, writeAtomic } from "./files.js";
import { matchRelease, releaseVersion } from "./resolve.js";
import { addSignature, generateKeyPair, publicKeyOf } from "./sign.js";
import { loadTrustState } from "./trust-state.js";
import { ImageVerifier, validSigners, verifyCatalog, verifyRoot } from "./verify.js";
import { parseVideoosVersion, versionCore } from "./versions.js";

/** Where the CLI writes and which directory relative paths start from. */
export interface CliIo {
  stdout(s: string): void;
  stderr(s: string): void;
  cwd: string;
}

const USAGE = `usage: polyfleet-catalog <command> [options]

  keygen     --out <prefix>                      write <prefix>.key (private, 0600) and <prefix>.pub
  init       --dir <dir> --key a.pub --key b.pub [--key c.pub] --threshold 2
             [--expires ISO] [--catalog-expires ISO]
                                                 write an unsigned root.json (v1) and catalog.json (v1)
  add        --catalog catalog.json --image <file> --family uc|videoos --model <model> --version <v>
             [--build B] [--channel stable|beta] [--notes text] [--min-version V]
             [--release-date YYYY-MM-DD] [--downgrade] [--baseline]
                                                 add a release (length and sha256 from the file)
  baseline   --catalog catalog.json --model <model> --version <v>
                                                 set the approved version of a model
  floor      --catalog catalog.json --model <model> --version <v>
                                                 set the lowest version a model may be installed at
  sign       --file <root.json|catalog.json> --key a.key [--key b.key] [--expires ISO]
                                                 add signatures (--expires: new expiry, version + 1)
  rotate     --root root.json --key new1.pub --key new2.pub --threshold 2 --out root2.json [--expires ISO]
                                                 write the next root (unsigned): sign it with the old
                                                 root's threshold of keys AND its own
  verify     --root root.json --catalog catalog.json [--images dir] [--trusted-root old-root.json]
             [--state trust.json] [--now ISO]    verify signatures, threshold, rollback, expiry, images
  compliance --root root.json --catalog catalog.json --inventory devices.json [--json] [--now ISO]
                                                 each device's version against the baseline of its model
`;

const DAY_MS = 86_400_000;

class UsageError extends Error {}

interface Ctx {
  io: CliIo;
  path(p: string): string;
  out(line: string): void;
}

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

function parse(args: string[], options: NonNullable<ParseArgsConfig["options"]>): Values {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values as Values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function str(v: Values, name: string): string | undefined {
  const x = v[name];
  return typeof x === "string" ? x : undefined;
}

function need(v: Values, name: string): string {
  const x = str(v, name);
  if (x === undefined || x === "") throw new UsageError(`--${name} is required`);
  return x;
}

function list(v: Values, name: string): string[] {
  const x = v[name];
  return Array.isArray(x) ? x.filter((s): s is string => typeof s === "string") : [];
}

function int(v: Values, name: string): number {
  const s = need(v, name);
  if (!/^\d{1,6}$/.test(s)) throw new UsageError(`--${name} must be a positive integer`);
  return Number(s);
}

function nowOf(v: Values): number {
  const s = str(v, "now");
  if (s === undefined) return Date.now();
  const t = Date.parse(s);
  if (Number.isNaN(t)) throw new UsageError(`--now must be an ISO date-time, got ${JSON.stringify(s)}`);
  return t;
}

function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function expiryOf(v: Values, name: string, now: number, defaultDays: number): string {
  const s = str(v, name) ?? isoSeconds(now + defaultDays * DAY_MS);
  const r = z.iso.datetime({ offset: true }).safeParse(s);
  if (!r.success) throw new UsageError(`--${name} must be an ISO date-time, e.g. 2027-12-31T00:00:00Z`);
  if (!(Date.parse(s) > now))
    throw new PolyfleetError("POLYFLEET_ERR_CATALOG_EXPIRED", `--${name} ${s} is not in the future`);
  return s;
}

function refuseOverwrite(path: string): void {
  if (existsSync(path))
    throw new PolyfleetError("POLYFLEET_ERR_FORBIDDEN", `${path} exists; refusing to overwrite it`);
}

function writeJson(path: string, value: unknown): void {
  writeAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

function schemaError(file: string, error: z.ZodError): PolyfleetError {
  const first = issuesOf(error)[0];
  return new PolyfleetError(
    "POLYFLEET_ERR_CATALOG_INVALID",
    `${file}: ${first?.path ?? "(root)"}: ${first?.message ?? "invalid"}`,
  );
}

function readPublicKeys(ctx: Ctx, files: string[]): Record<string, { publicKey: string }> {
  const keys: Record<string, { publicKey: string }> = {};
  for (const f of files) {
    const publicKey = readText(ctx.path(f)).trim();
    if (!PublicKeyB64.safeParse(publicKey).success)
      throw new PolyfleetError(
        "POLYFLEET_ERR_CATALOG_INVALID",
        `${f}: not an ed25519 public key (base64 of the raw 32 bytes, as keygen writes it)`,
      );
    const id = keyIdOf(publicKey);
    if (Object.hasOwn(keys, id)) throw new UsageError(`${f}: the same key is given twice`);
    keys[id] = { publicKey };
  }
  return keys;
}

async function hashFile(path: string): Promise<{ length: number; sha256: string }> {
  const hash = createHash("sha256");
  let length = 0;
  try {
    for await (const chunk of createReadStream(path)) {
      const b = chunk as Buffer;
      length += b.length;
      hash.update(b);
    }
  } catch (err) {
    throw new PolyfleetError(
      (err as NodeJS.ErrnoException).code === "ENOENT"
        ? "POLYFLEET_ERR_NOT_FOUND"
        : "POLYFLEET_ERR_CONFIG_UNREADABLE",
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { cause: err },
    );
  }
  return { length, sha256: hash.digest("hex") };
}

/** Verifies one image file streaming; resolves to the refusal or undefined. */
async function checkImageFile(
  path: string,
  image: { length: number; sha256: string },
): Promise<PolyfleetError | undefined> {
  const v = new ImageVerifier(image);
  try {
    // A stream stops at the first refusal: an oversized file is never read past its declared length + 1 chunk.
    for await (const chunk of createReadStream(path)) v.update(chunk as Buffer);
    v.finish();
    return undefined;
  } catch (err) {
    if (isPolyfleetError(err)) return err;
    const code = (err as NodeJS.ErrnoException).code;
    return new PolyfleetError(
      code === "ENOENT" ? "POLYFLEET_ERR_NOT_FOUND" : "POLYFLEET_ERR_CONFIG_UNREADABLE",
      code === "ENOENT" ? "file is missing" : `cannot read: ${code ?? (err as Error).message}`,
    );
  }
}

/** Writes a changed catalog: version + 1, old signatures dropped (they cannot match the new content). */
function writeChangedCatalog(ctx: Ctx, file: string, old: CatalogFile, signed: CatalogSigned): void {
  const r = CatalogSigned.safeParse(signed);
  if (!r.success) throw schemaError(file, r.error);
  writeJson(ctx.path(file), { signed: r.data, signatures: [] });
  ctx.out(`${file}: catalog v${old.signed.version} -> v${r.data.version}`);
  if (old.signatures.length > 0)
    ctx.out(
      `dropped ${old.signatures.length} signature(s): they no longer match; sign ${file} again to the threshold`,
    );
  else ctx.out(`${file} is unsigned: sign it to the root's threshold`);
}

function loadCatalog(ctx: Ctx, file: string): CatalogFile {
  return parseCatalogFile(readText(ctx.path(file)), file);
}

const VERSION_OPTS = { now: { type: "string" } } as const;

function cmdKeygen(ctx: Ctx, args: string[]): number {
  const v = parse(args, { out: { type: "string" } });
  const prefix = ctx.path(need(v, "out"));
  const keyPath = `${prefix}.key`;
  const pubPath = `${prefix}.pub`;
  refuseOverwrite(keyPath);
  refuseOverwrite(pubPath);
  const kp = generateKeyPair();
  writeFileSync(keyPath, kp.privateKeyPem, { mode: 0o600, flag: "wx" });
  writeFileSync(pubPath, `${kp.publicKey}\n`, { mode: 0o644, flag: "wx" });
  ctx.out(`wrote ${keyPath} (private: keep it offline) and ${pubPath}`);
  ctx.out(`keyid ${keyIdOf(kp.publicKey)}`);
  return 0;
}

function cmdInit(ctx: Ctx, args: string[]): number {
  const v = parse(args, {
    dir: { type: "string" },
    key: { type: "string", multiple: true },
    threshold: { type: "string" },
    expires: { type: "string" },
    "catalog-expires": { type: "string" },
    ...VERSION_OPTS,
  });
  const dir = ctx.path(need(v, "dir"));
  const keyFiles = list(v, "key");
  if (keyFiles.length === 0) throw new UsageError("--key is required (one per signer's .pub file)");
  const threshold = int(v, "threshold");
  const now = nowOf(v);
  const rootPath = join(dir, "root.json");
  const catalogPath = join(dir, "catalog.json");
  refuseOverwrite(rootPath);
  refuseOverwrite(catalogPath);
  const root = RootSigned.safeParse({
    type: "root",
    version: 1,
    expires: expiryOf(v, "expires", now, 365),
    keys: readPublicKeys(ctx, keyFiles),
    threshold,
  });
  if (!root.success) throw schemaError("root.json", root.error);
  const catalog = CatalogSigned.parse({
    type: "catalog",
    version: 1,
    expires: expiryOf(v, "catalog-expires", now, 90),
    releases: [],
    baseline: {},
  });
  mkdirSync(dir, { recursive: true });
  writeJson(rootPath, { signed: root.data, signatures: [] });
  writeJson(catalogPath, { signed: catalog, signatures: [] });
  const n = Object.keys(root.data.keys).length;
  ctx.out(`wrote ${rootPath} (v1, ${threshold} of ${n} keys, unsigned, expires ${root.data.expires})`);
  ctx.out(`wrote ${catalogPath} (v1, no releases, unsigned, expires ${catalog.expires})`);
  ctx.out(`next: sign both with ${threshold} keys: polyfleet-catalog sign --file <file> --key <name>.key`);
  return 0;
}

async function cmdAdd(ctx: Ctx, args: string[]): Promise<number> {
  const v = parse(args, {
    catalog: { type: "string" },
    image: { type: "string" },
    family: { type: "string" },
    model: { type: "string" },
    version: { type: "string" },
    build: { type: "string" },
    channel: { type: "string", default: "stable" },
    notes: { type: "string", default: "" },
    "min-version": { type: "string" },
    "release-date": { type: "string" },
    downgrade: { type: "boolean", default: false },
    baseline: { type: "boolean", default: false },
    ...VERSION_OPTS,
  });
  const file = need(v, "catalog");
  const imagePath = need(v, "image");
  const family = need(v, "family");
  if (family !== "uc" && family !== "videoos") throw new UsageError("--family must be uc or videoos");
  const model = need(v, "model").trim();
  const channel = need(v, "channel");
  if (channel !== "stable" && channel !== "beta") throw new UsageError("--channel must be stable or beta");
  let version = need(v, "version").trim();
  let build = str(v, "build");
  const core = versionCore(family, version);
  if (family === "uc") {
    if (core !== version)
      throw new PolyfleetError(
        "POLYFLEET_ERR_VERSION_INVALID",
        `give the UC version without a build timestamp: ${core}`,
      );
    if (build !== undefined)
      throw new PolyfleetError(
        "POLYFLEET_ERR_VERSION_INVALID",
        "UC Software versions carry the build as their fourth part; leave --build out",
      );
  } else {
    const parsed = parseVideoosVersion(version);
    if (parsed?.build !== undefined) {
      if (build !== undefined && build !== parsed.build)
        throw new PolyfleetError(
          "POLYFLEET_ERR_VERSION_INVALID",
          `--version ${version} and --build ${build} disagree`,
        );
      build = parsed.build;
    }
    version = parsed ? parsed.parts.join(".") : version;
  }
  const minVersion = str(v, "min-version");
  if (minVersion !== undefined) versionCore(family, minVersion);
  const now = nowOf(v);
  const fileName = basename(imagePath);
  const { length, sha256 } = await hashFile(ctx.path(imagePath));
  if (length === 0) throw new PolyfleetError("POLYFLEET_ERR_CATALOG_INVALID", `${imagePath} is empty`);
  const release: CatalogRelease = {
    family,
    model,
    version,
    ...(build !== undefined ? { build } : {}),
    channel,
    image: { fileName, length, sha256 },
    notes: str(v, "notes") ?? "",
    ...(minVersion !== undefined ? { minVersion } : {}),
    releaseDate: str(v, "release-date") ?? isoSeconds(now).slice(0, 10),
    ...(v.downgrade === true ? { downgrade: true } : {}),
  };
  const old = loadCatalog(ctx, file);
  const next: CatalogSigned = {
    ...old.signed,
    version: old.signed.version + 1,
    releases: [...old.signed.releases, release],
    baseline:
      v.baseline === true
        ? { ...old.signed.baseline, [model]: releaseVersion(release) }
        : { ...old.signed.baseline },
  };
  writeChangedCatalog(ctx, file, old, next);
  ctx.out(
    `added ${model} ${releaseVersion(release)} (${channel}${release.downgrade ? ", downgrade" : ""}): ` +
      `${fileName}, ${length} bytes, sha256 ${sha256}${v.baseline === true ? "; now the baseline" : ""}`,
  );
  return 0;
}

function cmdBaselineOrFloor(ctx: Ctx, args: string[], what: "baseline" | "floor"): number {
  const v = parse(args, {
    catalog: { type: "string" },
    model: { type: "string" },
    version: { type: "string" },
  });
  const file = need(v, "catalog");
  const model = need(v, "model");
  const version = need(v, "version");
  const old = loadCatalog(ctx, file);
  let next: CatalogSigned;
  if (what === "baseline") {
    const r = matchRelease(old.signed.releases, { model, version });
    if (!r)
      throw new PolyfleetError("POLYFLEET_ERR_NOT_FOUND", `${file} has no release ${version} of ${model}`);
    next = {
      ...old.signed,
      version: old.signed.version + 1,
      baseline: { ...old.signed.baseline, [model]: releaseVersion(r) },
    };
  } else {
    const family = old.signed.releases.find((r) => r.model === model)?.family;
    if (!family) throw new PolyfleetError("POLYFLEET_ERR_NOT_FOUND", `${file} has no releases of ${model}`);
    next = {
      ...old.signed,
      version: old.signed.version + 1,
      floors: { ...(old.signed.floors ?? {}), [model]: versionCore(family, version) },
    };
  }
  writeChangedCatalog(ctx, file, old, next);
  ctx.out(`${what} of ${model} is now ${what === "baseline" ? next.baseline[model] : next.floors?.[model]}`);
  return 0;
}

function cmdSign(ctx: Ctx, args: string[]): number {
  const v = parse(args, {
    file: { type: "string" },
    key: { type: "string", multiple: true },
    expires: { type: "string" },
    ...VERSION_OPTS,
  });
  const file = need(v, "file");
  const keyFiles = list(v, "key");
  if (keyFiles.length === 0) throw new UsageError("--key is required (a .key file)");
  const text = readText(ctx.path(file));
  let kind: unknown;
  try {
    kind = (JSON.parse(text) as { signed?: { type?: unknown } } | null)?.signed?.type;
  } catch {
    kind = undefined;
  }
  let env: SignedEnvelope<RootSigned> | SignedEnvelope<CatalogSigned> =
    kind === "root" ? parseRootFile(text, file) : parseCatalogFile(text, file);
  const what = env.signed.type;
  if (str(v, "expires") !== undefined) {
    const expires = expiryOf(v, "expires", nowOf(v), 0);
    const dropped = env.signatures.length;
    env = {
      signed: { ...env.signed, expires, version: env.signed.version + 1 },
      signatures: [],
    } as typeof env;
    ctx.out(`${file}: expires ${expires}, ${what} v${env.signed.version}`);
    if (dropped > 0) ctx.out(`dropped ${dropped} signature(s): they no longer match`);
  }
  for (const k of keyFiles) {
    const pem = readText(ctx.path(k));
    const id = keyIdOf(publicKeyOf(pem));
    env = addSignature(env as SignedEnvelope<unknown>, pem) as typeof env;
    if (env.signed.type === "root" && !Object.hasOwn(env.signed.keys, id))
      ctx.out(
        `note: key ${id} is not a key of this root (it counts only as a previous root's key in a rotation)`,
      );
    ctx.out(`signed ${file} (${what} v${env.signed.version}) with key ${id}`);
  }
  // Validate once more before writing: the file must stay parseable.
  if (env.signed.type === "root") {
    const r = RootSigned.safeParse(env.signed);
    if (!r.success) throw schemaError(file, r.error);
  }
  writeJson(ctx.path(file), env);
  ctx.out(`${file}: ${env.signatures.length} signature(s)`);
  return 0;
}

function cmdRotate(ctx: Ctx, args: string[]): number {
  const v = parse(args, {
    root: { type: "string" },
    key: { type: "string", multiple: true },
    threshold: { type: "string" },
    out: { type: "string" },
    expires: { type: "string" },
    ...VERSION_OPTS,
  });
  const file = need(v, "root");
  const out = need(v, "out");
  const keyFiles = list(v, "key");
  if (keyFiles.length === 0) throw new UsageError("--key is required (the new root's .pub files)");
  const threshold = int(v, "threshold");
  const old = parseRootFile(readText(ctx.path(file)), file);
  refuseOverwrite(ctx.path(out));
  const r = RootSigned.safeParse({
    type: "root",
    version: old.signed.version + 1,
    expires: expiryOf(v, "expires", nowOf(v), 365),
    keys: readPublicKeys(ctx, keyFiles),
    threshold,
  });
  if (!r.success) throw schemaError(out, r.error);
  writeJson(ctx.path(out), { signed: r.data, signatures: [] });
  ctx.out(
    `wrote ${out} (root v${r.data.version}, ${threshold} of ${Object.keys(r.data.keys).length} keys, unsigned)`,
  );
  ctx.out(
    `sign it with ${old.signed.threshold} key(s) of root v${old.signed.version} AND ${threshold} of its own, ` +
      "then re-sign catalog.json with the new keys",
  );
  return 0;
}

function verifyFiles(ctx: Ctx, v: Values): { root: RootSigned; catalog: CatalogSigned; rootFile: RootFile } {
  const rootName = need(v, "root");
  const catalogName = need(v, "catalog");
  const now = nowOf(v);
  const rootFile = parseRootFile(readText(ctx.path(rootName)), rootName);
  const statePath = str(v, "state");
  const state = statePath ? loadTrustState(ctx.path(statePath)) : { rootVersion: 0, catalogVersion: 0 };
  let trusted = state.root;
  const trustedName = str(v, "trusted-root");
  if (trustedName) {
    const t = parseRootFile(readText(ctx.path(trustedName)), trustedName);
    const n = validSigners(t.signed, t.signatures, t.signed.keys).size;
    if (n < t.signed.threshold)
      throw new PolyfleetError(
        "POLYFLEET_ERR_CATALOG_SIGNATURE",
        `${trustedName}: ${n} valid signature(s) by its own keys; its threshold is ${t.signed.threshold}`,
      );
    trusted = t.signed;
  }
  const root = verifyRoot(rootFile, {
    now,
    ...(trusted ? { trusted } : {}),
    ...(state.rootVersion > 0 ? { minVersion: state.rootVersion } : {}),
  });
  const catalog = verifyCatalog(parseCatalogFile(readText(ctx.path(catalogName)), catalogName), root, {
    now,
    ...(state.catalogVersion > 0 ? { lastVersion: state.catalogVersion } : {}),
    ...(state.catalogDigest ? { lastDigest: state.catalogDigest } : {}),
  });
  return { root, catalog, rootFile };
}

async function cmdVerify(ctx: Ctx, args: string[]): Promise<number> {
  const v = parse(args, {
    root: { type: "string" },
    catalog: { type: "string" },
    images: { type: "string" },
    "trusted-root": { type: "string" },
    state: { type: "string" },
    ...VERSION_OPTS,
  });
  const { root, catalog } = verifyFiles(ctx, v);
  ctx.out(`OK catalog v${catalog.version}, ${catalog.releases.length} releases, expires ${catalog.expires}`);
  ctx.out(
    `root v${root.version}: ${root.threshold} of ${Object.keys(root.keys).length} keys, expires ${root.expires}`,
  );
  const imagesDir = str(v, "images");
  if (imagesDir === undefined) return 0;
  let bad = 0;
  for (const r of catalog.releases) {
    const err = await checkImageFile(ctx.path(join(imagesDir, r.image.fileName)), r.image);
    if (err) {
      bad += 1;
      ctx.io.stderr(
        `bad image ${r.image.fileName} (${r.model} ${releaseVersion(r)}): ${err.code}: ${err.message}\n`,
      );
    }
  }
  if (bad > 0)
    throw new PolyfleetError(
      "POLYFLEET_ERR_IMAGE_MISMATCH",
      `${bad} of ${catalog.releases.length} image(s) in ${imagesDir} refused`,
    );
  ctx.out(`OK ${catalog.releases.length} image(s) match the catalog`);
  return 0;
}

const InventoryDevice = z.looseObject({
  deviceId: z.string().min(1),
  siteId: z.string().optional(),
  family: z.string().min(1),
  model: z.string().optional(),
  softwareVersion: z.string().optional(),
  softwareBuild: z.string().optional(),
});
const Inventory = z.union([
  z.array(InventoryDevice),
  z.looseObject({ items: z.array(InventoryDevice) }).transform((p) => p.items),
]);

function pad(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd(),
  );
}

function cmdCompliance(ctx: Ctx, args: string[]): number {
  const v = parse(args, {
    root: { type: "string" },
    catalog: { type: "string" },
    inventory: { type: "string" },
    json: { type: "boolean", default: false },
    state: { type: "string" },
    ...VERSION_OPTS,
  });
  const inventoryName = need(v, "inventory");
  const { catalog } = verifyFiles(ctx, v);
  let data: unknown;
  try {
    data = JSON.parse(readText(ctx.path(inventoryName)));
  } catch (err) {
    if (isPolyfleetError(err)) throw err;
    throw new PolyfleetError("POLYFLEET_ERR_CONFIG_INVALID", `${inventoryName}: not valid JSON`);
  }
  const inv = Inventory.safeParse(data);
  if (!inv.success) {
    const first = issuesOf(inv.error)[0];
    throw new PolyfleetError(
      "POLYFLEET_ERR_CONFIG_INVALID",
      `${inventoryName}: expected a JSON array of devices or {"items":[...]}: ${first?.path}: ${first?.message}`,
    );
  }
  const devices = inv.data.map((d): ComplianceInput => {
    // VideoOS devices report the build separately; the catalog compares `version-build`.
    const withBuild =
      d.family === "videoos" &&
      d.softwareVersion !== undefined &&
      d.softwareBuild &&
      !d.softwareVersion.includes("-")
        ? `${d.softwareVersion}-${d.softwareBuild}`
        : d.softwareVersion;
    return {
      deviceId: d.deviceId,
      family: d.family,
      ...(d.siteId !== undefined ? { siteId: d.siteId } : {}),
      ...(d.model !== undefined ? { model: d.model } : {}),
      ...(withBuild !== undefined ? { softwareVersion: withBuild } : {}),
    };
  });
  const report = complianceOf(catalog, devices);
  if (v.json === true) {
    ctx.out(JSON.stringify({ catalogVersion: catalog.version, ...report }, null, 2));
    return 0;
  }
  const c = report.counts;
  ctx.out(
    `catalog v${catalog.version}: ${report.devices.length} device(s): current ${c.current}, behind ${c.behind}, ` +
      `ahead ${c.ahead}, unknown ${c.unknown}`,
  );
  const rows = [
    ["DEVICE", "SITE", "MODEL", "VERSION", "BASELINE", "STATUS"],
    ...report.devices.map((d) => [
      d.deviceId,
      d.siteId ?? "-",
      d.model ?? "-",
      d.softwareVersion ?? "-",
      d.baseline ?? "-",
      d.reason ? `${d.status} (${d.reason})` : d.status,
    ]),
  ];
  for (const line of pad(rows)) ctx.out(line);
  return 0;
}

async function dispatch(ctx: Ctx, command: string, args: string[]): Promise<number> {
  switch (command) {
    case "keygen":
      return cmdKeygen(ctx, args);
    case "init":
      return cmdInit(ctx, args);
    case "add":
      return await cmdAdd(ctx, args);
    case "baseline":
      return cmdBaselineOrFloor(ctx, args, "baseline");
    case "floor":
      return cmdBaselineOrFloor(ctx, args, "floor");
    case "sign":
      return cmdSign(ctx, args);
    case "rotate":
      return cmdRotate(ctx, args);
    case "verify":
      return await cmdVerify(ctx, args);
    case "compliance":
      return cmdCompliance(ctx, args);
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

/**
 * Runs `polyfleet-catalog` with `argv` (without node and the script). Returns the exit code: 0 ok, 1 refused
 * or failed (`error: <CODE>: <message>` on stderr), 2 usage.
 */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const ctx: Ctx = { io, path: (p) => resolve(io.cwd, p), out: (line) => io.stdout(`${line}\n`) };
  const [command, ...args] = argv;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    (command === undefined ? io.stderr : io.stdout)(USAGE);
    return command === undefined ? 2 : 0;
  }
  try {
    return await dispatch(ctx, command, args);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`error: USAGE: ${err.message}\n${USAGE}`);
      return 2;
    }
    if (isPolyfleetError(err)) {
      io.stderr(`error: ${err.code}: ${err.message}\n`);
      return 1;
    }
    io.stderr(`error: POLYFLEET_ERR_INTERNAL: ${(err as Error).message ?? String(err)}\n`);
    return 1;
  }
}

/** The `polyfleet-catalog` entry point (bin/polyfleet-catalog.js). */
export async function main(): Promise<void> {
  process.exitCode = await runCli(process.argv.slice(2), {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    cwd: process.cwd(),
  });
}
