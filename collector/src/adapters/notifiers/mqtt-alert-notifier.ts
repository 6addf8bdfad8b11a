import {
  Alert,
  type AlertNotification,
  type Clock,
  type Logger,
  SYSTEM_CLOCK,
  topicFor,
} from "@polyfleet/shared";
import type { Notifier } from "../../ports/notifier.js";
import {
  backoffDelay,
  errorMessage,
  NOOP_NOTIFIER_METRICS,
  NOTIFIER_METRIC,
  type NotifierMetrics,
  silentLogger,
  sleep,
} from "./notifier-support.js";

/** Publishes one payload; the collector owns the MQTT client (or the embedded broker) behind it. */
export type AlertPublishFn = (
  topic: string,
  payload: string,
  opts: { qos: 1; retain: false },
) => Promise<void>;

export interface MqttAlertNotifierOptions {
  publish: AlertPublishFn;
  log?: Logger;
  metrics?: NotifierMetrics;
  clock?: Clock;
  /** Notifier name used in logs and metric labels (default `mqtt`). */
  name?: string;
  /** Retries of a failed publish (default 3). */
  maxRetries?: number;
  /** First retry delay (default 200 ms), doubled per retry up to `maxDelayMs` (default 5 s), with jitter. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  random?: () => number;
}

/**
 * Publishes alerts on `polyfleet/v1/alerts/<severity>` (QoS 1, not retained), each validated against the
 * shared `Alert` schema first. `notify` publishes every alert of a notification; `publishAlert` is for
 * callers that publish every transition themselves. Never throws: failures are retried, logged, counted.
 */
export class MqttAlertNotifier implements Notifier {
  readonly name: string;
  private readonly publishFn: AlertPublishFn;
  private readonly log: Logger;
  private readonly metrics: NotifierMetrics;
  private readonly clock: Clock;
  private readonly maxRetries: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly random: () => number;
  private readonly stopping = new AbortController();

  constructor(opts: MqttAlertNotifierOptions) {
    this.name = opts.name ?? "mqtt";
    this.publishFn = opts.publish;
    this.log = (opts.log ?? silentLogger()).child({ component: "mqtt-alert-notifier" });
    this.metrics = opts.metrics ?? NOOP_NOTIFIER_METRICS;
    this.clock = opts.clock ?? SYSTEM_CLOCK;
    this.maxRetries = opts.maxRetries ?? 3;
    this.baseDelayMs = opts.baseDelayMs ?? 200;
    this.maxDelayMs = opts.maxDelayMs ?? 5000;
    this.random = opts.random ?? Math.random;
  }

  async notify(_n: AlertNotification, alerts: readonly Alert[]): Promise<void> {
    for (const alert of alerts) await this.publishAlert(alert);
  }

  /** Validates and publishes one alert. Resolves `true` once the publish succeeded; never rejects. */
  async publishAlert(alert: Alert): Promise<boolean> {
    const labels = { notifier: this.name };
    const parsed = Alert.safeParse(alert);
    if (!parsed.success) {
      this.metrics.inc(NOTIFIER_METRIC.invalid, labels);
      this.log.warn(
        { alertId: (alert as { id?: unknown }).id, issues: parsed.error.issues },
        "invalid alert",
      );
      return false;
    }
    let topic: string;
    try {
      topic = topicFor("alerts", { severity: parsed.data.severity });
    } catch (err) {
      this.metrics.inc(NOTIFIER_METRIC.invalid, labels);
      this.log.warn({ alertId: parsed.data.id, err: errorMessage(err) }, "no topic for alert");
      return false;
    }
    const payload = JSON.stringify(parsed.data);
    for (let attempt = 0; ; attempt++) {
      if (this.stopping.signal.aborted) break;
      try {
        await this.publishFn(topic, payload, { qos: 1, retain: false });
        this.metrics.inc(NOTIFIER_METRIC.sent, labels);
        return true;
      } catch (err) {
        if (attempt >= this.maxRetries) {
          this.log.warn({ alertId: parsed.data.id, topic, err: errorMessage(err) }, "alert publish failed");
          break;
        }
        this.metrics.inc(NOTIFIER_METRIC.retries, labels);
        const ms = backoffDelay(attempt, this.baseDelayMs, this.maxDelayMs, this.random);
        if (!(await sleep(this.clock, ms, this.stopping.signal))) break;
      }
    }
    this.metrics.inc(NOTIFIER_METRIC.failed, { ...labels, reason: "publish" });
    return false;
  }

  /** Abandons pending retries. */
  stop(): Promise<void> {
    this.stopping.abort();
    return Promise.resolve();
  }
}
