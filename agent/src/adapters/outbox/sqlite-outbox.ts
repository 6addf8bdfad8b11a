import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Logger, PolyfleetError } from "@polyfleet/shared";
import Database from "better-sqlite3";
import { defaultDropChunk, type OutboxEntry, overflowDropCount } from "../../core/outbox-batching.js";
import type { Clock } from "../../ports/clock.js";
import type { ReadingBody } from "../../ports/driver.js";
import type { Metrics } from "../../ports/metrics.js";
import type { EventBody, TelemetrySink } from "../../ports/sink.js";

export type { OutboxEntry } from "../../core/outbox-batching.js";

export const OUTBOX_DEPTH = "polyfleet_agent_outbox_depth";
export const OUTBOX_DROPPED_TOTAL = "polyfleet_agent_outbox_dropped_total";

/** One item for `appendMany`. */
export type OutboxItem = { kind: "reading"; body: ReadingBody } | { kind: "event"; body: EventBody };

export interface SqliteOutboxOptions {
  /** Directory of the database (`outbox.dir`); created when missing. The file is `outbox.db`. */
  dir: string;
  agentId: string;
  siteId: string;
  /** Capacity (`outbox.maxEntries`, at least 2). When full, the oldest entries are dropped first. */
  maxEntries: number;
  clock: Clock;
  metrics: Metrics;
  log: Logger;
  /**
   * SQLite `synchronous` in WAL mode. `normal` (default): a commit is written to the WAL (the OS page
   * cache) before `append*` returns, so a crash or SIGKILL of the agent loses nothing; only a power loss or
   * kernel crash can lose the last commits since the WAL was last synced (at checkpoints), and the database
   * stays consistent. `full` also fsyncs the WAL on every commit (power-loss safe, at the cost of one disk
   * flush per append or per `appendMany`/`transaction`).
   */
  synchronous?: "normal" | "full";
  /** Entries dropped at once when full (default 1% of maxEntries): one drop event per chunk, not per append. */
  dropChunk?: number;
}

const KIND_READING = 0;
const KIND_EVENT = 1;

interface State {
  lastSeq: number;
  ackedSeq: number;
  depth: number;
  droppedTotal: number;
}

type Stmt = Database.Statement;

interface Stmts {
  insert: Stmt;
  pending: Stmt;
  deleteUpTo: Stmt;
  nthSeq: Stmt;
  setMeta: Stmt;
}

/**
 * The agent's bounded on-disk outbox (port: `TelemetrySink`), SQLite in WAL mode. Every appended reading
 * or event gets the next per-agent sequence number (monotonic across restarts, never reused) and the
 * stream header, and is committed before `append*` returns. Entries leave only when the collector acks
 * them (`ack`) or, when the outbox is full, oldest first, counted exactly, with an `outbox.dropped` event.
 *
 * The database is opened in exclusive locking mode: a second agent process on the same directory is
 * refused (POLYFLEET_ERR_OUTBOX_UNAVAILABLE) instead of interleaving sequence numbers.
 */
export class SqliteOutbox implements TelemetrySink {
  private readonly opts: SqliteOutboxOptions;
  private readonly log: Logger;
  private db: Database.Database | undefined;
  private st: State = { lastSeq: 0, ackedSeq: 0, depth: 0, droppedTotal: 0 };
  private stmts: Stmts | undefined;
  private readonly listeners = new Set<() => void>();
  private txDepth = 0;
  private readonly dropChunk: number;

  constructor(opts: SqliteOutboxOptions) {
    this.opts = opts;
    this.log = opts.log.child({ component: "outbox" });
    this.dropChunk = opts.dropChunk ?? defaultDropChunk(opts.maxEntries);
  }

  /** Opens (or creates) the database and restores the sequence, ack watermark and drop total. */
  open(): void {
    if (this.db) return;
    if (!Number.isInteger(this.opts.maxEntries) || this.opts.maxEntries < 2) {
      throw new Error(`outbox maxEntries must be an integer >= 2, got ${this.opts.maxEntries}`);
    }
    mkdirSync(this.opts.dir, { recursive: true });
    const file = join(this.opts.dir, "outbox.db");
    let db: Database.Database;
    try {
      // A short busy timeout: the only other holder of the lock can be another agent process.
      db = new Database(file, { timeout: 200 });
      // Exclusive: one agent process per outbox; also lets WAL work without the shared-memory file.
      db.pragma("locking_mode = EXCLUSIVE");
      db.pragma("journal_mode = WAL");
      db.pragma(`synchronous = ${this.opts.synchronous === "full" ? "FULL" : "NORMAL"}`);
      // Keep the WAL from growing without bound after a long outage (truncated at checkpoints).
      db.pragma("journal_size_limit = 67108864");
      db.exec(
        `CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, body TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;`,
      );
    } catch (cause) {
      throw new PolyfleetError(
        "POLYFLEET_ERR_OUTBOX_UNAVAILABLE",
        `outbox ${file} cannot be opened: ${cause instanceof Error ? cause.message : String(cause)}`,
        { cause },
      );
    }
    const meta = new Map<string, string>(
      (db.prepare("SELECT key, value FROM meta").all() as { key: string; value: string }[]).map((r) => [
        r.key,
        r.value,
      ]),
    );
    const owner = meta.get("agent");
    const me = `${this.opts.siteId}/${this.opts.agentId}`;
    if (owner !== undefined && owner !== me) {
      db.close();
      throw new PolyfleetError(
        "POLYFLEET_ERR_OUTBOX_UNAVAILABLE",
        `outbox ${file} belongs to agent ${owner}, not ${me}: give each agent its own outbox.dir`,
      );
    }
    const setMeta = db.prepare(
      "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    );
    if (owner === undefined) setMeta.run("agent", me);
    const maxRow = db.prepare("SELECT max(seq) AS m, count(*) AS c FROM entries").get() as {
      m: number | null;
      c: number;
    };
    this.st = {
      lastSeq: Math.max(Number(meta.get("lastSeq") ?? 0), maxRow.m ?? 0),
      ackedSeq: Number(meta.get("ackedSeq") ?? 0),
      depth: maxRow.c,
      droppedTotal: Number(meta.get("droppedTotal") ?? 0),
    };
    this.stmts = {
      insert: db.prepare("INSERT INTO entries (seq, kind, body) VALUES (?, ?, ?)"),
      pending: db.prepare("SELECT seq, kind, body FROM entries WHERE seq > ? ORDER BY seq LIMIT ?").raw(true),
      deleteUpTo: db.prepare("DELETE FROM entries WHERE seq <= ?"),
      nthSeq: db.prepare("SELECT seq FROM entries ORDER BY seq LIMIT 1 OFFSET ?").pluck(true),
      setMeta,
    };
    this.db = db;
    this.opts.metrics.set(OUTBOX_DEPTH, this.st.depth);
    this.opts.metrics.inc(OUTBOX_DROPPED_TOTAL, undefined, 0);
    this.log.info(
      { dir: this.opts.dir, depth: this.st.depth, lastSeq: this.st.lastSeq, ackedSeq: this.st.ackedSeq },
      "outbox open",
    );
  }

  close(): void {
    const db = this.db;
    if (!db) return;
    this.db = undefined;
    this.stmts = undefined;
    db.close();
  }

  /** Appends one reading; returns its sequence number. Durable on return. */
  appendReading(reading: ReadingBody): number {
    return this.appendOne(KIND_READING, reading as unknown as Record<string, unknown>);
  }

  /** Appends one event; returns its sequence number. Durable on return. */
  appendEvent(event: EventBody): number {
    return this.appendOne(KIND_EVENT, event as unknown as Record<string, unknown>);
  }

  /** Appends several entries in one transaction (one commit); returns their sequence numbers in order. */
  appendMany(items: readonly OutboxItem[]): number[] {
    return this.transaction(() =>
      items.map((i) =>
        this.appendOne(
          i.kind === "reading" ? KIND_READING : KIND_EVENT,
          i.body as unknown as Record<string, unknown>,
        ),
      ),
    );
  }

  /**
   * Runs `fn` in one transaction: every `append*` inside commits together (one WAL write), and nothing of
   * it is stored when `fn` throws. Nests.
   */
  transaction<T>(fn: () => T): T {
    const db = this.open$();
    const snapshot = { ...this.st };
    this.txDepth++;
    try {
      return db.transaction(fn)();
    } catch (err) {
      this.st = snapshot;
      this.opts.metrics.set(OUTBOX_DEPTH, this.st.depth);
      throw err;
    } finally {
      this.txDepth--;
    }
  }

  /** Up to `limit` entries with seq > `afterSeq`, in seq order. */
  pending(afterSeq: number, limit: number): OutboxEntry[] {
    const rows = this.stmts$().pending.all(afterSeq, limit) as [number, number, string][];
    const out: OutboxEntry[] = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i] as [number, number, string];
      out[i] = { seq: r[0], kind: r[1] === KIND_EVENT ? "event" : "reading", json: r[2] };
    }
    return out;
  }

  /**
   * The collector stored every entry up to `seq`: deletes them and moves the ack watermark. Returns how
   * many entries were deleted. Idempotent (an old or repeated ack deletes nothing); an ack above the last
   * sequence number ever assigned is ignored with a warning (a collector confused about this agent).
   */
  ack(seq: number): number {
    const s = this.stmts$();
    if (!Number.isSafeInteger(seq) || seq < 0) {
      this.log.warn({ seq }, "ignoring an ack that is not a sequence number");
      return 0;
    }
    if (seq > this.st.lastSeq) {
      this.log.warn({ seq, lastSeq: this.st.lastSeq }, "ignoring an ack above the last sequence number");
      return 0;
    }
    if (seq <= this.st.ackedSeq) return 0;
    const deleted = this.transaction(() => {
      const n = s.deleteUpTo.run(seq).changes;
      s.setMeta.run("ackedSeq", String(seq));
      // The highest seq may be deleted now: keep it in meta so sequence numbers are never reused.
      s.setMeta.run("lastSeq", String(this.st.lastSeq));
      this.st.ackedSeq = seq;
      this.st.depth -= n;
      return n;
    });
    this.opts.metrics.set(OUTBOX_DEPTH, this.st.depth);
    return deleted;
  }

  /** Entries stored (not acked, not dropped). */
  depth(): number {
    return this.st.depth;
  }

  /** The last sequence number assigned (0 before the first append). */
  lastSeq(): number {
    return this.st.lastSeq;
  }

  /** The collector's ack watermark: every seq <= this is acknowledged. */
  ackedSeq(): number {
    return this.st.ackedSeq;
  }

  /** Entries dropped because the outbox was full, over the outbox's whole life. */
  droppedTotal(): number {
    return this.st.droppedTotal;
  }

  /** Calls `listener` after every append (to wake the publisher). Returns the unsubscribe function. */
  onAppend(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private appendOne(kind: number, body: Record<string, unknown>): number {
    const s = this.stmts$();
    const toDrop = overflowDropCount(this.st.depth, 1, this.opts.maxEntries, this.dropChunk);
    if (toDrop > 0) {
      let dropped = 0;
      const seq = this.transaction(() => {
        dropped = this.dropOldest(toDrop);
        return this.insert(s, kind, body);
      });
      // Counted once the drop is committed, so a failed transaction never over-counts.
      this.opts.metrics.inc(OUTBOX_DROPPED_TOTAL, undefined, dropped);
      return seq;
    }
    return this.insert(s, kind, body);
  }

  private insert(s: Stmts, kind: number, body: Record<string, unknown>): number {
    const seq = this.st.lastSeq + 1;
    const header = {
      v: 1,
      agentId: this.opts.agentId,
      siteId: this.opts.siteId,
      seq,
      ts: this.opts.clock.now(),
    };
    // Header first for readers, and assigned again after the body so a stray header key in a body can
    // never override the sequence number.
    const msg: Record<string, unknown> =
      kind === KIND_READING ? { ...header, kind: "reading", ...body } : { ...header, ...body };
    Object.assign(msg, header);
    if (kind === KIND_READING) msg.kind = "reading";
    s.insert.run(seq, kind, JSON.stringify(msg));
    this.st.lastSeq = seq;
    this.st.depth++;
    this.opts.metrics.set(OUTBOX_DEPTH, this.st.depth);
    if (this.txDepth === 0) this.notify();
    else queueMicrotask(() => this.notify());
    return seq;
  }

  /** Inside a transaction: deletes the `n` oldest entries and appends the `outbox.dropped` event. */
  private dropOldest(n: number): number {
    const s = this.stmts$();
    const fromSeq = s.nthSeq.get(0) as number | undefined;
    const toSeq = s.nthSeq.get(n - 1) as number | undefined;
    if (fromSeq === undefined || toSeq === undefined) return 0;
    const dropped = s.deleteUpTo.run(toSeq).changes;
    this.st.depth -= dropped;
    this.st.droppedTotal += dropped;
    s.setMeta.run("droppedTotal", String(this.st.droppedTotal));
    s.setMeta.run("lastSeq", String(this.st.lastSeq));
    this.log.warn(
      { dropped, fromSeq, toSeq, totalDropped: this.st.droppedTotal, code: "POLYFLEET_ERR_OUTBOX_FULL" },
      "outbox full: dropped the oldest entries",
    );
    const event: EventBody = {
      type: "outbox.dropped",
      dropped,
      fromSeq,
      toSeq,
      totalDropped: this.st.droppedTotal,
    };
    this.insert(s, KIND_EVENT, event as unknown as Record<string, unknown>);
    return dropped;
  }

  private notify(): void {
    for (const l of this.listeners) {
      try {
        l();
      } catch (err) {
        this.log.error({ err }, "outbox append listener failed");
      }
    }
  }

  private open$(): Database.Database {
    if (!this.db) throw new Error("outbox is not open");
    return this.db;
  }

  private stmts$(): Stmts {
    if (!this.stmts) throw new Error("outbox is not open");
    return this.stmts;
  }
}
