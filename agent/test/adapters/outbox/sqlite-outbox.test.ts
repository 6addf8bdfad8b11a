import { AgentEvent, PolyfleetError, Reading, validate } from "@polyfleet/shared";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import type { SqliteOutbox } from "../../../src/adapters/outbox/sqlite-outbox.js";
import { fixedClock, makeOutbox, readingBody, tempDir } from "./outbox-helpers.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function openOutbox(over: Parameters<typeof makeOutbox>[1] = {}) {
  const t = await tempDir("outbox");
  cleanups.push(t.cleanup);
  const made = makeOutbox(t.dir, over);
  made.outbox.open();
  cleanups.push(() => made.outbox.close());
  return { ...made, dir: t.dir };
}

function all(outbox: SqliteOutbox) {
  return outbox.pending(0, 1_000_000);
}

describe("SqliteOutbox", () => {
  it("assigns consecutive seqs and stores full messages that pass the shared schemas", async () => {
    const clock = fixedClock(1_700_000_000_123);
    const { outbox, metrics } = await openOutbox({ clock });
    expect(outbox.appendReading(readingBody(1))).toBe(1);
    clock.t += 5;
    expect(
      outbox.appendEvent({
        type: "device.reachability",
        deviceId: "dev-1",
        reachable: false,
        missedPolls: 3,
      }),
    ).toBe(2);
    expect(
      outbox.appendMany([
        { kind: "reading", body: readingBody(2) },
        { kind: "reading", body: readingBody(3) },
      ]),
    ).toEqual([3, 4]);
    const entries = all(outbox);
    expect(entries.map((e) => [e.seq, e.kind])).toEqual([
      [1, "reading"],
      [2, "event"],
      [3, "reading"],
      [4, "reading"],
    ]);
    const first = validate(Reading, JSON.parse(entries[0]!.json));
    expect(first.ok).toBe(true);
    if (first.ok) {
      expect(first.value).toMatchObject({
        v: 1,
        agentId: "agent-1",
        siteId: "site-1",
        seq: 1,
        ts: 1_700_000_000_123,
        kind: "reading",
      });
      expect(first.value.deviceId).toBe("dev-1");
    }
    const ev = validate(AgentEvent, JSON.parse(entries[1]!.json));
    expect(ev.ok && ev.value.seq === 2 && ev.value.ts === 1_700_000_000_128).toBe(true);
    for (const e of entries.slice(2)) expect(validate(Reading, JSON.parse(e.json)).ok).toBe(true);
    expect(outbox.depth()).toBe(4);
    expect(metrics.get("polyfleet_agent_outbox_depth")).toBe(4);
    expect(outbox.pending(1, 2).map((e) => e.seq)).toEqual([2, 3]);
  });

  it("a body can never override the stream header", async () => {
    const { outbox } = await openOutbox();
    const sneaky = { ...readingBody(1), seq: 999, agentId: "other", kind: "batch" } as unknown as ReturnType<
      typeof readingBody
    >;
    outbox.appendReading(sneaky);
    const msg = JSON.parse(all(outbox)[0]!.json);
    expect([msg.seq, msg.agentId, msg.kind]).toEqual([1, "agent-1", "reading"]);
  });

  it("keeps seqs monotonic across reopen, even after every entry was acked", async () => {
    const { outbox, dir } = await openOutbox();
    for (let i = 0; i < 5; i++) outbox.appendReading(readingBody(i));
    expect(outbox.ack(5)).toBe(5);
    expect(outbox.depth()).toBe(0);
    outbox.close();
    const again = makeOutbox(dir).outbox;
    again.open();
    cleanups.push(() => again.close());
    expect([again.lastSeq(), again.ackedSeq(), again.depth()]).toEqual([5, 5, 0]);
    expect(again.appendReading(readingBody(9))).toBe(6);
    again.close();
    const third = makeOutbox(dir).outbox;
    third.open();
    cleanups.push(() => third.close());
    expect(third.lastSeq()).toBe(6);
    expect(all(third).map((e) => e.seq)).toEqual([6]);
  });

  it("ack deletes everything up to seq, is idempotent, and ignores an ack above lastSeq with a warning", async () => {
    const { outbox, lines } = await openOutbox();
    for (let i = 0; i < 10; i++) outbox.appendReading(readingBody(i));
    expect(outbox.ack(4)).toBe(4);
    expect(outbox.ack(4)).toBe(0);
    expect(outbox.ack(2)).toBe(0);
    expect(outbox.ackedSeq()).toBe(4);
    expect(all(outbox).map((e) => e.seq)).toEqual([5, 6, 7, 8, 9, 10]);
    expect(outbox.ack(11)).toBe(0);
    expect(outbox.ackedSeq()).toBe(4);
    expect(lines.some((l) => l.level === 40 && String(l.msg).includes("above the last sequence"))).toBe(true);
    expect(outbox.ack(10)).toBe(6);
    expect(outbox.depth()).toBe(0);
  });

  it("when full drops the oldest entries first, counts them exactly and appends an outbox.dropped event", async () => {
    const { outbox, metrics, dir } = await openOutbox({ maxEntries: 10, dropChunk: 3 });
    for (let i = 0; i < 10; i++) outbox.appendReading(readingBody(i));
    expect(outbox.depth()).toBe(10);
    // The 11th append makes room for itself and the drop event: 3 oldest go (chunk), event seq 11, entry 12.
    expect(outbox.appendReading(readingBody(10))).toBe(12);
    const entries = all(outbox);
    expect(entries.map((e) => e.seq)).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const ev = validate(AgentEvent, JSON.parse(entries.find((e) => e.seq === 11)!.json));
    expect(ev.ok).toBe(true);
    if (ev.ok)
      expect(ev.value).toMatchObject({
        type: "outbox.dropped",
        fromSeq: 1,
        toSeq: 3,
        dropped: 3,
        totalDropped: 3,
      });
    expect(metrics.get("polyfleet_agent_outbox_dropped_total")).toBe(3);
    expect(outbox.droppedTotal()).toBe(3);
    // Partly acked, then overflow again: the persistent total keeps counting across reopen.
    outbox.ack(5);
    for (let i = 0; i < 4; i++) outbox.appendReading(readingBody(i));
    // 7 left after the ack + 4 = 11 > 10: a second drop of 3 (6..8).
    expect(outbox.droppedTotal()).toBe(6);
    expect(all(outbox)[0]!.seq).toBe(9);
    outbox.close();
    const again = makeOutbox(dir, { maxEntries: 10, dropChunk: 3 });
    again.outbox.open();
    cleanups.push(() => again.outbox.close());
    expect(again.outbox.droppedTotal()).toBe(6);
    for (let i = 0; i < 3; i++) again.outbox.appendReading(readingBody(i));
    const drops = all(again.outbox)
      .filter((e) => e.kind === "event")
      .map((e) => JSON.parse(e.json))
      .filter((e) => e.type === "outbox.dropped");
    const last = drops[drops.length - 1];
    expect(last.totalDropped).toBe(again.outbox.droppedTotal());
    expect(last.totalDropped).toBe(6 + last.dropped);
    expect(again.metrics.get("polyfleet_agent_outbox_dropped_total")).toBe(last.dropped);
    expect(again.outbox.depth()).toBeLessThanOrEqual(10);
  });

  it("a transaction stores all or nothing", async () => {
    const { outbox } = await openOutbox();
    outbox.appendReading(readingBody(0));
    expect(() =>
      outbox.transaction(() => {
        outbox.appendReading(readingBody(1));
        outbox.appendReading(readingBody(2));
        throw new Error("boom");
      }),
    ).toThrow("boom");
    expect([outbox.depth(), outbox.lastSeq()]).toEqual([1, 1]);
    expect(outbox.appendReading(readingBody(3))).toBe(2);
    expect(all(outbox).map((e) => e.seq)).toEqual([1, 2]);
  });

  it("refuses a second process-level opener and an outbox of another agent", async () => {
    const { dir } = await openOutbox();
    const second = makeOutbox(dir).outbox;
    const err = (() => {
      try {
        second.open();
        second.appendReading(readingBody(1));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    second.close();
    expect(err).toBeInstanceOf(PolyfleetError);
    expect((err as PolyfleetError).code).toBe("POLYFLEET_ERR_OUTBOX_UNAVAILABLE");

    const t = await tempDir("outbox-owner");
    cleanups.push(t.cleanup);
    const a = makeOutbox(t.dir).outbox;
    a.open();
    a.close();
    const b = makeOutbox(t.dir, { agentId: "agent-2" }).outbox;
    expect(() => b.open()).toThrow(/belongs to agent site-1\/agent-1/);
  });

  it("notifies append listeners (the publisher's wake-up)", async () => {
    const { outbox } = await openOutbox();
    let calls = 0;
    const off = outbox.onAppend(() => calls++);
    outbox.appendReading(readingBody(1));
    outbox.appendReading(readingBody(2));
    off();
    outbox.appendReading(readingBody(3));
    expect(calls).toBe(2);
  });
});

type Op =
  | { op: "reading" }
  | { op: "event" }
  | { op: "many"; n: number }
  | { op: "ack"; back: number }
  | { op: "ackAbove" }
  | { op: "reopen" };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.constant({ op: "reading" as const }) },
  { weight: 2, arbitrary: fc.constant({ op: "event" as const }) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 8 }).map((n) => ({ op: "many" as const, n })) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 12 }).map((back) => ({ op: "ack" as const, back })) },
  { weight: 1, arbitrary: fc.constant({ op: "ackAbove" as const }) },
  { weight: 1, arbitrary: fc.constant({ op: "reopen" as const }) },
);

describe("SqliteOutbox invariants (property)", () => {
  it("every assigned seq is exactly one of pending, acked or counted dropped; pending is strictly increasing", async () => {
    const t = await tempDir("outbox-prop");
    cleanups.push(t.cleanup);
    let run = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 12 }),
        fc.integer({ min: 1, max: 5 }),
        fc.array(opArb, { minLength: 1, maxLength: 60 }),
        (maxEntries, dropChunk, ops) => {
          const dir = `${t.dir}/run-${run++}`;
          let made = makeOutbox(dir, { maxEntries, dropChunk });
          made.outbox.open();
          const acked = new Set<number>();
          const dropped = new Set<number>();
          let droppedByEvents = 0;
          let lastReturned = 0;
          try {
            for (const o of ops) {
              const ob = made.outbox;
              const before = new Set(all(ob).map((e) => e.seq));
              const seenEvents = new Set(
                all(ob)
                  .filter((e) => e.kind === "event")
                  .map((e) => e.seq),
              );
              let returned: number[] = [];
              switch (o.op) {
                case "reading":
                  returned = [ob.appendReading(readingBody(lastReturned))];
                  break;
                case "event":
                  returned = [
                    ob.appendEvent({
                      type: "device.reachability",
                      deviceId: "d1",
                      reachable: true,
                      missedPolls: 0,
                    }),
                  ];
                  break;
                case "many":
                  returned = ob.appendMany(
                    Array.from({ length: o.n }, (_, i) => ({
                      kind: "reading" as const,
                      body: readingBody(i),
                    })),
                  );
                  break;
                case "ack": {
                  const target = Math.max(0, ob.lastSeq() - o.back);
                  const expectRemoved = [...before].filter((s) => s <= target).length;
                  const ackedBefore = ob.ackedSeq();
                  const n = ob.ack(target);
                  expect(n).toBe(target <= ackedBefore ? 0 : expectRemoved);
                  expect(ob.ackedSeq()).toBe(Math.max(ackedBefore, target));
                  break;
                }
                case "ackAbove":
                  expect(ob.ack(ob.lastSeq() + 1)).toBe(0);
                  break;
                case "reopen":
                  ob.close();
                  made = makeOutbox(dir, { maxEntries, dropChunk });
                  made.outbox.open();
                  expect(new Set(all(made.outbox).map((e) => e.seq))).toEqual(before);
                  break;
              }
              const ob2 = made.outbox;
              const now = all(ob2);
              const nowSeqs = now.map((e) => e.seq);
              // Strictly increasing pending; returned seqs strictly increasing over the whole run.
              for (let i = 1; i < nowSeqs.length; i++) expect(nowSeqs[i]!).toBeGreaterThan(nowSeqs[i - 1]!);
              for (const s of returned) {
                expect(s).toBeGreaterThan(lastReturned);
                lastReturned = s;
              }
              const nowSet = new Set(nowSeqs);
              const removed = [...before].filter((s) => !nowSet.has(s));
              for (const s of removed) {
                expect(acked.has(s) || dropped.has(s)).toBe(false);
                if (o.op === "ack") acked.add(s);
                else dropped.add(s);
              }
              // New drop events describe exactly the entries removed by this append.
              const newDrops = now
                .filter((e) => e.kind === "event" && !seenEvents.has(e.seq) && !before.has(e.seq))
                .map((e) => JSON.parse(e.json))
                .filter((e) => e.type === "outbox.dropped");
              for (const d of newDrops) {
                expect(validate(AgentEvent, d).ok).toBe(true);
                // The outbox is contiguous, so a drop is a contiguous run, counted exactly.
                expect(d.dropped).toBe(d.toSeq - d.fromSeq + 1);
                expect(d.totalDropped).toBeLessThanOrEqual(ob2.droppedTotal());
                droppedByEvents += d.dropped;
              }
              // Entries appended and dropped within the same op (tiny outbox) are counted too.
              for (let s = 1; s <= ob2.lastSeq(); s++) {
                if (!nowSet.has(s) && !acked.has(s) && !dropped.has(s) && !before.has(s)) {
                  dropped.add(s);
                }
              }
              // Partition of 1..lastSeq.
              for (let s = 1; s <= ob2.lastSeq(); s++) {
                const states = [nowSet.has(s), acked.has(s), dropped.has(s)].filter(Boolean).length;
                expect(states).toBe(1);
              }
              expect(ob2.droppedTotal()).toBe(dropped.size);
              expect(ob2.depth()).toBe(nowSeqs.length);
              expect(ob2.depth()).toBeLessThanOrEqual(maxEntries);
              for (const s of acked) expect(s).toBeLessThanOrEqual(ob2.ackedSeq());
            }
            // Every drop was announced by an event, with exact counts (events may have been dropped
            // themselves, so the persistent total is the reference).
            expect(droppedByEvents).toBeLessThanOrEqual(dropped.size);
          } finally {
            made.outbox.close();
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
