import { randomUUID } from "node:crypto";
import type { Alert, AlertNotification, Clock, Logger } from "@polyfleet/shared";
import { SYSTEM_CLOCK } from "@polyfleet/shared";
import type { Notifier } from "../../ports/notifier.js";
import { buildMimeMessage, composeAlertEmail } from "./email-message.js";
import {
  backoffDelay,
  DeliveryQueue,
  NOOP_NOTIFIER_METRICS,
  NOTIFIER_METRIC,
  type NotifierMetrics,
  silentLogger,
  sleep,
} from "./notifier-support.js";
import { type SmtpClientOptions, type SmtpSendResult, sendSmtpMail } from "./smtp-client.js";

export interface EmailNotifierOptions extends SmtpClientOptions {
  /** Notifier name (default `email`). */
  name?: string;
  from: string;
  to: readonly string[];
  /** Retries after the first attempt on transient failures (default 3). */
  maxRetries?: number;
  /** First retry delay (default 2 s), doubled per retry up to `maxDelayMs` (default 60 s), with jitter. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  random?: () => number;
  /** Pending e-mails kept; the oldest is dropped (and counted) when full (default 100). */
  queueSize?: number;
  log?: Logger;
  metrics?: NotifierMetrics;
  clock?: Clock;
}

interface Mail {
  groupKey: string;
  data: string;
}

/**
 * Sends one plain-text + HTML e-mail per notification to every configured recipient over SMTP (own client
 * on node:net/node:tls: STARTTLS, AUTH PLAIN/LOGIN, dot-stuffing). `notify` only composes and enqueues;
 * delivery (with retries on transient failures) runs in the background. The password is never logged.
 */
export class EmailNotifier implements Notifier {
  readonly name: string;
  private readonly opts: EmailNotifierOptions;
  private readonly log: Logger;
  private readonly metrics: NotifierMetrics;
  private readonly clock: Clock;
  private readonly queue: DeliveryQueue<Mail>;
  private readonly stopping = new AbortController();

  constructor(opts: EmailNotifierOptions) {
    this.name = opts.name ?? "email";
    this.opts = opts;
    this.log = (opts.log ?? silentLogger()).child({ component: "email-notifier", notifier: this.name });
    this.metrics = opts.metrics ?? NOOP_NOTIFIER_METRICS;
    this.clock = opts.clock ?? SYSTEM_CLOCK;
    this.queue = new DeliveryQueue<Mail>(
      opts.queueSize ?? 100,
      (m) => this.deliver(m),
      (m, reason) => {
        this.metrics.inc(NOTIFIER_METRIC.dropped, { notifier: this.name, reason });
        this.log.warn({ groupKey: m.groupKey, reason }, "e-mail notification dropped");
      },
    );
  }

  notify(n: AlertNotification, alerts: readonly Alert[]): Promise<void> {
    if (this.stopping.signal.aborted) return Promise.resolve();
    const mail = composeAlertEmail(n, alerts);
    const messageId = `${randomUUID()}@polyfleet`;
    const data = buildMimeMessage({
      from: this.opts.from,
      to: this.opts.to,
      subject: mail.subject,
      text: mail.text,
      html: mail.html,
      date: new Date(this.clock.now()),
      messageId,
      extraHeaders: { "X-Polyfleet-Group": n.groupKey, "X-Polyfleet-Reason": n.reason },
    });
    this.queue.push({ groupKey: n.groupKey, data });
    return Promise.resolve();
  }

  /** Pending e-mails (not counting the one being sent). */
  pending(): number {
    return this.queue.pending();
  }

  /** Resolves when nothing is queued or being sent. */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** Abandons pending retries; queued e-mails are dropped and counted. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.queue.stop();
  }

  private async deliver(m: Mail): Promise<void> {
    const labels = { notifier: this.name };
    const maxRetries = this.opts.maxRetries ?? 3;
    for (let attempt = 0; ; attempt++) {
      const r: SmtpSendResult = await sendSmtpMail(
        this.opts,
        { from: this.opts.from, to: this.opts.to },
        m.data,
      );
      if (r.ok) {
        this.metrics.inc(NOTIFIER_METRIC.sent, labels);
        if (r.rejected.length > 0) {
          this.metrics.inc(NOTIFIER_METRIC.failed, { ...labels, reason: "recipient_refused" });
          this.log.warn({ groupKey: m.groupKey, refused: r.rejected }, "some recipients were refused");
        }
        return;
      }
      const failure = {
        groupKey: m.groupKey,
        stage: r.stage,
        code: r.code,
        message: r.message,
        attempts: attempt + 1,
      };
      if (!r.transient) {
        this.metrics.inc(NOTIFIER_METRIC.failed, { ...labels, reason: `smtp_${r.stage}` });
        this.log.warn(failure, "e-mail refused");
        return;
      }
      if (attempt >= maxRetries || this.stopping.signal.aborted) {
        this.metrics.inc(NOTIFIER_METRIC.failed, {
          ...labels,
          reason: this.stopping.signal.aborted ? "stopped" : "retries_exhausted",
        });
        this.log.warn(failure, "e-mail delivery gave up");
        return;
      }
      this.metrics.inc(NOTIFIER_METRIC.retries, labels);
      const delay = backoffDelay(
        attempt,
        this.opts.baseDelayMs ?? 2000,
        this.opts.maxDelayMs ?? 60_000,
        this.opts.random ?? Math.random,
      );
      this.log.debug({ ...failure, delayMs: delay }, "e-mail retry");
      if (!(await sleep(this.clock, delay, this.stopping.signal))) {
        this.metrics.inc(NOTIFIER_METRIC.failed, { ...labels, reason: "stopped" });
        return;
      }
    }
  }
}
