import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  dedupBatch,
  emptyDedupState,
  isSeen,
  observeDropped,
  observeSeq,
  parseDedupState,
  serializeDedupState,
} from "../../src/core/ingest-dedup.js";

/** One message of a stream: a seq, or an announcement that `from..to` was dropped (itself carrying `seq`). */
type Msg = { seq: number; drop?: [number, number] };

/** The reference model: a plain set of seen seqs. */
function model(msgs: Msg[], maxAhead: number) {
  const seen = new Set<number>();
  let dups = 0;
  let deferred = 0;
  const wm = () => {
    let w = 0;
    while (seen.has(w + 1)) w++;
    return w;
  };
  for (const m of msgs) {
    if (seen.has(m.seq)) {
      dups++;
      continue;
    }
    if (m.seq > wm() + maxAhead) {
      deferred++;
      continue;
    }
    seen.add(m.seq);
    if (m.drop) for (let s = m.drop[0]; s <= m.drop[1]; s++) seen.add(s);
  }
  return { watermark: wm(), dups, deferred, seen };
}

/** A stream 1..n where some runs were dropped (announced by a later message), delivered shuffled and duplicated. */
const streamArb = fc
  .record({
    n: fc.integer({ min: 1, max: 120 }),
    drops: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 10 })), { maxLength: 4 }),
    dupIdx: fc.array(fc.nat(), { maxLength: 60 }),
    keys: fc.array(fc.nat(), { maxLength: 200 }),
    omitIdx: fc.array(fc.nat(), { maxLength: 5 }),
  })
  .map(({ n, drops, dupIdx, keys, omitIdx }) => {
    const msgs: Msg[] = [];
    const droppedSeqs = new Set<number>();
    for (let s = 1; s <= n; s++) msgs.push({ seq: s });
    // A drop announcement replaces message `at` and covers the run just before it.
    for (const [at0, len] of drops) {
      const at = (at0 % n) + 1;
      const from = Math.max(1, at - len);
      if (at - 1 < from) continue;
      const m = msgs[at - 1];
      if (m && !m.drop && !droppedSeqs.has(at)) {
        m.drop = [from, at - 1];
        for (let s = from; s < at; s++) droppedSeqs.add(s);
      }
    }
    // Dropped seqs are (mostly) never delivered.
    let delivered = msgs.filter((m) => !droppedSeqs.has(m.seq));
    for (const d of dupIdx) {
      const m = delivered[d % delivered.length];
      if (m) delivered.push({ ...m });
    }
    const omit = new Set(omitIdx.map((i) => (i % n) + 1));
    delivered = delivered.filter((m) => !omit.has(m.seq));
    const order = delivered.map((m, i) => ({ m, k: keys[i] ?? i })).sort((a, b) => a.k - b.k);
    return order.map((x) => x.m);
  });

describe("ingest dedup", () => {
  it("watermark = the true contiguous prefix, duplicates counted exactly, for any order and duplication", () => {
    fc.assert(
      fc.property(streamArb, fc.integer({ min: 1, max: 300 }), (msgs, maxAhead) => {
        const st = emptyDedupState();
        let dups = 0;
        let deferred = 0;
        for (const m of msgs) {
          const v = observeSeq(st, m.seq, maxAhead);
          if (v === "duplicate") dups++;
          else if (v === "deferred") deferred++;
          else if (m.drop) observeDropped(st, m.drop[0], m.drop[1]);
          if (st.ahead.size > maxAhead) throw new Error(`ahead ${st.ahead.size} > ${maxAhead}`);
        }
        const ref = model(msgs, maxAhead);
        expect(st.watermark).toBe(ref.watermark);
        expect(dups).toBe(ref.dups);
        expect(deferred).toBe(ref.deferred);
        for (const s of st.ahead) if (s <= st.watermark) throw new Error(`${s} kept below the watermark`);
        for (const s of ref.seen) if (!isSeen(st, s)) throw new Error(`${s} forgotten`);
        // The state survives serialisation (what the SQL stores persist).
        const back = parseDedupState(serializeDedupState(st));
        expect(back.watermark).toBe(st.watermark);
        expect([...back.ahead].sort((a, b) => a - b)).toEqual([...st.ahead].sort((a, b) => a - b));
        for (const s of ref.seen) if (!isSeen(back, s)) throw new Error(`${s} forgotten after parse`);
      }),
      { numRuns: 500 },
    );
  });

  it("batches in any split give the same result as one message at a time", () => {
    fc.assert(
      fc.property(streamArb, fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1 }), (msgs, cuts) => {
        const st = emptyDedupState();
        let dups = 0;
        let stored = 0;
        let i = 0;
        let c = 0;
        while (i < msgs.length) {
          const size = cuts[c++ % cuts.length] ?? 1;
          const r = dedupBatch(st, msgs.slice(i, i + size), (m) => m.drop);
          dups += r.duplicates;
          stored += r.fresh.length;
          i += size;
        }
        const ref = model(msgs, Number.MAX_SAFE_INTEGER);
        expect(st.watermark).toBe(ref.watermark);
        expect(dups).toBe(ref.dups);
        expect(stored).toBe(msgs.length - ref.dups);
      }),
      { numRuns: 300 },
    );
  });

  it("examples: gaps, dropped ranges, late copies, deferral", () => {
    const st = emptyDedupState();
    expect(observeSeq(st, 1)).toBe("new");
    expect(observeSeq(st, 3)).toBe("new");
    expect(st.watermark).toBe(1);
    expect(observeSeq(st, 3)).toBe("duplicate");
    expect(observeSeq(st, 2)).toBe("new");
    expect(st.watermark).toBe(3);
    expect(st.ahead.size).toBe(0);
    // seq 10 announces 4..9 dropped.
    expect(observeSeq(st, 10)).toBe("new");
    observeDropped(st, 4, 9);
    expect(st.watermark).toBe(10);
    expect(observeSeq(st, 5)).toBe("duplicate");
    // Too far ahead: deferred, not marked seen.
    expect(observeSeq(st, 100, 50)).toBe("deferred");
    expect(isSeen(st, 100)).toBe(false);
    expect(observeSeq(st, 60, 50)).toBe("new");
    expect(serializeDedupState(st)).toBe('{"w":10,"a":[60],"d":[]}');
    expect(parseDedupState(null, 7).watermark).toBe(7);
  });
});
