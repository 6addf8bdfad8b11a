import { createHmac, randomUUID } from "node:crypto";
import type { Alert, AlertNotification, Clock, Logger } from "@polyfleet/shared";
import { SYSTEM_CLOCK } from "@polyfleet/shared";
import { type Dispatcher, request } from "undici";
import type { Notifier } from "../../ports/notifier.js";
import {
  backoffDelay,
  DeliveryQueue,
  errorMessage,
  NOOP_NOTIFIER_METRICS,
  NOTIFIER_METRIC,
  type NotifierMetrics,
  silentLogger,
  sleep,
} from "./notifier-support.js";
import { defaultWebhookBody, renderWebhookTemplate, webhookTemplateContext } from "./webhook-template.js";

export const WEBHOOK_SIGNATURE_HEADER = "x-polyfleet-signature";
export const WEBHOOK_TIMESTAMP_HEADER = "x-polyfleet-timestamp";
export const WEBHOOK_DELIVERY_HEADER = "x-polyfleet-delivery";

export interface WebhookNotifierOptions {
  name: string;
  url: string;
  /** Resolved HMAC secret; when set every request carries `X-Polyfleet-Signature: sha256=<hex>`. */
  secret?: string;
  /** JSON body template with `{{path}}` placeholders (see `renderWebhookTemplate`); default: notification + alerts. */
  template?: string;
  /** Retries after the first attempt on network errors, timeouts, 5xx and 429 (default 5). */
  maxRetries?: number;
  /** Per-attempt timeout (default 10 s). */
  timeoutMs?: number;
  /** Pending deliveries kept; the oldest is dropped (and counted) when full (default 100). */
  queueSize?: number;
  /** First retry delay (default 1 s), doubled per retry up to `maxDelayMs` (default 60 s), with jitter. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  random?: () => number;
  log?: Logger;
  metrics?: NotifierMetrics;
  clock?: Clock;
  /** undici dispatcher (default: the global one). */
  dispatcher?: Dispatcher;
}

interface Delivery {
  body: string;
  groupKey: string;
}

type Outcome =
  | { kind: "ok" }
  | { kind: "retry"; reason: string; retryAfterMs?: number }
  | { kind: "fail"; reason: string };

/**
 * POSTs each notification as JSON to one webhook: HMAC-SHA256 signature of the body, retries with
 * exponential backoff and jitter, a bounded queue per webhook so a slow endpoint never holds up the
 * engine or other notifiers. `notify` only renders and enqueues; delivery runs in the background.
 * The URL is never logged (webhook URLs often embed tokens); only its origin is.
 */
export class WebhookNotifier implements Notifier {
  readonly name: string;
  private readonly opts: WebhookNotifierOptions;
  private readonly log: Logger;
  private readonly metrics: NotifierMetrics;
  private readonly clock: Clock;
  private readonly queue: DeliveryQueue<Delivery>;
  private readonly stopping = new AbortController();

  constructor(opts: WebhookNotifierOptions) {
    this.name = opts.name;
    this.opts = opts;
    this.log = (opts.log ?? silentLogger()).child({ component: "webhook-notifier", notifier: opts.name });
    this.metrics = opts.metrics ?? NOOP_NOTIFIER_METRICS;
    this.clock = opts.clock ?? SYSTEM_CLOCK;
    this.queue = new DeliveryQueue<Delivery>(
      opts.queueSize ?? 100,
      (d) => this.deliver(d),
      (d, reason) => {
        this.metrics.inc(NOTIFIER_METRIC.dropped, { notifier: this.name, reason });
        this.log.warn({ groupKey: d.groupKey, reason }, "webhook notification dropped");
      },
    );
  }

  notify(n: AlertNotification, alerts: readonly Alert[]): Promise<void> {
    if (this.stopping.signal.aborted) return Promise.resolve();
    let body: string;
    try {
      body =
        this.opts.template === undefined
          ? defaultWebhookBody(n, alerts)
          : renderWebhookTemplate(this.opts.template, webhookTemplateContext(this.name, n, alerts));
      JSON.parse(body);
    } catch (err) {
      this.metrics.inc(NOTIFIER_METRIC.failed, { notifier: this.name, reason: "template" });
      this.log.warn(
        { groupKey: n.groupKey, err: errorMessage(err) },
        "webhook template did not render valid JSON",
      );
      return Promise.resolve();
    }
    this.queue.push({ body, groupKey: n.groupKey });
    return Promise.resolve();
  }

  /** Pending deliveries (not counting the one in flight). */
  pending(): number {
    return this.queue.pending();
  }

  /** Resolves when the queue is empty and no delivery is in flight (tests, graceful shutdown). */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** Aborts the delivery in flight and pending retries; queued notifications are dropped and counted. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.queue.stop();
  }

  private async deliver(d: Delivery): Promise<void> {
    const maxRetries = this.opts.maxRetries ?? 5;
    const labels = { notifier: this.name };
    for (let attempt = 0; ; attempt++) {
      const outcome = await this.send(d.body);
      if (outcome.kind === "ok") {
        this.metrics.inc(NOTIFIER_METRIC.sent, labels);
        return;
      }
      if (outcome.kind === "fail") {
        this.metrics.inc(NOTIFIER_METRIC.failed, { ...labels, reason: outcome.reason });
        this.log.warn(
          { groupKey: d.groupKey, reason: outcome.reason, origin: this.origin() },
          "webhook refused",
        );
        return;
      }
      if (this.stopping.signal.aborted) {
        this.metrics.inc(NOTIFIER_METRIC.failed, { ...labels, reason: "stopped" });
        return;
      }
      if (attempt >= maxRetries) {
        this.metrics.inc(NOTIFIER_METRIC.failed, { ...labels, reason: "retries_exhausted" });
        this.log.warn(
          { groupKey: d.groupKey, reason: outcome.reason, attempts: attempt + 1, origin: this.origin() },
          "webhook delivery gave up",
        );
        return;
      }
      this.metrics.inc(NOTIFIER_METRIC.retries, labels);
      const maxDelay = this.opts.maxDelayMs ?? 60_000;
      const delay =
        outcome.retryAfterMs !== undefined
          ? Math.min(outcome.retryAfterMs, maxDelay)
          : backoffDelay(attempt, this.opts.baseDelayMs ?? 1000, maxDelay, this.opts.random ?? Math.random);
      this.log.debug({ groupKey: d.groupKey, reason: outcome.reason, delayMs: delay }, "webhook retry");
      if (!(await sleep(this.clock, delay, this.stopping.signal))) {
        this.metrics.inc(NOTIFIER_METRIC.failed, { ...labels, reason: "stopped" });
        return;
      }
    }
  }

  private async send(body: string): Promise<Outcome> {
    const timeoutMs = this.opts.timeoutMs ?? 10_000;
    const ac = new AbortController();
    const onStop = (): void => ac.abort();
    this.stopping.signal.addEventListener("abort", onStop, { once: true });
    const timer = this.clock.setTimeout(() => ac.abort(), timeoutMs);
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "user-agent": "polyfleet-collector",
      [WEBHOOK_TIMESTAMP_HEADER]: String(this.clock.now()),
      [WEBHOOK_DELIVERY_HEADER]: randomUUID(),
    };
    if (this.opts.secret !== undefined)
      headers[WEBHOOK_SIGNATURE_HEADER] = signWebhookBody(this.opts.secret, body);
    try {
      const res = await request(this.opts.url, {
        method: "POST",
        headers,
        body,
        signal: ac.signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        ...(this.opts.dispatcher ? { dispatcher: this.opts.dispatcher } : {}),
      });
      const retryAfter = res.headers["retry-after"];
      await res.body.dump().catch(() => undefined);
      const status = res.statusCode;
      if (status >= 200 && status < 300) return { kind: "ok" };
      if (status === 429 || status >= 500) {
        const retryAfterMs = parseRetryAfter(
          Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
          this.clock.now(),
        );
        return retryAfterMs === undefined
          ? { kind: "retry", reason: `http_${status}` }
          : { kind: "retry", reason: `http_${status}`, retryAfterMs };
      }
      return { kind: "fail", reason: `http_${status}` };
    } catch (err) {
      const reason = ac.signal.aborted && !this.stopping.signal.aborted ? "timeout" : "network";
      this.log.debug({ err: errorMessage(err), origin: this.origin() }, "webhook request failed");
      return { kind: "retry", reason };
    } finally {
      this.clock.clearTimeout(timer);
      this.stopping.signal.removeEventListener("abort", onStop);
    }
  }

  private origin(): string {
    try {
      return new URL(this.opts.url).origin;
    } catch {
      return "(invalid url)";
    }
  }
}

/** `sha256=<hex HMAC-SHA256 of body keyed with secret>`, the value of `X-Polyfleet-Signature`. */
export function signWebhookBody(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body, "utf8").digest("hex")}`;
}

/** `Retry-After` as milliseconds (delta-seconds or an HTTP date), or undefined when absent/unparsable. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
