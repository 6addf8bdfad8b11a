import {
  type AuditCheckpoint,
  type AuditEntry,
  type AuditVerifyResult,
  type Clock,
  PolyfleetError,
  SYSTEM_CLOCK,
} from "@polyfleet/shared";
import type Database from "better-sqlite3";
import {
  type AuditCrypto,
  type AuditHead,
  type AuditPublicKey,
  type AuditSigner,
  auditQueryLimit,
  checkHeadContinuity,
  createAuditEntry,
  type StoredAuditCheckpoint,
  signCheckpoint,
  signHead,
} from "../../core/audit/audit-chain.js";
import { formatAuditExport } from "../../core/audit/audit-export.js";
import { AuditVerifier, type AuditVerifyRunOptions } from "../../core/audit/audit-verify.js";
import type { AuditInput, AuditLog, AuditQuery } from "../../ports/audit-log.js";
import { NODE_AUDIT_CRYPTO } from "./audit-key.js";

export interface SqliteAuditLogOptions {
  /** The state database handle, shared with the state store; this adapter owns only its `audit_*` tables. */
  db: Database.Database;
  /** Signs checkpoints and the head. Without one the log is read-only (append and checkpoint reject). */
  signer?: AuditSigner | undefined;
  /** More keys to trust when verifying (e.g. the public keys of rotated-out signers). The signer's is always trusted. */
  trustedKeys?: readonly AuditPublicKey[] | undefined;
  /** A signed checkpoint every this many entries (`audit.checkpointEvery`, default 100). */
  checkpointEvery?: number | undefined;
  clock?: Clock | undefined;
  crypto?: AuditCrypto | undefined;
}

const MIGRATION = `
CREATE TABLE IF NOT EXISTS audit_entries (
  seq INTEGER PRIMARY KEY,
  ts INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  reason TEXT NOT NULL,
  result TEXT NOT NULL,
  details TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_entries_actor ON audit_entries (actor, seq);
CREATE INDEX IF NOT EXISTS audit_entries_action ON audit_entries (action, seq);
CREATE INDEX IF NOT EXISTS audit_entries_target ON audit_entries (target, seq);
CREATE INDEX IF NOT EXISTS audit_entries_ts ON audit_entries (ts);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
  seq INTEGER PRIMARY KEY,
  hash TEXT NOT NULL,
  ts INTEGER NOT NULL,
  key_id TEXT NOT NULL,
  public_key TEXT NOT NULL,
  signature TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_head (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  seq INTEGER NOT NULL,
  hash TEXT NOT NULL,
  key_id TEXT NOT NULL,
  signature TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_entries_no_update BEFORE UPDATE ON audit_entries
  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_entries_no_delete BEFORE DELETE ON audit_entries
  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
  BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
  BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
`;

interface EntryRow {
  seq: number;
  ts: number;
  actor: string;
  action: string;
  target: string;
  reason: string;
  result: string;
  details: string;
  prev_hash: string;
  hash: string;
}

interface CheckpointRow {
  seq: number;
  hash: string;
  ts: number;
  key_id: string;
  public_key: string;
  signature: string;
}

interface HeadRow {
  seq: number;
  hash: string;
  key_id: string;
  signature: string;
}

const ENTRY_COLS = "seq, ts, actor, action, target, reason, result, details, prev_hash, hash";

function rowToEntryRaw(r: EntryRow): Omit<AuditEntry, "details"> {
  return {
    seq: r.seq,
    ts: r.ts,
    actor: r.actor,
    action: r.action,
    target: r.target,
    reason: r.reason,
    result: r.result as AuditEntry["result"],
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

/** The entry of a row; undefined when its details are not JSON (only a tampered row can be so). */
function rowToEntry(r: EntryRow): AuditEntry | undefined {
  try {
    return { ...rowToEntryRaw(r), details: JSON.parse(r.details) as Record<string, unknown> };
  } catch {
    return undefined;
  }
}

function rowToCheckpoint(r: CheckpointRow): StoredAuditCheckpoint {
  return {
    seq: r.seq,
    hash: r.hash,
    ts: r.ts,
    keyId: r.key_id,
    signature: r.signature,
    publicKey: r.public_key,
  };
}

function writeFailed(err: unknown, message?: string): PolyfleetError {
  if (err instanceof PolyfleetError && err.code === "POLYFLEET_ERR_AUDIT_WRITE_FAILED") return err;
  return new PolyfleetError(
    "POLYFLEET_ERR_AUDIT_WRITE_FAILED",
    message ?? `audit write failed: ${err instanceof Error ? err.message : String(err)}`,
    { cause: err },
  );
}

/**
 * The audit log in the collector's SQLite state database (port: `AuditLog`). Every append runs in one
 * IMMEDIATE transaction: the entry, the re-signed head and, every `checkpointEvery` entries, a signed
 * checkpoint commit together or not at all; any failure rejects with POLYFLEET_ERR_AUDIT_WRITE_FAILED so the
 * caller refuses the action. Triggers refuse UPDATE and DELETE on entries and checkpoints (a guard against
 * bugs, not attackers: whoever can write the file can drop them; see docs in verify()).
 *
 * A read-only handle (`{ readonly: true }`) is accepted for verify/query/export: no migration is run, and
 * missing tables read as an empty log.
 */
export class SqliteAuditLog implements AuditLog {
  private readonly opts: SqliteAuditLogOptions;
  private readonly clock: Clock;
  private readonly crypto: AuditCrypto;
  private readonly every: number;
  private readonly trusted: AuditPublicKey[];
  private tables: Tables | undefined;

  constructor(opts: SqliteAuditLogOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? SYSTEM_CLOCK;
    this.crypto = opts.crypto ?? NODE_AUDIT_CRYPTO;
    this.every = opts.checkpointEvery ?? 100;
    this.trusted = [
      ...(opts.signer ? [{ keyId: opts.signer.keyId, publicKeyPem: opts.signer.publicKeyPem }] : []),
      ...(opts.trustedKeys ?? []),
    ];
  }

  /** Creates the audit tables when missing (only looks on a read-only handle). */
  start(): void {
    this.ensureTables();
  }

  /** Nothing to release: the database handle belongs to the caller. */
  stop(): void {
    this.tables = undefined;
  }

  /** The keys verify() trusts: the signer's and `trustedKeys`. */
  trustedKeys(): readonly AuditPublicKey[] {
    return this.trusted;
  }

  append(input: AuditInput): Promise<AuditEntry> {
    try {
      return Promise.resolve(this.appendSync(input));
    } catch (err) {
      return Promise.reject(writeFailed(err));
    }
  }

  /**
   * Signs a checkpoint over the current head now (e.g. before an export or at shutdown). Resolves to the
   * existing one when the head is already checkpointed, undefined when the log is empty.
   */
  checkpoint(): Promise<AuditCheckpoint | undefined> {
    try {
      return Promise.resolve(this.checkpointSync());
    } catch (err) {
      return Promise.reject(writeFailed(err));
    }
  }

  query(q: AuditQuery): Promise<AuditEntry[]> {
    try {
      return Promise.resolve(this.querySync(q));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  checkpoints(): Promise<AuditCheckpoint[]> {
    try {
      return Promise.resolve(this.storedCheckpoints().map(publicCheckpoint));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** The signed head record, if any. */
  head(): AuditHead | undefined {
    return this.readHead();
  }

  /**
   * Verifies the whole stored log (one read transaction, entries streamed) against the trusted keys.
   *
   * What this catches, for an attacker with full write access to the database file but without the private key:
   * any edit, deletion, insertion, reordering or re-hashing of any entry, and any truncation — as long as the
   * head row or a checkpoint beyond the new end remains, or the attacker cannot present an older signed head.
   * Naive edits are named exactly (hash/prevHash/seq break at that entry); re-hashed rewrites are named at the
   * first signed checkpoint or head whose hash no longer matches (the reason names the range).
   * What it cannot catch without an external anchor (`anchor`, e.g. the head printed by the last export):
   * (1) a rollback to an older genuine state — the attacker kept a copy of an older head row, deletes the newer
   * entries and the checkpoints above it, and restores that head; (2) deleting the whole log (entries,
   * checkpoints and head), which looks like a fresh one. With the private key, nothing is protected.
   */
  verify(opts: AuditVerifyRunOptions = {}): Promise<AuditVerifyResult> {
    try {
      return Promise.resolve(this.verifySync(opts));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Synchronous verify (the CLI's path); see verify(). */
  verifySync(opts: AuditVerifyRunOptions = {}): AuditVerifyResult {
    const t = this.ensureTables();
    const db = this.opts.db;
    const run = (): AuditVerifyResult => {
      const v = new AuditVerifier({
        checkpoints: this.storedCheckpoints(),
        head: this.readHead(),
        trustedKeys: this.trusted,
        crypto: this.crypto,
        anchor: opts.anchor,
      });
      if (t.entries) {
        let expected = 1;
        const rows = db.prepare(`SELECT ${ENTRY_COLS} FROM audit_entries ORDER BY seq`).iterate();
        for (const row of rows as IterableIterator<EntryRow>) {
          const entry = rowToEntry(row);
          if (entry === undefined) {
            v.fail(expected, "details are not valid JSON (entry modified)");
            break;
          }
          if (!v.add(entry)) break;
          expected++;
        }
      }
      return v.result();
    };
    return db.inTransaction ? run() : db.transaction(run).deferred();
  }

  /** The whole log as export lines (see formatAuditExport), read in one transaction. */
  exportLines(): string[] {
    const t = this.ensureTables();
    const db = this.opts.db;
    return db.transaction(() => {
      const rows = t.entries
        ? (db.prepare(`SELECT ${ENTRY_COLS} FROM audit_entries ORDER BY seq`).all() as EntryRow[])
        : [];
      // An entry whose details are not JSON is exported with the raw text, so the offline verifier flags it too.
      const entries = rows.map((r) => rowToEntry(r) ?? { ...rowToEntryRaw(r), details: r.details as never });
      return [...formatAuditExport(entries, this.storedCheckpoints(), this.readHead())];
    })();
  }

  private appendSync(input: AuditInput): AuditEntry {
    const signer = this.opts.signer;
    if (signer === undefined) throw writeFailed(undefined, "audit log has no signing key (read-only)");
    const t = this.ensureTables();
    if (!(t.entries && t.checkpoints && t.head))
      throw new Error("audit tables missing on a read-only database");
    const db = this.opts.db;
    return db
      .transaction(() => {
        const last = this.lastEntry();
        const refused = checkHeadContinuity(last, this.readHead(), this.trusted, this.crypto);
        if (refused !== undefined) {
          throw writeFailed(
            undefined,
            `audit log refuses to append: ${refused}; run \`polyfleet audit verify\` to find the tampered entry`,
          );
        }
        const ts = this.clock.now();
        const entry = createAuditEntry(last, input, ts, this.crypto);
        db.prepare(`INSERT INTO audit_entries (${ENTRY_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
          entry.seq,
          entry.ts,
          entry.actor,
          entry.action,
          entry.target,
          entry.reason,
          entry.result,
          JSON.stringify(entry.details),
          entry.prevHash,
          entry.hash,
        );
        this.writeHead(signHead(entry, signer));
        if (entry.seq % this.every === 0) this.insertCheckpoint(signCheckpoint(entry, ts, signer));
        return entry;
      })
      .immediate();
  }

  private checkpointSync(): AuditCheckpoint | undefined {
    const signer = this.opts.signer;
    if (signer === undefined) throw writeFailed(undefined, "audit log has no signing key (read-only)");
    const t = this.ensureTables();
    if (!(t.entries && t.checkpoints && t.head))
      throw new Error("audit tables missing on a read-only database");
    const db = this.opts.db;
    return db
      .transaction(() => {
        const last = this.lastEntry();
        if (last === undefined) return undefined;
        const existing = db.prepare("SELECT * FROM audit_checkpoints WHERE seq = ?").get(last.seq) as
          | CheckpointRow
          | undefined;
        if (existing !== undefined) return publicCheckpoint(rowToCheckpoint(existing));
        const refused = checkHeadContinuity(last, this.readHead(), this.trusted, this.crypto);
        if (refused !== undefined)
          throw writeFailed(undefined, `audit log refuses to checkpoint: ${refused}`);
        const cp = signCheckpoint(last, this.clock.now(), signer);
        this.insertCheckpoint(cp);
        return publicCheckpoint(cp);
      })
      .immediate();
  }

  private querySync(q: AuditQuery): AuditEntry[] {
    if (!this.ensureTables().entries) return [];
    const where: string[] = [];
    const args: (string | number)[] = [];
    const add = (clause: string, value: string | number | undefined): void => {
      if (value === undefined) return;
      where.push(clause);
      args.push(value);
    };
    add("actor = ?", q.actor);
    add("action = ?", q.action);
    add("target = ?", q.target);
    add("ts >= ?", q.from);
    add("ts <= ?", q.to);
    add("seq > ?", q.afterSeq);
    const filter = where.length > 0 ? `WHERE ${where.join(" AND ")}` : "";
    const rows = this.opts.db
      .prepare(`SELECT ${ENTRY_COLS} FROM audit_entries ${filter} ORDER BY seq LIMIT ?`)
      .all(...args, auditQueryLimit(q.limit)) as EntryRow[];
    return rows.map((r) => rowToEntry(r) ?? { ...rowToEntryRaw(r), details: {} });
  }

  private storedCheckpoints(): StoredAuditCheckpoint[] {
    if (!this.ensureTables().checkpoints) return [];
    return (
      this.opts.db.prepare("SELECT * FROM audit_checkpoints ORDER BY seq").all() as CheckpointRow[]
    ).map(rowToCheckpoint);
  }

  private lastEntry(): { seq: number; hash: string } | undefined {
    return this.opts.db.prepare("SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1").get() as
      | { seq: number; hash: string }
      | undefined;
  }

  private readHead(): AuditHead | undefined {
    if (!this.ensureTables().head) return undefined;
    const r = this.opts.db
      .prepare("SELECT seq, hash, key_id, signature FROM audit_head WHERE id = 1")
      .get() as HeadRow | undefined;
    return r && { seq: r.seq, hash: r.hash, keyId: r.key_id, signature: r.signature };
  }

  private writeHead(h: AuditHead): void {
    this.opts.db
      .prepare(
        "INSERT INTO audit_head (id, seq, hash, key_id, signature) VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE " +
          "SET seq = excluded.seq, hash = excluded.hash, key_id = excluded.key_id, signature = excluded.signature",
      )
      .run(h.seq, h.hash, h.keyId, h.signature);
  }

  private insertCheckpoint(c: StoredAuditCheckpoint): void {
    this.opts.db
      .prepare(
        "INSERT INTO audit_checkpoints (seq, hash, ts, key_id, public_key, signature) VALUES (?, ?, ?, ?, ?, ?)",
      )
      .run(c.seq, c.hash, c.ts, c.keyId, c.publicKey ?? "", c.signature);
  }

  /** Which audit tables exist (all, after the migration, unless the handle is read-only). */
  private ensureTables(): Tables {
    if (this.tables !== undefined) return this.tables;
    const db = this.opts.db;
    if (!db.readonly) db.exec(MIGRATION);
    const names = new Set(
      (
        db
          .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('audit_entries','audit_checkpoints','audit_head')",
          )
          .all() as { name: string }[]
      ).map((r) => r.name),
    );
    const t = {
      entries: names.has("audit_entries"),
      checkpoints: names.has("audit_checkpoints"),
      head: names.has("audit_head"),
    };
    // A read-only handle may see the tables appear later (another process migrates): do not cache a partial view.
    if (t.entries && t.checkpoints && t.head) this.tables = t;
    return t;
  }
}

interface Tables {
  entries: boolean;
  checkpoints: boolean;
  head: boolean;
}

function publicCheckpoint(c: StoredAuditCheckpoint): AuditCheckpoint {
  return { seq: c.seq, hash: c.hash, ts: c.ts, keyId: c.keyId, signature: c.signature };
}
