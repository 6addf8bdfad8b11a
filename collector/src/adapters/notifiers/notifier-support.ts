import { type Clock, createLogger, type Logger } from "@polyfleet/shared";

/**
 * The slice of the collector's metrics registry the notifiers report into (structurally compatible with a
 * Prometheus-style `Metrics`). Counters: `polyfleet_notifier_sent_total{notifier}`,
 * `polyfleet_notifier_failed_total{notifier,reason}`, `polyfleet_notifier_retries_total{notifier}`,
 * `polyfleet_notifier_dropped_total{notifier,reason}`, `polyfleet_notifier_invalid_total{notifier}`.
 */
export interface NotifierMetrics {
  inc(name: string, labels?: Record<string, string>): void;
}

/** Metrics sink that discards everything (default when none is given). */
export const NOOP_NOTIFIER_METRICS: NotifierMetrics = { inc: () => undefined };

export const NOTIFIER_METRIC = {
  sent: "polyfleet_notifier_sent_total",
  failed: "polyfleet_notifier_failed_total",
  retries: "polyfleet_notifier_retries_total",
  dropped: "polyfleet_notifier_dropped_total",
  invalid: "polyfleet_notifier_invalid_total",
} as const;

/** A silent logger for components built without one (tests). */
export function silentLogger(): Logger {
  return createLogger({ level: "silent" });
}

/**
 * Exponential backoff with jitter: `min(maxMs, baseMs * 2^attempt)` scaled by a random factor in [0.5, 1),
 * so retrying clients do not synchronise. `attempt` counts from 0 (the first retry).
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(exp * (0.5 + random() * 0.5));
}

/** Waits `ms` on `clock`; resolves `false` early when `signal` aborts. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve(false);
      return;
    }
    const onAbort = (): void => {
      clock.clearTimeout(handle);
      resolve(false);
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The error's message without anything else (no stack, no request options that might carry secrets). */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as Error & { code?: unknown }).code;
    return typeof code === "string" ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/**
 * A bounded FIFO drained by one background worker: `push` never blocks; when full the oldest item is
 * dropped (reported through `onDrop`). The handler must not throw (a throw is caught and reported as a drop).
 */
export class DeliveryQueue<T> {
  private readonly items: T[] = [];
  private readonly idleWaiters: Array<() => void> = [];
  private worker: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly limit: number,
    private readonly handler: (item: T) => Promise<void>,
    private readonly onDrop: (item: T, reason: "queue_full" | "stopped" | "handler_error") => void,
  ) {}

  push(item: T): void {
    if (this.stopped) {
      this.onDrop(item, "stopped");
      return;
    }
    this.items.push(item);
    while (this.items.length > Math.max(1, this.limit)) {
      const dropped = this.items.shift() as T;
      this.onDrop(dropped, "queue_full");
    }
    if (!this.worker) this.worker = this.run();
  }

  /** Items waiting (not counting the one in flight). */
  pending(): number {
    return this.items.length;
  }

  /** Resolves when nothing is queued or in flight. */
  idle(): Promise<void> {
    if (!this.worker) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Drops everything queued (reported as `stopped`) and waits for the item in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const item of this.items.splice(0)) this.onDrop(item, "stopped");
    await this.worker;
  }

  private async run(): Promise<void> {
    try {
      for (let item = this.items.shift(); item !== undefined; item = this.items.shift()) {
        try {
          await this.handler(item);
        } catch {
          this.onDrop(item, "handler_error");
        }
      }
    } finally {
      this.worker = undefined;
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }
}
