/**
 * Download progress throttling: an `update.progress` event goes through the durable outbox, so a
 * multi-megabyte download must not produce one per chunk. A report is due at the first call, whenever
 * another `stepPct` of the total is done, at most every `intervalMs` otherwise, and at the end.
 */
export interface ThrottleOptions {
  /** Report every this many percent of the total (default 25). */
  stepPct?: number;
  /** Report at least this long after the last one when bytes moved (default 2000 ms). */
  intervalMs?: number;
}

export class ProgressThrottle {
  private readonly stepBytes: number;
  private readonly intervalMs: number;
  private lastBytes: number | undefined;
  private lastAt = 0;

  constructor(
    private readonly totalBytes: number,
    opts: ThrottleOptions = {},
  ) {
    const pct = Math.min(100, Math.max(1, opts.stepPct ?? 25));
    this.stepBytes = Math.max(1, Math.floor((totalBytes * pct) / 100));
    this.intervalMs = Math.max(0, opts.intervalMs ?? 2000);
  }

  /** Whether `bytes` done at time `now` is worth a progress event; remembers it when it is. */
  shouldReport(bytes: number, now: number): boolean {
    const due =
      this.lastBytes === undefined ||
      (bytes >= this.totalBytes && this.lastBytes < this.totalBytes) ||
      bytes - this.lastBytes >= this.stepBytes ||
      (bytes !== this.lastBytes && now - this.lastAt >= this.intervalMs) ||
      // A restart from zero (the server ignored Range) is news too.
      bytes < this.lastBytes;
    if (due) {
      this.lastBytes = bytes;
      this.lastAt = now;
    }
    return due;
  }
}
