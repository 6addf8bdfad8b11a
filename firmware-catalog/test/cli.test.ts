import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../src/cli.js";
import { keyIdOf, parseCatalogFile, parseRootFile } from "../src/index.js";

let dir: string;

interface Run {
  code: number;
  out: string;
  err: string;
}

async function cli(...argv: string[]): Promise<Run> {
  let out = "";
  let err = "";
  const code = await runCli(argv, {
    stdout: (s) => {
      out += s;
    },
    stderr: (s) => {
      err += s;
    },
    cwd: dir,
  });
  return { code, out, err };
}

const NOW = ["--now", "2026-06-01T00:00:00Z"];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "pf-cli-"));
  mkdirSync(join(dir, "images"));
  writeFileSync(join(dir, "images", "3111-48830-001.sip.ld"), Buffer.alloc(50_000, 7));
  writeFileSync(join(dir, "images", "studiox-3.12.0.pkg"), Buffer.alloc(70_001, 9));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("polyfleet-catalog end to end", () => {
  it("keygen writes a private key only its owner can read and a public key", async () => {
    for (const k of ["a", "b", "c"]) {
      const r = await cli("keygen", "--out", k);
      expect(r.code, r.err).toBe(0);
      expect(statSync(join(dir, `${k}.key`)).mode & 0o777).toBe(0o600);
      const pub = readFileSync(join(dir, `${k}.pub`), "utf8").trim();
      expect(Buffer.from(pub, "base64")).toHaveLength(32);
      expect(r.out).toContain(`keyid ${keyIdOf(pub)}`);
      expect(r.out).not.toContain("PRIVATE KEY");
    }
    const again = await cli("keygen", "--out", "a");
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/^error: POLYFLEET_ERR_FORBIDDEN: .*a\.key exists/);
  });

  it("init writes an unsigned root (2 of 3) and an empty catalog, and refuses to overwrite", async () => {
    const r = await cli(
      "init",
      "--dir",
      "repo",
      "--key",
      "a.pub",
      "--key",
      "b.pub",
      "--key",
      "c.pub",
      "--threshold",
      "2",
      "--expires",
      "2027-12-31T00:00:00Z",
      "--catalog-expires",
      "2027-06-30T00:00:00Z",
      ...NOW,
    );
    expect(r.code, r.err).toBe(0);
    const root = parseRootFile(readFileSync(join(dir, "repo/root.json"), "utf8"), "root.json");
    expect(root.signed).toMatchObject({ version: 1, threshold: 2, expires: "2027-12-31T00:00:00Z" });
    expect(Object.keys(root.signed.keys)).toHaveLength(3);
    expect(root.signatures).toEqual([]);
    const cat = parseCatalogFile(readFileSync(join(dir, "repo/catalog.json"), "utf8"), "catalog.json");
    expect(cat.signed).toEqual({
      type: "catalog",
      version: 1,
      expires: "2027-06-30T00:00:00Z",
      releases: [],
      baseline: {},
    });
    const again = await cli("init", "--dir", "repo", "--key", "a.pub", "--threshold", "1");
    expect(again.code).toBe(1);
    expect(again.err).toContain("refusing to overwrite");
    const tooHigh = await cli("init", "--dir", "repo2", "--key", "a.pub", "--threshold", "2");
    expect(tooHigh.code).toBe(1);
    expect(tooHigh.err).toMatch(
      /^error: POLYFLEET_ERR_CATALOG_INVALID: .*threshold 2 is more than the 1 key/,
    );
  });

  it("add computes length and sha256, validates the version and bumps the catalog version", async () => {
    const uc = await cli(
      "add",
      "--catalog",
      "repo/catalog.json",
      "--image",
      "images/3111-48830-001.sip.ld",
      "--family",
      "uc",
      "--model",
      "VVX 350",
      "--version",
      "5.9.8.5760",
      "--notes",
      "security fixes",
      "--min-version",
      "5.9.0.1000",
      "--baseline",
      ...NOW,
    );
    expect(uc.code, uc.err).toBe(0);
    expect(uc.out).toContain("catalog v1 -> v2");
    const vos = await cli(
      "add",
      "--catalog",
      "repo/catalog.json",
      "--image",
      "images/studiox-3.12.0.pkg",
      "--family",
      "videoos",
      "--model",
      "StudioX30",
      "--version",
      "3.12.0-366027",
      "--channel",
      "beta",
      "--release-date",
      "2026-05-01",
      "--baseline",
    );
    expect(vos.code, vos.err).toBe(0);
    const cat = parseCatalogFile(readFileSync(join(dir, "repo/catalog.json"), "utf8"), "catalog.json");
    expect(cat.signed.version).toBe(3);
    expect(cat.signed.releases[0]).toEqual({
      family: "uc",
      model: "VVX 350",
      version: "5.9.8.5760",
      channel: "stable",
      image: {
        fileName: "3111-48830-001.sip.ld",
        length: 50_000,
        sha256: createHash("sha256").update(Buffer.alloc(50_000, 7)).digest("hex"),
      },
      notes: "security fixes",
      minVersion: "5.9.0.1000",
      releaseDate: "2026-06-01",
    });
    expect(cat.signed.releases[1]).toMatchObject({ version: "3.12.0", build: "366027", channel: "beta" });
    expect(cat.signed.baseline).toEqual({ "VVX 350": "5.9.8.5760", StudioX30: "3.12.0-366027" });

    const dup = await cli(
      "add",
      "--catalog",
      "repo/catalog.json",
      "--image",
      "images/3111-48830-001.sip.ld",
      "--family",
      "uc",
      "--model",
      "VVX 350",
      "--version",
      "5.9.8.5760",
    );
    expect(dup.code).toBe(1);
    expect(dup.err).toMatch(/^error: POLYFLEET_ERR_CATALOG_INVALID: .*listed twice/);
    const badVersion = await cli(
      "add",
      "--catalog",
      "repo/catalog.json",
      "--image",
      "images/3111-48830-001.sip.ld",
      "--family",
      "uc",
      "--model",
      "VVX 350",
      "--version",
      "5.9.8",
    );
    expect(badVersion.code).toBe(1);
    expect(badVersion.err).toMatch(/^error: POLYFLEET_ERR_VERSION_INVALID: "5\.9\.8"/);
    expect(parseCatalogFile(readFileSync(join(dir, "repo/catalog.json"), "utf8"), "c").signed.version).toBe(
      3,
    );
  });

  it("verify refuses one of two signatures and accepts two", async () => {
    expect((await cli("sign", "--file", "repo/root.json", "--key", "a.key", "--key", "b.key")).code).toBe(0);
    const one = await cli("sign", "--file", "repo/catalog.json", "--key", "a.key");
    expect(one.code, one.err).toBe(0);
    const refused = await cli("verify", "--root", "repo/root.json", "--catalog", "repo/catalog.json", ...NOW);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/^error: POLYFLEET_ERR_CATALOG_SIGNATURE: /);
    expect(refused.out).not.toContain("OK");

    expect((await cli("sign", "--file", "repo/catalog.json", "--key", "c.key")).code).toBe(0);
    const ok = await cli(
      "verify",
      "--root",
      "repo/root.json",
      "--catalog",
      "repo/catalog.json",
      "--images",
      "images",
      "--state",
      "state/trust.json",
      ...NOW,
    );
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toContain("OK catalog v3, 2 releases, expires 2027-06-30T00:00:00Z");
    expect(ok.out).toContain("OK 2 image(s) match the catalog");

    const expired = await cli(
      "verify",
      "--root",
      "repo/root.json",
      "--catalog",
      "repo/catalog.json",
      "--now",
      "2027-07-01T00:00:00Z",
    );
    expect(expired.code).toBe(1);
    expect(expired.err).toMatch(/^error: POLYFLEET_ERR_CATALOG_EXPIRED: catalog v3 expired/);
  });

  it("verify --images names a tampered image", async () => {
    mkdirSync(join(dir, "bad"));
    writeFileSync(join(dir, "bad", "3111-48830-001.sip.ld"), Buffer.alloc(50_000, 8));
    writeFileSync(join(dir, "bad", "studiox-3.12.0.pkg"), Buffer.alloc(70_002, 9));
    const r = await cli(
      "verify",
      "--root",
      "repo/root.json",
      "--catalog",
      "repo/catalog.json",
      "--images",
      "bad",
      ...NOW,
    );
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      "bad image 3111-48830-001.sip.ld (VVX 350 5.9.8.5760): POLYFLEET_ERR_IMAGE_MISMATCH",
    );
    expect(r.err).toContain(
      "bad image studiox-3.12.0.pkg (StudioX30 3.12.0-366027): POLYFLEET_ERR_IMAGE_TOO_LARGE",
    );
    expect(r.err).toMatch(/error: POLYFLEET_ERR_IMAGE_MISMATCH: 2 of 2 image\(s\) in bad refused/);
  });

  it("compliance prints counts and a table, or JSON", async () => {
    writeFileSync(
      join(dir, "devices.json"),
      JSON.stringify({
        items: [
          {
            deviceId: "vvx-1",
            siteId: "hq",
            family: "uc",
            model: "VVX 350",
            softwareVersion: "5.9.8.5760 02-Jul-19 06:14",
            extra: "ignored",
          },
          { deviceId: "vvx-2", siteId: "hq", family: "uc", model: "VVX 350", softwareVersion: "5.9.3.2857" },
          {
            deviceId: "x30-1",
            siteId: "branch",
            family: "videoos",
            model: "StudioX30",
            softwareVersion: "3.12.0",
            softwareBuild: "366027",
          },
          { deviceId: "trio-1", family: "uc", model: "Trio 8800", softwareVersion: "7.2.2.1094" },
        ],
        total: 4,
      }),
    );
    const args = [
      "--root",
      "repo/root.json",
      "--catalog",
      "repo/catalog.json",
      "--inventory",
      "devices.json",
      ...NOW,
    ];
    const text = await cli("compliance", ...args);
    expect(text.code, text.err).toBe(0);
    expect(text.out).toContain("catalog v3: 4 device(s): current 2, behind 1, ahead 0, unknown 1");
    expect(text.out).toMatch(/vvx-2\s+hq\s+VVX 350\s+5\.9\.3\.2857\s+5\.9\.8\.5760\s+behind/);
    expect(text.out).toMatch(/x30-1\s+branch\s+StudioX30\s+3\.12\.0-366027\s+3\.12\.0-366027\s+current/);
    const json = await cli("compliance", ...args, "--json");
    expect(json.code, json.err).toBe(0);
    const report = JSON.parse(json.out);
    expect(report.counts).toEqual({ current: 2, behind: 1, ahead: 0, unknown: 1 });
    expect(report.catalogVersion).toBe(3);
    expect(report.devices.map((d: { status: string }) => d.status)).toEqual([
      "current",
      "behind",
      "current",
      "unknown",
    ]);
    writeFileSync(join(dir, "bad-inventory.json"), JSON.stringify({ devices: [] }));
    const bad = await cli("compliance", ...args.slice(0, 4), "--inventory", "bad-inventory.json", ...NOW);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/^error: POLYFLEET_ERR_CONFIG_INVALID: bad-inventory\.json/);
  });

  it("changing a signed catalog drops its signatures; sign --expires renews it", async () => {
    const before = parseCatalogFile(readFileSync(join(dir, "repo/catalog.json"), "utf8"), "c");
    expect(before.signatures).toHaveLength(2);
    const r = await cli(
      "floor",
      "--catalog",
      "repo/catalog.json",
      "--model",
      "VVX 350",
      "--version",
      "5.9.0.1000",
    );
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain("dropped 2 signature(s)");
    const after = parseCatalogFile(readFileSync(join(dir, "repo/catalog.json"), "utf8"), "c");
    expect(after.signatures).toEqual([]);
    expect(after.signed).toMatchObject({ version: 4, floors: { "VVX 350": "5.9.0.1000" } });
    const b = await cli(
      "baseline",
      "--catalog",
      "repo/catalog.json",
      "--model",
      "VVX 350",
      "--version",
      "5.9.9.1",
    );
    expect(b.code).toBe(1);
    expect(b.err).toMatch(/^error: POLYFLEET_ERR_NOT_FOUND: /);

    const renew = await cli(
      "sign",
      "--file",
      "repo/catalog.json",
      "--key",
      "a.key",
      "--key",
      "b.key",
      "--expires",
      "2027-09-30T00:00:00Z",
      ...NOW,
    );
    expect(renew.code, renew.err).toBe(0);
    const renewed = parseCatalogFile(readFileSync(join(dir, "repo/catalog.json"), "utf8"), "c");
    expect(renewed.signed).toMatchObject({ version: 5, expires: "2027-09-30T00:00:00Z" });
    expect(renewed.signatures).toHaveLength(2);
    const ok = await cli("verify", "--root", "repo/root.json", "--catalog", "repo/catalog.json", ...NOW);
    expect(ok.out).toContain("OK catalog v5, 2 releases, expires 2027-09-30T00:00:00Z");
  });

  it("rotate writes the next root, which needs the old and the new threshold", async () => {
    for (const k of ["d", "e"]) expect((await cli("keygen", "--out", k)).code).toBe(0);
    const r = await cli(
      "rotate",
      "--root",
      "repo/root.json",
      "--key",
      "d.pub",
      "--key",
      "e.pub",
      "--threshold",
      "2",
      "--out",
      "repo/root2.json",
      ...NOW,
    );
    expect(r.code, r.err).toBe(0);
    const verify = (root: string) =>
      cli(
        "verify",
        "--root",
        root,
        "--catalog",
        "repo/catalog.json",
        "--trusted-root",
        "repo/root.json",
        ...NOW,
      );
    // Only the new keys: refused.
    expect((await cli("sign", "--file", "repo/root2.json", "--key", "d.key", "--key", "e.key")).code).toBe(0);
    expect((await cli("sign", "--file", "repo/catalog.json", "--key", "d.key", "--key", "e.key")).code).toBe(
      0,
    );
    const onlyNew = await verify("repo/root2.json");
    expect(onlyNew.code).toBe(1);
    expect(onlyNew.err).toMatch(/^error: POLYFLEET_ERR_CATALOG_SIGNATURE: new root v2 .* rotation needs 2/);
    // Plus the old root's threshold: accepted.
    const cross = await cli("sign", "--file", "repo/root2.json", "--key", "a.key", "--key", "c.key");
    expect(cross.out).toContain("is not a key of this root");
    const ok = await verify("repo/root2.json");
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toContain("root v2: 2 of 2 keys");
  });

  it("reports usage errors with exit code 2", async () => {
    const missing = await cli("keygen");
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/^error: USAGE: --out is required/);
    const unknown = await cli("verify", "--bogus");
    expect(unknown.code).toBe(2);
    expect((await cli("frobnicate")).code).toBe(2);
    expect((await cli()).code).toBe(2);
    const help = await cli("--help");
    expect(help.code).toBe(0);
    expect(help.out).toContain("usage: polyfleet-catalog");
  });
});
