import {
  type Clock,
  type Logger,
  PolyfleetError,
  type Reading,
  SYSTEM_CLOCK,
  type TimerHandle,
} from "@polyfleet/shared";
import { Pool } from "undici";
import {
  DEVICE_MEASUREMENT,
  encodeReadingWithKey,
  isMetricField,
  readingSeriesKey,
} from "../../core/line-protocol.js";
import type { MetricsStore, MetricsWriteStats, SeriesPoint, SeriesQuery } from "../../ports/metrics-store.js";
import { parseSeriesResponse, partialWriteDropped, quoteIdent, seriesQueryStatement } from "./influxql.js";
import { LineQueue } from "./line-queue.js";

export interface InfluxMetricsStoreOptions {
  /** Base URL of the InfluxDB 1.x HTTP API, e.g. `http://127.0.0.1:8086`. */
  url: string;
  database: string;
  /** Retention policy to write into (default: the database's default policy). */
  retentionPolicy?: string;
  username?: string;
  /** Resolved password (never logged). */
  password?: string;
  /** Points per write request (default 5000). */
  batchSize?: number;
  /** Longest a point waits for a batch to fill before it is sent (default 1000 ms). */
  flushMs?: number;
  /** Most points held (queued plus in flight); beyond it the oldest queued points are dropped (default 1,000,000). */
  maxBufferPoints?: number;
  /** Write requests in flight at once (default 2: the next batch is sent while InfluxDB stores the previous). */
  maxInFlight?: number;
  /** `CREATE DATABASE` at start and when a write says the database is missing (default true). */
  createDatabase?: boolean;
  /** First retry delay (default 100 ms), doubled per attempt up to `retryMaxMs` (default 5000 ms), with jitter. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Deadline for the answer to one request (default 30 s). */
  requestTimeoutMs?: number;
  /** How long `stop()` keeps flushing before it gives up on what is left (default 10 s). */
  stopTimeoutMs?: number;
  clock?: Clock;
  log?: Logger;
}

/** MetricsWriteStats plus the InfluxDB writer's own counters. `dropped` = overflowed + rejected + abandoned. */
export interface InfluxWriteStats extends MetricsWriteStats {
  /** Oldest points dropped because the buffer was full. */
  overflowed: number;
  /** Points InfluxDB refused with a 4xx (not retried). */
  rejected: number;
  /** Points still buffered when `stop()` gave up. */
  abandoned: number;
  /** Write requests that succeeded. */
  requests: number;
}

interface CachedKey {
  agentId: string;
  siteId: string;
  family: string;
  model: string | undefined;
  key: string;
}

const MAX_CACHED_KEYS = 200_000;

type SendOutcome =
  | { kind: "ok" }
  | { kind: "retry"; reason: string }
  | { kind: "missing-db"; reason: string }
  | { kind: "reject"; status: number; reason: string };

/**
 * MetricsStore on InfluxDB 1.x over HTTP (`/write?precision=ms`, `/query`), one keep-alive undici Pool.
 *
 * `write()` encodes each reading into one line-protocol point and queues it; it never waits for I/O. Points go
 * out in batches of `batchSize`, or after `flushMs` when fewer are queued, with at most `maxInFlight`
 * requests at a time. Network errors, timeouts, 5xx, 408 and 429 are retried with exponential backoff
 * (the batch is kept, so an InfluxDB restart loses nothing that fits the buffer; a retried batch that had
 * in fact been stored is harmless, since points with the same series and time overwrite). Other 4xx are not
 * retried: the batch is counted as rejected (a partial write counts only the points InfluxDB dropped). The
 * buffer is bounded by `maxBufferPoints`: when it is full the oldest queued points are dropped and counted.
 */
export class InfluxMetricsStore implements MetricsStore {
  private readonly opts: InfluxMetricsStoreOptions;
  private readonly clock: Clock;
  private readonly batchSize: number;
  private readonly flushMs: number;
  private readonly maxBufferPoints: number;
  private readonly maxInFlight: number;
  private readonly retryInitialMs: number;
  private readonly retryMaxMs: number;
  private readonly requestTimeoutMs: number;
  private readonly stopTimeoutMs: number;
  private readonly queue = new LineQueue();
  /** Escaped tag set per device, reused while the device's tags stay the same. */
  private readonly keys = new Map<string, CachedKey>();
  private pool: Pool | undefined;
  private basePath = "";
  private authHeader: string | undefined;
  private writePath = "";
  private running = false;
  private stopping = false;
  private aborted = false;
  private dbReady = false;
  private flushTimer: TimerHandle | undefined;
  private flushDue = false;
  private inFlight = 0;
  private inFlightPoints = 0;
  private readonly senders = new Set<Promise<void>>();
  private readonly sleepers = new Set<() => void>();
  private idleWaiters: (() => void)[] = [];
  private written = 0;
  private overflowed = 0;
  private rejected = 0;
  private abandoned = 0;
  private retries = 0;
  private requests = 0;

  constructor(opts: InfluxMetricsStoreOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? SYSTEM_CLOCK;
    this.maxBufferPoints = Math.max(1, opts.maxBufferPoints ?? 1_000_000);
    this.batchSize = Math.max(1, Math.min(opts.batchSize ?? 5000, this.maxBufferPoints));
    this.flushMs = Math.max(1, opts.flushMs ?? 1000);
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 2);
    this.retryInitialMs = Math.max(1, opts.retryInitialMs ?? 100);
    this.retryMaxMs = Math.max(this.retryInitialMs, opts.retryMaxMs ?? 5000);
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.stopTimeoutMs = opts.stopTimeoutMs ?? 10_000;
  }

  async start(): Promise<void> {
    if (this.running) return;
    const url = new URL(this.opts.url);
    this.basePath = url.pathname.replace(/\/+$/, "");
    if (this.opts.username !== undefined) {
      const token = Buffer.from(`${this.opts.username}:${this.opts.password ?? ""}`).toString("base64");
      this.authHeader = `Basic ${token}`;
    }
    const params = new URLSearchParams({ db: this.opts.database, precision: "ms" });
    if (this.opts.retentionPolicy !== undefined) params.set("rp", this.opts.retentionPolicy);
    this.writePath = `${this.basePath}/write?${params.toString()}`;
    this.pool = new Pool(url.origin, {
      connections: this.maxInFlight + 2,
      keepAliveTimeout: 60_000,
      headersTimeout: this.requestTimeoutMs,
      bodyTimeout: this.requestTimeoutMs,
      connectTimeout: Math.min(10_000, this.requestTimeoutMs),
    });
    this.running = true;
    this.stopping = false;
    this.aborted = false;
    // Create the database now if InfluxDB is up; if it is not, the writer creates it before its first write
    // (ingest must not wait for InfluxDB).
    if (this.opts.createDatabase ?? true) {
      const outcome = await this.createDatabase();
      if (outcome.kind !== "ok") {
        this.opts.log?.warn(
          { reason: outcome.reason },
          "InfluxDB database not created at start; will retry on write",
        );
      }
    } else {
      this.dbReady = true;
    }
    this.pump();
  }

  write(readings: readonly Reading[]): void {
    for (const r of readings) {
      if (this.queue.size + this.inFlightPoints >= this.maxBufferPoints) {
        // Full: drop the oldest queued point (points in flight are being sent). With nothing queued, the
        // new point is the one that does not fit.
        this.overflowed++;
        if (!this.queue.dropOldest()) continue;
      }
      this.queue.push(encodeReadingWithKey(r, this.seriesKey(r)));
    }
    this.pump();
  }

  async query(q: SeriesQuery): Promise<SeriesPoint[]> {
    if (!isMetricField(q.field)) {
      throw new PolyfleetError("POLYFLEET_ERR_METRICS_FIELD_UNKNOWN", `unknown metrics field "${q.field}"`, {
        details: { field: q.field },
      });
    }
    const pool = this.requirePool();
    const params = new URLSearchParams({
      db: this.opts.database,
      epoch: "ms",
      q: seriesQueryStatement(DEVICE_MEASUREMENT, q),
    });
    if (this.opts.retentionPolicy !== undefined) params.set("rp", this.opts.retentionPolicy);
    let status: number;
    let json: unknown;
    try {
      const res = await pool.request({
        method: "GET",
        path: `${this.basePath}/query?${params.toString()}`,
        headers: this.headers(),
      });
      status = res.statusCode;
      const text = await res.body.text();
      json = text === "" ? {} : JSON.parse(text);
    } catch (err) {
      throw new PolyfleetError(
        "POLYFLEET_ERR_METRICS_UNAVAILABLE",
        `InfluxDB query failed: ${describe(err)}`,
        {
          cause: err,
        },
      );
    }
    const parsed = parseSeriesResponse(json);
    if (!parsed.ok || status >= 400) {
      const reason = parsed.ok ? `HTTP ${status}` : parsed.error;
      // "database not found" just means nothing was written yet.
      if (/database not found/i.test(reason)) return [];
      throw new PolyfleetError("POLYFLEET_ERR_METRICS_UNAVAILABLE", `InfluxDB query failed: ${reason}`);
    }
    return parsed.points;
  }

  stats(): InfluxWriteStats {
    return {
      written: this.written,
      buffered: this.queue.size + this.inFlightPoints,
      dropped: this.overflowed + this.rejected + this.abandoned,
      retries: this.retries,
      overflowed: this.overflowed,
      rejected: this.rejected,
      abandoned: this.abandoned,
      requests: this.requests,
    };
  }

  /** Resolves when nothing is buffered (or after `timeoutMs`); true when drained. Sends a partial batch now. */
  async flush(timeoutMs = this.stopTimeoutMs): Promise<boolean> {
    this.flushDue = true;
    this.pump();
    return await this.waitIdle(timeoutMs);
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.stopping = true;
    this.cancelFlushTimer();
    this.pump();
    const drained = await this.waitIdle(this.stopTimeoutMs);
    if (!drained) {
      this.aborted = true;
      this.abandoned += this.queue.clear();
      for (const wake of this.sleepers) wake();
      this.opts.log?.warn(
        { abandoned: this.abandoned },
        "InfluxDB writer stopped with points still buffered",
      );
    }
    await this.pool?.destroy().catch(() => undefined);
    await Promise.allSettled([...this.senders]);
    this.pool = undefined;
    this.running = false;
    this.stopping = false;
  }

  // --- writer ---

  private pump(): void {
    if (!this.running || this.aborted) return;
    while (
      this.inFlight < this.maxInFlight &&
      this.queue.size > 0 &&
      (this.flushDue || this.stopping || this.queue.size >= this.batchSize)
    ) {
      const lines = this.queue.take(this.batchSize);
      this.flushDue = false;
      this.inFlight++;
      this.inFlightPoints += lines.length;
      const p = this.sendBatch(lines);
      this.senders.add(p);
      void p.finally(() => this.senders.delete(p));
    }
    if (this.queue.size === 0) {
      this.cancelFlushTimer();
      this.flushDue = false;
    } else if (this.flushTimer === undefined && !this.flushDue) {
      this.flushTimer = this.clock.setTimeout(() => {
        this.flushTimer = undefined;
        this.flushDue = true;
        this.pump();
      }, this.flushMs);
    }
    if (this.inFlight === 0 && this.queue.size === 0) this.notifyIdle();
  }

  private async sendBatch(lines: string[]): Promise<void> {
    const body = lines.join("\n");
    const n = lines.length;
    let attempt = 0;
    let recreated = false;
    try {
      for (;;) {
        if (this.aborted) {
          this.abandoned += n;
          return;
        }
        const outcome = await this.sendOnce(body);
        if (outcome.kind === "ok") {
          this.written += n;
          this.requests++;
          return;
        }
        if (outcome.kind === "reject") {
          const dropped = Math.min(n, partialWriteDropped(outcome.reason) ?? n);
          this.rejected += dropped;
          this.written += n - dropped;
          this.opts.log?.warn(
            { status: outcome.status, points: n, rejected: dropped, reason: outcome.reason.slice(0, 500) },
            "InfluxDB refused a write; not retried",
          );
          return;
        }
        if (outcome.kind === "missing-db") {
          if (recreated || !(this.opts.createDatabase ?? true)) {
            this.rejected += n;
            this.opts.log?.warn(
              { points: n, reason: outcome.reason },
              "InfluxDB database missing; batch dropped",
            );
            return;
          }
          // The database disappeared (dropped by hand?): create it again, once per batch.
          recreated = true;
          this.dbReady = false;
        }
        if (this.aborted) {
          this.abandoned += n;
          return;
        }
        this.retries++;
        const delay = this.backoff(attempt++);
        if (attempt === 1 || attempt % 10 === 0) {
          this.opts.log?.warn(
            { points: n, attempt, delayMs: delay, reason: outcome.reason },
            "InfluxDB write failed; retrying",
          );
        }
        await this.sleep(delay);
      }
    } finally {
      this.inFlight--;
      this.inFlightPoints -= n;
      this.pump();
    }
  }

  private async sendOnce(body: string): Promise<SendOutcome> {
    const pool = this.pool;
    if (!pool) return { kind: "retry", reason: "not started" };
    try {
      if (!this.dbReady) {
        const created = await this.createDatabase();
        if (created.kind !== "ok") return created;
      }
      const res = await pool.request({
        method: "POST",
        path: this.writePath,
        headers: { ...this.headers(), "content-type": "text/plain; charset=utf-8" },
        body,
      });
      if (res.statusCode === 204 || res.statusCode === 200) {
        await res.body.dump();
        return { kind: "ok" };
      }
      const text = await res.body.text().catch(() => "");
      const reason = `HTTP ${res.statusCode}: ${errorText(text)}`;
      if (res.statusCode >= 500 || res.statusCode === 408 || res.statusCode === 429)
        return { kind: "retry", reason };
      if (res.statusCode === 404 && /database not found/i.test(text)) return { kind: "missing-db", reason };
      return { kind: "reject", status: res.statusCode, reason };
    } catch (err) {
      return { kind: "retry", reason: describe(err) };
    }
  }

  /** `CREATE DATABASE` (a no-op when it exists); 5xx and network errors are retryable, other 4xx are not. */
  private async createDatabase(): Promise<SendOutcome> {
    const pool = this.pool;
    if (!pool) return { kind: "retry", reason: "not started" };
    try {
      const res = await pool.request({
        method: "POST",
        path: `${this.basePath}/query`,
        headers: { ...this.headers(), "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ q: `CREATE DATABASE ${quoteIdent(this.opts.database)}` }).toString(),
      });
      const text = await res.body.text();
      let error: string | undefined;
      try {
        const parsed = parseSeriesResponse(text === "" ? {} : JSON.parse(text));
        if (!parsed.ok) error = parsed.error;
      } catch {
        error = text.trim().slice(0, 500);
      }
      if (res.statusCode < 400 && error === undefined) {
        this.dbReady = true;
        return { kind: "ok" };
      }
      const reason = `CREATE DATABASE: HTTP ${res.statusCode} ${error ?? ""}`.trim();
      if (res.statusCode >= 500 || res.statusCode === 408 || res.statusCode === 429)
        return { kind: "retry", reason };
      return { kind: "reject", status: res.statusCode, reason };
    } catch (err) {
      return { kind: "retry", reason: `CREATE DATABASE: ${describe(err)}` };
    }
  }

  // --- helpers ---

  private seriesKey(r: Reading): string {
    const c = this.keys.get(r.deviceId);
    const model = r.identity.model;
    if (
      c !== undefined &&
      c.agentId === r.agentId &&
      c.siteId === r.siteId &&
      c.family === r.identity.family &&
      c.model === model
    ) {
      return c.key;
    }
    const key = readingSeriesKey(r);
    if (this.keys.size >= MAX_CACHED_KEYS) this.keys.clear();
    this.keys.set(r.deviceId, {
      agentId: r.agentId,
      siteId: r.siteId,
      family: r.identity.family,
      model,
      key,
    });
    return key;
  }

  private headers(): Record<string, string> {
    return this.authHeader === undefined ? {} : { authorization: this.authHeader };
  }

  private requirePool(): Pool {
    if (!this.pool) {
      throw new PolyfleetError("POLYFLEET_ERR_METRICS_UNAVAILABLE", "InfluxDB metrics store is not started");
    }
    return this.pool;
  }

  private backoff(attempt: number): number {
    const d = Math.min(this.retryMaxMs, this.retryInitialMs * 2 ** Math.min(attempt, 30));
    return Math.round(d / 2 + (Math.random() * d) / 2);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        this.sleepers.delete(wake);
        this.clock.clearTimeout(handle);
        resolve();
      };
      const handle = this.clock.setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  private cancelFlushTimer(): void {
    if (this.flushTimer !== undefined) {
      this.clock.clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
  }

  private waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.inFlight === 0 && this.queue.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      let settled = false;
      const done = (ok: boolean): void => {
        if (settled) return;
        settled = true;
        this.clock.clearTimeout(timer);
        resolve(ok);
      };
      const timer = this.clock.setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== onIdle);
        done(false);
      }, timeoutMs);
      const onIdle = (): void => done(true);
      this.idleWaiters.push(onIdle);
    });
  }

  private notifyIdle(): void {
    if (this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === "string" ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/** The `error` of an InfluxDB JSON error body, else the text itself (trimmed). */
function errorText(text: string): string {
  try {
    const j = JSON.parse(text) as { error?: unknown };
    if (typeof j.error === "string") return j.error;
  } catch {
    // not JSON: use the text
  }
  return text.trim().slice(0, 500);
}
