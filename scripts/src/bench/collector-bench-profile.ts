import type { ProfileRow, ProfileSummary } from "./agent-bench-profile.js";

/**
 * The collector's ingest path in a CPU profile, stage by stage: inclusive time of the functions that start each
 * stage (matched loosely by name and file, so a renamed function shows as "not found" rather than a wrong
 * figure), as a share of the busy time and in µs per reading.
 */
interface Stage {
  name: string;
  /** Matched against the inclusive rows' names: `fn (origin:line)`. */
  match: RegExp;
  /** Subtract these stages' time (a stage that contains another). */
  minus?: string[];
}

const STAGES: Stage[] = [
  {
    name: "MQTT receive (mqtt.js packet parsing) up to the handler",
    match: /^writable\._write \(npm:mqtt:/,
    minus: ["ingest handle (topic, route, parse, validate, queue)"],
  },
  {
    name: "ingest handle (topic, route, parse, validate, queue)",
    match: /^handle \(collector:core\/ingestor\.js/,
  },
  {
    name: "  payload → text → JSON.parse",
    match: /^parseMessage \(shared:parse\.js/,
    minus: ["  schema validation (zod)"],
  },
  { name: "  schema validation (zod)", match: /^validate \(shared:parse\.js/ },
  { name: "store a flushed batch (everything below)", match: /^store \(collector:core\/ingestor\.js/ },
  {
    name: "  SQLite transaction (dedup, device rows, agent seq)",
    match: /^sqliteTransaction \(npm:better-sqlite3/,
  },
  {
    name: "  metrics write (line protocol, queue)",
    match: /^write \(collector:adapters\/influxdb\/influx-metrics-store/,
  },
  { name: "  ack publish", match: /^publishAck \(collector:app\.js/ },
  { name: "  alert engine onReading", match: /^onReading \(collector:core\/alerts\/engine/ },
  {
    name: "device state merge (applyReading, store + ingest)",
    match: /^applyReading \(collector:core\/device-state/,
  },
  { name: "InfluxDB sender (undici)", match: /^sendBatch \(collector:adapters\/influxdb/ },
];

export interface StageRow {
  name: string;
  /** Part of the stage above it. */
  sub: boolean;
  pct: number | null;
  usPerReading: number | null;
}

/**
 * Stage shares of `s` (summarised with enough rows, e.g. 1000) of the busy time, and in µs per reading given
 * the collector's CPU time per reading over the profiled run.
 */
export function ingestStages(s: ProfileSummary, cpuUsPerReading: number): StageRow[] {
  const find = (re: RegExp): ProfileRow | undefined => s.topInclusive.find((r) => re.test(r.name));
  const pctOf = new Map<string, number | null>();
  for (const st of STAGES) pctOf.set(st.name, find(st.match)?.pct ?? null);
  const gc = s.topSelf.find((r) => r.name === "(garbage collector)")?.pct ?? null;
  const rows: StageRow[] = STAGES.map((st) => {
    let pct = pctOf.get(st.name) ?? null;
    for (const m of st.minus ?? []) {
      const sub = pctOf.get(m);
      if (pct !== null && sub !== null && sub !== undefined) pct -= sub;
    }
    return { name: st.name.trim(), sub: st.name.startsWith(" "), pct, usPerReading: null };
  });
  rows.push({ name: "garbage collector (all stages)", sub: false, pct: gc, usPerReading: null });
  for (const r of rows) if (r.pct !== null) r.usPerReading = +((r.pct / 100) * cpuUsPerReading).toFixed(2);
  for (const r of rows) if (r.pct !== null) r.pct = +r.pct.toFixed(1);
  return rows;
}

export function formatStages(rows: StageRow[], cpuUsPerReading: number): string {
  return [
    `  ingest path by stage (inclusive, % of busy samples; µs of the ${cpuUsPerReading.toFixed(1)} CPU µs per reading over the run):`,
    ...rows.map((r) => {
      const name = `${r.sub ? "  " : ""}${r.name}`;
      return r.pct === null
        ? `      n/a            ${name} (not found in the profile)`
        : `    ${r.pct.toFixed(1).padStart(5)}%  ${String(r.usPerReading?.toFixed(2)).padStart(6)} µs  ${name}`;
    }),
  ].join("\n");
}
