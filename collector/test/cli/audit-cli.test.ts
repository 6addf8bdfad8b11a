import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { generateAuditKey, loadOrCreateAuditKey } from "../../src/adapters/audit/audit-key.js";
import { SqliteAuditLog } from "../../src/adapters/audit/sqlite-audit-log.js";
import { runAuditCli } from "../../src/cli/audit-cli.js";

let dir: string;
let dbFile: string;
let pubFile: string;

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runAuditCli(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t) });
  return { code, out, err };
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "pf-audit-cli-"));
  dbFile = join(dir, "state.db");
  const { signer } = loadOrCreateAuditKey(join(dir, "audit-key.pem"));
  pubFile = join(dir, "audit-pub.pem");
  writeFileSync(pubFile, signer.publicKeyPem);
  const db = new Database(dbFile);
  const log = new SqliteAuditLog({ db, signer, checkpointEvery: 4 });
  log.start();
  for (let i = 1; i <= 10; i++) {
    await log.append({
      actor: "user:alice",
      action: "device.reboot",
      target: `device:d${i}`,
      reason: `r${i}`,
      result: "ok",
      details: { i, token: "never-stored" },
    });
  }
  db.close();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function exported(): Promise<string[]> {
  const out = join(dir, "export.jsonl");
  const r = await cli("export", "--db", dbFile, "--out", out);
  expect(r.code).toBe(0);
  return readFileSync(out, "utf8").trimEnd().split("\n");
}

function verifyLines(lines: string[], ...extra: string[]) {
  const f = join(dir, "tampered.jsonl");
  writeFileSync(f, `${lines.join("\n")}\n`);
  return cli("verify", "--file", f, "--public-key", pubFile, ...extra);
}

describe("polyfleet audit verify / export", () => {
  it("verifies the live database with the key next to it, and prints the head", async () => {
    const r = await cli("verify", "--db", dbFile);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^OK: 10 entries, 2 checkpoints verified; head 10:[0-9a-f]{64}\n$/);
    const j = await cli("verify", "--db", dbFile, "--public-key", pubFile, "--json");
    expect(JSON.parse(j.out)).toEqual({ ok: true, entries: 10, checkpoints: 2 });
  });

  it("exports JSON lines (entries, checkpoint lines, head) that verify offline with the public key", async () => {
    const lines = await exported();
    expect(lines).toHaveLength(10 + 2 + 1);
    expect(lines.join("\n")).not.toContain("never-stored");
    const kinds = lines.map((l) => (JSON.parse(l) as { type?: string }).type ?? "entry");
    expect(kinds.filter((k) => k === "checkpoint")).toHaveLength(2);
    expect(kinds.at(-1)).toBe("head");
    expect((await verifyLines(lines)).code).toBe(0);
    const toStdout = await cli("export", "--db", dbFile);
    expect(toStdout.out.trimEnd().split("\n")).toEqual(lines);
    expect(toStdout.err).toMatch(/head 10:[0-9a-f]{64}/);
  });

  it("exits 1 and names the first bad entry for a modified, deleted, inserted, reordered or truncated export", async () => {
    const lines = await exported();
    const entryIdx = (seq: number) =>
      lines.findIndex(
        (l) => (JSON.parse(l) as { seq: number; type?: string }).seq === seq && !l.includes('"type"'),
      );
    const edit = [...lines];
    edit[entryIdx(3)] = (edit[entryIdx(3)] ?? "").replace('"r3"', '"r3 (edited)"');
    let r = await verifyLines(edit);
    expect(r.code).toBe(1);
    expect(r.out).toBe(
      "TAMPERED: first bad entry seq 3: hash does not match the entry's content (entry modified)\n",
    );

    r = await verifyLines(lines.filter((_, i) => i !== entryIdx(6)));
    expect([r.code, r.out]).toEqual([
      1,
      expect.stringMatching(/^TAMPERED: first bad entry seq 6: sequence broken/),
    ]);

    const inserted = [...lines];
    inserted.splice(entryIdx(2), 0, lines[entryIdx(2)] ?? "");
    r = await verifyLines(inserted);
    expect([r.code, r.out]).toEqual([
      1,
      expect.stringMatching(/^TAMPERED: first bad entry seq 3: sequence broken/),
    ]);

    const swapped = [...lines];
    swapped[entryIdx(7)] = lines[entryIdx(9)] ?? "";
    swapped[entryIdx(9)] = lines[entryIdx(7)] ?? "";
    r = await verifyLines(swapped);
    expect([r.code, r.out]).toEqual([1, expect.stringMatching(/^TAMPERED: first bad entry seq 7: /)]);

    // Tail truncation: entries 9 and 10 gone, the head line kept.
    r = await verifyLines(lines.filter((_, i) => i !== entryIdx(9) && i !== entryIdx(10)));
    expect(r.out).toBe(
      "TAMPERED: first bad entry seq 9: log ends at seq 8 but the signed head records seq 10 (entries deleted from the tail)\n",
    );
    // ... and with the head line gone too.
    r = await verifyLines(lines.filter((_, i) => i < entryIdx(9)));
    expect([r.code, r.out]).toEqual([
      1,
      expect.stringMatching(/^TAMPERED: first bad entry seq 8: head record missing/),
    ]);
  });

  it("checks an externally remembered head (--expect-head) and refuses signatures by an untrusted key", async () => {
    const lines = await exported();
    const head = JSON.parse(lines.at(-1) ?? "{}") as { seq: number; hash: string };
    expect((await verifyLines(lines, "--expect-head", `${head.seq}:${head.hash}`)).code).toBe(0);
    // A rollback to the state at seq 8 (head line forged from nothing is impossible, so drop it and the tail):
    const r = await verifyLines(lines.slice(0, 8), "--expect-head", `${head.seq}:${head.hash}`);
    expect(r.code).toBe(1);
    const other = join(dir, "other.pem");
    writeFileSync(other, generateAuditKey().signer.publicKeyPem);
    const f = join(dir, "ok.jsonl");
    writeFileSync(f, lines.join("\n"));
    const u = await cli("verify", "--file", f, "--public-key", other);
    expect(u.code).toBe(1);
    expect(u.out).toMatch(/signed by untrusted key/);
  });

  it("exits 1 on a database tampered in place", async () => {
    const db = new Database(dbFile);
    db.exec("DROP TRIGGER audit_entries_no_update");
    db.prepare("UPDATE audit_entries SET actor = 'user:mallory' WHERE seq = 5").run();
    db.close();
    const r = await cli("verify", "--db", dbFile, "--public-key", pubFile);
    expect(r.code).toBe(1);
    expect(r.out).toBe(
      "TAMPERED: first bad entry seq 5: hash does not match the entry's content (entry modified)\n",
    );
  });

  it("exits 2 on usage errors", async () => {
    expect((await cli()).code).toBe(2);
    expect((await cli("frobnicate")).code).toBe(2);
    expect((await cli("verify", "--db", dbFile, "--bogus")).code).toBe(2);
    expect((await cli("verify", "--db", dbFile, "--file", "x.jsonl")).code).toBe(2);
    expect((await cli("verify", "--file", join(dir, "nope.jsonl"), "--public-key", pubFile)).code).toBe(2);
    const noKey = await cli("verify", "--file", join(dir, "nope.jsonl"));
    expect(noKey.code).toBe(2);
    expect(noKey.err).toMatch(/trusted key/);
    expect((await cli("verify", "--db", join(dir, "missing.db"))).code).toBe(2);
    expect((await cli("verify", "--db", dbFile, "--expect-head", "10:abc")).code).toBe(2);
    expect((await cli("export")).code).toBe(2);
    const help = await cli("--help");
    expect([help.code, help.out]).toEqual([0, expect.stringContaining("polyfleet audit verify")]);
  });
});
