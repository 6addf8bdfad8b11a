/** One versioned schema change. Versions are applied in order and recorded in `schema_migrations`. */
export interface PgMigration {
  version: number;
  name: string;
  sql: string;
}

/**
 * The PostgreSQL schema, as versioned migrations. Never edit an applied migration: append a new one. Keys
 * that are sorted on use the "C" collation so the order (and cursor pagination) is byte order on every
 * server, the same as SQLite and the memory store.
 */
export const PG_MIGRATIONS: readonly PgMigration[] = [
  {
    version: 1,
    name: "initial",
    sql: `
CREATE TABLE agents (
  agent_id TEXT COLLATE "C" PRIMARY KEY,
  site_id TEXT COLLATE "C" NOT NULL,
  status TEXT NOT NULL,
  session_id TEXT NOT NULL,
  version TEXT,
  capabilities JSONB NOT NULL,
  protocol_version INTEGER,
  hostname TEXT,
  since BIGINT NOT NULL,
  last_seen BIGINT NOT NULL,
  acked_seq BIGINT NOT NULL DEFAULT 0,
  dedup TEXT
);
CREATE INDEX agents_site ON agents (site_id);

CREATE TABLE devices (
  device_id TEXT COLLATE "C" PRIMARY KEY,
  site_id TEXT COLLATE "C" NOT NULL,
  agent_id TEXT COLLATE "C" NOT NULL,
  address TEXT NOT NULL,
  family TEXT NOT NULL,
  driver TEXT NOT NULL,
  model TEXT,
  serial TEXT,
  mac TEXT,
  part_number TEXT,
  system_name TEXT,
  software_version TEXT,
  software_build TEXT,
  firmware JSONB NOT NULL,
  health JSONB NOT NULL,
  peripherals JSONB NOT NULL,
  lines JSONB NOT NULL,
  reachable BOOLEAN NOT NULL,
  cpu_pct DOUBLE PRECISION,
  mem_pct DOUBLE PRECISION,
  packet_loss_pct DOUBLE PRECISION,
  uptime_sec DOUBLE PRECISION,
  in_call BOOLEAN,
  tags JSONB NOT NULL DEFAULT '[]'::jsonb,
  first_seen BIGINT NOT NULL,
  last_seen BIGINT NOT NULL,
  last_poll_latency_ms DOUBLE PRECISION,
  reading_ts BIGINT NOT NULL
);
CREATE INDEX devices_site ON devices (site_id, device_id);
CREATE INDEX devices_agent ON devices (agent_id, device_id);
CREATE INDEX devices_tags ON devices USING GIN (tags);

CREATE TABLE events (
  id BIGSERIAL PRIMARY KEY,
  agent_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  type TEXT NOT NULL,
  device_id TEXT,
  ts BIGINT NOT NULL,
  body JSONB NOT NULL
);
CREATE INDEX events_agent ON events (agent_id, id);

CREATE TABLE alerts (
  id TEXT COLLATE "C" PRIMARY KEY,
  state TEXT NOT NULL,
  severity TEXT NOT NULL,
  site_id TEXT,
  device_id TEXT,
  updated_at BIGINT NOT NULL,
  body JSONB NOT NULL
);
CREATE INDEX alerts_state ON alerts (state, updated_at);

CREATE TABLE alert_history (
  id BIGSERIAL PRIMARY KEY,
  alert_id TEXT NOT NULL,
  body JSONB NOT NULL
);
CREATE INDEX alert_history_alert ON alert_history (alert_id, id);

CREATE TABLE silences (id TEXT COLLATE "C" PRIMARY KEY, body JSONB NOT NULL);
CREATE TABLE maintenance_windows (id TEXT COLLATE "C" PRIMARY KEY, body JSONB NOT NULL);
CREATE TABLE api_tokens (id TEXT COLLATE "C" PRIMARY KEY, hash TEXT NOT NULL UNIQUE, body JSONB NOT NULL);
`,
  },
  {
    version: 2,
    name: "rollouts",
    // Bodies are the JSON text (not JSONB): read back byte for byte, and JSON's "\u0000" escape, which JSONB
    // refuses, stays storable.
    sql: `
CREATE TABLE rollouts (
  id TEXT COLLATE "C" PRIMARY KEY,
  state TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  body TEXT NOT NULL
);
CREATE INDEX rollouts_created ON rollouts (created_at DESC, id);
CREATE INDEX rollouts_state ON rollouts (state, created_at DESC, id);

CREATE TABLE rollout_devices (
  rollout_id TEXT COLLATE "C" NOT NULL REFERENCES rollouts (id),
  device_id TEXT COLLATE "C" NOT NULL,
  wave BIGINT NOT NULL,
  ord BIGINT NOT NULL,
  state TEXT NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY (rollout_id, device_id)
);
CREATE INDEX rollout_devices_order ON rollout_devices (rollout_id, ord, device_id);
`,
  },
];
