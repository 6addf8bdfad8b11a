import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { PolyfleetError } from "@polyfleet/shared";
import Database from "better-sqlite3";
import { isTerminal, type UpdateRecord } from "../../core/update-state.js";
import type { UpdateJournal } from "../../ports/update.js";

/** Whether an ended record still owes the device its previous settings. */
function restorePending(r: UpdateRecord): boolean {
  return (
    isTerminal(r.phase) &&
    !r.configRestored &&
    r.previousConfig !== undefined &&
    Object.keys(r.previousConfig).length > 0
  );
}

/** A stored record, checked for the fields everything else relies on. */
function revive(json: string): UpdateRecord | undefined {
  try {
    const r = JSON.parse(json) as Partial<UpdateRecord> | null;
    if (
      !r ||
      typeof r.commandId !== "string" ||
      typeof r.deviceId !== "string" ||
      typeof r.phase !== "string" ||
      typeof r.deadline !== "number" ||
      typeof r.image?.sha256 !== "string"
    ) {
      return undefined;
    }
    return r as UpdateRecord;
  } catch {
    return undefined;
  }
}

/**
 * The update journal in SQLite (`<dir>/updates.db`, WAL, exclusive: one agent per directory). Each record
 * is one row: the fields queried (device, phase, ended, restore owed, times) as columns, the whole record
 * as JSON. `put` is committed before it returns.
 */
export class SqliteUpdateJournal implements UpdateJournal {
  private db: Database.Database | undefined;
  private stmts:
    | {
        get: Database.Statement;
        active: Database.Statement;
        unfinished: Database.Statement;
        restores: Database.Statement;
        put: Database.Statement;
        pruneOld: Database.Statement;
        pruneExcess: Database.Statement;
      }
    | undefined;

  constructor(private readonly dir: string) {}

  /** Opens (or creates) the database. Throws POLYFLEET_ERR_CONFIG_UNREADABLE when it cannot. */
  open(): void {
    if (this.db) return;
    const file = join(this.dir, "updates.db");
    let db: Database.Database;
    try {
      mkdirSync(this.dir, { recursive: true });
      db = new Database(file, { timeout: 200 });
      db.pragma("locking_mode = EXCLUSIVE");
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = NORMAL");
      db.exec(`
        CREATE TABLE IF NOT EXISTS updates (
          command_id TEXT PRIMARY KEY,
          device_id TEXT NOT NULL,
          rollout_id TEXT,
          target_version TEXT NOT NULL,
          phase TEXT NOT NULL,
          ended INTEGER NOT NULL,
          restore_pending INTEGER NOT NULL,
          deadline INTEGER NOT NULL,
          accepted_at INTEGER NOT NULL,
          updated_at INTEGER NOT NULL,
          record TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS updates_device ON updates (device_id, ended);
        CREATE INDEX IF NOT EXISTS updates_ended ON updates (ended, updated_at);
      `);
      // A read of the lock: with EXCLUSIVE it is taken here, so a second agent on the directory fails now.
      db.prepare("SELECT count(*) FROM updates").get();
    } catch (cause) {
      throw new PolyfleetError(
        "POLYFLEET_ERR_CONFIG_UNREADABLE",
        `update journal ${file} cannot be opened (in use by another agent?): ${cause instanceof Error ? cause.message : String(cause)}`,
        { cause },
      );
    }
    this.db = db;
    this.stmts = {
      get: db.prepare("SELECT record FROM updates WHERE command_id = ?"),
      active: db.prepare(
        "SELECT record FROM updates WHERE device_id = ? AND ended = 0 ORDER BY accepted_at LIMIT 1",
      ),
      unfinished: db.prepare("SELECT record FROM updates WHERE ended = 0 ORDER BY accepted_at"),
      restores: db.prepare("SELECT record FROM updates WHERE ended = 1 AND restore_pending = 1"),
      put: db.prepare(
        `INSERT INTO updates (command_id, device_id, rollout_id, target_version, phase, ended, restore_pending,
           deadline, accepted_at, updated_at, record)
         VALUES (@commandId, @deviceId, @rolloutId, @targetVersion, @phase, @ended, @restorePending, @deadline,
           @acceptedAt, @updatedAt, @record)
         ON CONFLICT (command_id) DO UPDATE SET phase = excluded.phase, ended = excluded.ended,
           restore_pending = excluded.restore_pending, updated_at = excluded.updated_at, record = excluded.record`,
      ),
      pruneOld: db.prepare("DELETE FROM updates WHERE ended = 1 AND updated_at < ?"),
      pruneExcess: db.prepare(
        `DELETE FROM updates WHERE command_id IN (
           SELECT command_id FROM updates WHERE ended = 1 ORDER BY updated_at DESC LIMIT -1 OFFSET ?)`,
      ),
    };
  }

  close(): void {
    this.db?.close();
    this.db = undefined;
    this.stmts = undefined;
  }

  private s(): NonNullable<SqliteUpdateJournal["stmts"]> {
    if (!this.stmts) throw new Error("update journal is not open");
    return this.stmts;
  }

  private rows(stmt: Database.Statement, ...args: unknown[]): UpdateRecord[] {
    const out: UpdateRecord[] = [];
    for (const row of stmt.all(...args) as { record: string }[]) {
      const r = revive(row.record);
      if (r) out.push(r);
    }
    return out;
  }

  get(commandId: string): UpdateRecord | undefined {
    const row = this.s().get.get(commandId) as { record: string } | undefined;
    return row ? revive(row.record) : undefined;
  }

  activeFor(deviceId: string): UpdateRecord | undefined {
    const row = this.s().active.get(deviceId) as { record: string } | undefined;
    return row ? revive(row.record) : undefined;
  }

  unfinished(): UpdateRecord[] {
    return this.rows(this.s().unfinished);
  }

  pendingRestores(): UpdateRecord[] {
    return this.rows(this.s().restores);
  }

  put(r: UpdateRecord): void {
    this.s().put.run({
      commandId: r.commandId,
      deviceId: r.deviceId,
      rolloutId: r.rolloutId ?? null,
      targetVersion: r.targetVersion,
      phase: r.phase,
      ended: isTerminal(r.phase) ? 1 : 0,
      restorePending: restorePending(r) ? 1 : 0,
      deadline: r.deadline,
      acceptedAt: r.acceptedAt,
      updatedAt: r.updatedAt,
      record: JSON.stringify(r),
    });
  }

  prune(olderThan: number, keep: number): number {
    const s = this.s();
    const a = s.pruneOld.run(olderThan).changes;
    const b = s.pruneExcess.run(Math.max(0, keep)).changes;
    return a + b;
  }
}

/** The in-memory journal: the reference fake (records are copied in and out, as a database would). */
export class InMemoryUpdateJournal implements UpdateJournal {
  private readonly records = new Map<string, UpdateRecord>();

  get(commandId: string): UpdateRecord | undefined {
    const r = this.records.get(commandId);
    return r ? structuredClone(r) : undefined;
  }

  activeFor(deviceId: string): UpdateRecord | undefined {
    return this.unfinished().find((r) => r.deviceId === deviceId);
  }

  unfinished(): UpdateRecord[] {
    return [...this.records.values()]
      .filter((r) => !isTerminal(r.phase))
      .sort((a, b) => a.acceptedAt - b.acceptedAt)
      .map((r) => structuredClone(r));
  }

  pendingRestores(): UpdateRecord[] {
    return [...this.records.values()].filter(restorePending).map((r) => structuredClone(r));
  }

  put(record: UpdateRecord): void {
    this.records.set(record.commandId, structuredClone(record));
  }

  prune(olderThan: number, keep: number): number {
    let n = 0;
    const ended = [...this.records.values()]
      .filter((r) => isTerminal(r.phase))
      .sort((a, b) => b.updatedAt - a.updatedAt);
    ended.forEach((r, i) => {
      if (r.updatedAt < olderThan || i >= keep) {
        this.records.delete(r.commandId);
        n++;
      }
    });
    return n;
  }
}
