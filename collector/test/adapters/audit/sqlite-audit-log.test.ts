import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AuditEntry } from "@polyfleet/shared";
import Database from "better-sqlite3";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { NODE_AUDIT_CRYPTO } from "../../../src/adapters/audit/audit-key.js";
import { type AuditSnapshot, MemoryAuditLog } from "../../../src/adapters/audit/memory-audit-log.js";
import { SqliteAuditLog } from "../../../src/adapters/audit/sqlite-audit-log.js";
import type { AuditSigner } from "../../../src/core/audit/audit-chain.js";
import { verifyAuditLog } from "../../../src/core/audit/audit-verify.js";
import type { AuditInput, AuditLog } from "../../../src/ports/audit-log.js";
import { applyAttack, attackArb, isWipe } from "../../core/audit/audit-attacks.js";
import { planArb, SIGNER, steppingClock, TRUSTED } from "../../core/audit/audit-log-builder.js";

const dirs: string[] = [];
const dbs: Database.Database[] = [];
function tmpDb(): { db: Database.Database; file: string } {
  const d = mkdtempSync(join(tmpdir(), "pf-audit-"));
  dirs.push(d);
  const file = join(d, "state.db");
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  dbs.push(db);
  return { db, file };
}
afterEach(() => {
  for (const db of dbs.splice(0)) if (db.open) db.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const input = (i: number, over: Partial<AuditInput> = {}): AuditInput => ({
  actor: i % 2 === 0 ? "user:alice" : "token:ci",
  action: i % 3 === 0 ? "alert.ack" : "device.reboot",
  target: `device:d${i % 4}`,
  reason: `because ${i}`,
  result: "ok",
  details: { i },
  ...over,
});

function sqliteLog(
  db: Database.Database,
  opts: { signer?: AuditSigner; every?: number } = {},
): SqliteAuditLog {
  const log = new SqliteAuditLog({
    db,
    signer: opts.signer ?? SIGNER,
    checkpointEvery: opts.every ?? 3,
    clock: steppingClock(),
  });
  log.start();
  return log;
}

/** Reads back what the tables hold. */
function readSnapshot(log: SqliteAuditLog): AuditSnapshot {
  const entries: AuditEntry[] = [];
  const checkpoints = [];
  const head = log.head();
  for (const line of log.exportLines()) {
    const o = JSON.parse(line) as Record<string, unknown>;
    if (o.type === "checkpoint") {
      const { type: _t, ...cp } = o;
      checkpoints.push(cp as unknown as AuditSnapshot["checkpoints"][number]);
    } else if (o.type === undefined) entries.push(o as unknown as AuditEntry);
  }
  return { entries, checkpoints, head };
}

/** The attacker: drops the append-only triggers and rewrites the tables wholesale. */
function writeSnapshot(db: Database.Database, s: AuditSnapshot): void {
  db.transaction(() => {
    for (const t of [
      "entries_no_update",
      "entries_no_delete",
      "checkpoints_no_update",
      "checkpoints_no_delete",
    ]) {
      db.exec(`DROP TRIGGER IF EXISTS audit_${t}`);
    }
    db.exec("DELETE FROM audit_entries; DELETE FROM audit_checkpoints; DELETE FROM audit_head;");
    const ins = db.prepare(
      "INSERT INTO audit_entries (seq, ts, actor, action, target, reason, result, details, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
    );
    for (const e of s.entries) {
      ins.run(
        e.seq,
        e.ts,
        e.actor,
        e.action,
        e.target,
        e.reason,
        e.result,
        JSON.stringify(e.details),
        e.prevHash,
        e.hash,
      );
    }
    const cp = db.prepare(
      "INSERT INTO audit_checkpoints (seq, hash, ts, key_id, public_key, signature) VALUES (?,?,?,?,?,?)",
    );
    for (const c of s.checkpoints) cp.run(c.seq, c.hash, c.ts, c.keyId, c.publicKey ?? "", c.signature);
    if (s.head) {
      db.prepare("INSERT INTO audit_head (id, seq, hash, key_id, signature) VALUES (1,?,?,?,?)").run(
        s.head.seq,
        s.head.hash,
        s.head.keyId,
        s.head.signature,
      );
    }
  })();
}

describe.each([
  ["SqliteAuditLog", () => sqliteLog(tmpDb().db)],
  [
    "MemoryAuditLog",
    () => new MemoryAuditLog({ signer: SIGNER, checkpointEvery: 3, clock: steppingClock() }),
  ],
] as const)("AuditLog contract: %s", (_name, make: () => AuditLog & { checkpoint(): Promise<unknown> }) => {
  it("appends a gapless chain, checkpoints every N entries and on demand, and verifies", async () => {
    const log = make();
    const entries: AuditEntry[] = [];
    for (let i = 1; i <= 7; i++) entries.push(await log.append(input(i)));
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(entries[3]?.prevHash).toBe(entries[2]?.hash);
    expect((await log.checkpoints()).map((c) => c.seq)).toEqual([3, 6]);
    await log.checkpoint();
    await log.checkpoint(); // idempotent at the same head
    const cps = await log.checkpoints();
    expect(cps.map((c) => c.seq)).toEqual([3, 6, 7]);
    expect(cps[2]).toMatchObject({ hash: entries[6]?.hash, keyId: SIGNER.keyId });
    expect(await log.verify()).toEqual({ ok: true, entries: 7, checkpoints: 3 });
  });

  it("queries by actor, action, target, time range, afterSeq and limit, in seq order", async () => {
    const log = make();
    const all: AuditEntry[] = [];
    for (let i = 1; i <= 12; i++) all.push(await log.append(input(i)));
    const seqs = (es: AuditEntry[]) => es.map((e) => e.seq);
    expect(seqs(await log.query({ actor: "user:alice" }))).toEqual(
      seqs(all.filter((e) => e.actor === "user:alice")),
    );
    expect(seqs(await log.query({ action: "alert.ack", target: "device:d3" }))).toEqual(
      seqs(all.filter((e) => e.action === "alert.ack" && e.target === "device:d3")),
    );
    const from = all[2]?.ts ?? 0;
    const to = all[5]?.ts ?? 0;
    expect(seqs(await log.query({ from, to }))).toEqual([3, 4, 5, 6]);
    expect(seqs(await log.query({ afterSeq: 9 }))).toEqual([10, 11, 12]);
    expect(seqs(await log.query({ afterSeq: 2, limit: 3 }))).toEqual([3, 4, 5]);
    expect(await log.query({ actor: "nobody" })).toEqual([]);
  });

  it("redacts secrets in details before hashing and storing", async () => {
    const log = make();
    const e = await log.append(
      input(1, { details: { user: "admin", password: "hunter2", nested: { token: "t0k" } } }),
    );
    expect(e.details).toEqual({ user: "admin", password: "[redacted]", nested: { token: "[redacted]" } });
    expect(JSON.stringify(await log.query({}))).not.toMatch(/hunter2|t0k/);
  });
});

describe("SqliteAuditLog", () => {
  it("persists across handles; the migration is idempotent; other tables in the shared database are untouched", async () => {
    const { db, file } = tmpDb();
    db.exec("CREATE TABLE sites (id TEXT PRIMARY KEY); INSERT INTO sites VALUES ('s1')");
    const a = sqliteLog(db);
    for (let i = 1; i <= 4; i++) await a.append(input(i));
    a.start();
    db.close();
    const db2 = new Database(file);
    dbs.push(db2);
    const b = sqliteLog(db2);
    expect((await b.append(input(5))).seq).toBe(5);
    expect(await b.verify()).toEqual({ ok: true, entries: 5, checkpoints: 1 });
    expect(db2.prepare("SELECT id FROM sites").all()).toEqual([{ id: "s1" }]);
  });

  it("fails closed: append rejects with POLYFLEET_ERR_AUDIT_WRITE_FAILED on a closed or read-only database", async () => {
    const { db, file } = tmpDb();
    const log = sqliteLog(db);
    await log.append(input(1));
    const ro = new Database(file, { readonly: true });
    dbs.push(ro);
    const roLog = new SqliteAuditLog({ db: ro, signer: SIGNER });
    await expect(roLog.append(input(2))).rejects.toMatchObject({ code: "POLYFLEET_ERR_AUDIT_WRITE_FAILED" });
    expect(await roLog.verify()).toEqual({ ok: true, entries: 1, checkpoints: 0 });
    db.close();
    await expect(log.append(input(2))).rejects.toMatchObject({ code: "POLYFLEET_ERR_AUDIT_WRITE_FAILED" });
    const noKey = new SqliteAuditLog({ db: ro });
    await expect(noKey.append(input(2))).rejects.toMatchObject({ code: "POLYFLEET_ERR_AUDIT_WRITE_FAILED" });
  });

  it("is atomic: when the checkpoint cannot be signed, the entry and head are not written either", async () => {
    const { db } = tmpDb();
    let failCheckpoint = false;
    const flaky: AuditSigner = {
      keyId: SIGNER.keyId,
      publicKeyPem: SIGNER.publicKeyPem,
      sign: (data) => {
        if (failCheckpoint && data.includes("checkpoint")) throw new Error("HSM unavailable");
        return SIGNER.sign(data);
      },
    };
    const log = sqliteLog(db, { signer: flaky, every: 3 });
    await log.append(input(1));
    await log.append(input(2));
    const headBefore = log.head();
    failCheckpoint = true;
    await expect(log.append(input(3))).rejects.toMatchObject({ code: "POLYFLEET_ERR_AUDIT_WRITE_FAILED" });
    expect((await log.query({})).map((e) => e.seq)).toEqual([1, 2]);
    expect(log.head()).toEqual(headBefore);
    failCheckpoint = false;
    expect((await log.append(input(3))).seq).toBe(3);
    expect(await log.verify()).toEqual({ ok: true, entries: 3, checkpoints: 1 });
  });

  it("refuses UPDATE and DELETE through triggers; a tamperer who drops them is named by verify, and appends stop", async () => {
    const { db } = tmpDb();
    const log = sqliteLog(db, { every: 100 });
    for (let i = 1; i <= 5; i++) await log.append(input(i));
    expect(() => db.prepare("UPDATE audit_entries SET reason = 'x' WHERE seq = 2").run()).toThrow(
      /append-only/,
    );
    expect(() => db.prepare("DELETE FROM audit_entries WHERE seq = 5").run()).toThrow(/append-only/);
    db.exec("DROP TRIGGER audit_entries_no_update; DROP TRIGGER audit_entries_no_delete");
    db.prepare("UPDATE audit_entries SET details = ? WHERE seq = 2").run(JSON.stringify({ i: 99 }));
    expect(await log.verify()).toMatchObject({
      ok: false,
      firstBad: { seq: 2, reason: "hash does not match the entry's content (entry modified)" },
    });
    // Tail truncation below the head: appending must not re-sign a head over the truncated chain.
    db.prepare("UPDATE audit_entries SET details = ? WHERE seq = 2").run(JSON.stringify({ i: 2 }));
    db.prepare("DELETE FROM audit_entries WHERE seq >= 4").run();
    expect((await log.verify()).firstBad).toEqual({
      seq: 4,
      reason: "log ends at seq 3 but the signed head records seq 5 (entries deleted from the tail)",
    });
    await expect(log.append(input(6))).rejects.toMatchObject({ code: "POLYFLEET_ERR_AUDIT_WRITE_FAILED" });
    expect((await log.verify()).firstBad?.seq).toBe(4);
  });

  it("never stores a secret in the database file", async () => {
    const { db, file } = tmpDb();
    const log = sqliteLog(db);
    await log.append(
      input(1, { details: { snmp: { authKey: "SuperSecretAuthKey", privKey: "SuperSecretPriv" } } }),
    );
    db.pragma("wal_checkpoint(TRUNCATE)");
    db.close();
    expect(readFileSync(file).includes("SuperSecret")).toBe(false);
  });

  it("property: any attack written into the tables is detected, with the same verdict as the pure verifier", async () => {
    await fc.assert(
      fc.asyncProperty(
        planArb(1, 16).chain((plan) =>
          fc.tuple(
            fc.constant(plan),
            // An edit of `seq` alone is a move in a table keyed by seq: covered by delete + insert.
            attackArb(plan.inputs.length).filter((a) => !(a.kind === "edit" && a.field === "seq")),
          ),
        ),
        async ([plan, attack]) => {
          const db = new Database(":memory:");
          try {
            const log = new SqliteAuditLog({
              db,
              signer: SIGNER,
              checkpointEvery: plan.checkpointEvery,
              clock: steppingClock(),
            });
            for (let i = 0; i < plan.inputs.length; i++) {
              const inp = plan.inputs[i];
              if (inp) await log.append(inp);
              if (plan.extraCheckpoints.includes(i)) await log.checkpoint();
            }
            expect((await log.verify()).ok).toBe(true);
            // In a table keyed by seq, every attack leaves seq equal to the row position (renumbered).
            const t = applyAttack(readSnapshot(log), {
              ...attack,
              cover: { ...attack.cover, renumber: true },
            } as typeof attack);
            if (isWipe(t)) return;
            const renumbered = {
              ...t,
              entries: t.entries.map((e, p) => (attack.cover.rehash ? e : { ...e, seq: p + 1 })),
            };
            writeSnapshot(db, renumbered);
            const r = await log.verify();
            expect(r.ok, JSON.stringify(attack)).toBe(false);
            const pure = verifyAuditLog(renumbered.entries, {
              ...renumbered,
              trustedKeys: TRUSTED,
              crypto: NODE_AUDIT_CRYPTO,
            });
            expect(r.firstBad).toEqual(pure.firstBad);
          } finally {
            db.close();
          }
        },
      ),
      { numRuns: 200 },
    );
  }, 180_000);
});
