import {
  type CommandBody,
  ERRORS,
  type ErrorCode,
  PolyfleetError,
  type UpdatePhase,
} from "@polyfleet/shared";
import type { Clock, TimerHandle } from "../ports/clock.js";
import type {
  DeviceDriver,
  DeviceTarget,
  DeviceUpdateStatus,
  DeviceUpdateSupport,
  DriverName,
} from "../ports/driver.js";
import type { Metrics } from "../ports/metrics.js";
import type { EventBody, TelemetrySink } from "../ports/sink.js";
import type { ImageCache, Provisioning, ProvisioningEntry, UpdateJournal } from "../ports/update.js";
import { ProgressThrottle, type ThrottleOptions } from "./update-progress.js";
import { validImageFileName } from "./update-provisioning.js";
import {
  acceptedAnswer,
  isPointed,
  isTerminal,
  PHASE_ORDER,
  type UpdateOutcome,
  type UpdateRecord,
} from "./update-state.js";
import { reportedVersionOf, sameRelease, splitVideoOsVersion, validTargetVersion } from "./update-version.js";
import { observeUpdate, type WatchOutcome, type WatchPhase, type WatchState } from "./update-watch.js";

export type FirmwareUpdateBody = Extract<CommandBody, { type: "firmwareUpdate" }>;

/** The pino-compatible subset the manager logs through (object first, then the message). */
export interface UpdateLogger {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

export interface UpdateManagerDeps {
  journal: UpdateJournal;
  images: ImageCache;
  provisioning: Provisioning;
  drivers: Partial<Record<DriverName, DeviceDriver>>;
  /** The scheduled device with this id (command id or scheduling id): its target and driver. */
  device(deviceId: string): { target: DeviceTarget; driver: DriverName } | undefined;
  sink: TelemetrySink;
  clock: Clock;
  metrics: Metrics;
  log: UpdateLogger;
}

export interface UpdateManagerOptions {
  /** Status read period while a device installs and reboots (default 5 s). */
  watchIntervalMs?: number;
  /** Deadline of one device request (status, config, trigger) (default 5 s). */
  requestTimeoutMs?: number;
  /** Attempts to put the device's config back when an update ends (default 3, one watch period apart). */
  restoreAttempts?: number;
  /** Period of the retry of config restores that failed (default 60 s). */
  restoreRetryMs?: number;
  /** Ended updates are kept this long for idempotency (default 7 days)... */
  keepMs?: number;
  /** ...and at most this many (default 10,000). */
  keepRecords?: number;
  /** Download progress throttling (default every 25 % or 2 s). */
  progress?: ThrottleOptions;
}

export const UPDATES_TOTAL = "polyfleet_agent_updates_total";
export const UPDATES_RUNNING = "polyfleet_agent_updates_running";

interface Flow {
  record: UpdateRecord;
  controller: AbortController;
  done: Promise<void>;
}

/** Why a running update stops early. */
class Stop extends Error {
  constructor(readonly outcome: { code: ErrorCode; reason: string } | "stopping") {
    super(outcome === "stopping" ? "agent is stopping" : outcome.reason);
  }
}

/**
 * Runs the agent's part of firmware updates: accepts `firmwareUpdate` commands (answering at once; the
 * update runs in the background), downloads and verifies the image into the cache, offers it on the site
 * provisioning server under the device's own path, points the device there (saving its previous config in
 * the journal first), triggers the update, watches the reboot and the reported version, puts the device's
 * config back, and reports every phase as an `update.progress` event through the durable outbox.
 *
 * A command id is run once: a repeat answers with the journal's state. One update per device at a time. On
 * `start()` every update a previous run left unfinished ends in a known state: one already pointed at the
 * server is watched to its original deadline; one that was not is failed UPDATE_INTERRUPTED (config put
 * back when it had been changed).
 */
export class UpdateManager {
  private readonly d: UpdateManagerDeps;
  private readonly watchIntervalMs: number;
  private readonly requestTimeoutMs: number;
  private readonly restoreAttempts: number;
  private readonly restoreRetryMs: number;
  private readonly keepMs: number;
  private readonly keepRecords: number;
  private readonly progressOpts: ThrottleOptions;
  private readonly flows = new Map<string, Flow>();
  private readonly accepting = new Map<string, Promise<Record<string, unknown>>>();
  private readonly acceptingDevices = new Set<string>();
  private readonly pinned = new Set<string>();
  private readonly restoring = new Set<string>();
  private sweepTimer: TimerHandle | undefined;
  private started = false;
  private stopped = false;

  constructor(deps: UpdateManagerDeps, opts: UpdateManagerOptions = {}) {
    this.d = deps;
    this.watchIntervalMs = Math.max(10, opts.watchIntervalMs ?? 5000);
    this.requestTimeoutMs = Math.max(100, opts.requestTimeoutMs ?? 5000);
    this.restoreAttempts = Math.max(1, opts.restoreAttempts ?? 3);
    this.restoreRetryMs = Math.max(100, opts.restoreRetryMs ?? 60_000);
    this.keepMs = opts.keepMs ?? 7 * 24 * 3_600_000;
    this.keepRecords = opts.keepRecords ?? 10_000;
    this.progressOpts = opts.progress ?? {};
  }

  /** Updates running in this process. */
  get running(): number {
    return this.flows.size;
  }

  /** Resumes or ends what a previous run left unfinished; starts the retry of failed config restores. */
  start(): void {
    if (this.started) return;
    this.started = true;
    const pruned = this.d.journal.prune(this.d.clock.now() - this.keepMs, this.keepRecords);
    if (pruned > 0) this.d.log.info({ pruned }, "old update records pruned");
    for (const r of this.d.journal.unfinished()) {
      const log = this.logFor(r);
      if (isPointed(r.phase)) {
        log.info({ phase: r.phase, deadline: r.deadline }, "resuming the watch of an update after a restart");
        this.pin(r);
        this.publish(
          r,
          r.imageServedAt === undefined && this.triggerKind(r) === "reboot" ? "current" : "target",
        );
        this.launch(r, (signal) => this.resume(r, signal));
      } else {
        log.warn({ phase: r.phase }, "update interrupted by an agent restart before the device was pointed");
        this.launch(r, () =>
          this.finish(r, {
            ok: false,
            code: "POLYFLEET_ERR_UPDATE_INTERRUPTED",
            reason: `agent restarted while the update was ${r.phase}`,
          }),
        );
      }
    }
    this.scheduleSweep();
  }

  /** Stops every running update where it is (the journal keeps them for the next start). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweepTimer) this.d.clock.clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    const flows = [...this.flows.values()];
    for (const f of flows) f.controller.abort(new Stop("stopping"));
    await Promise.allSettled(flows.map((f) => f.done));
    await Promise.allSettled([...this.accepting.values()]);
  }

  /**
   * The `firmwareUpdate` command handler: validates, refuses a device in a call or already updating,
   * succeeds at once when the device runs the target, else journals the update, starts it in the background
   * and resolves with `{ accepted, deviceId, commandId, phase }`. A repeated command id resolves with the
   * update's current state and starts nothing.
   */
  accept(body: FirmwareUpdateBody, commandId: string): Promise<Record<string, unknown>> {
    const existing = this.d.journal.get(commandId);
    if (existing) return Promise.resolve(acceptedAnswer(existing));
    const inFlight = this.accepting.get(commandId);
    if (inFlight !== undefined) return inFlight;
    const p = this.acceptNew(body, commandId).finally(() => {
      this.accepting.delete(commandId);
    });
    this.accepting.set(commandId, p);
    return p;
  }

  // ------------------------------------------------------------------ accepting

  private async acceptNew(body: FirmwareUpdateBody, commandId: string): Promise<Record<string, unknown>> {
    if (this.stopped) throw new PolyfleetError("POLYFLEET_ERR_UPDATE_FAILED", "agent is stopping");
    const dev = this.d.device(body.deviceId);
    if (!dev) throw new PolyfleetError("POLYFLEET_ERR_NOT_FOUND", `no device ${body.deviceId} on this agent`);
    const support = this.d.drivers[dev.driver]?.updates;
    if (!support) {
      throw new PolyfleetError(
        "POLYFLEET_ERR_DEVICE_ACTION_UNSUPPORTED",
        `driver ${dev.driver} does not support firmware updates`,
      );
    }
    if (!validTargetVersion(support.family, body.targetVersion)) {
      throw new PolyfleetError(
        "POLYFLEET_ERR_VERSION_INVALID",
        `${JSON.stringify(body.targetVersion)} is not a ${support.family} version`,
      );
    }
    if (!validImageFileName(body.image.fileName)) {
      throw new PolyfleetError("POLYFLEET_ERR_COMMAND_INVALID", "image file name must not start with a dot");
    }
    if (!this.d.provisioning.available) {
      throw new PolyfleetError(
        "POLYFLEET_ERR_UPDATE_FAILED",
        "the agent's provisioning server is not running (see the agent log)",
      );
    }
    const active = this.d.journal.activeFor(body.deviceId);
    if (active || this.acceptingDevices.has(body.deviceId)) {
      throw new PolyfleetError(
        "POLYFLEET_ERR_UPDATE_IN_PROGRESS",
        `device ${body.deviceId} is already being updated${active ? ` (command ${active.commandId})` : ""}`,
      );
    }
    this.acceptingDevices.add(body.deviceId);
    try {
      const status = await this.readStatus(dev.target, support, undefined);
      if (!status.reachable) {
        throw new PolyfleetError(
          "POLYFLEET_ERR_DEVICE_UNREACHABLE",
          `device ${body.deviceId} did not answer${status.error ? `: ${status.error.message}` : ""}`,
        );
      }
      if (status.error && status.version === undefined) throw toPolyfleetError(status.error);
      if (status.inCall) {
        throw new PolyfleetError(
          "POLYFLEET_ERR_DEVICE_IN_CALL",
          `device ${body.deviceId} is in a call; try again later`,
        );
      }
      const now = this.d.clock.now();
      const reported = reportedVersionOf(support.family, status);
      const record: UpdateRecord = {
        commandId,
        deviceId: body.deviceId,
        scheduledId: dev.target.deviceId,
        ...(body.rolloutId ? { rolloutId: body.rolloutId } : {}),
        family: support.family,
        ...(status.model ? { model: status.model } : {}),
        targetVersion: body.targetVersion,
        image: { ...body.image },
        phase: "accepted",
        ...(status.version
          ? {
              fromVersion: {
                version: status.version,
                ...(status.build ? { build: status.build } : {}),
              },
            }
          : {}),
        configRestored: false,
        acceptedAt: now,
        deadline: now + body.timeoutMs,
        updatedAt: now,
      };
      if (reported !== undefined && sameRelease(support.family, reported, body.targetVersion)) {
        record.phase = "succeeded";
        record.outcome = { reportedVersion: reported, reason: "device already runs the target version" };
        this.d.journal.put(record);
        this.emit(record, "succeeded", { reportedVersion: reported });
        this.d.metrics.inc(UPDATES_TOTAL, { result: "succeeded" });
        this.logFor(record).info({ reportedVersion: reported }, "device already runs the target version");
        return acceptedAnswer(record);
      }
      this.d.journal.put(record);
      this.emit(record, "accepted", {});
      this.logFor(record).info(
        { targetVersion: record.targetVersion, from: reported, sha256: record.image.sha256 },
        "firmware update accepted",
      );
      const answer = acceptedAnswer(record);
      this.pin(record);
      this.launch(record, (signal) => this.run(record, signal));
      return answer;
    } finally {
      this.acceptingDevices.delete(body.deviceId);
    }
  }

  // ------------------------------------------------------------------ the update

  private launch(record: UpdateRecord, body: (signal: AbortSignal) => Promise<void>): void {
    const controller = new AbortController();
    const flow: Flow = { record, controller, done: Promise.resolve() };
    this.flows.set(record.commandId, flow);
    this.d.metrics.set(UPDATES_RUNNING, this.flows.size);
    flow.done = (async () => {
      try {
        await body(controller.signal);
      } catch (err) {
        if (!(err instanceof Stop) || err.outcome !== "stopping") {
          const outcome: WatchOutcome =
            err instanceof Stop && err.outcome !== "stopping"
              ? { ok: false, ...err.outcome }
              : {
                  ok: false,
                  code: "POLYFLEET_ERR_UPDATE_FAILED",
                  reason: "internal error in the agent (see its log)",
                };
          if (!(err instanceof Stop))
            this.logFor(record).error({ err }, "firmware update failed unexpectedly");
          await this.finish(record, outcome).catch((e: unknown) =>
            this.logFor(record).error({ err: e }, "could not end the update"),
          );
        }
      } finally {
        this.flows.delete(record.commandId);
        this.d.metrics.set(UPDATES_RUNNING, this.flows.size);
      }
    })();
  }

  /** A fresh update: image, pointing, watch. */
  private async run(r: UpdateRecord, signal: AbortSignal): Promise<void> {
    await this.fetchImage(r, signal);
    this.setPhase(r, "staged", {});
    if (!(await this.point(r, signal))) return;
    await this.watch(r, signal);
  }

  /**
   * An update a previous run had pointed: trigger it again when the image never went out (the trigger was
   * not sent, or the device's download died with the old process's server), then watch.
   */
  private async resume(r: UpdateRecord, signal: AbortSignal): Promise<void> {
    if (r.imageServedAt === undefined) await this.retrigger(r, signal);
    await this.watch(r, signal);
  }

  /** Triggers a resumed update again, unless the device is already there; a reboot waits for a call to end. */
  private async retrigger(r: UpdateRecord, signal: AbortSignal): Promise<void> {
    const dev = await this.waitForDevice(r, signal);
    for (;;) {
      const status = await this.readStatus(dev.target, dev.support, signal);
      this.check(signal);
      const reported = status.reachable ? reportedVersionOf(r.family, status) : undefined;
      if (reported !== undefined && sameRelease(r.family, reported, r.targetVersion)) return;
      if (!(dev.support.trigger === "reboot" && status.inCall)) break;
      if (this.d.clock.now() >= r.deadline) {
        throw fail("POLYFLEET_ERR_DEVICE_IN_CALL", "device stayed in a call until the deadline");
      }
      await this.sleep(Math.min(this.watchIntervalMs, r.deadline - this.d.clock.now()), signal);
    }
    const t = await this.timed(signal, (o) => dev.support.triggerUpdate(dev.target, o));
    this.check(signal);
    if (!t.ok) throw fail("POLYFLEET_ERR_UPDATE_FAILED", `triggering the update failed: ${t.error.message}`);
    r.triggeredAt = this.d.clock.now();
    this.save(r);
    if (dev.support.trigger === "reboot") this.publish(r, "target");
  }

  private async fetchImage(r: UpdateRecord, signal: AbortSignal): Promise<void> {
    if (this.d.images.has(r.image.sha256)) return;
    const total = r.image.length;
    this.setPhase(r, "downloading", { bytes: 0, totalBytes: total });
    const throttle = new ProgressThrottle(total, this.progressOpts);
    throttle.shouldReport(0, this.d.clock.now());
    const deadline = this.deadlineSignal(r, signal);
    try {
      const res = await this.d.images.ensure(r.image, {
        signal: deadline.signal,
        onProgress: (bytes) => {
          // The final 100 % is the `staged` event.
          if (bytes < total && throttle.shouldReport(bytes, this.d.clock.now())) {
            this.emit(r, "downloading", { bytes, totalBytes: total });
          }
        },
      });
      this.check(signal);
      if (!res.ok) {
        if (this.d.clock.now() >= r.deadline) {
          throw fail("POLYFLEET_ERR_UPDATE_TIMEOUT", "the image download did not finish before the deadline");
        }
        throw fail(res.code, res.reason);
      }
    } finally {
      deadline.dispose();
    }
  }

  /** Points the device at the provisioning server and triggers the update; false when the update ended. */
  private async point(r: UpdateRecord, signal: AbortSignal): Promise<boolean> {
    const dev = this.lookup(r);
    if (!dev) throw fail("POLYFLEET_ERR_UPDATE_FAILED", `device ${r.deviceId} is no longer on this agent`);
    const { support, target } = dev;
    const status = await this.readStatusRetrying(target, support, signal);
    if (!status.reachable) {
      throw fail(
        "POLYFLEET_ERR_UPDATE_FAILED",
        `device did not answer before it could be pointed at the update${status.error ? `: ${status.error.message}` : ""}`,
      );
    }
    if (status.inCall)
      throw fail("POLYFLEET_ERR_DEVICE_IN_CALL", "device is in a call; the update is deferred");
    const reported = reportedVersionOf(support.family, status);
    if (reported !== undefined && sameRelease(support.family, reported, r.targetVersion)) {
      await this.finish(r, { ok: true, reportedVersion: reported });
      return false;
    }
    if (status.model) r.model = status.model;
    if (status.version) {
      r.fromVersion = { version: status.version, ...(status.build ? { build: status.build } : {}) };
    }
    const wanted = support.pointingConfig(this.d.provisioning.urlFor(r.deviceId));
    const prev = await this.timed(signal, (o) => support.readConfig(target, Object.keys(wanted), o));
    this.check(signal);
    if (!prev.ok) {
      throw fail(
        "POLYFLEET_ERR_UPDATE_FAILED",
        `reading the device's update settings failed: ${prev.error.message}`,
      );
    }
    // Saved before anything changes: a crash from here on still puts the device's own values back.
    r.previousConfig = prev.values;
    this.save(r);
    this.publish(r, support.trigger === "reboot" ? "current" : "target");
    const w = await this.timed(signal, (o) => support.writeConfig(target, wanted, o));
    this.check(signal);
    if (!w.ok) {
      throw fail(
        "POLYFLEET_ERR_UPDATE_FAILED",
        `pointing the device at the update failed: ${w.error.message}`,
      );
    }
    this.setPhase(r, "installing", {});
    const t = await this.timed(signal, (o) => support.triggerUpdate(target, o));
    this.check(signal);
    if (!t.ok) throw fail("POLYFLEET_ERR_UPDATE_FAILED", `triggering the update failed: ${t.error.message}`);
    r.triggeredAt = this.d.clock.now();
    this.save(r);
    // The trigger reboot is under way: the boot-time check is the one that must find the update.
    if (support.trigger === "reboot") this.publish(r, "target");
    this.logFor(r).info({ trigger: support.trigger }, "device pointed at the update");
    return true;
  }

  private async watch(r: UpdateRecord, signal: AbortSignal): Promise<void> {
    let state: WatchState = { phase: watchPhaseOf(r.phase) };
    for (;;) {
      this.check(signal);
      const dev = this.lookup(r);
      let obs: Parameters<typeof observeUpdate>[1];
      if (dev) {
        const startedAt = this.d.clock.now();
        const status = await this.readStatus(dev.target, dev.support, signal);
        this.check(signal);
        obs = { startedAt, endedAt: this.d.clock.now(), status };
      }
      const now = this.d.clock.now();
      const step = observeUpdate(
        state,
        obs,
        {
          family: r.family,
          targetVersion: r.targetVersion,
          deadline: r.deadline,
          imageServedAt: r.imageServedAt,
        },
        now,
      );
      state = step.state;
      for (const p of step.entered) {
        const rv = obs?.status.reachable ? reportedVersionOf(r.family, obs.status) : undefined;
        this.setPhase(r, p, p === "verifying" && rv ? { reportedVersion: rv } : {});
      }
      if (step.outcome) {
        await this.finish(r, step.outcome);
        return;
      }
      await this.sleep(Math.max(1, Math.min(this.watchIntervalMs, r.deadline - now)), signal);
    }
  }

  /** Ends the update: withdraw the offer, put the config back, record and report the outcome. */
  private async finish(r: UpdateRecord, outcome: WatchOutcome): Promise<void> {
    // Until the device's own settings are back it may still look at the server (a VideoOS checks at each
    // boot): it is offered what it runs now, so it neither installs again nor reports the server down.
    if (outcome.reportedVersion !== undefined) {
      const running =
        r.family === "videoos"
          ? splitVideoOsVersion(outcome.reportedVersion)
          : { version: outcome.reportedVersion };
      this.publish(r, "current", running);
    }
    if (r.previousConfig && !r.configRestored) r.configRestored = await this.restore(r);
    this.d.provisioning.withdraw(r.deviceId);
    const o: UpdateOutcome = outcome.ok
      ? { ...(outcome.reportedVersion ? { reportedVersion: outcome.reportedVersion } : {}) }
      : {
          code: outcome.code,
          reason: outcome.reason,
          ...(outcome.reportedVersion ? { reportedVersion: outcome.reportedVersion } : {}),
        };
    const phase: UpdatePhase = outcome.ok ? "succeeded" : "failed";
    r.outcome = o;
    this.setPhase(r, phase, {
      ...(o.code ? { code: o.code } : {}),
      ...(o.reason ? { reason: o.reason } : {}),
      ...(o.reportedVersion ? { reportedVersion: o.reportedVersion } : {}),
    });
    this.unpin(r);
    this.d.metrics.inc(UPDATES_TOTAL, { result: phase, ...(o.code ? { code: o.code } : {}) });
    const log = this.logFor(r);
    if (outcome.ok) log.info({ reportedVersion: o.reportedVersion }, "firmware update succeeded");
    else
      log.warn(
        { code: o.code, reason: o.reason, reportedVersion: o.reportedVersion },
        "firmware update failed",
      );
  }

  /** Writes the device's previous values back; true when done (or nothing to do). */
  private async restore(r: UpdateRecord): Promise<boolean> {
    const prev = r.previousConfig;
    if (!prev || Object.keys(prev).length === 0) return true;
    const never = new AbortController().signal;
    for (let attempt = 1; attempt <= this.restoreAttempts; attempt++) {
      const dev = this.lookup(r);
      if (dev) {
        const w = await this.timed(undefined, (o) => dev.support.writeConfig(dev.target, prev, o));
        if (w.ok) {
          this.logFor(r).info({ keys: Object.keys(prev) }, "device update settings put back");
          return true;
        }
        this.logFor(r).warn(
          { attempt, reason: w.error.message },
          "putting the device's settings back failed",
        );
      }
      if (attempt < this.restoreAttempts) await this.sleep(this.watchIntervalMs, never);
    }
    return false;
  }

  /** Every `restoreRetryMs`: prunes old records, retries config restores that failed (device away then). */
  private scheduleSweep(): void {
    if (this.stopped) return;
    this.sweepTimer = this.d.clock.setTimeout(() => {
      void this.sweep()
        .catch((err: unknown) => this.d.log.warn({ err }, "update housekeeping failed"))
        .finally(() => this.scheduleSweep());
    }, this.restoreRetryMs);
  }

  private async sweep(): Promise<void> {
    try {
      this.d.journal.prune(this.d.clock.now() - this.keepMs, this.keepRecords);
    } catch (err) {
      this.d.log.warn({ err }, "pruning old update records failed");
    }
    for (const r of this.d.journal.pendingRestores()) {
      if (this.stopped || this.restoring.has(r.commandId) || this.flows.has(r.commandId)) continue;
      const dev = this.lookup(r);
      const prev = r.previousConfig;
      if (!dev || !prev) continue;
      this.restoring.add(r.commandId);
      try {
        const w = await this.timed(undefined, (o) => dev.support.writeConfig(dev.target, prev, o));
        if (w.ok) {
          r.configRestored = true;
          this.save(r);
          this.logFor(r).info({}, "device update settings put back (retry)");
        }
      } catch (err) {
        this.logFor(r).warn({ err }, "retrying the settings restore failed");
      } finally {
        this.restoring.delete(r.commandId);
      }
    }
  }

  // ------------------------------------------------------------------ helpers

  private triggerKind(r: UpdateRecord): "fetch" | "reboot" {
    return r.family === "videoos" ? "reboot" : "fetch";
  }

  private publish(
    r: UpdateRecord,
    offer: "target" | "current",
    running?: { version: string; build?: string },
  ): void {
    const target =
      r.family === "videoos" ? splitVideoOsVersion(r.targetVersion) : { version: r.targetVersion };
    const current = running ?? r.fromVersion;
    const entry: ProvisioningEntry = {
      deviceId: r.deviceId,
      family: r.family,
      model: r.model,
      image: { sha256: r.image.sha256, fileName: r.image.fileName, length: r.image.length },
      target,
      offer: current || r.family === "uc" ? offer : "target",
      current,
      delivered: r.imageServedAt !== undefined,
      onDelivered: (at) => {
        if (r.imageServedAt !== undefined) return;
        r.imageServedAt = at;
        this.save(r);
        this.logFor(r).info({}, "image delivered to the device");
      },
    };
    this.d.provisioning.publish(entry);
  }

  private lookup(r: UpdateRecord): { target: DeviceTarget; support: DeviceUpdateSupport } | undefined {
    const dev = this.d.device(r.scheduledId) ?? this.d.device(r.deviceId);
    const support = dev ? this.d.drivers[dev.driver]?.updates : undefined;
    return dev && support ? { target: dev.target, support } : undefined;
  }

  /** The device, once the agent schedules it again (after a restart a discovered device comes back later). */
  private async waitForDevice(
    r: UpdateRecord,
    signal: AbortSignal,
  ): Promise<{ target: DeviceTarget; support: DeviceUpdateSupport }> {
    for (;;) {
      const dev = this.lookup(r);
      if (dev) return dev;
      if (this.d.clock.now() >= r.deadline) {
        throw fail("POLYFLEET_ERR_UPDATE_TIMEOUT", "device was not back on this agent before the deadline");
      }
      await this.sleep(Math.min(this.watchIntervalMs, r.deadline - this.d.clock.now()), signal);
      this.check(signal);
    }
  }

  private async readStatus(
    target: DeviceTarget,
    support: DeviceUpdateSupport,
    signal: AbortSignal | undefined,
  ): Promise<DeviceUpdateStatus> {
    try {
      return await this.timed(signal, (o) => support.status(target, o));
    } catch (err) {
      // Drivers never throw by contract; a bug there must not end the watch.
      return {
        reachable: false,
        error: { code: "POLYFLEET_ERR_INTERNAL", message: err instanceof Error ? err.message : String(err) },
      };
    }
  }

  private async readStatusRetrying(
    target: DeviceTarget,
    support: DeviceUpdateSupport,
    signal: AbortSignal,
  ): Promise<DeviceUpdateStatus> {
    let status = await this.readStatus(target, support, signal);
    for (let i = 1; i < 3 && !status.reachable; i++) {
      await this.sleep(this.watchIntervalMs, signal);
      this.check(signal);
      status = await this.readStatus(target, support, signal);
    }
    this.check(signal);
    return status;
  }

  /** Runs one device request with a signal that aborts with `parent` or after the request timeout. */
  private async timed<T>(
    parent: AbortSignal | undefined,
    fn: (opts: { signal: AbortSignal }) => Promise<T>,
  ): Promise<T> {
    const c = new AbortController();
    const h = this.d.clock.setTimeout(
      () => c.abort(new Error("device request timed out")),
      this.requestTimeoutMs,
    );
    const onAbort = (): void => c.abort(parent?.reason);
    if (parent?.aborted) onAbort();
    else parent?.addEventListener("abort", onAbort, { once: true });
    try {
      return await fn({ signal: c.signal });
    } finally {
      this.d.clock.clearTimeout(h);
      parent?.removeEventListener("abort", onAbort);
    }
  }

  /** A signal that aborts with `parent` or at the update's deadline. */
  private deadlineSignal(r: UpdateRecord, parent: AbortSignal): { signal: AbortSignal; dispose(): void } {
    const c = new AbortController();
    const h = this.d.clock.setTimeout(
      () => c.abort(new Error("deadline")),
      Math.max(0, r.deadline - this.d.clock.now()),
    );
    const onAbort = (): void => c.abort(parent.reason);
    if (parent.aborted) onAbort();
    else parent.addEventListener("abort", onAbort, { once: true });
    return {
      signal: c.signal,
      dispose: () => {
        this.d.clock.clearTimeout(h);
        parent.removeEventListener("abort", onAbort);
      },
    };
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) {
        resolve();
        return;
      }
      const done = (): void => {
        this.d.clock.clearTimeout(h);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const h = this.d.clock.setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /** Throws the stop marker when the agent is stopping. */
  private check(signal: AbortSignal): void {
    if (signal.aborted) throw new Stop("stopping");
  }

  private pin(r: UpdateRecord): void {
    if (this.pinned.has(r.commandId)) return;
    this.pinned.add(r.commandId);
    this.d.images.pin(r.image.sha256);
  }

  private unpin(r: UpdateRecord): void {
    if (!this.pinned.delete(r.commandId)) return;
    this.d.images.unpin(r.image.sha256);
  }

  private save(r: UpdateRecord): void {
    r.updatedAt = this.d.clock.now();
    this.d.journal.put(r);
  }

  /** Moves to `phase` (forward only), journals it, reports it. */
  private setPhase(r: UpdateRecord, phase: UpdatePhase, extra: ProgressExtra): void {
    if (isTerminal(r.phase) || PHASE_ORDER.indexOf(phase) < PHASE_ORDER.indexOf(r.phase)) return;
    r.phase = phase;
    this.save(r);
    this.emit(r, phase, extra);
  }

  private emit(r: UpdateRecord, phase: UpdatePhase, extra: ProgressExtra): void {
    const event: EventBody = {
      type: "update.progress",
      deviceId: r.deviceId,
      commandId: r.commandId,
      ...(r.rolloutId ? { rolloutId: r.rolloutId } : {}),
      phase,
      targetVersion: r.targetVersion,
      ...extra,
    };
    try {
      this.d.sink.appendEvent(event);
    } catch (err) {
      this.logFor(r).error({ err, phase }, "update progress event could not be stored");
    }
  }

  private logFor(r: UpdateRecord): UpdateLogger {
    const bind = {
      deviceId: r.deviceId,
      commandId: r.commandId,
      ...(r.rolloutId ? { rolloutId: r.rolloutId } : {}),
    };
    const base = this.d.log;
    return {
      debug: (o, m) => base.debug({ ...bind, ...o }, m),
      info: (o, m) => base.info({ ...bind, ...o }, m),
      warn: (o, m) => base.warn({ ...bind, ...o }, m),
      error: (o, m) => base.error({ ...bind, ...o }, m),
    };
  }
}

interface ProgressExtra {
  bytes?: number;
  totalBytes?: number;
  reason?: string;
  code?: string;
  reportedVersion?: string;
}

function fail(code: ErrorCode, reason: string): Stop {
  return new Stop({ code, reason });
}

function watchPhaseOf(phase: UpdatePhase): WatchPhase {
  return phase === "rebooting" || phase === "verifying" ? phase : "installing";
}

/** A device error as a command refusal: its own code when the catalog has it. */
function toPolyfleetError(e: { code: string; message: string }): PolyfleetError {
  return e.code in ERRORS
    ? new PolyfleetError(e.code as ErrorCode, e.message)
    : new PolyfleetError("POLYFLEET_ERR_COMMAND_FAILED", `${e.code}: ${e.message}`);
}
