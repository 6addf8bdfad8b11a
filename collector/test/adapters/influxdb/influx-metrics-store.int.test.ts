// InfluxMetricsStore against the real InfluxDB 1.x (/usr/bin/influxd) spawned on loopback ports.

import { randomBytes } from "node:crypto";
import { cpus, loadavg } from "node:os";
import { setImmediate as tick } from "node:timers/promises";
import { type InfluxdHandle, startInfluxd, waitFor } from "@polyfleet/scripts/testing";
import type { Reading } from "@polyfleet/shared";
import fc from "fast-check";
import { Pool } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  InfluxMetricsStore,
  type InfluxMetricsStoreOptions,
} from "../../../src/adapters/influxdb/influx-metrics-store.js";
import { encodePoint, encodeReading } from "../../../src/core/line-protocol.js";
import { describeMetricsStoreContract, metricReading } from "../../contracts/metrics-store.contract.js";
import { expectedTagText, parseLine } from "./line-protocol-parser.js";

let influx: InfluxdHandle;

beforeAll(async () => {
  influx = await startInfluxd();
});
afterAll(async () => {
  await influx?.stop();
});

const dbName = (what: string): string => `t_${what}_${randomBytes(4).toString("hex")}`;

async function influxQuery(db: string, q: string): Promise<unknown[][]> {
  const url = `${influx.url}/query?${new URLSearchParams({ db, q, epoch: "ms" }).toString()}`;
  const res = await fetch(url, { method: q.startsWith("SELECT") || q.startsWith("SHOW") ? "GET" : "POST" });
  const json = (await res.json()) as { results?: { error?: string; series?: { values?: unknown[][] }[] }[] };
  const r = json.results?.[0];
  if (r?.error) throw new Error(r.error);
  return (r?.series ?? []).flatMap((s) => s.values ?? []);
}

async function influxRows(db: string, q: string): Promise<Record<string, unknown>[]> {
  const url = `${influx.url}/query?${new URLSearchParams({ db, q, epoch: "ms" }).toString()}`;
  const json = (await (await fetch(url)).json()) as {
    results?: { error?: string; series?: { columns: string[]; values?: unknown[][] }[] }[];
  };
  const r = json.results?.[0];
  if (r?.error) throw new Error(r.error);
  return (r?.series ?? []).flatMap((s) =>
    (s.values ?? []).map((row) => Object.fromEntries(s.columns.map((c, i) => [c, row[i]]))),
  );
}

async function rawWrite(db: string, body: string): Promise<number> {
  const res = await fetch(`${influx.url}/write?db=${db}&precision=ms`, { method: "POST", body });
  await res.text();
  return res.status;
}

/** Points stored in `db` (one per reading: every reading has the `reachable` field). */
async function countPoints(db: string): Promise<number> {
  const rows = await influxQuery(db, 'SELECT count("reachable") FROM "device"');
  return Number(rows[0]?.[1] ?? 0);
}

function makeStore(db: string, over: Partial<InfluxMetricsStoreOptions> = {}): InfluxMetricsStore {
  return new InfluxMetricsStore({
    url: influx.url,
    database: db,
    batchSize: 500,
    flushMs: 20,
    retryInitialMs: 50,
    retryMaxMs: 400,
    requestTimeoutMs: 5000,
    ...over,
  });
}

/** `n` readings with unique (device, time), 10 fields each. */
function readings(n: number, prefix: string, t0 = Date.now() - 3_600_000): Reading[] {
  const out: Reading[] = [];
  for (let i = 0; i < n; i++) {
    const r = metricReading(`${prefix}-${i % 100}`, t0 + Math.floor(i / 100) * 1000, {
      cpuPct: (i % 97) + 0.5,
      memPct: i % 89,
      rxPacketsPerSec: i,
      packetLossPct: (i % 7) / 10,
    });
    r.uptimeSec = 1000 + i;
    r.network.txPacketsPerSec = i * 2;
    r.network.rxBytesPerSec = i * 100;
    r.network.txBytesPerSec = i * 200;
    out.push(r);
  }
  return out;
}

describeMetricsStoreContract("InfluxMetricsStore (real influxd)", async () => ({
  store: makeStore(dbName("contract")),
  cleanup: async () => {},
}));

describe("InfluxMetricsStore on the real influxd", () => {
  it("creates the database at start and the points appear, batched", async () => {
    const db = dbName("basic");
    const store = makeStore(db, { batchSize: 1000, flushMs: 50 });
    await store.start();
    const rs = readings(2500, "basic");
    store.write(rs.slice(0, 1200));
    store.write(rs.slice(1200));
    await waitFor(() => store.stats().buffered === 0, 20_000, "flushed");
    expect(await countPoints(db)).toBe(2500);
    const s = store.stats();
    expect(s).toMatchObject({ written: 2500, buffered: 0, dropped: 0, retries: 0 });
    // 2500 points at 1000 per batch: at least 3 requests, far fewer than one per point.
    expect(s.requests).toBeGreaterThanOrEqual(3);
    expect(s.requests).toBeLessThan(20);
    // The line protocol lands in the right tags and fields.
    const rows = await influxRows(db, `SELECT * FROM "device" WHERE "device" = 'basic-7' LIMIT 1`);
    expect(rows[0]).toMatchObject({
      time: rs[7]?.ts,
      agent: "agent-c",
      site: "site-c",
      family: "uc",
      model: "VVX 450",
      cpuPct: 7.5,
      reachable: 1,
      uptimeSec: 1007,
      txBytesPerSec: 1400,
    });
    await store.stop();
  });

  it("loses nothing across an influxd kill and restart while writing (buffer big enough)", async () => {
    const db = dbName("restart");
    const store = makeStore(db, { maxBufferPoints: 50_000 });
    await store.start();
    const rs = readings(8000, "rst");
    let i = 0;
    const writeSome = async (n: number): Promise<void> => {
      for (const end = i + n; i < end; i += 100) {
        store.write(rs.slice(i, i + 100));
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    await writeSome(2000);
    await influx.kill("SIGKILL");
    await writeSome(3000);
    // Down for a while: the writer retries with backoff, nothing is dropped.
    await waitFor(() => store.stats().retries >= 3, 10_000, "retries while influxd is down");
    expect(store.stats().dropped).toBe(0);
    expect(store.stats().buffered).toBeGreaterThan(0);
    await influx.restart();
    await writeSome(3000);
    await waitFor(() => store.stats().buffered === 0, 30_000, "flushed after restart");
    const s = store.stats();
    expect(s).toMatchObject({ written: 8000, buffered: 0, dropped: 0 });
    expect(s.retries).toBeGreaterThanOrEqual(3);
    expect(await countPoints(db)).toBe(8000);
    await store.stop();
  });

  it("drops the oldest points beyond maxBufferPoints while influxd is down, counted exactly", async () => {
    const db = dbName("overflow");
    const store = makeStore(db, { maxBufferPoints: 2000 });
    await store.start(); // creates the database while influxd is up
    const before = readings(300, "ovf-pre", Date.now() - 7_200_000);
    store.write(before);
    await waitFor(() => store.stats().buffered === 0, 20_000, "first flush");
    await influx.kill("SIGKILL");
    const rs = readings(5000, "ovf");
    store.write(rs);
    expect(store.stats()).toMatchObject({ buffered: 2000, dropped: 3000, overflowed: 3000, written: 300 });
    await waitFor(() => store.stats().retries >= 2, 10_000, "retries while influxd is down");
    await influx.restart();
    await waitFor(() => store.stats().buffered === 0, 30_000, "flushed after restart");
    expect(store.stats()).toMatchObject({ written: 2300, dropped: 3000, overflowed: 3000, rejected: 0 });
    expect(await countPoints(db)).toBe(2300);
    // The survivors are the newest 2000 of the outage.
    const oldest = rs[3000];
    const rows = await influxQuery(
      db,
      `SELECT count("reachable") FROM "device" WHERE time >= ${oldest?.ts}ms`,
    );
    expect(Number(rows[0]?.[1])).toBe(2000);
    await store.stop();
  });

  it("does not retry a 4xx: a missing database (creation off) is rejected and counted", async () => {
    const store = makeStore(dbName("missing"), { createDatabase: false });
    await store.start();
    store.write(readings(120, "miss"));
    await waitFor(() => store.stats().buffered === 0, 10_000, "rejected batch leaves the buffer");
    expect(store.stats()).toMatchObject({ written: 0, rejected: 120, dropped: 120, retries: 0, buffered: 0 });
    // The writer is not stuck: later points are handled (and refused) too.
    store.write(readings(10, "miss2"));
    await waitFor(() => store.stats().buffered === 0, 10_000, "second batch");
    expect(store.stats()).toMatchObject({ rejected: 130, retries: 0 });
    await store.stop();
  });

  it("counts only the refused points of a partial write (field type conflict), without retrying", async () => {
    const db = dbName("conflict");
    await influxQuery(db, `CREATE DATABASE ${db}`);
    const t0 = Date.now() - 600_000;
    // cpuPct already exists as a string in this shard.
    expect(await rawWrite(db, `device,device=x cpuPct="high",reachable=1 ${t0 - 1000}`)).toBe(204);
    const store = makeStore(db);
    await store.start();
    const withCpu = Array.from({ length: 10 }, (_, i) => metricReading(`c-${i}`, t0 + i, { cpuPct: i }));
    const withoutCpu = Array.from({ length: 5 }, (_, i) => metricReading(`n-${i}`, t0 + i, { memPct: i }));
    store.write([...withCpu, ...withoutCpu]);
    await waitFor(() => store.stats().buffered === 0, 10_000, "partial write handled");
    expect(store.stats()).toMatchObject({ written: 5, rejected: 10, retries: 0 });
    expect(await countPoints(db)).toBe(1 + 5);
    await store.stop();
  });

  it("sends a partial batch after flushMs, and stop() flushes what is buffered", async () => {
    const db = dbName("timer");
    const store = makeStore(db, { batchSize: 10_000, flushMs: 100 });
    await store.start();
    store.write(readings(7, "tmr"));
    await waitFor(() => store.stats().written === 7, 5000, "timed flush");
    store.write(readings(3, "tmr2"));
    await store.stop();
    expect(store.stats()).toMatchObject({ written: 10, buffered: 0, dropped: 0 });
    expect(await countPoints(db)).toBe(10);
  });

  it("stop() gives up after stopTimeoutMs when influxd stays down, counting what it abandons", async () => {
    const db = dbName("abandon");
    const store = makeStore(db, { stopTimeoutMs: 300 });
    await store.start();
    await influx.kill("SIGKILL");
    try {
      store.write(readings(50, "ab"));
      await store.stop();
      expect(store.stats()).toMatchObject({ written: 0, buffered: 0, abandoned: 50, dropped: 50 });
    } finally {
      await influx.restart();
    }
  });

  it("the test's line-protocol reader agrees with influxd on escaped tags, keys and string fields", async () => {
    const db = dbName("lp");
    await influxQuery(db, `CREATE DATABASE ${db}`);
    const nasty = fc.oneof(
      fc.string({
        unit: fc.constantFrom(",", "=", " ", "\\", '"', "\n", "a", "é", "日", "'", "#"),
        minLength: 1,
        maxLength: 10,
      }),
      fc.string({ unit: "grapheme", minLength: 1, maxLength: 6 }),
    );
    const samples = fc.sample(fc.tuple(nasty, nasty), { numRuns: 300, seed: 42 });
    const t0 = Date.now() - 600_000;
    const lines: string[] = [];
    samples.forEach(([tag, str], i) => {
      const line = encodePoint("lp", { t: tag }, { s: str, n: i }, t0 + i);
      if (line !== undefined) lines.push(line);
    });
    expect(await rawWrite(db, lines.join("\n"))).toBe(204);
    const rows = await influxRows(db, 'SELECT * FROM "lp"');
    expect(rows).toHaveLength(lines.length);
    const byTime = new Map(rows.map((r) => [r.time, r]));
    for (const line of lines) {
      const p = parseLine(line);
      const row = byTime.get(p.ts);
      expect(row?.t).toBe(p.tags.t);
      expect(row?.s).toBe(p.fields.s);
      expect(row?.n).toBe(p.fields.n);
    }
    // And readings with odd model names land under the tag the encoder documents.
    const models = samples.map(([m]) => m);
    const rs = models.map((m, i) => {
      const r = metricReading(`lpdev-${i}`, t0 + i);
      r.identity.model = m;
      return r;
    });
    expect(await rawWrite(db, rs.map((r) => encodeReading(r)).join("\n"))).toBe(204);
    const tagValues = new Set(
      (await influxQuery(db, 'SHOW TAG VALUES FROM "device" WITH KEY = "model"')).map((row) => row[1]),
    );
    expect(tagValues).toEqual(new Set(models.map(expectedTagText)));
  });
});

describe("benchmark (b): adapter end to end vs bare line-protocol writes (printed, not asserted)", () => {
  const N = 100_000;
  const BATCH = 5000;

  async function bareRate(db: string, rs: Reading[]): Promise<number> {
    await influxQuery(db, `CREATE DATABASE ${db}`);
    const bodies: string[] = [];
    for (let i = 0; i < rs.length; i += BATCH)
      bodies.push(
        rs
          .slice(i, i + BATCH)
          .map((r) => encodeReading(r))
          .join("\n"),
      );
    const pool = new Pool(influx.url, { connections: 1 });
    try {
      const t0 = performance.now();
      for (const body of bodies) {
        const res = await pool.request({ method: "POST", path: `/write?db=${db}&precision=ms`, body });
        await res.body.dump();
        if (res.statusCode !== 204) throw new Error(`bare write: HTTP ${res.statusCode}`);
      }
      return rs.length / ((performance.now() - t0) / 1000);
    } finally {
      await pool.close();
    }
  }

  async function adapterRun(
    db: string,
    rs: Reading[],
    maxInFlight: number,
  ): Promise<{ rate: number; cpuUsPerPoint: number }> {
    const store = makeStore(db, { batchSize: BATCH, flushMs: 100, maxBufferPoints: 1_000_000, maxInFlight });
    await store.start();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    // As ingest delivers them: agent batches of 500 readings, yielding to the event loop in between.
    for (let i = 0; i < rs.length; i += 500) {
      store.write(rs.slice(i, i + 500));
      await tick();
    }
    const drained = await store.flush(60_000);
    const wall = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    await store.stop();
    if (!drained || store.stats().written !== rs.length) throw new Error(`adapter did not write everything`);
    return { rate: rs.length / wall, cpuUsPerPoint: (cpu.user + cpu.system) / rs.length };
  }

  it("prints CPU µs per point and points/s", async () => {
    const t = Date.now() - 86_400_000;
    const rsA = readings(N, "benchA", t);
    const rsB = readings(N, "benchB", t);
    const rsC = readings(N, "benchC", t);
    const rsD = readings(N, "benchD", t);
    // Encoding alone (the adapter's share of the CPU that does not depend on the server).
    const e0 = process.cpuUsage();
    let bytes = 0;
    for (const r of rsA) bytes += encodeReading(r).length;
    const e = process.cpuUsage(e0);
    const bare1 = await bareRate(dbName("bench_bare"), rsA);
    const adapter = await adapterRun(dbName("bench_adapter"), rsB, 1);
    const adapter2 = await adapterRun(dbName("bench_adapter2"), rsD, 2);
    const bare2 = await bareRate(dbName("bench_bare2"), rsC);
    const bare = (bare1 + bare2) / 2;
    const fmt = (v: number): string => Math.round(v).toLocaleString("en-US");
    console.log(
      [
        `benchmark (b), ${fmt(N)} ten-field points, batches of ${BATCH}, influxd 1.6 on loopback:`,
        `  encode only:             ${((e.user + e.system) / N).toFixed(2)} µs CPU/point (${(bytes / N).toFixed(0)} bytes/line)`,
        `  adapter CPU:             ${adapter.cpuUsPerPoint.toFixed(2)} µs CPU/point (encode, queue, batch, HTTP)`,
        `  adapter end to end:      ${fmt(adapter.rate)} points/s`,
        `  bare undici, hand-built: ${fmt(bare1)} / ${fmt(bare2)} points/s (before / after), mean ${fmt(bare)}`,
        `  ratio adapter/bare:      ${(adapter.rate / bare).toFixed(2)}`,
        `  adapter, 2 in flight:    ${adapter2.cpuUsPerPoint.toFixed(2)} µs CPU/point, ${fmt(adapter2.rate)} points/s, ratio ${(adapter2.rate / bare).toFixed(2)}`,
        `  load average:            ${loadavg()
          .map((l) => l.toFixed(1))
          .join(" ")} on ${cpus().length} CPUs`,
      ].join("\n"),
    );
    expect(adapter.rate).toBeGreaterThan(0);
  });
});
