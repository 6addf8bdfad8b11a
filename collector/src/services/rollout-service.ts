import {
  type CatalogRelease,
  type CatalogSigned,
  checkInstall,
  complianceOf,
  findRelease,
  sameRelease,
} from "@polyfleet/firmware-catalog";
import {
  ACTIVE_DEVICE_STATES,
  type AgentEvent,
  type AgentRecord,
  type Alert,
  type Clock,
  type Command,
  type CommandResult,
  type DeviceRecord,
  type Logger,
  type MaintenanceWindow,
  PolyfleetError,
  type PromRegistry,
  type Rollout,
  type RolloutCreate,
  type RolloutDevice,
  type RolloutNotification,
  type RolloutPreview,
  type RolloutTargetRelease,
} from "@polyfleet/shared";
import type { CatalogSource } from "../adapters/firmware/catalog-source.js";
import {
  type Dispatch,
  type PlanDevice,
  planRollout,
  ROLLOUT_SYSTEM_ACTOR,
  RolloutEngine,
  type RolloutTransition,
  runningVersionOf,
  targetVersionOf,
} from "../core/rollouts/index.js";
import type { AuditInput, AuditLog } from "../ports/audit-log.js";
import type { ComplianceReport, RolloutActionName, RolloutActor, RolloutService } from "../ports/rollouts.js";
import type { StateStore } from "../ports/state-store.js";

export interface RolloutServiceDeps {
  store: StateStore;
  audit: AuditLog;
  catalog: CatalogSource;
  clock: Clock;
  log: Logger;
  counters: PromRegistry;
  /** Publishes a command on the agent's command topic (QoS 1). */
  publishCommand(siteId: string, agentId: string, cmd: Command): Promise<void>;
  /** MQTT rollout topic + SSE. */
  notify(n: RolloutNotification): void;
  /** The URL agents download an image from. */
  imageUrl(sha256: string, fileName: string): string;
  newId(): string;
  /** How often the engine steps (ms). */
  tickMs: number;
}

const SYSTEM_ACTOR = ROLLOUT_SYSTEM_ACTOR;
/** Rollout-level transitions that are notified (device-level ones are audited only). */
const NOTIFIED = new Set([
  "created",
  "started",
  "paused",
  "resumed",
  "cancelled",
  "halted",
  "completed",
  "retried",
  "wave.started",
  "wave.soaking",
  "wave.passed",
  "wave.failed",
]);

export const ROLLOUT_METRICS = {
  dispatched: "polyfleet_collector_rollout_dispatches_total",
  outcomes: "polyfleet_collector_rollout_device_outcomes_total",
  transitions: "polyfleet_collector_rollout_transitions_total",
  stepFailures: "polyfleet_collector_rollout_step_failures_total",
} as const;

function targetOf(r: CatalogRelease): RolloutTargetRelease {
  return {
    family: r.family,
    model: r.model,
    version: r.version,
    ...(r.build ? { build: r.build } : {}),
    image: { ...r.image },
    downgrade: r.downgrade === true,
  };
}

function planDevice(d: DeviceRecord): PlanDevice {
  return {
    deviceId: d.deviceId,
    siteId: d.siteId,
    agentId: d.agentId,
    family: d.family,
    ...(d.model ? { model: d.model } : {}),
    ...(d.softwareVersion ? { softwareVersion: d.softwareVersion } : {}),
    ...(d.softwareBuild ? { softwareBuild: d.softwareBuild } : {}),
    tags: d.tags,
    reachable: d.reachable,
    ...(d.inCall === undefined ? {} : { inCall: d.inCall }),
  };
}

/**
 * The rollout service: plans rollouts from the verified catalog and the inventory, drives the pure
 * RolloutEngine on a timer, and makes its decisions durable before they take effect. Each step drains the
 * engine, stores every changed rollout and device in one transaction, audits, and only then publishes the
 * update commands (write-ahead: a crash after the commit never re-pushes a device; one before it never sent
 * anything). User actions are audited before they take effect (fail closed).
 */
export class RolloutServiceImpl implements RolloutService {
  private readonly engine: RolloutEngine;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly deps: RolloutServiceDeps) {
    this.engine = new RolloutEngine({
      clock: deps.clock,
      sameVersion: (family, reported, target) =>
        sameRelease(family as "uc" | "videoos", reported, targetVersionOf(target)) ||
        sameRelease(family as "uc" | "videoos", reported, target.version),
    });
  }

  /**
   * Restores every unfinished rollout from the store (call before ingest starts, so no progress event meets
   * an engine that does not know its rollout yet).
   */
  async restore(input: {
    windows: MaintenanceWindow[];
    agents: AgentRecord[];
    alerts: Alert[];
  }): Promise<void> {
    this.deps.catalog.refresh(true);
    const rollouts = await this.deps.store.listRollouts();
    // A cancelled rollout may still have updates out at devices: they stay tracked (never two at once).
    const live = rollouts.filter(
      (r) =>
        (r.state !== "completed" && r.state !== "cancelled") ||
        [...ACTIVE_DEVICE_STATES].some((s) => (r.counts[s] ?? 0) > 0),
    );
    const devices: RolloutDevice[] = [];
    for (const r of live) devices.push(...(await this.deps.store.listRolloutDevices(r.id)));
    this.engine.load(live, devices);
    this.engine.setWindows(input.windows);
    for (const a of input.agents) this.engine.onAgent(a);
    for (const d of await this.allDevices({ actor: SYSTEM_ACTOR })) this.engine.onDevice(d);
    for (const a of input.alerts) this.engine.onAlert(a);
    this.deps.log.info({ rollouts: live.length, devices: devices.length }, "rollouts restored");
  }

  /** Starts stepping the engine (once commands can be published and image URLs are known). */
  start(): void {
    this.timer ??= setInterval(() => void this.step(), this.deps.tickMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.chain;
  }

  // ---- inputs from ingest and the alert engine ----

  onReading(device: DeviceRecord): void {
    this.engine.onDevice(device);
  }
  onEvent(e: AgentEvent): void {
    if (e.type === "update.progress") this.engine.onProgress(e);
  }
  onAgentState(a: AgentRecord): void {
    this.engine.onAgent(a);
  }
  onAlert(a: Alert): void {
    this.engine.onAlert(a);
  }
  onCommandResult(r: CommandResult): void {
    this.engine.onCommandResult(r);
  }
  windowsChanged(list: MaintenanceWindow[]): void {
    this.engine.setWindows(list);
  }

  /** One engine step, serialised with every other change. Never rejects. */
  step(): Promise<void> {
    return this.serial(async () => {
      this.engine.tick();
      await this.flush();
    });
  }

  // ---- RolloutService (REST API) ----

  async preview(spec: RolloutCreate, who: RolloutActor): Promise<RolloutPreview> {
    const { preview } = await this.plan(spec, who);
    return preview;
  }

  async create(spec: RolloutCreate, who: RolloutActor): Promise<Rollout> {
    const { preview, catalog } = await this.plan(spec, who);
    for (const t of preview.targets) await this.deps.catalog.verifyImage(t.image);
    if (preview.waves.length === 0)
      throw new PolyfleetError(
        "POLYFLEET_ERR_BODY_INVALID",
        "no device to update: every selected device was skipped",
      );
    const id = this.deps.newId();
    await this.auditFirst(
      {
        actor: who.actor,
        action: "rollout.create",
        target: `rollout:${id}`,
        reason: spec.reason,
        details: {
          name: spec.name,
          catalogVersion: catalog.version,
          targets: preview.targets.map((t) => `${t.model}@${targetVersionOf(t)}`),
          devices: preview.waves.reduce((n, w) => n + w.devices.length, 0),
          waves: preview.waves.map((w) => w.devices.length),
        },
      },
      async () => {
        await this.serial(async () => {
          this.engine.create({ id, spec, preview, catalogVersion: catalog.version, actor: who.actor });
          await this.flush();
        });
      },
    );
    const r = this.engine.get(id);
    if (!r) throw new PolyfleetError("POLYFLEET_ERR_INTERNAL", "rollout vanished after create");
    return r;
  }

  async act(id: string, action: RolloutActionName, reason: string, who: RolloutActor): Promise<Rollout> {
    const existing = this.engine.get(id) ?? (await this.deps.store.getRollout(id));
    if (!existing || !this.inScope(existing, who))
      throw new PolyfleetError("POLYFLEET_ERR_NOT_FOUND", `no rollout ${id}`);
    let out: Rollout | undefined;
    await this.auditFirst(
      {
        actor: who.actor,
        action: `rollout.${action}`,
        target: `rollout:${id}`,
        reason,
        details: { from: existing.state },
      },
      () =>
        this.serial(async () => {
          if (!this.engine.get(id))
            throw new PolyfleetError("POLYFLEET_ERR_ROLLOUT_STATE", `rollout ${id} is ${existing.state}`);
          switch (action) {
            case "start":
              out = this.engine.start(id, who.actor, reason);
              break;
            case "pause":
              out = this.engine.pause(id, who.actor, reason);
              break;
            case "resume":
              out = this.engine.resume(id, who.actor, reason);
              break;
            case "cancel":
              out = this.engine.cancel(id, who.actor, reason);
              break;
            case "retry-failed":
              out = this.engine.retryFailed(id, who.actor, reason);
              break;
          }
          this.engine.tick();
          await this.flush();
        }),
    );
    const r = this.engine.get(id) ?? out;
    if (!r) throw new PolyfleetError("POLYFLEET_ERR_INTERNAL", "rollout vanished");
    return r;
  }

  async get(id: string, who: RolloutActor): Promise<Rollout | undefined> {
    const r = this.engine.get(id) ?? (await this.deps.store.getRollout(id));
    return r && this.inScope(r, who) ? r : undefined;
  }

  async list(filter: { state?: Rollout["state"] | undefined }, who: RolloutActor): Promise<Rollout[]> {
    const stored = await this.deps.store.listRollouts(filter.state ? { state: filter.state } : undefined);
    return stored.map((r) => this.engine.get(r.id) ?? r).filter((r) => this.inScope(r, who));
  }

  async devices(
    id: string,
    filter: { state?: RolloutDevice["state"] | undefined; wave?: number | undefined },
    who: RolloutActor,
  ): Promise<RolloutDevice[]> {
    const r = await this.get(id, who);
    if (!r) throw new PolyfleetError("POLYFLEET_ERR_NOT_FOUND", `no rollout ${id}`);
    const live = this.engine.get(id) ? this.engine.devices(id) : await this.deps.store.listRolloutDevices(id);
    return live.filter(
      (d) =>
        (filter.state === undefined || d.state === filter.state) &&
        (filter.wave === undefined || d.wave === filter.wave),
    );
  }

  catalog() {
    return this.deps.catalog.view();
  }

  async compliance(who: RolloutActor): Promise<ComplianceReport> {
    const catalog = this.deps.catalog.current();
    const devices = await this.allDevices(who);
    const report = complianceOf(
      catalog,
      devices.map((d) => {
        const v = runningVersionOf(d);
        return {
          deviceId: d.deviceId,
          siteId: d.siteId,
          family: d.family,
          ...(d.model ? { model: d.model } : {}),
          ...(v ? { softwareVersion: v } : {}),
        };
      }),
    );
    return {
      catalogVersion: catalog.version,
      counts: report.counts,
      devices: report.devices.map((r) => ({
        deviceId: r.deviceId,
        siteId: r.siteId ?? "",
        ...(r.model ? { model: r.model } : {}),
        ...(r.softwareVersion ? { softwareVersion: r.softwareVersion } : {}),
        ...(r.baseline ? { baseline: r.baseline } : {}),
        status: r.status,
      })),
    };
  }

  image(sha256: string) {
    return this.deps.catalog.image(sha256);
  }

  // ---- internals ----

  private inScope(r: Rollout, who: RolloutActor): boolean {
    if (!who.sites || who.sites.includes("*")) return true;
    const sites = r.spec.selection.sites;
    return sites !== undefined && sites.length > 0 && sites.every((s) => who.sites?.includes(s));
  }

  private async allDevices(who: RolloutActor): Promise<DeviceRecord[]> {
    const out: DeviceRecord[] = [];
    let cursor: string | undefined;
    const sites = who.sites && !who.sites.includes("*") ? who.sites : undefined;
    do {
      const page = await this.deps.store.listDevices({ limit: 1000, ...(cursor ? { cursor } : {}) }, sites);
      out.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor);
    return out;
  }

  private async plan(
    spec: RolloutCreate,
    who: RolloutActor,
  ): Promise<{ preview: RolloutPreview; catalog: CatalogSigned }> {
    if (who.sites && !who.sites.includes("*")) {
      const sites = spec.selection.sites;
      if (!sites || sites.length === 0 || !sites.every((s) => who.sites?.includes(s)))
        throw new PolyfleetError(
          "POLYFLEET_ERR_FORBIDDEN",
          "a site-scoped token must name its sites in selection.sites",
        );
    }
    const catalog = this.deps.catalog.current();
    const devices = (await this.allDevices(who)).map(planDevice);
    const models = new Set(devices.map((d) => d.model).filter((m): m is string => m !== undefined));
    const targets: RolloutTargetRelease[] = [];
    for (const model of models) {
      let release: CatalogRelease | undefined;
      if (spec.target.kind === "baseline") {
        const v = catalog.baseline[model];
        release = v ? findRelease(catalog, { model, version: v }) : undefined;
      } else {
        if (spec.target.models && !spec.target.models.includes(model)) continue;
        release = findRelease(catalog, { model, version: spec.target.version });
      }
      if (release) targets.push(targetOf(release));
    }
    if (spec.target.kind === "release" && targets.length === 0)
      throw new PolyfleetError(
        "POLYFLEET_ERR_NOT_FOUND",
        `catalog v${catalog.version} has no release ${spec.target.version} for any model in the inventory`,
      );
    const preview = planRollout({
      spec,
      targets,
      devices,
      eligibility: (device, target) => {
        const running = runningVersionOf(device);
        try {
          if (running && sameRelease(device.family as "uc" | "videoos", running, targetVersionOf(target)))
            return { ok: false, reason: `already on ${targetVersionOf(target)}` };
          const release = findRelease(catalog, {
            model: target.model,
            version: target.version,
            ...(target.build ? { build: target.build } : {}),
          });
          if (!release) return { ok: false, reason: "release not in the catalog" };
          checkInstall(catalog, release, {
            family: device.family,
            ...(device.model ? { model: device.model } : {}),
            ...(running ? { runningVersion: running } : {}),
          });
          return { ok: true };
        } catch (err) {
          return { ok: false, reason: err instanceof Error ? err.message : String(err) };
        }
      },
    });
    return { preview: { ...preview, catalogVersion: catalog.version }, catalog };
  }

  /** Runs `fn` after every earlier change; errors are logged and counted, never thrown to the timer. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.then(
      () => undefined,
      (err: unknown) => {
        if (!(err instanceof PolyfleetError)) {
          this.deps.counters.inc(ROLLOUT_METRICS.stepFailures);
          this.deps.log.error({ err }, "rollout step failed");
        }
      },
    );
    return run;
  }

  private async auditFirst(entry: Omit<AuditInput, "result">, fn: () => Promise<void>): Promise<void> {
    let seq: number;
    try {
      seq = (await this.deps.audit.append({ ...entry, result: "ok" })).seq;
    } catch (err) {
      throw new PolyfleetError("POLYFLEET_ERR_AUDIT_WRITE_FAILED", undefined, { cause: err });
    }
    try {
      await fn();
    } catch (err) {
      const code = err instanceof PolyfleetError ? err.code : "POLYFLEET_ERR_INTERNAL";
      await this.deps.audit
        .append({ ...entry, result: "failed", details: { ...entry.details, intentSeq: seq, code } })
        .catch((e: unknown) => this.deps.log.error({ err: e }, "audit of a failed rollout action failed"));
      throw err;
    }
  }

  /** Persists what the engine changed, audits it, then sends the dispatches and notifications. */
  private async flush(): Promise<void> {
    if (this.stopped) return;
    const out = this.engine.drain();
    if (out.rollouts.length === 0 && out.devices.length === 0 && out.dispatches.length === 0) return;
    await this.deps.store.saveRolloutChanges({ rollouts: out.rollouts, devices: out.devices });
    let audited = true;
    try {
      await this.auditTransitions(out.transitions);
    } catch (err) {
      audited = false;
      this.deps.log.error({ err }, "rollout transitions not audited; dispatches withheld");
    }
    for (const t of out.transitions) {
      this.deps.counters.inc(ROLLOUT_METRICS.transitions, { event: t.event });
      if (t.event.startsWith("device.") && t.event !== "device.dispatched")
        this.deps.counters.inc(ROLLOUT_METRICS.outcomes, { outcome: t.event.slice(7) });
      if (NOTIFIED.has(t.event)) this.notifyTransition(t);
    }
    // Fail closed: a dispatch that could not be audited is not sent; the device times out and is retried.
    if (audited) await this.sendDispatches(out.dispatches);
  }

  private notifyTransition(t: RolloutTransition): void {
    const r = this.engine.get(t.rolloutId);
    if (!r) return;
    this.deps.notify({
      v: 1,
      rolloutId: r.id,
      name: r.name,
      ts: t.at,
      event: t.event,
      state: r.state,
      ...(t.wave === undefined ? {} : { wave: t.wave }),
      actor: t.actor,
      ...(t.reason ? { reason: t.reason } : {}),
      counts: r.counts,
    });
  }

  /**
   * Rollout-level transitions get an entry each; device-level ones one entry per rollout and kind per step
   * (a 10,000-device rollout would otherwise write tens of thousands of entries), listing the devices.
   */
  private async auditTransitions(transitions: RolloutTransition[]): Promise<void> {
    const grouped = new Map<string, { t: RolloutTransition; devices: Record<string, string>[] }>();
    for (const t of transitions) {
      if (t.event === "created" || (t.actor !== SYSTEM_ACTOR && !t.event.startsWith("device."))) continue; // audited by act()/create()
      if (!t.deviceId) {
        await this.deps.audit.append({
          actor: t.actor,
          action: `rollout.${t.event}`,
          target: `rollout:${t.rolloutId}`,
          reason: t.reason ?? t.event,
          result: "ok",
          details: t.wave === undefined ? {} : { wave: t.wave },
        });
        continue;
      }
      const key = `${t.rolloutId}|${t.event}`;
      let g = grouped.get(key);
      if (!g) {
        g = { t, devices: [] };
        grouped.set(key, g);
      }
      g.devices.push({ deviceId: t.deviceId, ...(t.reason ? { reason: t.reason } : {}) });
    }
    for (const { t, devices } of grouped.values()) {
      await this.deps.audit.append({
        actor: SYSTEM_ACTOR,
        action: `rollout.${t.event}`,
        target: `rollout:${t.rolloutId}`,
        reason: t.event === "device.dispatched" ? "rollout wave dispatch" : `device ${t.event.slice(7)}`,
        result: "ok",
        details: { count: devices.length, devices },
      });
    }
  }

  private async sendDispatches(dispatches: Dispatch[]): Promise<void> {
    const now = this.deps.clock.now();
    await Promise.all(
      dispatches.map(async (d) => {
        const cmd: Command = {
          v: 1,
          commandId: d.commandId,
          agentId: d.agentId,
          issuedBy: SYSTEM_ACTOR,
          issuedAt: now,
          body: {
            type: "firmwareUpdate",
            deviceId: d.deviceId,
            rolloutId: d.rolloutId,
            targetVersion: targetVersionOf(d.target),
            image: {
              url: this.deps.imageUrl(d.target.image.sha256, d.target.image.fileName),
              fileName: d.target.image.fileName,
              length: d.target.image.length,
              sha256: d.target.image.sha256,
            },
            timeoutMs: d.timeoutMs,
          },
        };
        try {
          await this.deps.publishCommand(d.siteId, d.agentId, cmd);
          this.deps.counters.inc(ROLLOUT_METRICS.dispatched);
        } catch (err) {
          // Stored as dispatched: the engine's timeout fails the attempt and the retry budget decides.
          this.deps.log.warn(
            { err, deviceId: d.deviceId, rolloutId: d.rolloutId },
            "update command not published",
          );
        }
      }),
    );
  }
}
