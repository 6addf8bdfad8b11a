import type { Reading } from "@polyfleet/shared";

/**
 * InfluxDB 1.x line protocol, built by hand (pure). One reading becomes one point of the `device`
 * measurement:
 *
 *   device,agent=<agentId>,device=<deviceId>,family=<family>,model=<model>,site=<siteId> cpuPct=12.5,...,reachable=1 <ts ms>
 *
 * Tags are written in key order (what InfluxDB sorts them into anyway); every numeric field is a float,
 * `reachable` is the float 0/1 so `mean(reachable)` is the availability of a bucket. Absent, NaN and
 * infinite values are left out (the protocol has no representation for them). Timestamps are epoch
 * milliseconds: write with `precision=ms`.
 */

/** The measurement every reading is written to. */
export const DEVICE_MEASUREMENT = "device";

/** The numeric fields a reading yields, in the order they are written; the fields a series query may name. */
export const METRIC_FIELDS = [
  "cpuPct",
  "memPct",
  "pollLatencyMs",
  "reachable",
  "uptimeSec",
  "rxPacketsPerSec",
  "txPacketsPerSec",
  "rxBytesPerSec",
  "txBytesPerSec",
  "packetLossPct",
] as const;
export type MetricField = (typeof METRIC_FIELDS)[number];

const METRIC_FIELD_SET: ReadonlySet<string> = new Set(METRIC_FIELDS);

export function isMetricField(name: string): name is MetricField {
  return METRIC_FIELD_SET.has(name);
}

/** A field value: numbers are floats, booleans `true`/`false`, strings double-quoted. */
export type FieldValue = number | boolean | string;

/**
 * The values of a reading's metric fields, in METRIC_FIELDS order; `undefined` where the reading has none
 * (or a non-finite number). Shared by the line-protocol encoder and the in-memory store.
 */
export function readingMetricValues(r: Reading): (number | undefined)[] {
  const n = r.network;
  return [
    finite(r.cpuPct),
    finite(r.memPct),
    finite(r.pollLatencyMs),
    r.reachable ? 1 : 0,
    finite(r.uptimeSec),
    finite(n.rxPacketsPerSec),
    finite(n.txPacketsPerSec),
    finite(n.rxBytesPerSec),
    finite(n.txBytesPerSec),
    finite(n.packetLossPct),
  ];
}

function finite(v: number | undefined): number | undefined {
  return v !== undefined && Number.isFinite(v) ? v : undefined;
}

// Characters that need work in tag keys/values: the three escaped ones, the backslash (see below) and line
// breaks (the protocol cannot carry them anywhere).
const TAG_SPECIAL = /[,= \\\n\r]/;
const MEASUREMENT_SPECIAL = /[, \\\n\r]/;
const FIELD_KEY_SPECIAL = TAG_SPECIAL;

/**
 * Escapes a tag key, tag value or field key: `,`, `=` and space get a backslash; line breaks (which the
 * protocol cannot carry) become escaped spaces. InfluxDB 1.x reads a backslash as "skip the next character"
 * and then unescapes only `\,` `\=` `\ ` `\"`, so a backslash followed by another character survives
 * as is, but one that ends the text or precedes `,` `=` space, a line break or `"` cannot be expressed:
 * that backslash is written as `/`.
 */
export function escapeTag(s: string): string {
  return TAG_SPECIAL.test(s) ? escapeWith(s, true) : s;
}

/** Escapes a measurement name: like escapeTag, except that `=` is literal there. */
export function escapeMeasurement(s: string): string {
  return MEASUREMENT_SPECIAL.test(s) ? escapeWith(s, false) : s;
}

function escapeWith(s: string, escapeEquals: boolean): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "," || c === " " || (c === "=" && escapeEquals)) out += `\\${c}`;
    else if (c === "\n" || c === "\r") out += "\\ ";
    else if (c === "\\") out += unsafeAfterBackslash(s[i + 1]) ? "/" : "\\";
    else out += c;
  }
  return out;
}

/** True when a backslash in front of `next` would merge with an escape (or end the text). */
function unsafeAfterBackslash(next: string | undefined): boolean {
  return (
    next === undefined ||
    next === "," ||
    next === "=" ||
    next === " " ||
    next === "\n" ||
    next === "\r" ||
    next === '"'
  );
}

/** Escapes a field key (same rules as tag keys). */
export function escapeFieldKey(s: string): string {
  return FIELD_KEY_SPECIAL.test(s) ? escapeTag(s) : s;
}

/**
 * A string field value, quoted: `"` and `\` get a backslash (InfluxDB unescapes both inside string
 * fields). Line breaks are legal inside a quoted string.
 */
export function quoteStringField(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '"' || c === "\\") out += "\\";
    out += c;
  }
  return `${out}"`;
}

/**
 * A number as a line-protocol float. `String()` gives the shortest round-tripping form; InfluxDB parses
 * its exponent notation (`1e+21`, `5e-324`). Callers must leave out non-finite numbers.
 */
function formatFloat(v: number): string {
  return String(v);
}

/**
 * One point. Tags with an empty key or value and the key `time` are left out (InfluxDB refuses them), as are
 * fields named `time` or whose value is a non-finite number. Returns `undefined` when no field is left (a
 * point needs one) or the measurement is empty or starts with `#`. `tsMs` is truncated to an integer.
 */
export function encodePoint(
  measurement: string,
  tags: Readonly<Record<string, string | undefined>>,
  fields: Readonly<Record<string, FieldValue | undefined>>,
  tsMs: number,
): string | undefined {
  // An empty measurement is invalid and a leading `#` makes the line a comment.
  if (measurement === "" || measurement.startsWith("#")) return undefined;
  let line = escapeMeasurement(measurement);
  for (const key of Object.keys(tags).sort()) {
    const value = tags[key];
    if (key === "" || key === "time" || value === undefined || value === "") continue;
    line += `,${escapeTag(key)}=${escapeTag(value)}`;
  }
  let sep = " ";
  let any = false;
  for (const key of Object.keys(fields)) {
    const v = fields[key];
    if (key === "" || key === "time" || v === undefined) continue;
    let text: string;
    if (typeof v === "number") {
      if (!Number.isFinite(v)) continue;
      text = formatFloat(v);
    } else if (typeof v === "boolean") text = v ? "true" : "false";
    else text = quoteStringField(v);
    line += `${sep}${escapeFieldKey(key)}=${text}`;
    sep = ",";
    any = true;
  }
  if (!any) return undefined;
  return `${line} ${Math.trunc(tsMs)}`;
}

/**
 * The measurement and tag set of a reading's point (`device,agent=…,device=…,family=…[,model=…],site=…`):
 * the part that repeats for every reading of a device, so writers may cache it per device.
 */
export function readingSeriesKey(r: Reading): string {
  const model = r.identity.model;
  const modelTag = model === undefined || model === "" ? "" : `,model=${escapeTag(model)}`;
  return `${DEVICE_MEASUREMENT},agent=${escapeTag(r.agentId)},device=${escapeTag(r.deviceId)},family=${escapeTag(r.identity.family)}${modelTag},site=${escapeTag(r.siteId)}`;
}

/** The field set of a reading's point (`cpuPct=…,…,reachable=1,…`); never empty (`reachable` is always there). */
export function readingFieldSet(r: Reading): string {
  // Hot path (every reading): straight-line concatenation, no intermediate arrays.
  const n = r.network;
  let f = "";
  let v: number | undefined = r.cpuPct;
  if (v !== undefined && Number.isFinite(v)) f += `,cpuPct=${v}`;
  v = r.memPct;
  if (v !== undefined && Number.isFinite(v)) f += `,memPct=${v}`;
  v = r.pollLatencyMs;
  if (Number.isFinite(v)) f += `,pollLatencyMs=${v}`;
  f += r.reachable ? ",reachable=1" : ",reachable=0";
  v = r.uptimeSec;
  if (v !== undefined && Number.isFinite(v)) f += `,uptimeSec=${v}`;
  v = n.rxPacketsPerSec;
  if (v !== undefined && Number.isFinite(v)) f += `,rxPacketsPerSec=${v}`;
  v = n.txPacketsPerSec;
  if (v !== undefined && Number.isFinite(v)) f += `,txPacketsPerSec=${v}`;
  v = n.rxBytesPerSec;
  if (v !== undefined && Number.isFinite(v)) f += `,rxBytesPerSec=${v}`;
  v = n.txBytesPerSec;
  if (v !== undefined && Number.isFinite(v)) f += `,txBytesPerSec=${v}`;
  v = n.packetLossPct;
  if (v !== undefined && Number.isFinite(v)) f += `,packetLossPct=${v}`;
  return f.slice(1);
}

/**
 * One reading as one line of the `device` measurement (no trailing newline). Tags: agent, device, family,
 * model (when known), site. Always has at least the `reachable` field.
 */
export function encodeReading(r: Reading): string {
  return `${readingSeriesKey(r)} ${readingFieldSet(r)} ${Math.trunc(r.ts)}`;
}

/** encodeReading with the series key already computed (readingSeriesKey of a reading with the same tags). */
export function encodeReadingWithKey(r: Reading, seriesKey: string): string {
  return `${seriesKey} ${readingFieldSet(r)} ${Math.trunc(r.ts)}`;
}

/** Several readings as one write body (newline-separated). */
export function encodeReadings(readings: readonly Reading[]): string {
  let body = "";
  for (let i = 0; i < readings.length; i++) {
    const r = readings[i];
    if (r === undefined) continue;
    body += i === 0 ? encodeReading(r) : `\n${encodeReading(r)}`;
  }
  return body;
}
