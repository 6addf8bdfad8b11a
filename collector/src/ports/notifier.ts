import type { Alert, AlertNotification } from "@polyfleet/shared";

/** A delivery channel for alert notifications (MQTT topic, SSE, webhook, e-mail). */
export interface Notifier {
  readonly name: string;
  /** Delivers one notification with the alerts it names. Never throws: failures are retried/logged/counted inside. */
  notify(n: AlertNotification, alerts: readonly Alert[]): Promise<void>;
  stop?(): Promise<void>;
}
