import { z } from "zod";
import type { SeriesPoint, SeriesQuery } from "../../ports/metrics-store.js";

/** An InfluxQL identifier in double quotes (`"` and `\` escaped). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** An InfluxQL string literal in single quotes (`'` and `\` escaped). */
export function quoteLiteral(value: string): string {
  return `'${value.replace(/[\\']/g, (c) => `\\${c}`)}'`;
}

/**
 * The SELECT for a device series: raw values of one field in [from, to] (both inclusive), or with
 * `stepMs > 0` the mean per bucket of `stepMs`, buckets aligned to the epoch (InfluxDB's own alignment),
 * empty buckets left out. The caller has checked that `field` is a metric field.
 */
export function seriesQueryStatement(measurement: string, q: SeriesQuery): string {
  const from = Math.ceil(q.from);
  const to = Math.floor(q.to);
  const where = `${quoteIdent("device")} = ${quoteLiteral(q.deviceId)} AND time >= ${from}ms AND time <= ${to}ms`;
  const step = Math.floor(q.stepMs ?? 0);
  if (step > 0) {
    return `SELECT mean(${quoteIdent(q.field)}) FROM ${quoteIdent(measurement)} WHERE ${where} GROUP BY time(${step}ms) fill(none)`;
  }
  return `SELECT ${quoteIdent(q.field)} FROM ${quoteIdent(measurement)} WHERE ${where}`;
}

const QueryResponse = z.object({
  error: z.string().optional(),
  results: z
    .array(
      z.object({
        error: z.string().optional(),
        series: z
          .array(
            z.object({
              columns: z.array(z.string()),
              values: z.array(z.array(z.unknown())).optional(),
            }),
          )
          .optional(),
      }),
    )
    .optional(),
});

export type ParsedSeries = { ok: true; points: SeriesPoint[] } | { ok: false; error: string };

/**
 * Reads the points of the first statement of a `/query?epoch=ms` answer: column 0 is the time, column 1
 * the value; rows with a null (or non-numeric) value are skipped. Points come back in time order.
 */
export function parseSeriesResponse(json: unknown): ParsedSeries {
  const parsed = QueryResponse.safeParse(json);
  if (!parsed.success) return { ok: false, error: "unexpected /query answer" };
  const body = parsed.data;
  if (body.error !== undefined) return { ok: false, error: body.error };
  const first = body.results?.[0];
  if (first?.error !== undefined) return { ok: false, error: first.error };
  const points: SeriesPoint[] = [];
  for (const s of first?.series ?? []) {
    for (const row of s.values ?? []) {
      const ts = row[0];
      const value = row[1];
      if (typeof ts === "number" && typeof value === "number") points.push({ ts, value });
      else if (typeof ts === "number" && typeof value === "boolean")
        points.push({ ts, value: value ? 1 : 0 });
    }
  }
  points.sort((a, b) => a.ts - b.ts);
  return { ok: true, points };
}

/** The `dropped=N` count of an InfluxDB 1.x "partial write" error, if the message has one. */
export function partialWriteDropped(message: string): number | undefined {
  const m = /dropped=(\d+)/.exec(message);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}
