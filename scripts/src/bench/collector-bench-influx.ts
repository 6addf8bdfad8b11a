import { Pool } from "undici";
import type { BenchDevice } from "./collector-bench-fleet.js";

/**
 * InfluxDB helpers of the collector benchmark: the reference writer (hand-built line protocol over one
 * keep-alive undici Pool, as cheap as a client can be) and point counts via `/query`.
 */

export interface RawWriteResult {
  points: number;
  requests: number;
  failed: number;
  seconds: number;
  pointsPerSec: number;
}

function esc(s: string): string {
  return s.replace(/[,= ]/g, (c) => `\\${c}`);
}

/**
 * Posts batches of `batchPoints` ten-field points (the collector's `device` measurement and tags, one series per
 * device, a later timestamp per point) for `seconds`, with `inFlight` requests at a time. Returns the rate.
 */
export async function rawWrite(opts: {
  url: string;
  database: string;
  devices: BenchDevice[];
  seconds: number;
  batchPoints: number;
  inFlight: number;
}): Promise<RawWriteResult> {
  const pool = new Pool(opts.url, { connections: opts.inFlight + 1, keepAliveTimeout: 60_000 });
  try {
    await query(pool, `CREATE DATABASE "${opts.database}"`, opts.database, "POST");
    const keys = opts.devices.map(
      (d, i) =>
        `device,agent=bench-agent-${(i % 4) + 1},device=${esc(d.id)},family=${d.family},model=${esc(d.model)},site=bench-site-${(i % 4) + 1} `,
    );
    const path = `/write?db=${encodeURIComponent(opts.database)}&precision=ms`;
    let next = 0;
    let ts = Date.now();
    const build = (): string => {
      const lines: string[] = new Array(opts.batchPoints);
      for (let i = 0; i < opts.batchPoints; i++) {
        const k = next++;
        const key = keys[k % keys.length] as string;
        if (k % keys.length === 0) ts++;
        const v = k % 97;
        lines[i] =
          `${key}cpuPct=${(v * 0.31).toFixed(1)},memPct=${(40 + v * 0.2).toFixed(2)},pollLatencyMs=${80 + v},reachable=1,uptimeSec=${86_400 + k},` +
          `rxPacketsPerSec=${(v * 0.7).toFixed(2)},txPacketsPerSec=${(v * 0.6).toFixed(2)},rxBytesPerSec=${v * 300},txBytesPerSec=${v * 280},packetLossPct=0 ${ts}`;
      }
      return lines.join("\n");
    };
    const result = { points: 0, requests: 0, failed: 0 };
    const t0 = performance.now();
    const until = t0 + opts.seconds * 1000;
    const worker = async (): Promise<void> => {
      while (performance.now() < until) {
        const body = build();
        const res = await pool.request({
          method: "POST",
          path,
          headers: { "content-type": "text/plain; charset=utf-8" },
          body,
        });
        await res.body.dump();
        if (res.statusCode === 204) {
          result.points += opts.batchPoints;
          result.requests++;
        } else result.failed++;
      }
    };
    await Promise.all(Array.from({ length: opts.inFlight }, worker));
    const seconds = (performance.now() - t0) / 1000;
    return { ...result, seconds, pointsPerSec: result.points / seconds };
  } finally {
    await pool.close();
  }
}

async function query(pool: Pool, q: string, db: string, method: "GET" | "POST" = "GET"): Promise<unknown> {
  const params = new URLSearchParams({ q, db, epoch: "ms" });
  const res =
    method === "GET"
      ? await pool.request({ method, path: `/query?${params.toString()}` })
      : await pool.request({
          method,
          path: "/query",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: params.toString(),
        });
  const text = await res.body.text();
  if (res.statusCode >= 400) throw new Error(`InfluxDB ${q}: HTTP ${res.statusCode} ${text.slice(0, 300)}`);
  const json = JSON.parse(text) as { results?: { error?: string }[] };
  const err = json.results?.[0]?.error;
  if (err) throw new Error(`InfluxDB ${q}: ${err}`);
  return json;
}

/** `SELECT count(<field>) FROM <measurement>`: the number of points stored (0 when there are none). */
export async function countPoints(
  url: string,
  database: string,
  measurement: string,
  field: string,
): Promise<number> {
  const pool = new Pool(url, { connections: 1 });
  try {
    const json = (await query(pool, `SELECT count("${field}") FROM "${measurement}"`, database)) as {
      results?: { series?: { values?: unknown[][] }[] }[];
    };
    const v = json.results?.[0]?.series?.[0]?.values?.[0]?.[1];
    return typeof v === "number" ? v : 0;
  } finally {
    await pool.close();
  }
}

export async function dropDatabase(url: string, database: string): Promise<void> {
  const pool = new Pool(url, { connections: 1 });
  try {
    await query(pool, `DROP DATABASE "${database}"`, database, "POST");
  } finally {
    await pool.close();
  }
}
