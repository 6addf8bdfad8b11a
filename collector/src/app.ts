import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import {
  type Alert,
  type AlertNotification,
  type AlertRulesFile,
  type Clock,
  type CollectorConfig,
  type Logger,
  PolyfleetError,
  PromRegistry,
  type SecretRef,
  topicFor,
} from "@polyfleet/shared";
import Database from "better-sqlite3";
import type { FastifyInstance } from "fastify";
import { loadOrCreateAuditKey } from "./adapters/audit/audit-key.js";
import { SqliteAuditLog } from "./adapters/audit/sqlite-audit-log.js";
import { CatalogSource } from "./adapters/firmware/catalog-source.js";
import { InfluxMetricsStore } from "./adapters/influxdb/influx-metrics-store.js";
import { MemoryMetricsStore } from "./adapters/memory/memory-metrics-store.js";
import { CollectorBus } from "./adapters/mqtt/collector-bus.js";
import { EmbeddedBroker } from "./adapters/mqtt/embedded-broker.js";
import { EmailNotifier, MqttAlertNotifier, SseHub, WebhookNotifier } from "./adapters/notifiers/index.js";
import { PostgresStateStore } from "./adapters/postgres/postgres-state-store.js";
import { SqliteStateStore } from "./adapters/sqlite/sqlite-state-store.js";
import { AlertEngine, effectiveRules, notifiersForLevel } from "./core/alerts/index.js";
import { Ingestor } from "./core/ingestor.js";
import { buildServer, hashToken, TOKEN_FORMAT } from "./http/index.js";
import type { AuditLog } from "./ports/audit-log.js";
import type { MetricsStore } from "./ports/metrics-store.js";
import type { Notifier } from "./ports/notifier.js";
import type { StateStore } from "./ports/state-store.js";
import { RolloutServiceImpl } from "./services/rollout-service.js";

/** Everything main.ts resolved from files and the environment. */
export interface CollectorInputs {
  config: CollectorConfig;
  rules: AlertRulesFile;
  /** Directory for the SQLite state, the audit database and key (default: beside the state database). */
  stateDir: string;
  resolveSecret(ref: SecretRef, key: string): string;
  version: string;
  log: Logger;
  clock: Clock;
}

export interface Collector {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly api: FastifyInstance;
  readonly counters: PromRegistry;
  /** `http://host:port` once started. */
  readonly apiUrl: string | undefined;
  /** The broker agents connect to. */
  readonly brokerUrl: string | undefined;
  readonly store: StateStore;
  readonly audit: AuditLog;
  readonly metrics: MetricsStore;
  readonly ingestor: Ingestor;
  readonly rollouts: RolloutServiceImpl;
}

/**
 * Builds the collector: broker (embedded aedes or external), ingest (validate, dedup, store, ack), alert
 * engine and notifiers, metrics, audit, REST API and dashboard.
 */
export function buildCollector(inputs: CollectorInputs): Collector {
  const { config, log, clock } = inputs;
  const counters = new PromRegistry();
  mkdirSync(inputs.stateDir, { recursive: true });

  const store: StateStore =
    config.store.type === "sqlite"
      ? new SqliteStateStore({ path: config.store.path })
      : new PostgresStateStore({ connectionString: inputs.resolveSecret(config.store.url, "store.url") });
  // The audit log lives in SQLite: the state database itself when the store is SQLite, else audit.db.
  const auditPath = config.store.type === "sqlite" ? config.store.path : join(inputs.stateDir, "audit.db");
  mkdirSync(dirname(auditPath), { recursive: true });
  let auditDb: Database.Database | undefined;
  const keyFile = config.audit.keyFile ?? join(dirname(auditPath), "audit-key.pem");
  const { signer } = loadOrCreateAuditKey(keyFile);
  const openAuditDb = (): Database.Database => {
    auditDb ??= new Database(auditPath);
    auditDb.pragma("journal_mode = WAL");
    auditDb.pragma("busy_timeout = 5000");
    return auditDb;
  };
  let auditLog: SqliteAuditLog | undefined;
  const audit: AuditLog = {
    append: (e) => {
      if (!auditLog)
        return Promise.reject(
          new PolyfleetError("POLYFLEET_ERR_AUDIT_WRITE_FAILED", "audit log not started"),
        );
      return auditLog.append(e);
    },
    query: (q) => auditLog?.query(q) ?? Promise.resolve([]),
    verify: () => auditLog?.verify() ?? Promise.resolve({ ok: false, entries: 0, checkpoints: 0 }),
    checkpoints: () => auditLog?.checkpoints() ?? Promise.resolve([]),
  };

  const metrics: MetricsStore =
    config.metrics.type === "influxdb"
      ? new InfluxMetricsStore({
          url: config.metrics.url,
          database: config.metrics.database,
          batchSize: config.metrics.batchSize,
          flushMs: config.metrics.flushMs,
          maxBufferPoints: config.metrics.maxBufferPoints,
          ...(config.metrics.username ? { username: config.metrics.username } : {}),
          ...(config.metrics.password
            ? { password: inputs.resolveSecret(config.metrics.password, "metrics.password") }
            : {}),
          clock,
          log: log.child({ component: "influxdb" }),
        })
      : new MemoryMetricsStore({ retentionMinutes: config.metrics.retentionMinutes, clock });

  const embedded =
    config.broker.type === "embedded"
      ? new EmbeddedBroker(config.broker.host, config.broker.port)
      : undefined;
  let bus: CollectorBus | undefined;
  const publish = (topic: string, payload: string): Promise<void> =>
    bus ? bus.publish(topic, payload) : Promise.reject(new Error("broker not connected"));

  const engine = new AlertEngine({ rules: inputs.rules, clock, newId: () => randomUUID() });
  const sse = new SseHub({ clock, log: log.child({ component: "sse" }), metrics: counters });
  const mqttAlerts = new MqttAlertNotifier({
    publish,
    clock,
    log: log.child({ component: "alerts-mqtt" }),
    metrics: counters,
  });
  const delivery: Notifier[] = [];
  for (const w of config.notifiers.webhooks) {
    delivery.push(
      new WebhookNotifier({
        name: w.name,
        url: w.url,
        maxRetries: w.maxRetries,
        ...(w.secret
          ? { secret: inputs.resolveSecret(w.secret, `notifiers.webhooks.${w.name}.secret`) }
          : {}),
        ...(w.template ? { template: w.template } : {}),
        clock,
        log: log.child({ component: "webhook", notifier: w.name }),
        metrics: counters,
      }),
    );
  }
  const email = config.notifiers.email;
  if (email) {
    delivery.push(
      new EmailNotifier({
        name: email.name,
        host: email.host,
        port: email.port,
        secure: email.secure,
        from: email.from,
        to: email.to,
        ...(email.username ? { username: email.username } : {}),
        ...(email.password
          ? { password: inputs.resolveSecret(email.password, "notifiers.email.password") }
          : {}),
        clock,
        log: log.child({ component: "email" }),
        metrics: counters,
      }),
    );
  }

  let apiUrl: string | undefined;
  const catalog = new CatalogSource({
    rootFile: config.firmware.rootFile,
    catalogFile: config.firmware.catalogFile,
    imagesDir: config.firmware.imagesDir,
    trustStateFile: config.firmware.trustStateFile ?? join(inputs.stateDir, "firmware-trust.json"),
    clock,
    log: log.child({ component: "catalog" }),
  });
  const rollouts = new RolloutServiceImpl({
    store,
    audit,
    catalog,
    clock,
    log: log.child({ component: "rollouts" }),
    counters,
    publishCommand: (site, agent, cmd) => publish(topicFor("cmd", { site, agent }), JSON.stringify(cmd)),
    notify: (n) => {
      sse.publishRollout(n);
      void publish(topicFor("rollouts", { rollout: n.rolloutId }), JSON.stringify(n)).catch((err: unknown) =>
        log.warn({ err, rolloutId: n.rolloutId }, "rollout notification not published"),
      );
    },
    imageUrl: (sha256) =>
      `${(config.firmware.publicUrl ?? apiUrl ?? "").replace(/\/$/, "")}/api/v1/firmware/images/${sha256}`,
    newId: () => randomUUID(),
    tickMs: config.firmware.tickMs,
  });

  const ingestor = new Ingestor({
    store,
    metrics,
    alerts: {
      onReading: (r, d) => {
        engine.onReading(r, d);
        rollouts.onReading(d);
      },
      onEvent: (e) => {
        engine.onEvent(e);
        rollouts.onEvent(e);
      },
      onAgentState: (a) => {
        engine.onAgentState(a);
        rollouts.onAgentState(a);
      },
    },
    onCommandResult: (r) => rollouts.onCommandResult(r),
    publishAck: (site, agent, ack) => publish(topicFor("ack", { site, agent }), JSON.stringify(ack)),
    counters,
    clock,
    log: log.child({ component: "ingest" }),
  });

  const alertsById = new Map<string, Alert>();
  /** Persists transitions, streams them (MQTT alert topic, SSE), and delivers grouped notifications. */
  const pumpAlerts = async (): Promise<void> => {
    const out = engine.drain();
    for (const a of out.changed) {
      alertsById.set(a.id, a);
      rollouts.onAlert(a);
      try {
        await store.saveAlert(a);
      } catch (err) {
        log.error({ err, alertId: a.id }, "alert not saved");
      }
      sse.publish(a);
      void mqttAlerts.publishAlert(a);
    }
    for (const n of out.notifications) void deliver(n);
    if (out.changed.length)
      counters.inc("polyfleet_collector_alert_transitions_total", undefined, out.changed.length);
  };
  const deliver = async (n: AlertNotification): Promise<void> => {
    const alerts = n.alertIds.map((id) => alertsById.get(id)).filter((a): a is Alert => a !== undefined);
    const names = notifiersForLevel(inputs.rules, n.escalationLevel);
    for (const notifier of delivery) {
      if (names.length > 0 && !names.includes(notifier.name)) continue;
      await notifier.notify(n, alerts);
    }
    counters.inc("polyfleet_collector_notifications_total", { reason: n.reason });
  };

  const startedAt = clock.now();
  const api = buildServer({
    store,
    audit,
    metrics,
    sse,
    clock,
    log,
    config: { rateLimitPerMinute: config.api.rateLimitPerMinute, version: inputs.version },
    rollouts,
    alerts: {
      ack: async (id, by, comment) => {
        const r = engine.ack(id, by, comment);
        await pumpAlerts();
        return r;
      },
      rules: () => effectiveRules(inputs.rules),
      silencesChanged: async (list) => {
        for (const e of engine.setSilences(list)) log.warn({ err: e }, "silence not applied");
        await pumpAlerts();
      },
      windowsChanged: async (list) => {
        for (const e of engine.setWindows(list)) log.warn({ err: e }, "maintenance window not applied");
        rollouts.windowsChanged(list);
        await pumpAlerts();
      },
    },
    health: () => ({
      status: bus?.connected ? "ok" : "degraded",
      version: inputs.version,
      uptimeSec: (clock.now() - startedAt) / 1000,
      checks: {
        broker: { ok: bus?.connected ?? false },
        metrics: { ok: metrics.stats().dropped === 0, detail: JSON.stringify(metrics.stats()) },
      },
    }),
  });
  api.get("/metrics", { schema: { hide: true } }, (_req, reply) => {
    void reply.type("text/plain; version=0.0.4").send(counters.render());
  });

  /** The first admin token, from `api.bootstrapToken`, when no token exists yet (audited). */
  const bootstrapToken = async (): Promise<void> => {
    const ref = config.api.bootstrapToken;
    if (!ref || (await store.listTokens()).length > 0) return;
    const secret = inputs.resolveSecret(ref, "api.bootstrapToken");
    if (!TOKEN_FORMAT.test(secret)) {
      throw new PolyfleetError(
        "POLYFLEET_ERR_CONFIG_INVALID",
        "api.bootstrapToken: must be pf_ followed by 20-100 of A-Z a-z 0-9 _ -",
      );
    }
    await audit.append({
      actor: "system:bootstrap",
      action: "token.create",
      target: "token:bootstrap-admin",
      reason: "api.bootstrapToken set and no token exists",
      result: "ok",
    });
    await store.saveToken({
      id: randomUUID(),
      name: "bootstrap-admin",
      role: "admin",
      sites: ["*"],
      createdAt: clock.now(),
      createdBy: "system:bootstrap",
      hash: hashToken(secret),
    });
    log.info("bootstrap admin token created");
  };

  let brokerUrl: string | undefined;
  let ticker: NodeJS.Timeout | undefined;

  return {
    api,
    counters,
    store,
    audit,
    metrics,
    ingestor,
    rollouts,
    get apiUrl() {
      return apiUrl;
    },
    get brokerUrl() {
      return brokerUrl;
    },
    async start() {
      await store.migrate();
      auditLog = new SqliteAuditLog({
        db: openAuditDb(),
        signer,
        checkpointEvery: config.audit.checkpointEvery,
        clock,
      });
      auditLog.start();
      await metrics.start();
      engine.restore(await store.listAlerts({ state: "active", limit: 100_000 }));
      for (const e of engine.setSilences(await store.listSilences()))
        log.warn({ err: e }, "silence not applied");
      for (const e of engine.setWindows(await store.listWindows()))
        log.warn({ err: e }, "maintenance window not applied");
      for (const a of await store.listAgents()) engine.onAgentState(a);
      await rollouts.restore({
        windows: await store.listWindows(),
        agents: await store.listAgents(),
        alerts: await store.listAlerts({ state: "active", limit: 100_000 }),
      });
      if (embedded) brokerUrl = await embedded.start();
      else if (config.broker.type === "external") brokerUrl = config.broker.url;
      const b = config.broker;
      bus = new CollectorBus({
        url: brokerUrl ?? "",
        clientId: `polyfleet-collector-${randomUUID().slice(0, 8)}`,
        log: log.child({ component: "bus" }),
        ...(b.type === "external"
          ? {
              ...(b.username ? { username: b.username } : {}),
              ...(b.password ? { password: inputs.resolveSecret(b.password, "broker.password") } : {}),
              ...(b.protocolVersion ? { protocolVersion: b.protocolVersion } : {}),
              ...(b.sharedGroup ? { sharedGroup: b.sharedGroup } : {}),
            }
          : {}),
      });
      bus.onMessage((topic, payload) => ingestor.handle(topic, payload));
      await bus.start();
      ticker = setInterval(() => {
        engine.tick();
        void pumpAlerts();
      }, 1000);
      ticker.unref();
      await bootstrapToken();
      apiUrl = await api.listen({ host: config.http.host, port: config.http.port });
      rollouts.start();
      await audit.append({
        actor: "system:collector",
        action: "collector.start",
        target: "collector",
        reason: "process start",
        result: "ok",
        details: { version: inputs.version },
      });
      log.info({ api: apiUrl, broker: brokerUrl }, "collector started");
    },
    async stop() {
      if (ticker) clearInterval(ticker);
      await rollouts.stop();
      // Live streams never end on their own: close them first, or the HTTP server waits for them forever.
      await sse.stop();
      await api.close();
      await ingestor.stop();
      await pumpAlerts();
      await bus?.stop();
      await embedded?.stop();
      await mqttAlerts.stop();
      for (const n of delivery) await n.stop?.();
      await metrics.stop();
      try {
        await audit.append({
          actor: "system:collector",
          action: "collector.stop",
          target: "collector",
          reason: "process stop",
          result: "ok",
        });
      } catch (err) {
        log.warn({ err }, "stop not audited");
      }
      auditLog?.stop();
      auditDb?.close();
      await store.close();
      log.info("collector stopped");
    },
  };
}
