import { hostname } from "node:os";
import { join } from "node:path";
import type { AgentConfig, Logger } from "@polyfleet/shared";
import { createDeviceCommandHandlers } from "./adapters/commands/device-commands.js";
import { createFirmwareUpdateHandlers } from "./adapters/commands/firmware-update.js";
import { type DiscoveredDevice, Discovery } from "./adapters/discovery/discovery.js";
import { PolyUcsDriver } from "./adapters/drivers/poly-ucs.js";
import { PolyVideoOsDriver } from "./adapters/drivers/poly-videoos.js";
import { SnmpGenericDriver } from "./adapters/drivers/snmp-generic.js";
import { UndiciHttpsClient } from "./adapters/http/https-client.js";
import { MqttAgentLink, type MqttLinkBroker } from "./adapters/mqtt/mqtt-agent-link.js";
import { OpsServer } from "./adapters/ops/ops-server.js";
import { SqliteOutbox } from "./adapters/outbox/sqlite-outbox.js";
import {
  PROVISIONING_REQUESTS_TOTAL,
  ProvisioningServer,
} from "./adapters/provisioning/provisioning-server.js";
import { type ScheduledDevice, Scheduler } from "./adapters/scheduler/scheduler.js";
import { NetSnmpClient } from "./adapters/snmp/net-snmp-client.js";
import { SnmpTrapReceiver } from "./adapters/snmp/trap-receiver.js";
import { createNetworkToolHandlers } from "./adapters/tools/index.js";
import type { DownloadOptions } from "./adapters/update/image-download.js";
import { FileImageStore, IMAGE_CACHE_COUNT, IMAGE_DOWNLOADS_TOTAL } from "./adapters/update/image-store.js";
import { SqliteUpdateJournal } from "./adapters/update/update-journal.js";
import { CommandRunner } from "./core/command-runner.js";
import { PromRegistry } from "./core/prom-registry.js";
import {
  UPDATES_RUNNING,
  UPDATES_TOTAL,
  UpdateManager,
  type UpdateManagerOptions,
} from "./core/update-manager.js";
import type { Clock } from "./ports/clock.js";
import type { ResolvedCredential } from "./ports/credentials.js";
import type { DeviceDriver, DeviceTarget, DriverName, ReadingBody } from "./ports/driver.js";
import type { EventBody, TelemetrySink } from "./ports/sink.js";

export const AGENT_CAPABILITIES = [
  "poll:poly-ucs",
  "poll:poly-videoos",
  "poll:snmp-generic",
  "discovery",
  "traps",
  "outbox",
  "cmd:ping",
  "cmd:tcpConnect",
  "cmd:httpProbe",
  "cmd:dnsLookup",
  "cmd:traceroute",
  "cmd:snmpGet",
  "cmd:snmpWalk",
  "cmd:rediscover",
  "cmd:reboot",
  "cmd:firmwareUpdate",
];

/** Everything main.ts has already read from files and the environment. */
export interface AgentInputs {
  config: AgentConfig;
  /** Credential profiles, secrets resolved and SNMP policy checked. */
  credentials: Map<string, ResolvedCredential>;
  /** Broker settings with the TLS material (PEM contents) and password resolved. */
  broker: MqttLinkBroker;
  version: string;
  log: Logger;
  clock: Clock;
  /** Where the discovery progress bar goes on a terminal. */
  progressOut?: { isTTY?: boolean; write(chunk: string): unknown };
  /** Firmware update tuning (tests shorten the watch period and the download backoff). */
  updates?: UpdateManagerOptions & {
    download?: Pick<DownloadOptions, "maxAttempts" | "backoffMs" | "maxBackoffMs" | "idleTimeoutMs" | "ca">;
  };
}

export interface Agent {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly metrics: PromRegistry;
  /** URL of /healthz and /metrics, once started. */
  readonly opsUrl: string | undefined;
  /** Advertised URL of the site provisioning server, once started (undefined when it could not start). */
  readonly provisioningUrl: string | undefined;
}

/** Device id from a reading's identity: the MAC when known (stable across addresses), else `ip-<address>`. */
export function deviceIdFor(address: string, mac?: string): string {
  return mac ?? `ip-${address}`;
}

/**
 * Builds the agent from its resolved inputs (composition; no file or environment access here). The outbox
 * is the sink of everything produced; a device first known by address takes its MAC as id once a poll
 * reports it.
 */
export function buildAgent(inputs: AgentInputs): Agent {
  const { config, credentials, log, clock } = inputs;
  const metrics = new PromRegistry();
  describeMetrics(metrics);
  const outbox = new SqliteOutbox({
    dir: config.outbox.dir,
    agentId: config.agentId,
    siteId: config.siteId,
    maxEntries: config.outbox.maxEntries,
    clock,
    metrics,
    log,
  });
  const link = new MqttAgentLink({
    agentId: config.agentId,
    siteId: config.siteId,
    broker: inputs.broker,
    outbox,
    batchSize: config.outbox.batchSize,
    // Polls finish spread over the interval: waiting a little lets readings share a message and an ack.
    lingerMs: 200,
    version: inputs.version,
    capabilities: AGENT_CAPABILITIES,
    hostname: hostname(),
    clock,
    metrics,
    log,
  });
  const http = new UndiciHttpsClient({ metrics, timeoutMs: config.polling.timeoutMs });
  const snmp = new NetSnmpClient({
    metrics,
    log: log.child({ component: "snmp" }),
    timeoutMs: Math.min(config.polling.timeoutMs, 3000),
  });
  const drivers: Record<DriverName, DeviceDriver> = {
    "poly-ucs": new PolyUcsDriver({ http, metrics, clock, requestTimeoutMs: config.polling.timeoutMs }),
    "poly-videoos": new PolyVideoOsDriver({
      http,
      snmp,
      metrics,
      clock,
      requestTimeoutMs: config.polling.timeoutMs,
    }),
    "snmp-generic": new SnmpGenericDriver({ client: snmp, clock }),
  };

  /** The scheduled devices by id, and by address for trap source lookup. */
  const devices = new Map<string, ScheduledDevice>();
  const byAddress = new Map<string, string>();
  let scheduler: Scheduler | undefined;

  const adopt = (dev: ScheduledDevice): void => {
    devices.set(dev.target.deviceId, dev);
    byAddress.set(dev.target.address, dev.target.deviceId);
    scheduler?.upsert(dev);
  };

  // A device configured by address is scheduled under `ip-<address>` for good (re-keying would drop its
  // keep-alive connection and session); what leaves the agent carries its MAC once a poll has reported it.
  const macOf = new Map<string, string>();
  const internalOf = new Map<string, string>();
  const publicId = (id: string): string => macOf.get(id) ?? id;
  const learn = (id: string, mac: string | undefined): void => {
    if (!mac || id === mac || macOf.get(id) === mac) return;
    macOf.set(id, mac);
    internalOf.set(mac, id);
    log.info({ deviceId: mac, scheduledAs: id }, "device identified");
  };
  const scheduled = (id: string): ScheduledDevice | undefined =>
    devices.get(id) ?? devices.get(internalOf.get(id) ?? "");

  const sink: TelemetrySink = {
    appendReading(reading: ReadingBody): number {
      learn(reading.deviceId, reading.identity.mac);
      const id = publicId(reading.deviceId);
      return outbox.appendReading(id === reading.deviceId ? reading : { ...reading, deviceId: id });
    },
    appendEvent(event: EventBody): number {
      if ("deviceId" in event && event.deviceId !== undefined) {
        const id = publicId(event.deviceId);
        if (id !== event.deviceId) return outbox.appendEvent({ ...event, deviceId: id } as EventBody);
      }
      return outbox.appendEvent(event);
    },
  };

  scheduler = new Scheduler(
    { drivers, sink, clock, metrics, log: log.child({ component: "scheduler" }) },
    {
      intervalMs: config.polling.intervalSec * 1000,
      jitterPct: config.polling.jitterPct,
      timeoutMs: config.polling.timeoutMs,
      concurrency: config.polling.concurrency,
      missesBeforeUnreachable: config.polling.missesBeforeUnreachable,
    },
  );
  const sched = scheduler;

  const credentialList = (names: string[]): ResolvedCredential[] =>
    names.map((n) => credentials.get(n)).filter((c): c is ResolvedCredential => c !== undefined);

  const discovery = new Discovery(
    {
      sink,
      snmp,
      drivers,
      clock,
      metrics,
      log: log.child({ component: "discovery" }),
      ...(inputs.progressOut ? { progressOut: inputs.progressOut } : {}),
    },
    {
      ranges: config.discovery.ranges,
      httpsPorts: config.discovery.httpsPorts,
      snmpPorts: config.discovery.snmpPorts,
      concurrency: config.discovery.concurrency,
      timeoutMs: config.discovery.timeoutMs,
      credentials: credentialList(config.discovery.credentials),
    },
  );

  const adoptDiscovered = (found: DiscoveredDevice[]): number => {
    let added = 0;
    for (const d of found) {
      if (devices.has(d.deviceId) || byAddress.has(d.address)) continue;
      adopt({ target: d.target, driver: d.driver });
      added++;
    }
    return added;
  };

  const rediscover = async (
    ranges: string[] | undefined,
    signal: AbortSignal,
  ): Promise<Record<string, unknown>> => {
    discovery.setKnown(
      [...devices.values()].map((d) => ({ deviceId: d.target.deviceId, address: d.target.address })),
    );
    const r = await discovery.run({ signal, ...(ranges ? { ranges } : {}) });
    const added = adoptDiscovered(r.found);
    return {
      scanId: r.scanId,
      scanned: r.scanned,
      total: r.total,
      found: r.found.length,
      added,
      lost: r.lost.map((l) => l.deviceId),
      cancelled: r.cancelled,
      durationMs: r.durationMs,
    };
  };

  // Firmware updates: journal + image cache under provisioning.dir, the site provisioning server, the manager.
  // They are optional for the agent's main job: when they cannot start (port taken, directory locked by
  // another agent) the agent runs on and refuses firmwareUpdate commands, saying why.
  const updateLog = log.child({ component: "updates" });
  const journal = new SqliteUpdateJournal(config.provisioning.dir);
  const images = new FileImageStore({
    dir: join(config.provisioning.dir, "images"),
    maxCached: config.provisioning.maxCachedImages,
    metrics,
    log: log.child({ component: "images" }),
    ...(inputs.updates?.download ? { download: inputs.updates.download } : {}),
  });
  const provisioning = new ProvisioningServer({
    host: config.provisioning.host,
    port: config.provisioning.port,
    advertisedUrl: config.provisioning.advertisedUrl,
    images,
    clock,
    metrics,
    log: log.child({ component: "provisioning" }),
  });
  const updates = new UpdateManager(
    {
      journal,
      images,
      provisioning,
      drivers,
      device: (id) => scheduled(id),
      sink,
      clock,
      metrics,
      log: updateLog,
    },
    { watchIntervalMs: config.provisioning.watchIntervalMs, ...(inputs.updates ?? {}) },
  );
  let updatesUnavailable: string | undefined = "the agent is not started";
  let journalOpen = false;

  const runner = new CommandRunner({
    agentId: config.agentId,
    clock,
    metrics,
    log: log.child({ component: "commands" }),
    publish: (result) => link.publishResult(result),
    handlers: {
      ...createNetworkToolHandlers(),
      ...createDeviceCommandHandlers({
        snmp,
        drivers,
        device: (id) => scheduled(id),
        credential: (name) => credentials.get(name),
        rediscover,
        snmpPort: config.discovery.snmpPorts[0] ?? 161,
      }),
      ...createFirmwareUpdateHandlers({
        accept: (body, commandId) => updates.accept(body, commandId),
        unavailable: () => updatesUnavailable,
      }),
    },
  });

  const snmpCredentials = [...credentials.values()].filter((c) => c.type !== "http");
  const traps = config.traps.enabled
    ? new SnmpTrapReceiver({
        host: config.traps.host,
        port: config.traps.port,
        credentials: snmpCredentials,
        sink,
        metrics,
        log: log.child({ component: "traps" }),
        lookupDevice: (address) => {
          const id = byAddress.get(address);
          return id === undefined ? undefined : publicId(id);
        },
      })
    : undefined;

  const ops = new OpsServer(
    metrics,
    {
      health: () => ({
        ok: true,
        agentId: config.agentId,
        siteId: config.siteId,
        version: inputs.version,
        connected: link.connected,
        protocolVersion: link.connected ? link.protocolVersion : null,
        outboxDepth: outbox.depth(),
        lastSeq: outbox.lastSeq(),
        ackedSeq: outbox.ackedSeq(),
        droppedTotal: outbox.droppedTotal(),
        devices: sched.size,
        pollsInFlight: sched.inFlight,
        updatesRunning: updates.running,
        provisioning: provisioning.url ?? null,
      }),
    },
    config.http.host,
    config.http.port,
  );

  let opsUrl: string | undefined;
  let discoveryTimer: NodeJS.Timeout | undefined;
  let statsTimer: NodeJS.Timeout | undefined;
  const discoveryAbort = new AbortController();
  let lastCountedCycle = -1;

  /** Per-cycle scheduler figures as metrics: late polls (counter) and the last full cycle's worst lateness. */
  const exportCycleStats = (): void => {
    const cycles = sched.cycleStats();
    const complete = cycles.slice(0, -1);
    for (const c of complete) {
      if (c.index <= lastCountedCycle) continue;
      metrics.inc("polyfleet_agent_poll_late_total", undefined, c.late);
      lastCountedCycle = c.index;
    }
    const last = complete.at(-1);
    if (last) {
      metrics.set("polyfleet_agent_poll_max_lateness_seconds", last.maxLatenessMs / 1000);
      metrics.set("polyfleet_agent_cycle_polls_due", last.due);
      metrics.set("polyfleet_agent_cycle_polls_done", last.done);
    }
    metrics.set("polyfleet_agent_outbox_depth", outbox.depth());
  };

  const runDiscovery = (): void => {
    void rediscover(undefined, discoveryAbort.signal)
      .then((r) => log.info(r, "discovery finished"))
      .catch((err: unknown) => log.error({ err }, "discovery failed"));
  };

  return {
    metrics,
    get opsUrl() {
      return opsUrl;
    },
    get provisioningUrl() {
      return provisioning.url;
    },
    async start() {
      outbox.open();
      for (const d of config.devices) {
        const id = deviceIdFor(d.address);
        const target: DeviceTarget = {
          deviceId: id,
          address: d.address,
          httpsPort: d.httpsPort,
          snmpPort: d.snmpPort,
          credentials: credentialList(d.credentials),
          tags: d.tags,
        };
        adopt({
          target,
          driver: d.driver ?? "snmp-generic",
          ...(d.pollIntervalSec ? { intervalMs: d.pollIntervalSec * 1000 } : {}),
        });
      }
      opsUrl = await ops.start();
      if (traps) await traps.start();
      try {
        journal.open();
        journalOpen = true;
        images.open();
        const url = await provisioning.start();
        updates.start();
        updatesUnavailable = undefined;
        updateLog.info({ provisioning: url }, "site provisioning server listening");
      } catch (err) {
        updatesUnavailable =
          err instanceof Error ? err.message : "the provisioning server or update journal could not start";
        updateLog.error({ err }, "firmware updates unavailable on this agent");
      }
      link.onCommandPayload((payload) => {
        void runner.handleRaw(payload);
      });
      link.start();
      sched.start();
      statsTimer = setInterval(exportCycleStats, 5000);
      statsTimer.unref();
      if (config.discovery.ranges.length > 0 && config.discovery.intervalSec > 0) {
        runDiscovery();
        discoveryTimer = setInterval(runDiscovery, config.discovery.intervalSec * 1000);
        discoveryTimer.unref();
      }
      log.info({ devices: devices.size, ops: opsUrl, broker: inputs.broker.url }, "agent started");
    },
    async stop() {
      if (discoveryTimer) clearInterval(discoveryTimer);
      if (statsTimer) clearInterval(statsTimer);
      discoveryAbort.abort();
      await sched.stop();
      runner.stop();
      updatesUnavailable = "the agent is stopping";
      await updates.stop();
      await provisioning.stop();
      if (journalOpen) journal.close();
      await link.stop();
      if (traps) await traps.stop();
      for (const d of Object.values(drivers)) await d.close();
      await snmp.close();
      await http.close();
      await ops.stop();
      outbox.close();
      log.info("agent stopped");
    },
  };
}

function describeMetrics(m: PromRegistry): void {
  m.describe("polyfleet_agent_polls_total", "counter", "Device polls by driver and result");
  m.describe(
    "polyfleet_agent_poll_failures_total",
    "counter",
    "Failed polls by driver and reason (error code)",
  );
  m.describe("polyfleet_agent_poll_duration_seconds", "histogram", "Poll latency by driver");
  m.describe("polyfleet_agent_poll_late_total", "counter", "Polls started more than 1 s after they were due");
  m.describe(
    "polyfleet_agent_poll_max_lateness_seconds",
    "gauge",
    "Worst poll lateness in the last full cycle",
  );
  m.describe(
    "polyfleet_agent_outbox_depth",
    "gauge",
    "Entries in the outbox waiting for the collector's ack",
  );
  m.describe(
    "polyfleet_agent_outbox_dropped_total",
    "counter",
    "Outbox entries dropped (oldest first) because it was full",
  );
  m.describe("polyfleet_agent_mqtt_reconnects_total", "counter", "MQTT reconnects");
  m.describe(UPDATES_TOTAL, "counter", "Firmware updates ended, by result and error code");
  m.describe(UPDATES_RUNNING, "gauge", "Firmware updates running on this agent");
  m.describe(
    PROVISIONING_REQUESTS_TOTAL,
    "counter",
    "Requests to the site provisioning server by kind (cfg, manifest, image, other) and status",
  );
  m.describe(IMAGE_DOWNLOADS_TOTAL, "counter", "Firmware image downloads from the collector by result");
  m.describe(IMAGE_CACHE_COUNT, "gauge", "Verified firmware images in the agent's cache");
}
