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
import pg from "pg";
import { applyReading, type DeviceState, newestPerDevice, nextAgentRecord } from "../../core/device-state.js";
import {
  DEFAULT_MAX_AHEAD,
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
import { PG_MIGRATIONS } from "./postgres-migrations.js";

export interface PostgresStateStoreOptions {
  /** `postgres://user@host:port/db` (credentials may be in the URL; it is never logged or returned). */
  connectionString: string;
  /** Pool size (default 10). */
  poolMax?: number;
  /** Events kept: the newest N (older ones are deleted every 1,000 inserts of this process). Default 100,000. */
  eventRetention?: number;
  /** Reorder window of the dedup (see core/ingest-dedup.ts). Default 100,000. */
  maxAheadSeqs?: number;
}

/** Arbitrary constant: the advisory lock that serialises concurrent migrators. */
const MIGRATION_LOCK = 0x706f6c79;

const INT8_OID = 20;
const TYPES = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_OID && format !== "binary"
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format ?? "text")) as typeof pg.types.getTypeParser,
};

interface AgentRow {
  agent_id: string;
  site_id: string;
  status: "online" | "offline";
  session_id: string;
  version: string | null;
  capabilities: string[];
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
  firmware: DeviceRecord["firmware"];
  health: DeviceRecord["health"];
  peripherals: DeviceRecord["peripherals"];
  lines: DeviceRecord["lines"];
  reachable: boolean;
  cpu_pct: number | null;
  mem_pct: number | null;
  packet_loss_pct: number | null;
  uptime_sec: number | null;
  in_call: boolean | null;
  tags: string[];
  first_seen: number;
  last_seen: number;
  last_poll_latency_ms: number | null;
  reading_ts: number;
}

/** Columns written by ingest (tags are only written by setDeviceTags), with their record types. */
const DEVICE_COLS: ReadonlyArray<[string, string]> = [
  ["device_id", "text"],
  ["site_id", "text"],
  ["agent_id", "text"],
  ["address", "text"],
  ["family", "text"],
  ["driver", "text"],
  ["model", "text"],
  ["serial", "text"],
  ["mac", "text"],
  ["part_number", "text"],
  ["system_name", "text"],
  ["software_version", "text"],
  ["software_build", "text"],
  ["firmware", "jsonb"],
  ["health", "jsonb"],
  ["peripherals", "jsonb"],
  ["lines", "jsonb"],
  ["reachable", "boolean"],
  ["cpu_pct", "double precision"],
  ["mem_pct", "double precision"],
  ["packet_loss_pct", "double precision"],
  ["uptime_sec", "double precision"],
  ["in_call", "boolean"],
  ["first_seen", "bigint"],
  ["last_seen", "bigint"],
  ["last_poll_latency_ms", "double precision"],
  ["reading_ts", "bigint"],
];

const UPSERT_DEVICES = `
INSERT INTO devices (${DEVICE_COLS.map(([c]) => c).join(", ")})
SELECT ${DEVICE_COLS.map(([c]) => `r.${c}`).join(", ")}
FROM jsonb_to_recordset($1::jsonb) AS r(${DEVICE_COLS.map(([c, t]) => `${c} ${t}`).join(", ")})
ON CONFLICT (device_id) DO UPDATE SET ${DEVICE_COLS.filter(([c]) => c !== "device_id")
  .map(([c]) => `${c} = excluded.${c}`)
  .join(", ")}
WHERE devices.reading_ts <= excluded.reading_ts`;

const INSERT_EVENTS = `
INSERT INTO events (agent_id, seq, type, device_id, ts, body)
SELECT $1, e.seq, e.type, e.device_id, e.ts, e.body
FROM jsonb_to_recordset($2::jsonb) AS e(seq bigint, type text, device_id text, ts bigint, body jsonb)`;

/** Rows per rollout upsert statement (bounds the size of one statement's parameters). */
const ROLLOUT_CHUNK = 5000;
/** PostgreSQL's foreign_key_violation. */
const FK_VIOLATION = "23503";

// Two JSON text parameters per statement, zipped by position (ROWS FROM): the key columns as tuples, and the
// bodies, taken as their exact text (`b::text`). pg's array-literal encoding of thousands of bodies (unnest of
// text[]) costs ~30 µs of collector CPU per row, this ~1 µs. The bodies are never looked into with `->>`:
// PostgreSQL refuses to de-escape JSON's "\u0000" there, while `json_array_elements` keeps it verbatim.
const UPSERT_ROLLOUTS = `
INSERT INTO rollouts (id, state, created_at, body)
SELECT t.k->>0, t.k->>1, (t.k->>2)::bigint, t.b::text
FROM ROWS FROM (json_array_elements($1::json), json_array_elements($2::json)) AS t(k, b)
ON CONFLICT (id) DO UPDATE SET state = excluded.state, created_at = excluded.created_at, body = excluded.body`;

const UPSERT_ROLLOUT_DEVICES = `
INSERT INTO rollout_devices (rollout_id, device_id, wave, ord, state, body)
SELECT t.k->>0, t.k->>1, (t.k->>2)::bigint, (t.k->>3)::bigint, t.k->>4, t.b::text
FROM ROWS FROM (json_array_elements($1::json), json_array_elements($2::json)) AS t(k, b)
ON CONFLICT (rollout_id, device_id) DO UPDATE SET wave = excluded.wave, ord = excluded.ord,
  state = excluded.state, body = excluded.body`;

/**
 * StateStore on PostgreSQL (pg Pool). Versioned migrations in `schema_migrations`, applied under an advisory
 * lock. `ingest` is one transaction that locks the agent's row (`INSERT … ON CONFLICT … RETURNING`, so
 * several collectors sharing the load serialise per agent) and the batch's device rows (`FOR UPDATE`, in
 * device-id order), merges readings with the pure core, and writes devices and events with one multi-row
 * statement each (`jsonb_to_recordset` of a single JSON parameter). Lists are stored as JSONB.
 *
 * Events are kept with bounded retention: the newest `eventRetention` rows.
 */
export class PostgresStateStore implements StateStore {
  private readonly opts: PostgresStateStoreOptions;
  private pool: pg.Pool | undefined;
  private eventsSincePrune = 0;

  constructor(opts: PostgresStateStoreOptions) {
    this.opts = opts;
  }

  /** Creates the pool (first call) and applies pending migrations. */
  async migrate(): Promise<void> {
    if (!this.pool) {
      this.pool = new pg.Pool({
        connectionString: this.opts.connectionString,
        max: this.opts.poolMax ?? 10,
        types: TYPES,
      });
      // An idle client losing its connection must not crash the process; the next query reconnects.
      this.pool.on("error", () => {});
    }
    await this.tx(async (c) => {
      await c.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
      await c.query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
      );
      const { rows } = await c.query<{ version: number }>("SELECT version FROM schema_migrations");
      const applied = new Set(rows.map((r) => r.version));
      for (const m of PG_MIGRATIONS) {
        if (applied.has(m.version)) continue;
        await c.query(m.sql);
        await c.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", [
          m.version,
          m.name,
          Date.now(),
        ]);
      }
    });
  }

  async close(): Promise<void> {
    const p = this.pool;
    this.pool = undefined;
    if (p) await p.end();
  }

  /** Applied migration versions, ascending. Not part of the port. */
  async schemaVersions(): Promise<number[]> {
    const { rows } = await this.db().query<{ version: number }>(
      "SELECT version FROM schema_migrations ORDER BY version",
    );
    return rows.map((r) => r.version);
  }

  async ingest(batch: IngestBatch): Promise<IngestResult> {
    const ts = batchTs(batch);
    const maxAhead = this.opts.maxAheadSeqs ?? DEFAULT_MAX_AHEAD;
    const res = await this.tx(async (c) => {
      const { rows } = await c.query<{ acked_seq: number; dedup: string | null }>(
        `INSERT INTO agents (agent_id, site_id, status, session_id, capabilities, since, last_seen)
         VALUES ($1, $2, 'online', '', '[]'::jsonb, $3, $3)
         ON CONFLICT (agent_id) DO UPDATE SET last_seen = GREATEST(agents.last_seen, excluded.last_seen)
         RETURNING acked_seq, dedup`,
        [batch.agentId, batch.siteId, ts],
      );
      const row = rows[0];
      const state = parseDedupState(row?.dedup, row?.acked_seq ?? 0);
      const rd = dedupBatch(state, batch.readings, () => undefined, maxAhead);
      const ev = dedupBatch(state, batch.events, dropRange, maxAhead);

      const readings = newestPerDevice(rd.fresh);
      if (readings.length > 0) {
        const ids = readings.map((r) => r.deviceId);
        const cur = await c.query<DeviceRow>(
          "SELECT * FROM devices WHERE device_id = ANY($1::text[]) ORDER BY device_id FOR UPDATE",
          [ids],
        );
        const prev = new Map<string, DeviceState>();
        for (const r of cur.rows) prev.set(r.device_id, { record: rowToDevice(r), readingTs: r.reading_ts });
        const out: Record<string, unknown>[] = [];
        for (const r of readings) {
          const next = applyReading(prev.get(r.deviceId), r);
          if (next) out.push(deviceRow(next));
        }
        if (out.length > 0) await c.query(UPSERT_DEVICES, [JSON.stringify(out)]);
      }
      if (ev.fresh.length > 0) {
        const rowsE = ev.fresh.map((e) => ({
          seq: e.seq,
          type: e.type,
          device_id: "deviceId" in e ? (e.deviceId ?? null) : null,
          ts: e.ts,
          body: e,
        }));
        await c.query(INSERT_EVENTS, [batch.agentId, JSON.stringify(rowsE)]);
      }
      await c.query("UPDATE agents SET acked_seq = $2, dedup = $3 WHERE agent_id = $1", [
        batch.agentId,
        state.watermark,
        serializeDedupState(state),
      ]);
      return {
        watermark: state.watermark,
        duplicates: rd.duplicates + ev.duplicates,
        stored: rd.fresh.length + ev.fresh.length,
        events: ev.fresh.length,
      };
    });
    this.eventsSincePrune += res.events;
    if (this.eventsSincePrune >= 1000) {
      this.eventsSincePrune = 0;
      await this.db().query("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - $1", [
        this.opts.eventRetention ?? 100_000,
      ]);
    }
    return { watermark: res.watermark, duplicates: res.duplicates, stored: res.stored };
  }

  /** The newest stored events, oldest first (optionally of one agent). Not part of the port. */
  async recentEvents(limit: number, agentId?: string): Promise<StoredEvent[]> {
    const { rows } =
      agentId === undefined
        ? await this.db().query<{ agent_id: string; seq: number; body: StoredEvent["event"] }>(
            "SELECT agent_id, seq, body FROM events ORDER BY id DESC LIMIT $1",
            [limit],
          )
        : await this.db().query<{ agent_id: string; seq: number; body: StoredEvent["event"] }>(
            "SELECT agent_id, seq, body FROM events WHERE agent_id = $1 ORDER BY id DESC LIMIT $2",
            [agentId, limit],
          );
    return rows.reverse().map((r) => ({ agentId: r.agent_id, seq: r.seq, event: r.body }));
  }

  applyAgentState(state: AgentState, receivedAt: number): Promise<AgentRecord | undefined> {
    return this.tx(async (c) => {
      const { rows } = await c.query<AgentRow>("SELECT * FROM agents WHERE agent_id = $1 FOR UPDATE", [
        state.agentId,
      ]);
      const cur = rows[0];
      const next = nextAgentRecord(cur ? rowToAgent(cur) : undefined, state, receivedAt);
      if (!next) return undefined;
      await c.query(
        `INSERT INTO agents (agent_id, site_id, status, session_id, version, capabilities, protocol_version,
           hostname, since, last_seen, acked_seq) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11)
         ON CONFLICT (agent_id) DO UPDATE SET site_id = excluded.site_id, status = excluded.status,
           session_id = excluded.session_id, version = excluded.version, capabilities = excluded.capabilities,
           protocol_version = excluded.protocol_version, hostname = excluded.hostname, since = excluded.since,
           last_seen = excluded.last_seen`,
        [
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
        ],
      );
      return next;
    });
  }

  async getAgent(agentId: string): Promise<AgentRecord | undefined> {
    const { rows } = await this.db().query<AgentRow>("SELECT * FROM agents WHERE agent_id = $1", [agentId]);
    const r = rows[0];
    return r ? rowToAgent(r) : undefined;
  }

  async listAgents(sites?: string[]): Promise<AgentRecord[]> {
    const w = new Where();
    w.scope("site_id", sites);
    const { rows } = await this.db().query<AgentRow>(
      `SELECT * FROM agents WHERE ${w.sql()} ORDER BY agent_id`,
      w.params,
    );
    return rows.map(rowToAgent);
  }

  async listSites(sites?: string[]): Promise<Site[]> {
    const w = new Where();
    w.scope("site_id", sites);
    const cond = w.sql();
    const { rows } = await this.db().query<{ site_id: string; agents: number; devices: number }>(
      `SELECT site_id, SUM(a)::int AS agents, SUM(d)::int AS devices FROM (
         SELECT site_id, 1 AS a, 0 AS d FROM agents WHERE ${cond}
         UNION ALL SELECT site_id, 0, 1 FROM devices WHERE ${cond}
       ) s GROUP BY site_id ORDER BY site_id`,
      w.params,
    );
    return rows.map((r) => ({ siteId: r.site_id, name: r.site_id, agents: r.agents, devices: r.devices }));
  }

  async getDevice(deviceId: string): Promise<DeviceRecord | undefined> {
    const { rows } = await this.db().query<DeviceRow>("SELECT * FROM devices WHERE device_id = $1", [
      deviceId,
    ]);
    const r = rows[0];
    return r ? rowToDevice(r) : undefined;
  }

  async listDevices(query: DeviceQuery, sites?: string[]): Promise<Page<DeviceRecord>> {
    const w = new Where();
    w.scope("site_id", sites);
    w.eq("site_id", query.siteId);
    w.eq("agent_id", query.agentId);
    w.eq("model", query.model);
    w.eq("family", query.family);
    if (query.reachable !== undefined) w.add(`reachable = ${w.param(query.reachable === "true")}`);
    if (query.tag !== undefined) w.add(`tags @> jsonb_build_array(${w.param(query.tag)}::text)`);
    if (query.q !== undefined && query.q !== "") {
      const p = w.param(`%${query.q.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`);
      const cols = ["device_id", "address", "model", "serial", "mac", "system_name"];
      w.add(`(${cols.map((c) => `${c} ILIKE ${p}`).join(" OR ")})`);
    }
    const db = this.db();
    const countParams = [...w.params];
    const cond = w.sql();
    if (query.cursor !== undefined) w.add(`device_id > ${w.param(decodeCursor(query.cursor))}`);
    const limit = query.limit ?? 100;
    const limitP = w.param(limit + 1);
    const [count, page] = await Promise.all([
      db.query<{ n: number }>(`SELECT COUNT(*)::int AS n FROM devices WHERE ${cond}`, countParams),
      db.query<DeviceRow>(
        `SELECT * FROM devices WHERE ${w.sql()} ORDER BY device_id LIMIT ${limitP}`,
        w.params,
      ),
    ]);
    const items = page.rows.slice(0, limit).map(rowToDevice);
    const out: Page<DeviceRecord> = { items, total: count.rows[0]?.n ?? 0 };
    const last = items[items.length - 1];
    if (page.rows.length > limit && last) out.nextCursor = encodeCursor(last.deviceId);
    return out;
  }

  async setDeviceTags(deviceId: string, tags: string[]): Promise<DeviceRecord | undefined> {
    const { rows } = await this.db().query<DeviceRow>(
      "UPDATE devices SET tags = $2::jsonb WHERE device_id = $1 RETURNING *",
      [deviceId, JSON.stringify(tags)],
    );
    const r = rows[0];
    return r ? rowToDevice(r) : undefined;
  }

  async saveAlert(alert: Alert): Promise<void> {
    const body = JSON.stringify(alert);
    await this.tx(async (c) => {
      await c.query(
        `INSERT INTO alerts (id, state, severity, site_id, device_id, updated_at, body)
         VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, severity = excluded.severity,
           site_id = excluded.site_id, device_id = excluded.device_id, updated_at = excluded.updated_at,
           body = excluded.body`,
        [
          alert.id,
          alert.state,
          alert.severity,
          alert.siteId ?? null,
          alert.deviceId ?? null,
          alert.updatedAt,
          body,
        ],
      );
      await c.query("INSERT INTO alert_history (alert_id, body) VALUES ($1, $2::jsonb)", [alert.id, body]);
    });
  }

  async getAlert(id: string): Promise<Alert | undefined> {
    const { rows } = await this.db().query<{ body: Alert }>("SELECT body FROM alerts WHERE id = $1", [id]);
    return rows[0]?.body;
  }

  async listAlerts(filter: AlertFilter): Promise<Alert[]> {
    const w = new Where();
    if (filter.state === "active") w.add("state IN ('firing', 'acknowledged')");
    else w.eq("state", filter.state);
    w.eq("severity", filter.severity);
    w.eq("site_id", filter.siteId);
    w.eq("device_id", filter.deviceId);
    w.scope("site_id", filter.sites);
    let sql = `SELECT body FROM alerts WHERE ${w.sql()} ORDER BY updated_at DESC, id`;
    if (filter.limit !== undefined) sql += ` LIMIT ${w.param(filter.limit)}`;
    const { rows } = await this.db().query<{ body: Alert }>(sql, w.params);
    return rows.map((r) => r.body);
  }

  async alertHistory(id: string): Promise<Alert[]> {
    const { rows } = await this.db().query<{ body: Alert }>(
      "SELECT body FROM alert_history WHERE alert_id = $1 ORDER BY id",
      [id],
    );
    return rows.map((r) => r.body);
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

  async saveToken(t: StoredToken): Promise<void> {
    await this.tx(async (c) => {
      await c.query("DELETE FROM api_tokens WHERE hash = $1 AND id <> $2", [t.hash, t.id]);
      await c.query(
        `INSERT INTO api_tokens (id, hash, body) VALUES ($1, $2, $3::jsonb)
         ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, body = excluded.body`,
        [t.id, t.hash, JSON.stringify(t)],
      );
    });
  }

  async findTokenByHash(hash: string): Promise<StoredToken | undefined> {
    const { rows } = await this.db().query<{ body: StoredToken }>(
      "SELECT body FROM api_tokens WHERE hash = $1",
      [hash],
    );
    return rows[0]?.body;
  }

  async listTokens(): Promise<ApiToken[]> {
    const { rows } = await this.db().query<{ body: StoredToken }>("SELECT body FROM api_tokens ORDER BY id");
    return rows.map((r) => {
      const { hash: _hash, ...t } = r.body;
      return t;
    });
  }

  deleteToken(id: string): Promise<boolean> {
    return this.deleteDoc("api_tokens", id);
  }

  async touchToken(id: string, at: number): Promise<void> {
    await this.db().query(
      "UPDATE api_tokens SET body = jsonb_set(body, '{lastUsedAt}', to_jsonb($2::bigint)) WHERE id = $1",
      [id, at],
    );
  }

  /** One transaction; rollouts and devices are each written with one upsert statement per 5,000 rows. */
  async saveRolloutChanges(changes: RolloutChanges): Promise<void> {
    const { rollouts, devices } = prepareRolloutChanges(changes);
    if (rollouts.length === 0 && devices.length === 0) return;
    const bodies = (part: readonly unknown[]) => `[${part.map((x) => JSON.stringify(x)).join(",")}]`;
    try {
      await this.tx(async (c) => {
        for (let i = 0; i < rollouts.length; i += ROLLOUT_CHUNK) {
          const part = rollouts.slice(i, i + ROLLOUT_CHUNK);
          const keys = JSON.stringify(part.map((r) => [r.id, r.state, r.createdAt]));
          await c.query(UPSERT_ROLLOUTS, [keys, bodies(part)]);
        }
        for (let i = 0; i < devices.length; i += ROLLOUT_CHUNK) {
          const part = devices.slice(i, i + ROLLOUT_CHUNK);
          const keys = JSON.stringify(part.map((d) => [d.rolloutId, d.deviceId, d.wave, d.order, d.state]));
          await c.query(UPSERT_ROLLOUT_DEVICES, [keys, bodies(part)]);
        }
      });
    } catch (err) {
      if ((err as { code?: unknown }).code === FK_VIOLATION) {
        throw new Error("a rollout device refers to a rollout that does not exist; nothing stored", {
          cause: err,
        });
      }
      throw err;
    }
  }

  async getRollout(id: string): Promise<Rollout | undefined> {
    const { rows } = await this.db().query<{ body: string }>("SELECT body FROM rollouts WHERE id = $1", [id]);
    const r = rows[0];
    return r ? Rollout.parse(JSON.parse(r.body)) : undefined;
  }

  async listRollouts(filter: RolloutFilter = {}): Promise<Rollout[]> {
    const w = new Where();
    w.eq("state", filter.state);
    const { rows } = await this.db().query<{ body: string }>(
      `SELECT body FROM rollouts WHERE ${w.sql()} ORDER BY created_at DESC, id`,
      w.params,
    );
    return rows.map((r) => Rollout.parse(JSON.parse(r.body)));
  }

  async listRolloutDevices(rolloutId: string, filter: RolloutDeviceFilter = {}): Promise<RolloutDevice[]> {
    const w = new Where();
    w.eq("rollout_id", rolloutId);
    w.eq("state", filter.state);
    if (filter.wave !== undefined) w.add(`wave = ${w.param(filter.wave)}`);
    const { rows } = await this.db().query<{ body: string }>(
      `SELECT body FROM rollout_devices WHERE ${w.sql()} ORDER BY ord, device_id`,
      w.params,
    );
    return rows.map((r) => RolloutDevice.parse(JSON.parse(r.body)));
  }

  async listActiveRolloutDevices(): Promise<RolloutDevice[]> {
    const { rows } = await this.db().query<{ body: string }>(
      `SELECT d.body FROM rollout_devices d JOIN rollouts r ON r.id = d.rollout_id
       WHERE r.state <> ALL($1::text[]) ORDER BY d.rollout_id, d.ord, d.device_id`,
      [FINISHED_ROLLOUT_STATES],
    );
    return rows.map((r) => RolloutDevice.parse(JSON.parse(r.body)));
  }

  private async putDoc(table: string, id: string, doc: unknown): Promise<void> {
    await this.db().query(
      `INSERT INTO ${table} (id, body) VALUES ($1, $2::jsonb) ON CONFLICT (id) DO UPDATE SET body = excluded.body`,
      [id, JSON.stringify(doc)],
    );
  }

  private async deleteDoc(table: string, id: string): Promise<boolean> {
    const r = await this.db().query(`DELETE FROM ${table} WHERE id = $1`, [id]);
    return (r.rowCount ?? 0) > 0;
  }

  private async listDocs<T>(table: string): Promise<T[]> {
    const { rows } = await this.db().query<{ body: T }>(`SELECT body FROM ${table} ORDER BY id`);
    return rows.map((r) => r.body);
  }

  private db(): pg.Pool {
    if (!this.pool) throw new Error("PostgresStateStore: call migrate() first (or the store is closed)");
    return this.pool;
  }

  /** Runs `fn` in one transaction on one pooled client (rolled back if it throws). */
  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.db().connect();
    try {
      await c.query("BEGIN");
      const out = await fn(c);
      await c.query("COMMIT");
      return out;
    } catch (err) {
      await c.query("ROLLBACK").catch(() => {});
      throw err;
    } finally {
      c.release();
    }
  }
}

/** Builds a WHERE clause with numbered parameters. */
class Where {
  readonly params: unknown[] = [];
  private readonly parts: string[] = [];

  param(v: unknown): string {
    this.params.push(v);
    return `$${this.params.length}`;
  }
  add(cond: string): void {
    this.parts.push(cond);
  }
  eq(col: string, v: string | undefined): void {
    if (v !== undefined) this.add(`${col} = ${this.param(v)}`);
  }
  /** Site scope (undefined or containing `*` = every site). */
  scope(col: string, sites: string[] | undefined): void {
    if (sites === undefined || sites.includes("*")) return;
    this.add(`${col} = ANY(${this.param(sites)}::text[])`);
  }
  sql(): string {
    return this.parts.length === 0 ? "TRUE" : this.parts.join(" AND ");
  }
}

function deviceRow(s: DeviceState): Record<string, unknown> {
  const d = s.record;
  return {
    device_id: d.deviceId,
    site_id: d.siteId,
    agent_id: d.agentId,
    address: d.address,
    family: d.family,
    driver: d.driver,
    model: d.model ?? null,
    serial: d.serial ?? null,
    mac: d.mac ?? null,
    part_number: d.partNumber ?? null,
    system_name: d.systemName ?? null,
    software_version: d.softwareVersion ?? null,
    software_build: d.softwareBuild ?? null,
    firmware: d.firmware,
    health: d.health,
    peripherals: d.peripherals,
    lines: d.lines,
    reachable: d.reachable,
    cpu_pct: d.cpuPct ?? null,
    mem_pct: d.memPct ?? null,
    packet_loss_pct: d.packetLossPct ?? null,
    uptime_sec: d.uptimeSec ?? null,
    in_call: d.inCall ?? null,
    first_seen: d.firstSeen,
    last_seen: d.lastSeen,
    last_poll_latency_ms: d.lastPollLatencyMs ?? null,
    reading_ts: s.readingTs,
  };
}

function rowToAgent(r: AgentRow): AgentRecord {
  const a: AgentRecord = {
    agentId: r.agent_id,
    siteId: r.site_id,
    status: r.status,
    sessionId: r.session_id,
    capabilities: r.capabilities,
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
    firmware: r.firmware,
    health: r.health,
    peripherals: r.peripherals,
    lines: r.lines,
    reachable: r.reachable,
    tags: r.tags,
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
  if (r.in_call !== null) d.inCall = r.in_call;
  if (r.last_poll_latency_ms !== null) d.lastPollLatencyMs = r.last_poll_latency_ms;
  return d;
}
