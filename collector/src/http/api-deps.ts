import type { IncomingMessage, ServerResponse } from "node:http";
import type {
  Alert,
  AlertRule,
  ApiToken,
  Clock,
  HealthReport,
  Logger,
  MaintenanceWindow,
  PolyfleetError,
  Silence,
} from "@polyfleet/shared";
import type { AuditLog } from "../ports/audit-log.js";
import type { MetricsStore } from "../ports/metrics-store.js";
import type { RolloutService } from "../ports/rollouts.js";
import type { StateStore } from "../ports/state-store.js";

/**
 * What the API needs from the alert engine. The composition root implements it with the engine; the store
 * stays the source of truth for silences and windows, the engine is told after every change.
 */
export interface AlertActions {
  /**
   * Acknowledges alert `id` as `by` (`token:<name>`): firing → acknowledged, saved with history and notified.
   * Returns the updated alert, or a PolyfleetError value (NOT_FOUND, or e.g. a resolved alert) that the API
   * answers with.
   */
  ack(id: string, by: string, comment: string): Promise<Alert | PolyfleetError>;
  /** The effective rules (built-ins merged with rules.yaml). */
  rules(): AlertRule[];
  /** Called after a silence was saved or deleted in the store, with the store's full list. */
  silencesChanged(silences: Silence[]): void | Promise<void>;
  /** Called after a maintenance window was saved or deleted in the store, with the store's full list. */
  windowsChanged(windows: MaintenanceWindow[]): void | Promise<void>;
}

/** The live alert stream (Server-Sent Events). */
export interface SseHub {
  /**
   * Takes over a raw request/response (the route has hijacked the reply): writes the SSE headers, keeps the
   * connection, sends alert transitions of the given sites (`"*"` = all), and cleans up on `close`.
   * The notifiers' SseHub (adapters/notifiers/sse-hub.ts) fits as is.
   */
  handle(req: IncomingMessage, res: ServerResponse, sites: "*" | readonly string[]): void;
}

export interface ApiConfig {
  /** Requests per minute per token (bucket size and refill rate). */
  rateLimitPerMinute: number;
  /** Requests per minute per client IP for requests without a valid token (default: rateLimitPerMinute). */
  anonymousRateLimitPerMinute?: number;
  /** Largest accepted request body in bytes (default 65,536). */
  bodyLimit?: number;
  /** Directory of the dashboard's index.html/app.js/style.css (default: collector/src/dashboard). */
  dashboardDir?: string;
  /** Version shown in the OpenAPI document. */
  version?: string;
}

/** Everything `buildServer` needs, built by the composition root (main.ts). */
export interface ApiDeps {
  store: StateStore;
  audit: AuditLog;
  metrics: MetricsStore;
  alerts: AlertActions;
  sse: SseHub;
  clock: Clock;
  log: Logger;
  config: ApiConfig;
  /**
   * Firmware catalog and rollouts. When absent, the `/rollouts` and `/firmware` routes are not registered (a
   * request answers 404 like any unknown route, and they are missing from the OpenAPI document).
   */
  rollouts?: RolloutService;
  /** `GET /healthz` (no auth): `down` answers 503, `ok`/`degraded` 200. */
  health(): HealthReport | Promise<HealthReport>;
}

/** The authenticated caller of an API request. */
export interface Principal {
  token: ApiToken;
  /** `token:<name>`: the audit actor. */
  actor: string;
}
