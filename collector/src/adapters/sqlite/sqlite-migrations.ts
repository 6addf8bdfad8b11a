/** One versioned schema change. Versions are applied in order, each in its own transaction, and recorded. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * The SQLite schema, as versioned migrations (recorded in `schema_migrations`). Never edit an applied
 * migration: append a new one.
 */
export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "initial",
    sql: `
CREATE TABLE agents (
  agent_id TEXT PRIMARY KEY,
  site_id TEXT NOT NULL,
  status TEXT NOT NULL,
  session_id TEXT NOT NULL,
  version TEXT,
  capabilities TEXT NOT NULL,
  protocol_version INTEGER,
  hostname TEXT,
  since INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  acked_seq INTEGER NOT NULL DEFAULT 0,
  dedup TEXT
);
CREATE INDEX agents_site ON agents (site_id);

CREATE TABLE devices (
  device_id TEXT PRIMARY KEY,
  site_id TEXT NOT NULL,
  agent_id TEXT NOT NULL,
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
  firmware TEXT NOT NULL,
  health TEXT NOT NULL,
  peripherals TEXT NOT NULL,
  lines TEXT NOT NULL,
  reachable INTEGER NOT NULL,
  cpu_pct REAL,
  mem_pct REAL,
  packet_loss_pct REAL,
  uptime_sec REAL,
  in_call INTEGER,
  tags TEXT NOT NULL DEFAULT '[]',
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  last_poll_latency_ms REAL,
  reading_ts INTEGER NOT NULL
);
CREATE INDEX devices_site ON devices (site_id, device_id);
CREATE INDEX devices_agent ON devices (agent_id, device_id);

CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  agent_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,
  device_id TEXT,
  ts INTEGER NOT NULL,
  body TEXT NOT NULL
);
CREATE INDEX events_agent ON events (agent_id, id);

CREATE TABLE alerts (
  id TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  severity TEXT NOT NULL,
  site_id TEXT,
  device_id TEXT,
  updated_at INTEGER NOT NULL,
  body TEXT NOT NULL
);
CREATE INDEX alerts_state ON alerts (state, updated_at);

CREATE TABLE alert_history (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  alert_id TEXT NOT NULL,
  body TEXT NOT NULL
);
CREATE INDEX alert_history_alert ON alert_history (alert_id, id);

CREATE TABLE silences (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE maintenance_windows (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE api_tokens (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, body TEXT NOT NULL);
`,
  },
  {
    version: 2,
    name: "rollouts",
    sql: `
CREATE TABLE rollouts (
  id TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  body TEXT NOT NULL
);
CREATE INDEX rollouts_created ON rollouts (created_at DESC, id);
CREATE INDEX rollouts_state ON rollouts (state, created_at DESC, id);

CREATE TABLE rollout_devices (
  rollout_id TEXT NOT NULL REFERENCES rollouts (id),
  device_id TEXT NOT NULL,
  wave INTEGER NOT NULL,
  ord INTEGER NOT NULL,
  state TEXT NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY (rollout_id, device_id)
);
CREATE INDEX rollout_devices_order ON rollout_devices (rollout_id, ord, device_id);
`,
  },
];
