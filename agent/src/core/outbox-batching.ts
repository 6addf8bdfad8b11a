/**
 * Pure helpers of the lossless publishing path: how outbox entries become MQTT messages, and how many of
 * the oldest entries a full outbox drops. No I/O: the outbox (SQLite) and the link (mqtt.js) call these.
 */

/** One stored outbox entry as the pump reads it: the full message JSON, never re-parsed. */
export interface OutboxEntry {
  seq: number;
  kind: "reading" | "event";
  /** The complete message (stream header included) as JSON text. */
  json: string;
}

/** One MQTT message to publish: a run of consecutive entries of one topic. */
export interface PublishUnit {
  topic: "telemetry" | "events";
  firstSeq: number;
  lastSeq: number;
  /** Number of entries carried (a batch's items). */
  count: number;
  payload: string;
}

/** The constant head of a `ReadingBatch` for one agent: `{"v":1,"kind":"batch",...,"items":[`. */
export function batchPrefix(agentId: string, siteId: string): string {
  return `{"v":1,"kind":"batch","agentId":${JSON.stringify(agentId)},"siteId":${JSON.stringify(siteId)},"items":[`;
}

/**
 * Groups entries (in seq order) into publish units: consecutive readings go into one `ReadingBatch` of at
 * most `batchSize` items (a lone reading is sent as a plain `Reading`), each event is its own message. The
 * batch JSON is built by concatenating the stored texts: no entry is parsed or serialised again.
 */
export function planPublishUnits(
  entries: readonly OutboxEntry[],
  batchSize: number,
  prefix: string,
): PublishUnit[] {
  const units: PublishUnit[] = [];
  const max = Math.max(1, Math.floor(batchSize));
  let run: OutboxEntry[] = [];
  const flush = (): void => {
    const first = run[0];
    const last = run[run.length - 1];
    if (!first || !last) return;
    const payload = run.length === 1 ? first.json : `${prefix}${run.map((e) => e.json).join(",")}]}`;
    units.push({ topic: "telemetry", firstSeq: first.seq, lastSeq: last.seq, count: run.length, payload });
    run = [];
  };
  for (const e of entries) {
    if (e.kind === "event") {
      flush();
      units.push({ topic: "events", firstSeq: e.seq, lastSeq: e.seq, count: 1, payload: e.json });
      continue;
    }
    run.push(e);
    if (run.length >= max) flush();
  }
  flush();
  return units;
}

/**
 * How many of the oldest entries to drop before appending `incoming` entries (plus the one
 * `outbox.dropped` event the drop itself appends) into an outbox holding `depth` of `maxEntries`.
 * Drops at least `chunk` at a time so a full outbox under steady load emits one drop event per chunk, not
 * one per append. Returns 0 when everything fits.
 */
export function overflowDropCount(
  depth: number,
  incoming: number,
  maxEntries: number,
  chunk: number,
): number {
  if (depth + incoming <= maxEntries) return 0;
  // Room for the incoming entries and the drop event itself.
  const needed = depth + incoming + 1 - maxEntries;
  return Math.min(depth, Math.max(needed, Math.max(1, Math.floor(chunk))));
}

/** The default drop chunk: 1% of the capacity, at least 1. */
export function defaultDropChunk(maxEntries: number): number {
  return Math.max(1, Math.floor(maxEntries / 100));
}
