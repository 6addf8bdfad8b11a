import type {
  AgentRecord,
  AgentState,
  Alert,
  ApiToken,
  DeviceQuery,
  DeviceRecord,
  MaintenanceWindow,
  Silence,
  Site,
} from "@polyfleet/shared";
import { Rollout, RolloutDevice } from "@polyfleet/shared";
import Database from "better-sqlite3";
import {
  applyReading,
  type DeviceState,
  newAgent,
  newestPerDevice,
  nextAgentRecord,
} from "../../core/device-state.js";
import {
  DEFAULT_MAX_AHEAD,
  type DedupState,
  dedupBatch,
  parseDedupState,
  serializeDedupState,
} from "../../core/ingest-dedup.js";
import {
  type AlertFilter,
  FINISHED_ROLLOUT_STATES,
  type IngestBatch,
  type IngestResult,
  type Page,
  type RolloutChanges,
  type RolloutDeviceFilter,
  type RolloutFilter,
  type StateStore,
  type StoredToken,
} from "../../ports/state-store.js";
import {
  batchTs,
  decodeCursor,
  dropRange,
  encodeCursor,
  prepareRolloutChanges,
  type StoredEvent,
} from "../memory/memory-state-store.js";
import { SQLITE_MIGRATIONS } from "./sqlite-migrations.js";

export interface SqliteStateStoreOptions {
  /** The database file (created if missing). `:memory:` works for throwaway stores. */
  path: string;
  /** Events kept: the newest N (older ones are deleted every 1,000 inserts). Default 100,000. */
  eventRetention?: number;
  /** Reorder window of the dedup (see core/ingest-dedup.ts). Default 100,000. */
  maxAheadSeqs?: number;
}

interface AgentRow {
  agent_id: string;
  site_id: string;
  status: "online" | "offline";
  session_id: string;
  version: string | null;
  capabilities: string;
  protocol_version: number | null;
  hostname: string | null;
  since: number;
  last_seen: number;
  acked_seq: number;
  dedup: string | null;
}

interface DeviceRow {
  device_id: string;
  site_id: string;
  agent_id: string;
  address: string;
  family: DeviceRecord["family"];
  driver: string;
  model: string | null;
  serial: string | null;
  mac: string | null;
  part_number: string | null;
  system_name: string | null;
  software_version: string | null;
  software_build: string | null;
  firmware: string;
  health: string;
  peripherals: string;
  lines: string;
  reachable: number;
  cpu_pct: number | null;
  mem_pct: number | null;
  packet_loss_pct: number | null;
  uptime_sec: number | null;
  in_call: number | null;
  tags: string;
  first_seen: number;
  last_seen: number;
  last_poll_latency_ms: number | null;
  reading_ts: number;
}

const DEVICE_COLS = [
  "device_id",
  "site_id",
  "agent_id",
  "address",
  "family",
  "driver",
  "model",
  "serial",
  "mac",
  "part_number",
  "system_name",
  "software_version",
  "software_build",
  "firmware",
  "health",
  "peripherals",
  "lines",
  "reachable",
  "cpu_pct",
  "mem_pct",
  "packet_loss_pct",
  "uptime_sec",
  "in_call",
  "first_seen",
  "last_seen",
  "last_poll_latency_ms",
  "reading_ts",
] as const;

type Stmt = Database.Statement<unknown[]>;

interface Statements {
  getAgent: Stmt;
  insertAgentFromStream: Stmt;
  updateAgentSeq: Stmt;
  upsertAgentState: Stmt;
  getDevice: Stmt;
  upsertDevice: Stmt;
  hotDevice: Stmt;
  insertEvent: Stmt;
  pruneEvents: Stmt;
  upsertRollout: Stmt;
  upsertRolloutDevice: Stmt;
}

/**
 * StateStore on one SQLite file (better-sqlite3): WAL journal, synchronous=NORMAL (a committed batch survives
 * a process crash; a power loss may lose the last commits, never corrupts), versioned migrations in
 * `schema_migrations`. One process owns the file: the store caches the dedup state of agents and the current
 * state of devices it has written (the cache is dropped if a transaction fails).
 *
 * Events are kept with bounded retention: the newest `eventRetention` rows.
 */
export class SqliteStateStore implements StateStore {
  private readonly opts: SqliteStateStoreOptions;
  private db: Database.Database | undefined;
  private st: Statements | undefined;
  private readonly dedupCache = new Map<string, DedupState>();
  private readonly deviceCache = new Map<string, DeviceState>();
  private eventsSincePrune = 0;

  constructor(opts: SqliteStateStoreOptions) {
    this.opts = opts;
  }

  /** Opens the file (first call) and applies pending migrations. */
  migrate(): Promise<void> {
    return run(() => {
      const db = this.db ?? new Database(this.opts.path);
      this.db = db;
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = NORMAL");
      db.pragma("foreign_keys = ON");
      db.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
      );
      const applied = new Set(
        (db.prepare("SELECT version FROM schema_migrations").all() as { version: number }[]).map(
          (r) => r.version,
        ),
      );
      for (const m of SQLITE_MIGRATIONS) {
        if (applied.has(m.version)) continue;
        db.transaction(() => {
          db.exec(m.sql);
          db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)").run(
            m.version,
            m.name,
            Date.now(),
          );
        })();
      }
      this.st = this.prepare(db);
    });
  }

  close(): Promise<void> {
    return run(() => {
      this.db?.close();
      this.db = undefined;
      this.st = undefined;
      this.dedupCache.clear();
      this.deviceCache.clear();
    });
  }

  /** Applied migration versions, ascending. Not part of the port. */
  schemaVersions(): number[] {
    return (
      this.conn().prepare("SELECT version FROM schema_migrations ORDER BY version").all() as {
        version: number;
      }[]
    ).map((r) => r.version);
  }

  ingest(batch: IngestBatch): Promise<IngestResult> {
    return run(() => {
      const db = this.conn();
      const st = this.stmts();
      try {
        return db.transaction(() => this.ingestTx(st, batch))();
      } catch (err) {
        // The caches may hold changes the rollback undid.
        this.dedupCache.clear();
        this.deviceCache.clear();
        throw err;
      }
    });
  }

  private ingestTx(st: Statements, batch: IngestBatch): IngestResult {
    const ts = batchTs(batch);
    let state = this.dedupCache.get(batch.agentId);
    if (!state) {
      const row = st.getAgent.get(batch.agentId) as AgentRow | undefined;
      if (!row) {
        const a = newAgent(batch.agentId, batch.siteId, ts, 0);
        st.insertAgentFromStream.run(a.agentId, a.siteId, a.since, a.lastSeen);
      }
      state = parseDedupState(row?.dedup, row?.acked_seq ?? 0);
      this.dedupCache.set(batch.agentId, state);
    }
    const maxAhead = this.opts.maxAheadSeqs ?? DEFAULT_MAX_AHEAD;
    const rd = dedupBatch(state, batch.readings, () => undefined, maxAhead);
    const ev = dedupBatch(state, batch.events, dropRange, maxAhead);

    for (const r of newestPerDevice(rd.fresh)) {
      const prev = this.deviceState(st, r.deviceId);
      const next = applyReading(prev, r);
      if (!next) continue;
      const d = next.record;
      if (prev && sameCold(prev.record, d)) {
        st.hotDevice.run(
          d.reachable ? 1 : 0,
          d.cpuPct ?? null,
          d.memPct ?? null,
          d.packetLossPct ?? null,
          d.uptimeSec ?? null,
          d.inCall === undefined ? null : d.inCall ? 1 : 0,
          d.lastSeen,
          d.lastPollLatencyMs ?? null,
          next.readingTs,
          d.deviceId,
        );
      } else {
        st.upsertDevice.run(...deviceParams(next));
      }
      this.deviceCache.set(r.deviceId, next);
    }

    for (const e of ev.fresh) {
      st.insertEvent.run(
        batch.agentId,
        e.seq,
        e.type,
        "deviceId" in e ? (e.deviceId ?? null) : null,
        e.ts,
        JSON.stringify(e),
      );
    }
    this.eventsSincePrune += ev.fresh.length;
    if (this.eventsSincePrune >= 1000) {
      this.eventsSincePrune = 0;
      st.pruneEvents.run(this.opts.eventRetention ?? 100_000);
    }
    st.updateAgentSeq.run(state.watermark, serializeDedupState(state), ts, batch.agentId);
    return {
      watermark: state.watermark,
      duplicates: rd.duplicates + ev.duplicates,
      stored: rd.fresh.length + ev.fresh.length,
    };
  }

  private deviceState(st: Statements, deviceId: string): DeviceState | undefined {
    const c = this.deviceCache.get(deviceId);
    if (c) return c;
    const row = st.getDevice.get(deviceId) as DeviceRow | undefined;
    if (!row) return undefined;
    const s = { record: rowToDevice(row), readingTs: row.reading_ts };
    this.deviceCache.set(deviceId, s);
    return s;
  }

  /** The newest stored events, oldest first (optionally of one agent). Not part of the port. */
  recentEvents(limit: number, agentId?: string): Promise<StoredEvent[]> {
    return run(() => {
      const rows = (
        agentId === undefined
          ? this.conn().prepare("SELECT agent_id, seq, body FROM events ORDER BY id DESC LIMIT ?").all(limit)
          : this.conn()
              .prepare("SELECT agent_id, seq, body FROM events WHERE agent_id = ? ORDER BY id DESC LIMIT ?")
              .all(agentId, limit)
      ) as { agent_id: string; seq: number; body: string }[];
      return rows.reverse().map((r) => ({ agentId: r.agent_id, seq: r.seq, event: JSON.parse(r.body) }));
    });
  }

  applyAgentState(state: AgentState, receivedAt: number): Promise<AgentRecord | undefined> {
    return run(() => {
      const db = this.conn();
      const st = this.stmts();
      return db.transaction(() => {
        const row = st.getAgent.get(state.agentId) as AgentRow | undefined;
        const next = nextAgentRecord(row ? rowToAgent(row) : undefined, state, receivedAt);
        if (!next) return undefined;
        st.upsertAgentState.run(
          next.agentId,
          next.siteId,
          next.status,
          next.sessionId,
          next.version ?? null,
          JSON.stringify(next.capabilities),
          next.protocolVersion ?? null,
          next.hostname ?? null,
          next.since,
          next.lastSeen,
          next.ackedSeq,
        );
        return next;
      })();
    });
  }

  getAgent(agentId: string): Promise<AgentRecord | undefined> {
    return run(() => {
      const row = this.stmts().getAgent.get(agentId) as AgentRow | undefined;
      return row ? rowToAgent(row) : undefined;
    });
  }

  listAgents(sites?: string[]): Promise<AgentRecord[]> {
    return run(() => {
      const scope = siteScope(sites, "site_id");
      const rows = this.conn()
        .prepare(`SELECT * FROM agents WHERE ${scope.sql} ORDER BY agent_id`)
        .all(...scope.params) as AgentRow[];
      return rows.map(rowToAgent);
    });
  }

  listSites(sites?: string[]): Promise<Site[]> {
    return run(() => {
      const scope = siteScope(sites, "site_id");
      const rows = this.conn()
        .prepare(
          `SELECT site_id, SUM(a) AS agents, SUM(d) AS devices FROM (
             SELECT site_id, 1 AS a, 0 AS d FROM agents WHERE ${scope.sql}
             UNION ALL SELECT site_id, 0, 1 FROM devices WHERE ${scope.sql}
           ) GROUP BY site_id ORDER BY site_id`,
        )
        .all(...scope.params, ...scope.params) as { site_id: string; agents: number; devices: number }[];
      return rows.map((r) => ({ siteId: r.site_id, name: r.site_id, agents: r.agents, devices: r.devices }));
    });
  }

  getDevice(deviceId: string): Promise<DeviceRecord | undefined> {
    return run(() => {
      const row = this.stmts().getDevice.get(deviceId) as DeviceRow | undefined;
      return row ? rowToDevice(row) : undefined;
    });
  }

  listDevices(query: DeviceQuery, sites?: string[]): Promise<Page<DeviceRecord>> {
    return run(() => {
      const db = this.conn();
      const where: string[] = [];
      const params: unknown[] = [];
      const scope = siteScope(sites, "site_id");
      where.push(scope.sql);
      params.push(...scope.params);
      const eq = (col: string, v: string | undefined) => {
        if (v === undefined) return;
        where.push(`${col} = ?`);
        params.push(v);
      };
      eq("site_id", query.siteId);
      eq("agent_id", query.agentId);
      eq("model", query.model);
      eq("family", query.family);
      if (query.reachable !== undefined) {
        where.push("reachable = ?");
        params.push(query.reachable === "true" ? 1 : 0);
      }
      if (query.tag !== undefined) {
        where.push("EXISTS (SELECT 1 FROM json_each(devices.tags) WHERE json_each.value = ?)");
        params.push(query.tag);
      }
      if (query.q !== undefined && query.q !== "") {
        const pat = `%${query.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
        const cols = ["device_id", "address", "model", "serial", "mac", "system_name"];
        where.push(`(${cols.map((c) => `${c} LIKE ? ESCAPE '\\'`).join(" OR ")})`);
        for (const _ of cols) params.push(pat);
      }
      const w = where.join(" AND ");
      const total = (
        db.prepare(`SELECT COUNT(*) AS n FROM devices WHERE ${w}`).get(...params) as { n: number }
      ).n;
      const limit = query.limit ?? 100;
      const pageParams = [...params];
      let pw = w;
      if (query.cursor !== undefined) {
        pw += " AND device_id > ?";
        pageParams.push(decodeCursor(query.cursor));
      }
      const rows = db
        .prepare(`SELECT * FROM devices WHERE ${pw} ORDER BY device_id LIMIT ?`)
        .all(...pageParams, limit + 1) as DeviceRow[];
      const items = rows.slice(0, limit).map(rowToDevice);
      const page: Page<DeviceRecord> = { items, total };
      const last = items[items.length - 1];
      if (rows.length > limit && last) page.nextCursor = encodeCursor(last.deviceId);
      return page;
    });
  }

  setDeviceTags(deviceId: string, tags: string[]): Promise<DeviceRecord | undefined> {
    return run(() => {
      const st = this.stmts();
      const res = this.conn()
        .prepare("UPDATE devices SET tags = ? WHERE device_id = ?")
        .run(JSON.stringify(tags), deviceId);
      if (res.changes === 0) return undefined;
      const row = st.getDevice.get(deviceId) as DeviceRow;
      const rec = rowToDevice(row);
      const c = this.deviceCache.get(deviceId);
      if (c) c.record = { ...c.record, tags: [...tags] };
      return rec;
    });
  }

  saveAlert(alert: Alert): Promise<void> {
    return run(() => {
      const db = this.conn();
      const body = JSON.stringify(alert);
      db.transaction(() => {
        db.prepare(
          `INSERT INTO alerts (id, state, severity, site_id, device_id, updated_at, body) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET state = excluded.state, severity = excluded.severity,
             site_id = excluded.site_id, device_id = excluded.device_id, updated_at = excluded.updated_at,
             body = excluded.body`,
        ).run(
          alert.id,
          alert.state,
          alert.severity,
          alert.siteId ?? null,
          alert.deviceId ?? null,
          alert.updatedAt,
          body,
        );
        db.prepare("INSERT INTO alert_history (alert_id, body) VALUES (?, ?)").run(alert.id, body);
      })();
    });
  }

  getAlert(id: string): Promise<Alert | undefined> {
    return run(() => {
      const r = this.conn().prepare("SELECT body FROM alerts WHERE id = ?").get(id) as
        | { body: string }
        | undefined;
      return r ? (JSON.parse(r.body) as Alert) : undefined;
    });
  }

  listAlerts(filter: AlertFilter): Promise<Alert[]> {
    return run(() => {
      const where: string[] = [];
      const params: unknown[] = [];
      if (filter.state === "active") where.push("state IN ('firing', 'acknowledged')");
      else if (filter.state !== undefined) {
        where.push("state = ?");
        params.push(filter.state);
      }
      const eq = (col: string, v: string | undefined) => {
        if (v === undefined) return;
        where.push(`${col} = ?`);
        params.push(v);
      };
      eq("severity", filter.severity);
      eq("site_id", filter.siteId);
      eq("device_id", filter.deviceId);
      const scope = siteScope(filter.sites, "site_id");
      where.push(scope.sql);
      params.push(...scope.params);
      let sql = `SELECT body FROM alerts WHERE ${where.join(" AND ")} ORDER BY updated_at DESC, id`;
      if (filter.limit !== undefined) {
        sql += " LIMIT ?";
        params.push(filter.limit);
      }
      const rows = this.conn()
        .prepare(sql)
        .all(...params) as { body: string }[];
      return rows.map((r) => JSON.parse(r.body) as Alert);
    });
  }

  alertHistory(id: string): Promise<Alert[]> {
    return run(() => {
      const rows = this.conn()
        .prepare("SELECT body FROM alert_history WHERE alert_id = ? ORDER BY id")
        .all(id) as {
        body: string;
      }[];
      return rows.map((r) => JSON.parse(r.body) as Alert);
    });
  }

  saveSilence(s: Silence): Promise<void> {
    return this.putDoc("silences", s.id, s);
  }
  deleteSilence(id: string): Promise<boolean> {
    return this.deleteDoc("silences", id);
  }
  listSilences(): Promise<Silence[]> {
    return this.listDocs<Silence>("silences");
  }
  saveWindow(w: MaintenanceWindow): Promise<void> {
    return this.putDoc("maintenance_windows", w.id, w);
  }
  deleteWindow(id: string): Promise<boolean> {
    return this.deleteDoc("maintenance_windows", id);
  }
  listWindows(): Promise<MaintenanceWindow[]> {
    return this.listDocs<MaintenanceWindow>("maintenance_windows");
  }

  saveToken(t: StoredToken): Promise<void> {
    return run(() => {
      const db = this.conn();
      db.transaction(() => {
        db.prepare("DELETE FROM api_tokens WHERE hash = ? AND id <> ?").run(t.hash, t.id);
        db.prepare(
          "INSERT INTO api_tokens (id, hash, body) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, body = excluded.body",
        ).run(t.id, t.hash, JSON.stringify(t));
      })();
    });
  }

  findTokenByHash(hash: string): Promise<StoredToken | undefined> {
    return run(() => {
      const r = this.conn().prepare("SELECT body FROM api_tokens WHERE hash = ?").get(hash) as
        | { body: string }
        | undefined;
      return r ? (JSON.parse(r.body) as StoredToken) : undefined;
    });
  }

  listTokens(): Promise<ApiToken[]> {
    return run(() => {
      const rows = this.conn().prepare("SELECT body FROM api_tokens ORDER BY id").all() as { body: string }[];
      return rows.map((r) => {
        const { hash: _hash, ...t } = JSON.parse(r.body) as StoredToken;
        return t;
      });
    });
  }

  deleteToken(id: string): Promise<boolean> {
    return this.deleteDoc("api_tokens", id);
  }

  touchToken(id: string, at: number): Promise<void> {
    return run(() => {
      this.conn()
        .prepare("UPDATE api_tokens SET body = json_set(body, '$.lastUsedAt', ?) WHERE id = ?")
        .run(at, id);
    });
  }

  saveRolloutChanges(changes: RolloutChanges): Promise<void> {
    return run(() => {
      const { rollouts, devices } = prepareRolloutChanges(changes);
      const db = this.conn();
      const st = this.stmts();
      try {
        db.transaction(() => {
          for (const r of rollouts) st.upsertRollout.run(r.id, r.state, r.createdAt, JSON.stringify(r));
          for (const d of devices) {
            st.upsertRolloutDevice.run(d.rolloutId, d.deviceId, d.wave, d.order, d.state, JSON.stringify(d));
          }
        })();
      } catch (err) {
        if ((err as { code?: unknown }).code === "SQLITE_CONSTRAINT_FOREIGNKEY") {
          throw new Error("a rollout device refers to a rollout that does not exist; nothing stored", {
            cause: err,
          });
        }
        throw err;
      }
    });
  }

  getRollout(id: string): Promise<Rollout | undefined> {
    return run(() => {
      const r = this.conn().prepare("SELECT body FROM rollouts WHERE id = ?").get(id) as
        | { body: string }
        | undefined;
      return r ? Rollout.parse(JSON.parse(r.body)) : undefined;
    });
  }

  listRollouts(filter: RolloutFilter = {}): Promise<Rollout[]> {
    return run(() => {
      const rows = (
        filter.state === undefined
          ? this.conn().prepare("SELECT body FROM rollouts ORDER BY created_at DESC, id").all()
          : this.conn()
              .prepare("SELECT body FROM rollouts WHERE state = ? ORDER BY created_at DESC, id")
              .all(filter.state)
      ) as { body: string }[];
      return rows.map((r) => Rollout.parse(JSON.parse(r.body)));
    });
  }

  listRolloutDevices(rolloutId: string, filter: RolloutDeviceFilter = {}): Promise<RolloutDevice[]> {
    return run(() => {
      const where = ["rollout_id = ?"];
      const params: unknown[] = [rolloutId];
      if (filter.state !== undefined) {
        where.push("state = ?");
        params.push(filter.state);
      }
      if (filter.wave !== undefined) {
        where.push("wave = ?");
        params.push(filter.wave);
      }
      const rows = this.conn()
        .prepare(`SELECT body FROM rollout_devices WHERE ${where.join(" AND ")} ORDER BY ord, device_id`)
        .all(...params) as { body: string }[];
      return rows.map((r) => RolloutDevice.parse(JSON.parse(r.body)));
    });
  }

  listActiveRolloutDevices(): Promise<RolloutDevice[]> {
    return run(() => {
      const finished = FINISHED_ROLLOUT_STATES.map(() => "?").join(", ");
      const rows = this.conn()
        .prepare(
          `SELECT d.body FROM rollout_devices d JOIN rollouts r ON r.id = d.rollout_id
           WHERE r.state NOT IN (${finished}) ORDER BY d.rollout_id, d.ord, d.device_id`,
        )
        .all(...FINISHED_ROLLOUT_STATES) as { body: string }[];
      return rows.map((r) => RolloutDevice.parse(JSON.parse(r.body)));
    });
  }

  private putDoc(table: string, id: string, doc: unknown): Promise<void> {
    return run(() => {
      this.conn()
        .prepare(
          `INSERT INTO ${table} (id, body) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body`,
        )
        .run(id, JSON.stringify(doc));
    });
  }

  private deleteDoc(table: string, id: string): Promise<boolean> {
    return run(() => this.conn().prepare(`DELETE FROM ${table} WHERE id = ?`).run(id).changes > 0);
  }

  private listDocs<T>(table: string): Promise<T[]> {
    return run(() => {
      const rows = this.conn().prepare(`SELECT body FROM ${table} ORDER BY id`).all() as { body: string }[];
      return rows.map((r) => JSON.parse(r.body) as T);
    });
  }

  private conn(): Database.Database {
    if (!this.db) throw new Error("SqliteStateStore: call migrate() first (or the store is closed)");
    return this.db;
  }

  private stmts(): Statements {
    if (!this.st) throw new Error("SqliteStateStore: call migrate() first (or the store is closed)");
    return this.st;
  }

  private prepare(db: Database.Database): Statements {
    const cols = DEVICE_COLS.join(", ");
    const marks = DEVICE_COLS.map(() => "?").join(", ");
    const updates = DEVICE_COLS.filter((c) => c !== "device_id")
      .map((c) => `${c} = excluded.${c}`)
      .join(", ");
    return {
      getAgent: db.prepare("SELECT * FROM agents WHERE agent_id = ?"),
      insertAgentFromStream: db.prepare(
        `INSERT INTO agents (agent_id, site_id, status, session_id, capabilities, since, last_seen)
         VALUES (?, ?, 'online', '', '[]', ?, ?)`,
      ),
      updateAgentSeq: db.prepare(
        "UPDATE agents SET acked_seq = ?, dedup = ?, last_seen = MAX(last_seen, ?) WHERE agent_id = ?",
      ),
      upsertAgentState: db.prepare(
        `INSERT INTO agents (agent_id, site_id, status, session_id, version, capabilities, protocol_version,
           hostname, since, last_seen, acked_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (agent_id) DO UPDATE SET site_id = excluded.site_id, status = excluded.status,
           session_id = excluded.session_id, version = excluded.version, capabilities = excluded.capabilities,
           protocol_version = excluded.protocol_version, hostname = excluded.hostname, since = excluded.since,
           last_seen = excluded.last_seen`,
      ),
      getDevice: db.prepare("SELECT * FROM devices WHERE device_id = ?"),
      upsertDevice: db.prepare(
        `INSERT INTO devices (${cols}) VALUES (${marks}) ON CONFLICT (device_id) DO UPDATE SET ${updates}`,
      ),
      hotDevice: db.prepare(
        `UPDATE devices SET reachable = ?, cpu_pct = ?, mem_pct = ?, packet_loss_pct = ?, uptime_sec = ?,
           in_call = ?, last_seen = ?, last_poll_latency_ms = ?, reading_ts = ? WHERE device_id = ?`,
      ),
      insertEvent: db.prepare(
        "INSERT INTO events (agent_id, seq, type, device_id, ts, body) VALUES (?, ?, ?, ?, ?, ?)",
      ),
      pruneEvents: db.prepare("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?"),
      upsertRollout: db.prepare(
        `INSERT INTO rollouts (id, state, created_at, body) VALUES (?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, created_at = excluded.created_at,
           body = excluded.body`,
      ),
      upsertRolloutDevice: db.prepare(
        `INSERT INTO rollout_devices (rollout_id, device_id, wave, ord, state, body) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (rollout_id, device_id) DO UPDATE SET wave = excluded.wave, ord = excluded.ord,
           state = excluded.state, body = excluded.body`,
      ),
    };
  }
}

function deviceParams(s: DeviceState): unknown[] {
  const d = s.record;
  return [
    d.deviceId,
    d.siteId,
    d.agentId,
    d.address,
    d.family,
    d.driver,
    d.model ?? null,
    d.serial ?? null,
    d.mac ?? null,
    d.partNumber ?? null,
    d.systemName ?? null,
    d.softwareVersion ?? null,
    d.softwareBuild ?? null,
    JSON.stringify(d.firmware),
    JSON.stringify(d.health),
    JSON.stringify(d.peripherals),
    JSON.stringify(d.lines),
    d.reachable ? 1 : 0,
    d.cpuPct ?? null,
    d.memPct ?? null,
    d.packetLossPct ?? null,
    d.uptimeSec ?? null,
    d.inCall === undefined ? null : d.inCall ? 1 : 0,
    d.firstSeen,
    d.lastSeen,
    d.lastPollLatencyMs ?? null,
    s.readingTs,
  ];
}

/** True when everything but the fast-changing fields (reachability, metrics, last seen) is unchanged. */
function sameCold(a: DeviceRecord, b: DeviceRecord): boolean {
  return (
    a.siteId === b.siteId &&
    a.agentId === b.agentId &&
    a.address === b.address &&
    a.family === b.family &&
    a.driver === b.driver &&
    a.model === b.model &&
    a.serial === b.serial &&
    a.mac === b.mac &&
    a.partNumber === b.partNumber &&
    a.systemName === b.systemName &&
    a.softwareVersion === b.softwareVersion &&
    a.softwareBuild === b.softwareBuild &&
    a.firstSeen === b.firstSeen &&
    sameList(a.firmware, b.firmware) &&
    sameList(a.health, b.health) &&
    sameList(a.peripherals, b.peripherals) &&
    sameList(a.lines, b.lines)
  );
}

/** Equality of two lists of flat objects (primitive values only, as the reading's lists are). */
function sameList(a: readonly object[], b: readonly object[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as Record<string, unknown>;
    const y = b[i] as Record<string, unknown>;
    let n = 0;
    for (const k in x) {
      if (x[k] !== y[k]) return false;
      n++;
    }
    for (const _ in y) n--;
    if (n !== 0) return false;
  }
  return true;
}

function rowToAgent(r: AgentRow): AgentRecord {
  const a: AgentRecord = {
    agentId: r.agent_id,
    siteId: r.site_id,
    status: r.status,
    sessionId: r.session_id,
    capabilities: JSON.parse(r.capabilities) as string[],
    since: r.since,
    lastSeen: r.last_seen,
    ackedSeq: r.acked_seq,
  };
  if (r.version !== null) a.version = r.version;
  if (r.protocol_version === 4 || r.protocol_version === 5) a.protocolVersion = r.protocol_version;
  if (r.hostname !== null) a.hostname = r.hostname;
  return a;
}

function rowToDevice(r: DeviceRow): DeviceRecord {
  const d: DeviceRecord = {
    deviceId: r.device_id,
    siteId: r.site_id,
    agentId: r.agent_id,
    address: r.address,
    family: r.family,
    driver: r.driver,
    firmware: JSON.parse(r.firmware),
    health: JSON.parse(r.health),
    peripherals: JSON.parse(r.peripherals),
    lines: JSON.parse(r.lines),
    reachable: r.reachable === 1,
    tags: JSON.parse(r.tags) as string[],
    firstSeen: r.first_seen,
    lastSeen: r.last_seen,
  };
  if (r.model !== null) d.model = r.model;
  if (r.serial !== null) d.serial = r.serial;
  if (r.mac !== null) d.mac = r.mac;
  if (r.part_number !== null) d.partNumber = r.part_number;
  if (r.system_name !== null) d.systemName = r.system_name;
  if (r.software_version !== null) d.softwareVersion = r.software_version;
  if (r.software_build !== null) d.softwareBuild = r.software_build;
  if (r.cpu_pct !== null) d.cpuPct = r.cpu_pct;
  if (r.mem_pct !== null) d.memPct = r.mem_pct;
  if (r.packet_loss_pct !== null) d.packetLossPct = r.packet_loss_pct;
  if (r.uptime_sec !== null) d.uptimeSec = r.uptime_sec;
  if (r.in_call !== null) d.inCall = r.in_call === 1;
  if (r.last_poll_latency_ms !== null) d.lastPollLatencyMs = r.last_poll_latency_ms;
  return d;
}

/** SQL for "site within the scope list" (undefined or containing `*` = every site). */
function siteScope(sites: string[] | undefined, col: string): { sql: string; params: string[] } {
  if (sites === undefined || sites.includes("*")) return { sql: "1 = 1", params: [] };
  if (sites.length === 0) return { sql: "1 = 0", params: [] };
  return { sql: `${col} IN (${sites.map(() => "?").join(", ")})`, params: sites };
}

/** Runs `fn` now and returns its result (or its exception) as a settled promise, like an async function. */
function run<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}
