/**
 * Per-agent dedup and ack-watermark bookkeeping (pure).
 *
 * Every message of an agent's stream (reading or event) carries the next sequence number. The collector
 * stores each seq once, and acks the highest seq `w` such that every seq 1..w is stored or was announced lost
 * by an `outbox.dropped` event (the agent deletes its outbox up to the ack). State kept per agent:
 * - `watermark`: every seq ≤ it is seen;
 * - `ahead`: seqs above the watermark already seen (a reorder window, bounded by `maxAhead`);
 * - `dropped`: announced-lost ranges reaching above the watermark.
 *
 * A seq more than `maxAhead` above the watermark is `deferred`: neither stored nor marked seen, so it is not
 * acked and the agent sends it again later. This bounds `ahead` to `maxAhead` entries whatever arrives.
 * A seq inside an announced-lost range that arrives after the announcement counts as a duplicate.
 */
export interface DedupState {
  watermark: number;
  ahead: Set<number>;
  /** Inclusive ranges, each with `to > watermark`. */
  dropped: Array<[from: number, to: number]>;
}

export type SeqVerdict = "new" | "duplicate" | "deferred";

/** Default reorder window: seqs further than this above the watermark are deferred. */
export const DEFAULT_MAX_AHEAD = 100_000;

export function emptyDedupState(watermark = 0): DedupState {
  return { watermark, ahead: new Set(), dropped: [] };
}

/** True when `seq` was already seen (stored, or inside an announced-lost range). */
export function isSeen(state: DedupState, seq: number): boolean {
  if (seq <= state.watermark || state.ahead.has(seq)) return true;
  for (const [a, b] of state.dropped) if (seq >= a && seq <= b) return true;
  return false;
}

/**
 * Records one received seq: `new` (store it; the watermark may advance), `duplicate` (already seen: do not
 * store again) or `deferred` (too far ahead: do not store, not marked seen).
 */
export function observeSeq(state: DedupState, seq: number, maxAhead = DEFAULT_MAX_AHEAD): SeqVerdict {
  if (isSeen(state, seq)) return "duplicate";
  if (seq > state.watermark + maxAhead) return "deferred";
  if (seq === state.watermark + 1) {
    state.watermark = seq;
    advance(state);
  } else {
    state.ahead.add(seq);
  }
  return "new";
}

/** Marks the announced-lost range `from..to` as seen (call after the `outbox.dropped` event itself was `new`). */
export function observeDropped(state: DedupState, from: number, to: number): void {
  const a = Math.max(from, state.watermark + 1);
  if (to < a) return;
  state.dropped.push([a, to]);
  advance(state);
}

/** Moves the watermark over contiguous seen seqs and ranges, and forgets what falls below it. */
function advance(state: DedupState): void {
  let jumped = false;
  for (;;) {
    const next = state.watermark + 1;
    if (state.ahead.delete(next)) {
      state.watermark = next;
      continue;
    }
    let to = -1;
    for (const [a, b] of state.dropped) if (next >= a && next <= b && b > to) to = b;
    if (to < 0) break;
    state.watermark = to;
    jumped = true;
  }
  if (state.dropped.length > 0) state.dropped = state.dropped.filter(([, b]) => b > state.watermark);
  if (jumped) for (const s of state.ahead) if (s <= state.watermark) state.ahead.delete(s);
}

/** Compact JSON form for storage: `{"w":12,"a":[14,15],"d":[[20,30]]}`. */
export function serializeDedupState(state: DedupState): string {
  if (state.ahead.size === 0 && state.dropped.length === 0) return `{"w":${state.watermark}}`;
  return JSON.stringify({ w: state.watermark, a: [...state.ahead], d: state.dropped });
}

/** Inverse of serializeDedupState; tolerates a missing or malformed value (returns an empty state). */
export function parseDedupState(text: string | null | undefined, fallbackWatermark = 0): DedupState {
  if (!text) return emptyDedupState(fallbackWatermark);
  const v = JSON.parse(text) as { w?: unknown; a?: unknown; d?: unknown };
  const w = typeof v.w === "number" ? v.w : fallbackWatermark;
  const ahead = new Set<number>();
  if (Array.isArray(v.a)) for (const s of v.a) if (typeof s === "number" && s > w) ahead.add(s);
  const dropped: Array<[number, number]> = [];
  if (Array.isArray(v.d)) {
    for (const r of v.d) {
      if (Array.isArray(r) && typeof r[0] === "number" && typeof r[1] === "number" && r[1] > w) {
        dropped.push([r[0], r[1]]);
      }
    }
  }
  return { watermark: w, ahead, dropped };
}

/** One message of a batch as the dedup sees it. */
export interface SeqItem {
  seq: number;
}

/**
 * Runs a batch through the dedup in seq order. `dropRange(item)` returns the announced-lost range of an
 * `outbox.dropped` event (else undefined). Returns the indices (into `items`) of the new items, in seq
 * order, and the number of duplicates. Mutates `state`.
 */
export function dedupBatch<T extends SeqItem>(
  state: DedupState,
  items: readonly T[],
  dropRange: (item: T) => [number, number] | undefined,
  maxAhead = DEFAULT_MAX_AHEAD,
): { fresh: T[]; duplicates: number } {
  let sorted = true;
  for (let i = 1; i < items.length; i++) {
    if ((items[i] as T).seq < (items[i - 1] as T).seq) {
      sorted = false;
      break;
    }
  }
  const ordered = sorted ? items : [...items].sort((x, y) => x.seq - y.seq);
  const fresh: T[] = [];
  let duplicates = 0;
  for (const it of ordered) {
    const v = observeSeq(state, it.seq, maxAhead);
    if (v === "duplicate") duplicates++;
    else if (v === "new") {
      fresh.push(it);
      const r = dropRange(it);
      if (r) observeDropped(state, r[0], r[1]);
    }
  }
  return { fresh, duplicates };
}
