/**
 * The rollout engine: the state machines of firmware rollouts (rollout, waves, devices), pure and
 * single-threaded. The service feeds it inventory, agent, alert, progress and command-result inputs, calls
 * `tick()` on a timer and persists `drain()` before it publishes the dispatches (write-ahead). Time comes from
 * the injected clock only.
 *
 * Semantics (issue 5, and where the issue is silent, what a NOC engineer expects):
 *
 * Devices. queued → (waitingWindow | deferred) → downloading → installing → rebooting → verifying →
 * succeeded | failed | skipped. A dispatch puts the device in `downloading` with a new `commandId`
 * (`<rolloutId>.<deviceId>.<attempt>`, see commandIdFor), `dispatchedAt` and `attempts + 1` in the same drain as
 * the Dispatch. Progress phases move a device forward only (accepted/downloading → downloading,
 * staged/installing → installing, rebooting, verifying); events of another command id (an older attempt) are
 * ignored, and so is everything about a device that is no longer active (a late "succeeded" after a timeout
 * does not revive it). `succeeded` counts only when its `reportedVersion` (when present) is the target
 * (deps.sameVersion; a version that cannot be parsed is "not the same"), else the attempt fails with class
 * `verify`. Failure classes come from the error code (failures.ts); DEVICE_IN_CALL defers instead of failing.
 * A failed attempt with budget left in its class (spec.retries) goes back to queued with
 * `notBefore = now + min(30 s × attempts, 5 min)` (transition `device.retrying`); otherwise it is a final
 * failure (`device.failed`). Deferred (in a call, from the latest inventory record, the agent's progress or
 * its command answer): `notBefore = now + spec.inCallRetryMs`, no budget consumed, repeated for as long as the
 * device stays in calls (it never becomes a failure; cancel the rollout to give up).
 *
 * Timeouts. An active device fails with class `timeout` ("no answer from the agent") once
 * `dispatchedAt + deviceTimeoutMs + 60 s` has passed. Reconciliation (progress consumed before a crash but
 * never applied): an active device is marked succeeded without a final event only when two inventory readings
 * received at least 2 minutes apart, both after the dispatch (lastSeen > dispatchedAt), show it reachable on
 * the target version, with no non-qualifying reading between them.
 *
 * Dispatching (in tick, rollout `running` only). Only devices of started waves (in practice the current wave,
 * plus failed devices of earlier waves put back by retryFailed). At most `concurrencyPerSite` active devices per
 * site in the rollout. A device is started only when: its notBefore has passed; when `spec.windowIds` is not
 * empty, one of those windows is active (isWindowActive) and its matchers match the device's labels (siteId,
 * deviceId, model, agentId, address, family — missing labels read as ""; an unknown window id never opens) —
 * else it is `waitingWindow` and a closed window starts no device at all; it is not active in any rollout
 * (never two updates on one device; it stays queued); its latest inventory record says reachable and its
 * agent is not known offline (an agent never reported is assumed online; a device never reported is not
 * started). A device blocked only by unreachability for `deviceTimeoutMs` (counted from the later of the wave
 * start and the moment it was last seen going down) is skipped "unreachable" — or failed, when an earlier
 * attempt of this rollout already touched it. A never-dispatched device whose inventory already shows the
 * target version is skipped "already on …". A device in a call is deferred. The error threshold is checked
 * before every dispatch.
 *
 * Error threshold. After every final failure and before every dispatch: with F final failures and S devices
 * started (dispatched at least once) in the rollout, the rollout halts (current wave `failed`) when
 * (F − A) × 100 > errorThresholdPct × (S − A), where A is the number of failures the operator accepted by
 * resuming a halted rollout (0 until then; retryFailed resets it; after a restart the smallest A consistent
 * with the stored counts is used, so a running rollout does not re-halt on failures already accepted). In-flight
 * devices finish and are tracked; nothing more is dispatched.
 *
 * Health gate. When every device of the started waves is terminal the current wave is `soaking`. For the
 * wave's succeeded devices: a critical alert (any state, silenced or not) for the device starting at or after
 * the wave's start (noNewCriticalAlerts), an unreachable record received after the device finished and still
 * the latest at the end of the soak, or a
 * version other than the target in a reading taken (lastSeen) after it finished (requireTargetVersion), fail
 * the wave and halt the rollout, naming the device. A missing reading is not a violation, and a device another rollout dispatched
 * after it finished here is no longer gated by this one. Soak passed (`soakMs` after finishedAt,
 * evaluated at ticks while running) → wave `passed`, next wave `running`, or the rollout `completed` after the
 * last one. A paused rollout keeps watching (a violation or threshold breach halts it) but does not advance.
 *
 * Rollout actions (throw POLYFLEET_ERR_ROLLOUT_STATE naming the state, or POLYFLEET_ERR_NOT_FOUND):
 * start (pending); pause (running); resume (paused → running; halted → running with the failures so far
 * accepted: if devices of the started waves are still open the current wave runs on, else the rollout moves to
 * the next wave — a failed gate is overridden, not re-run — or completes); cancel (pending, running, paused,
 * halted: waiting devices → skipped "cancelled", active ones are still tracked to their end without retries);
 * retryFailed (running, paused, halted, completed with failures: failed devices → queued with fresh budgets,
 * attempts keep counting; a halted or completed rollout runs again and the current wave re-runs, its gate
 * counted from the retry).
 *
 * Transitions carry the acting user for actions and ROLLOUT_SYSTEM_ACTOR for what the engine decides.
 */
import {
  ACTIVE_DEVICE_STATES,
  type AgentRecord,
  type Alert,
  type Clock,
  type CommandResult,
  type DeviceRecord,
  type FailureClass,
  type MaintenanceWindow,
  PolyfleetError,
  type Rollout,
  type RolloutCreate,
  type RolloutDevice,
  RolloutDeviceState,
  type RolloutPreview,
  type RolloutState,
  type RolloutTargetRelease,
  TERMINAL_DEVICE_STATES,
  type UpdateProgress,
  type WaveRecord,
} from "@polyfleet/shared";
import { type CompiledMatcher, compileMatchers, matchesAll } from "../alerts/matchers.js";
import { isWindowActive } from "../alerts/windows.js";
import { DeviceQueue } from "./device-queue.js";
import { commandErrorOutcome, commandIdFor, progressOutcome } from "./failures.js";
import { type PlannedDevice, runningVersionOf } from "./plan.js";

/** Actor of the transitions the engine decides itself (timeouts, gates, waves, threshold). */
export const ROLLOUT_SYSTEM_ACTOR = "system:rollouts";
/** Added to spec.deviceTimeoutMs before the collector gives up on an active device (the agent's own timeout ends first). */
export const TIMEOUT_GRACE_MS = 60_000;
/** Two qualifying readings at least this far apart mark an active device succeeded without a final event. */
export const RECONCILE_GRACE_MS = 120_000;
/** Retry back-off: this × attempts, at most RETRY_BACKOFF_MAX_MS. */
export const RETRY_BACKOFF_MS = 30_000;
export const RETRY_BACKOFF_MAX_MS = 300_000;

export interface RolloutEngineDeps {
  clock: Pick<Clock, "now">;
  /** Same release check used at verification: does the reported version equal the target? May throw on an unparsable version (read as "no"). */
  sameVersion(family: string, reported: string, target: RolloutTargetRelease): boolean;
}

/** One update command to publish (after the drained records are stored). */
export interface Dispatch {
  rolloutId: string;
  deviceId: string;
  /** The agent that polls the device now (from its latest inventory record). */
  agentId: string;
  siteId: string;
  commandId: string;
  attempt: number;
  target: RolloutTargetRelease;
  timeoutMs: number;
}

export interface RolloutTransition {
  rolloutId: string;
  /**
   * created, started, paused, resumed, cancelled, halted, completed, retried, wave.started, wave.soaking,
   * wave.passed, wave.failed, device.dispatched, device.succeeded, device.failed, device.retrying,
   * device.skipped, device.deferred.
   */
  event: string;
  actor: string;
  reason?: string;
  wave?: number;
  deviceId?: string;
  at: number;
}

/** What changed since the last drain. */
export interface RolloutOutput {
  /** Changed rollouts (latest version each). */
  rollouts: Rollout[];
  /** Changed devices (latest version each). Store with `rollouts` in one transaction before publishing `dispatches`. */
  devices: RolloutDevice[];
  dispatches: Dispatch[];
  /** In order. */
  transitions: RolloutTransition[];
}

type DeviceState = RolloutDeviceState;

const WAITING: ReadonlySet<DeviceState> = new Set(["queued", "waitingWindow", "deferred"]);
const ACTIVE = ACTIVE_DEVICE_STATES;
const TERMINAL = TERMINAL_DEVICE_STATES;
const ALL_STATES: readonly DeviceState[] = RolloutDeviceState.options;
const ACTIVE_RANK: Readonly<Partial<Record<DeviceState, number>>> = {
  downloading: 1,
  installing: 2,
  rebooting: 3,
  verifying: 4,
};
const PHASE_STATE: Readonly<Partial<Record<UpdateProgress["phase"], DeviceState>>> = {
  accepted: "downloading",
  downloading: "downloading",
  staged: "installing",
  installing: "installing",
  rebooting: "rebooting",
  verifying: "verifying",
};

interface Seen {
  reachable: boolean;
  version: string | undefined;
  inCall: boolean;
  lastSeen: number;
  agentId: string;
  siteId: string;
  address: string;
  /** Engine time the record arrived. */
  at: number;
  /** Engine time the device was first seen unreachable in the current run of unreachable records. */
  downSince: number | undefined;
}

interface AgentSeen {
  online: boolean;
  since: number;
}

interface CompiledWindow {
  window: MaintenanceWindow;
  matchers: readonly CompiledMatcher[];
}

interface DevRt {
  readonly rt: RolloutRt;
  readonly d: RolloutDevice;
  readonly target: RolloutTargetRelease;
  /** An entry for this device is in its wave/site queue (at most one). */
  inQueue: boolean;
  reconcileFrom: number | undefined;
  reconcileLast: number;
}

interface WaveRt {
  readonly devs: DevRt[];
  /** Waiting devices by site (entries of devices that left the waiting states are dropped lazily). */
  readonly queues: Map<string, DeviceQueue<DevRt>>;
  /** Devices not terminal. */
  open: number;
}

interface RolloutRt {
  readonly r: Rollout;
  readonly devs: DevRt[];
  readonly waves: WaveRt[];
  readonly active: Set<DevRt>;
  readonly siteActive: Map<string, number>;
  readonly targets: Map<string, RolloutTargetRelease>;
  /** Devices dispatched at least once. */
  started: number;
  /** Failures accepted by resuming a halted rollout (see the threshold). */
  baseline: number;
  /** Window state the waiting devices were last marked for (undefined: not marked since the last wave start). */
  windowState: "open" | "closed" | undefined;
}

function emptyCounts(): Record<string, number> {
  const c: Record<string, number> = {};
  for (const s of ALL_STATES) c[s] = 0;
  return c;
}

function copyRollout(r: Rollout): Rollout {
  return { ...r, waves: r.waves.map((w) => ({ ...w })), counts: { ...r.counts } };
}

function copyDevice(d: RolloutDevice): RolloutDevice {
  return { ...d, failures: { ...d.failures } };
}

function seconds(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}

/**
 * The rollout engine (see the top of this file for the semantics). No I/O, no timers. Inputs: onDevice,
 * onAgent, onAlert, onProgress, onCommandResult, setWindows; actions: create, start, pause, resume, cancel,
 * retryFailed; `tick()` once per step; `drain()` for what changed. Not thread-safe (single event loop).
 */
export class RolloutEngine {
  private readonly deps: RolloutEngineDeps;
  private readonly rollouts = new Map<string, RolloutRt>();
  /** Rollouts that can still change by themselves (not finished, or with devices still active). */
  private readonly live = new Set<RolloutRt>();
  /** Every rollout device of a device id, across rollouts. */
  private readonly members = new Map<string, DevRt[]>();
  /** The rollout device that has an update out on a device id (never two). */
  private readonly activeByDevice = new Map<string, DevRt>();
  /** Active rollout devices by the command id of their current attempt. */
  private readonly commands = new Map<string, DevRt>();
  private readonly seen = new Map<string, Seen>();
  private readonly agents = new Map<string, AgentSeen>();
  /** Latest start of a critical alert per device id. */
  private readonly critical = new Map<string, { at: number; rule: string }>();
  private windows = new Map<string, CompiledWindow>();
  private windowCacheAt = Number.NaN;
  private readonly windowCache = new Map<string, boolean>();
  private dirtyRollouts = new Set<RolloutRt>();
  private dirtyDevices = new Set<DevRt>();
  private dispatches: Dispatch[] = [];
  private transitions: RolloutTransition[] = [];

  constructor(deps: RolloutEngineDeps) {
    this.deps = deps;
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Restores rollouts and their devices from the store (replacing what the engine held). Active devices stay
   * active with their command id: they are never dispatched again, their progress events still apply and
   * their timeout still runs. Counts are recomputed from the devices (a changed rollout is in the next drain).
   * Pass every rollout that is not finished, and finished ones that still have active devices.
   */
  load(rollouts: Rollout[], devices: RolloutDevice[]): void {
    const now = this.deps.clock.now();
    this.rollouts.clear();
    this.live.clear();
    this.members.clear();
    this.activeByDevice.clear();
    this.commands.clear();
    this.dirtyRollouts.clear();
    this.dirtyDevices.clear();
    this.dispatches = [];
    this.transitions = [];
    const byRollout = new Map<string, RolloutDevice[]>();
    for (const d of devices) {
      let list = byRollout.get(d.rolloutId);
      if (!list) {
        list = [];
        byRollout.set(d.rolloutId, list);
      }
      list.push(d);
    }
    const sorted = [...rollouts].sort((a, b) =>
      a.createdAt !== b.createdAt ? a.createdAt - b.createdAt : a.id < b.id ? -1 : a.id > b.id ? 1 : 0,
    );
    for (const stored of sorted) {
      const r = copyRollout(stored);
      const list = (byRollout.get(r.id) ?? []).sort((a, b) => a.order - b.order);
      const rt = this.newRt(r);
      for (const row of list) {
        if (row.wave >= rt.waves.length) continue;
        const target = rt.targets.get(row.model);
        if (!target) continue;
        const d = copyDevice(row);
        if (ACTIVE.has(d.state) && (d.dispatchedAt === undefined || d.commandId === undefined)) {
          // A record that claims an update is out without saying which: give it a full timeout from now.
          d.dispatchedAt ??= now;
          d.commandId ??= commandIdFor(r.id, d.deviceId, Math.max(1, d.attempts));
          this.dirtyDevices.add(this.addDevice(rt, d, target));
        } else this.addDevice(rt, d, target);
      }
      const before = JSON.stringify(stored.counts);
      r.counts = emptyCounts();
      for (const dev of rt.devs) {
        r.counts[dev.d.state] = (r.counts[dev.d.state] ?? 0) + 1;
        if (dev.d.attempts > 0) rt.started++;
        if (!TERMINAL.has(dev.d.state)) (rt.waves[dev.d.wave] as WaveRt).open++;
        if (ACTIVE.has(dev.d.state)) this.enterActive(dev);
        if (WAITING.has(dev.d.state)) this.enqueue(dev);
      }
      if (JSON.stringify(r.counts) !== before) this.dirtyRollouts.add(rt);
      rt.baseline = r.state === "halted" ? 0 : this.consistentBaseline(rt);
      this.rollouts.set(r.id, rt);
      this.updateLive(rt);
    }
  }

  /** Creates a rollout in state `pending` from its preview: every device queued in its wave. */
  create(input: {
    id: string;
    spec: RolloutCreate;
    preview: RolloutPreview;
    catalogVersion: number;
    actor: string;
  }): Rollout {
    const { id, spec, preview, actor } = input;
    if (this.rollouts.has(id))
      throw new PolyfleetError("POLYFLEET_ERR_ROLLOUT_STATE", `rollout ${id} already exists`);
    const total = preview.waves.reduce((n, w) => n + w.devices.length, 0);
    if (total === 0)
      throw new PolyfleetError(
        "POLYFLEET_ERR_BODY_INVALID",
        "no device to update: every selected device was skipped",
      );
    const now = this.deps.clock.now();
    const waves: WaveRecord[] = preview.waves.map((w, index) => ({
      index,
      name: w.name,
      size: w.devices.length,
      state: "pending",
    }));
    const r: Rollout = {
      id,
      name: spec.name,
      reason: spec.reason,
      spec,
      targets: preview.targets,
      catalogVersion: input.catalogVersion,
      state: "pending",
      waves,
      currentWave: 0,
      createdBy: actor,
      createdAt: now,
      updatedAt: now,
      counts: emptyCounts(),
    };
    const rt = this.newRt(r);
    const planned = new Set<string>();
    let order = 0;
    const devices: { d: RolloutDevice; target: RolloutTargetRelease }[] = [];
    for (let wi = 0; wi < preview.waves.length; wi++) {
      for (const p of (preview.waves[wi] as RolloutPreview["waves"][number]).devices as PlannedDevice[]) {
        if (planned.has(p.deviceId))
          throw new PolyfleetError("POLYFLEET_ERR_BODY_INVALID", `device ${p.deviceId} is planned twice`);
        planned.add(p.deviceId);
        const target = rt.targets.get(p.model);
        if (!target)
          throw new PolyfleetError(
            "POLYFLEET_ERR_BODY_INVALID",
            `no target release for model ${p.model} (${p.deviceId})`,
          );
        const agentId = this.seen.get(p.deviceId)?.agentId ?? p.agentId ?? "unknown";
        devices.push({
          target,
          d: {
            rolloutId: id,
            deviceId: p.deviceId,
            siteId: p.siteId,
            agentId,
            model: p.model,
            wave: wi,
            order: order++,
            ...(p.fromVersion === undefined ? {} : { fromVersion: p.fromVersion }),
            targetVersion: p.targetVersion,
            state: "queued",
            attempts: 0,
            failures: {},
            updatedAt: now,
          },
        });
      }
    }
    for (const { d, target } of devices) {
      const dev = this.addDevice(rt, d, target);
      r.counts.queued = (r.counts.queued ?? 0) + 1;
      (rt.waves[d.wave] as WaveRt).open++;
      this.enqueue(dev);
      this.dirtyDevices.add(dev);
    }
    this.rollouts.set(id, rt);
    this.dirtyRollouts.add(rt);
    this.updateLive(rt);
    this.emit(rt, "created", actor, now, { reason: spec.reason });
    return copyRollout(r);
  }

  // ---------------------------------------------------------------- actions

  /** pending → running; the first wave starts (dispatching happens at the next tick). */
  start(id: string, actor: string, reason: string): Rollout {
    const rt = this.must(id);
    if (rt.r.state !== "pending") throw this.stateError(rt, "start");
    const now = this.deps.clock.now();
    rt.r.startedAt = now;
    this.setRolloutState(rt, "running", now);
    this.emit(rt, "started", actor, now, { reason });
    this.startWave(rt, 0, now, actor);
    return copyRollout(rt.r);
  }

  /** running → paused: nothing more is dispatched; active devices are still tracked. */
  pause(id: string, actor: string, reason: string): Rollout {
    const rt = this.must(id);
    if (rt.r.state !== "running") throw this.stateError(rt, "pause");
    const now = this.deps.clock.now();
    this.setRolloutState(rt, "paused", now, reason);
    this.emit(rt, "paused", actor, now, { reason });
    return copyRollout(rt.r);
  }

  /**
   * paused → running; halted → running with the failures so far accepted (the threshold counts new ones): the
   * current wave runs on when its devices are not all done, else the rollout moves to the next wave or completes.
   */
  resume(id: string, actor: string, reason: string): Rollout {
    const rt = this.must(id);
    const r = rt.r;
    if (r.state !== "paused" && r.state !== "halted") throw this.stateError(rt, "resume");
    const now = this.deps.clock.now();
    const wasHalted = r.state === "halted";
    this.setRolloutState(rt, "running", now);
    this.emit(rt, "resumed", actor, now, { reason });
    if (wasHalted) {
      rt.baseline = r.counts.failed ?? 0;
      const w = r.waves[r.currentWave] as WaveRecord;
      if (this.openUpTo(rt, r.currentWave) > 0) {
        if (w.state !== "running") this.startWave(rt, r.currentWave, now, actor, "resumed after a halt");
      } else if (w.state === "failed" || w.state === "passed") {
        this.nextWave(rt, now, actor);
      }
      // A soaking wave soaks on (a threshold breach never leaves one soaking).
    }
    return copyRollout(r);
  }

  /** Waiting devices → skipped "cancelled"; active ones are tracked to their end. */
  cancel(id: string, actor: string, reason: string): Rollout {
    const rt = this.must(id);
    const r = rt.r;
    if (r.state === "completed" || r.state === "cancelled") throw this.stateError(rt, "cancel");
    const now = this.deps.clock.now();
    for (const dev of rt.devs) {
      if (!WAITING.has(dev.d.state)) continue;
      dev.d.reason = `cancelled: ${reason}`;
      dev.d.finishedAt = now;
      delete dev.d.notBefore;
      this.setState(dev, "skipped", now);
      this.emit(rt, "device.skipped", actor, now, {
        reason: dev.d.reason,
        wave: dev.d.wave,
        deviceId: dev.d.deviceId,
      });
    }
    r.endedAt = now;
    this.setRolloutState(rt, "cancelled", now, reason);
    this.emit(rt, "cancelled", actor, now, { reason });
    return copyRollout(r);
  }

  /**
   * Failed devices → queued with fresh retry budgets (their attempts keep counting); a halted or completed
   * rollout runs again, the current wave re-runs (its gate counted from now), and the accepted failures reset.
   */
  retryFailed(id: string, actor: string, reason: string): Rollout {
    const rt = this.must(id);
    const r = rt.r;
    if (r.state === "pending" || r.state === "cancelled")
      throw this.stateError(rt, "retry the failed devices of");
    const failed = rt.devs.filter((dev) => dev.d.state === "failed");
    if (failed.length === 0)
      throw new PolyfleetError(
        "POLYFLEET_ERR_ROLLOUT_STATE",
        `rollout ${r.id} (${r.state}) has no failed devices`,
      );
    const now = this.deps.clock.now();
    for (const dev of failed) {
      const d = dev.d;
      d.failures = {};
      delete d.failureClass;
      delete d.notBefore;
      delete d.finishedAt;
      d.reason = `retry requested: ${reason}`;
      this.setState(dev, this.waitState(rt), now);
    }
    rt.baseline = 0;
    if (r.state === "halted" || r.state === "completed") {
      delete r.endedAt;
      this.setRolloutState(rt, "running", now);
    } else this.touchRollout(rt, now);
    this.emit(rt, "retried", actor, now, {
      reason: `${failed.length} failed device(s) queued again: ${reason}`,
    });
    const w = r.waves[r.currentWave] as WaveRecord;
    if (w.state !== "running") this.startWave(rt, r.currentWave, now, actor, "retry of failed devices");
    return copyRollout(r);
  }

  // ---------------------------------------------------------------- inputs

  /** Replaces the maintenance windows (invalid matchers: the window never opens). */
  setWindows(windows: MaintenanceWindow[]): void {
    const out = new Map<string, CompiledWindow>();
    for (const w of windows) {
      const m = compileMatchers(w.matchers);
      if (!(m instanceof PolyfleetError)) out.set(w.id, { window: w, matchers: m });
    }
    this.windows = out;
    this.windowCacheAt = Number.NaN;
  }

  /** The latest inventory record of a device (reachability, version, in call). */
  onDevice(record: DeviceRecord): void {
    const now = this.deps.clock.now();
    const prev = this.seen.get(record.deviceId);
    const s: Seen = {
      reachable: record.reachable,
      version: runningVersionOf(record),
      inCall: record.inCall === true,
      lastSeen: record.lastSeen,
      agentId: record.agentId,
      siteId: record.siteId,
      address: record.address,
      at: now,
      downSince: record.reachable ? undefined : (prev?.downSince ?? now),
    };
    this.seen.set(record.deviceId, s);
    const members = this.members.get(record.deviceId);
    if (!members) return;
    for (const dev of members) {
      const state = dev.d.state;
      if (ACTIVE.has(state)) this.reconcileReading(dev, s, now);
      else if (state === "succeeded") this.watchGate(dev, now);
    }
  }

  /** An agent's state: the devices of an offline agent are not dispatched. */
  onAgent(record: AgentRecord): void {
    const online = record.status === "online";
    const prev = this.agents.get(record.agentId);
    if (!prev || prev.online !== online)
      this.agents.set(record.agentId, { online, since: this.deps.clock.now() });
  }

  /** An alert transition: critical alerts of a device feed the health gate. */
  onAlert(alert: Alert): void {
    if (alert.severity !== "critical") return;
    const deviceId = alert.deviceId ?? alert.labels.deviceId;
    if (deviceId === undefined) return;
    const prev = this.critical.get(deviceId);
    if (!prev || alert.startsAt > prev.at)
      this.critical.set(deviceId, { at: alert.startsAt, rule: alert.rule });
    const members = this.members.get(deviceId);
    if (!members) return;
    const now = this.deps.clock.now();
    for (const dev of members) if (dev.d.state === "succeeded") this.watchGate(dev, now);
  }

  /** An `update.progress` event of the agent. */
  onProgress(e: UpdateProgress): void {
    const dev = this.commands.get(e.commandId);
    if (!dev || dev.d.deviceId !== e.deviceId) return;
    if (e.rolloutId !== undefined && e.rolloutId !== dev.rt.r.id) return;
    const now = this.deps.clock.now();
    const d = dev.d;
    if (e.reportedVersion !== undefined && d.reportedVersion !== e.reportedVersion) {
      d.reportedVersion = e.reportedVersion;
      this.touch(dev, now);
    }
    if (e.phase === "succeeded") {
      if (e.reportedVersion !== undefined && !this.same(dev, e.reportedVersion))
        this.failAttempt(
          dev,
          "verify",
          `came back on ${e.reportedVersion}, expected ${d.targetVersion}`,
          now,
        );
      else this.succeed(dev, now, undefined);
      return;
    }
    if (e.phase === "failed") {
      const outcome = progressOutcome(e.code);
      const reason = e.code ? `${e.reason ?? "update failed"} (${e.code})` : (e.reason ?? "update failed");
      if (outcome.kind === "deferred") this.defer(dev, now, `in a call: ${reason}`);
      else this.failAttempt(dev, outcome.failureClass, reason, now);
      return;
    }
    const next = PHASE_STATE[e.phase];
    if (next !== undefined && (ACTIVE_RANK[next] ?? 0) > (ACTIVE_RANK[d.state] ?? 0))
      this.setState(dev, next, now);
  }

  /** The agent's answer to a firmwareUpdate command: `ok` = accepted; an error ends the attempt. */
  onCommandResult(r: CommandResult): void {
    if (r.status === "ok") return;
    const dev = this.commands.get(r.commandId);
    if (!dev) return;
    const now = this.deps.clock.now();
    const outcome = commandErrorOutcome(r.error.code);
    const reason = `${r.error.message} (${r.error.code})`;
    if (outcome.kind === "deferred") this.defer(dev, now, `in a call: ${reason}`);
    else this.failAttempt(dev, outcome.failureClass, reason, now);
  }

  /** Timeouts, reconciliation, wave ends and gates, then dispatching. Call once per step. */
  tick(): void {
    const now = this.deps.clock.now();
    for (const rt of [...this.live]) {
      this.checkActive(rt, now);
      this.advance(rt, now);
      if (rt.r.state === "running") this.dispatchRollout(rt, now);
      this.updateLive(rt);
    }
  }

  /** What changed since the last drain (copies). */
  drain(): RolloutOutput {
    const out: RolloutOutput = {
      rollouts: [...this.dirtyRollouts].map((rt) => copyRollout(rt.r)),
      devices: [...this.dirtyDevices].map((dev) => copyDevice(dev.d)),
      dispatches: this.dispatches,
      transitions: this.transitions,
    };
    this.dirtyRollouts = new Set();
    this.dirtyDevices = new Set();
    this.dispatches = [];
    this.transitions = [];
    return out;
  }

  get(id: string): Rollout | undefined {
    const rt = this.rollouts.get(id);
    return rt ? copyRollout(rt.r) : undefined;
  }

  /** Every rollout the engine holds, oldest first. */
  list(): Rollout[] {
    return [...this.rollouts.values()].map((rt) => copyRollout(rt.r));
  }

  /** The devices of a rollout in plan order (empty for an unknown id). */
  devices(id: string): RolloutDevice[] {
    const rt = this.rollouts.get(id);
    return rt ? rt.devs.map((dev) => copyDevice(dev.d)) : [];
  }

  // ---------------------------------------------------------------- bookkeeping

  private newRt(r: Rollout): RolloutRt {
    const targets = new Map<string, RolloutTargetRelease>();
    for (const t of r.targets) if (!targets.has(t.model)) targets.set(t.model, t);
    return {
      r,
      devs: [],
      waves: r.waves.map(() => ({ devs: [], queues: new Map(), open: 0 })),
      active: new Set(),
      siteActive: new Map(),
      targets,
      started: 0,
      baseline: 0,
      windowState: undefined,
    };
  }

  private addDevice(rt: RolloutRt, d: RolloutDevice, target: RolloutTargetRelease): DevRt {
    const dev: DevRt = { rt, d, target, inQueue: false, reconcileFrom: undefined, reconcileLast: 0 };
    rt.devs.push(dev);
    (rt.waves[d.wave] as WaveRt).devs.push(dev);
    let list = this.members.get(d.deviceId);
    if (!list) {
      list = [];
      this.members.set(d.deviceId, list);
    }
    list.push(dev);
    return dev;
  }

  private must(id: string): RolloutRt {
    const rt = this.rollouts.get(id);
    if (!rt) throw new PolyfleetError("POLYFLEET_ERR_NOT_FOUND", `no rollout ${id}`);
    return rt;
  }

  private stateError(rt: RolloutRt, action: string): PolyfleetError {
    return new PolyfleetError(
      "POLYFLEET_ERR_ROLLOUT_STATE",
      `cannot ${action} rollout ${rt.r.id}: it is ${rt.r.state}`,
    );
  }

  private emit(
    rt: RolloutRt,
    event: string,
    actor: string,
    at: number,
    extra: { reason?: string | undefined; wave?: number | undefined; deviceId?: string | undefined } = {},
  ): void {
    this.transitions.push({
      rolloutId: rt.r.id,
      event,
      actor,
      ...(extra.reason === undefined ? {} : { reason: extra.reason }),
      ...(extra.wave === undefined ? {} : { wave: extra.wave }),
      ...(extra.deviceId === undefined ? {} : { deviceId: extra.deviceId }),
      at,
    });
  }

  private touchRollout(rt: RolloutRt, now: number): void {
    rt.r.updatedAt = now;
    this.dirtyRollouts.add(rt);
  }

  private touch(dev: DevRt, now: number): void {
    dev.d.updatedAt = now;
    this.dirtyDevices.add(dev);
    this.touchRollout(dev.rt, now);
  }

  private setRolloutState(rt: RolloutRt, state: RolloutState, now: number, reason?: string): void {
    rt.r.state = state;
    if (reason === undefined) delete rt.r.stateReason;
    else rt.r.stateReason = reason;
    this.touchRollout(rt, now);
    this.updateLive(rt);
  }

  private updateLive(rt: RolloutRt): void {
    const finished = rt.r.state === "completed" || rt.r.state === "cancelled";
    if (finished && rt.active.size === 0) this.live.delete(rt);
    else this.live.add(rt);
  }

  /** Moves a device to `next`, keeping counts, wave/site/active indexes and queues in step. */
  private setState(dev: DevRt, next: DeviceState, now: number): void {
    const d = dev.d;
    const prev = d.state;
    if (prev !== next) {
      const rt = dev.rt;
      const c = rt.r.counts;
      c[prev] = (c[prev] ?? 1) - 1;
      c[next] = (c[next] ?? 0) + 1;
      const wasT = TERMINAL.has(prev);
      if (wasT !== TERMINAL.has(next)) (rt.waves[d.wave] as WaveRt).open += wasT ? 1 : -1;
      const wasA = ACTIVE.has(prev);
      const isA = ACTIVE.has(next);
      if (wasA && !isA) this.leaveActive(dev);
      d.state = next;
      if (!wasA && isA) this.enterActive(dev);
      if (WAITING.has(next) && !dev.inQueue) this.enqueue(dev);
    }
    this.touch(dev, now);
  }

  private enterActive(dev: DevRt): void {
    const rt = dev.rt;
    const d = dev.d;
    rt.active.add(dev);
    rt.siteActive.set(d.siteId, (rt.siteActive.get(d.siteId) ?? 0) + 1);
    if (!this.activeByDevice.has(d.deviceId)) this.activeByDevice.set(d.deviceId, dev);
    if (d.commandId !== undefined) this.commands.set(d.commandId, dev);
    dev.reconcileFrom = undefined;
  }

  private leaveActive(dev: DevRt): void {
    const rt = dev.rt;
    const d = dev.d;
    rt.active.delete(dev);
    rt.siteActive.set(d.siteId, (rt.siteActive.get(d.siteId) ?? 1) - 1);
    if (this.activeByDevice.get(d.deviceId) === dev) {
      this.activeByDevice.delete(d.deviceId);
      // Loaded state may hold a second active record of the device (another rollout): it takes over.
      for (const other of this.members.get(d.deviceId) ?? [])
        if (other !== dev && ACTIVE.has(other.d.state)) {
          this.activeByDevice.set(d.deviceId, other);
          break;
        }
    }
    if (d.commandId !== undefined && this.commands.get(d.commandId) === dev)
      this.commands.delete(d.commandId);
    dev.reconcileFrom = undefined;
  }

  private enqueue(dev: DevRt): void {
    const wave = dev.rt.waves[dev.d.wave] as WaveRt;
    let q = wave.queues.get(dev.d.siteId);
    if (!q) {
      q = new DeviceQueue<DevRt>();
      wave.queues.set(dev.d.siteId, q);
    }
    q.push(dev);
    dev.inQueue = true;
  }

  private waitState(rt: RolloutRt): DeviceState {
    return rt.windowState === "closed" ? "waitingWindow" : "queued";
  }

  private same(dev: DevRt, version: string): boolean {
    try {
      return this.deps.sameVersion(dev.target.family, version, dev.target);
    } catch {
      return false;
    }
  }

  /** Devices not terminal in waves 0..idx. */
  private openUpTo(rt: RolloutRt, idx: number): number {
    let n = 0;
    for (let i = 0; i <= idx && i < rt.waves.length; i++) n += (rt.waves[i] as WaveRt).open;
    return n;
  }

  /** The smallest number of accepted failures under which the stored counts do not breach the threshold. */
  private consistentBaseline(rt: RolloutRt): number {
    const f = rt.r.counts.failed ?? 0;
    const s = rt.started;
    const p = rt.r.spec.errorThresholdPct;
    if (f === 0 || f * 100 <= p * s || p >= 100) return 0;
    let b = Math.max(0, Math.ceil((f * 100 - p * s) / (100 - p)) - 1);
    while (b < f && (f - b) * 100 > p * (s - b)) b++;
    return b;
  }

  // ---------------------------------------------------------------- device outcomes

  private succeed(dev: DevRt, now: number, reason: string | undefined): void {
    const d = dev.d;
    d.finishedAt = now;
    delete d.failureClass;
    delete d.notBefore;
    if (reason === undefined) delete d.reason;
    else d.reason = reason;
    this.setState(dev, "succeeded", now);
    this.emit(dev.rt, "device.succeeded", ROLLOUT_SYSTEM_ACTOR, now, {
      reason: reason ?? `on ${d.reportedVersion ?? d.targetVersion}`,
      wave: d.wave,
      deviceId: d.deviceId,
    });
  }

  private failAttempt(dev: DevRt, cls: FailureClass, reason: string, now: number): void {
    const d = dev.d;
    const rt = dev.rt;
    const n = (d.failures[cls] ?? 0) + 1;
    d.failures[cls] = n;
    d.failureClass = cls;
    const budget = rt.r.spec.retries[cls];
    if (rt.r.state !== "cancelled" && n <= budget) {
      d.reason = `${reason}; retry ${n}/${budget} for ${cls} failures`;
      d.notBefore = now + Math.min(RETRY_BACKOFF_MS * Math.max(1, d.attempts), RETRY_BACKOFF_MAX_MS);
      this.setState(dev, this.waitState(rt), now);
      this.emit(rt, "device.retrying", ROLLOUT_SYSTEM_ACTOR, now, {
        reason: d.reason,
        wave: d.wave,
        deviceId: d.deviceId,
      });
      return;
    }
    this.failFinal(dev, reason, now);
  }

  private failFinal(dev: DevRt, reason: string, now: number): void {
    const d = dev.d;
    d.reason = reason;
    d.finishedAt = now;
    delete d.notBefore;
    this.setState(dev, "failed", now);
    this.emit(dev.rt, "device.failed", ROLLOUT_SYSTEM_ACTOR, now, {
      reason: `${d.failureClass ?? "install"}: ${reason}`,
      wave: d.wave,
      deviceId: d.deviceId,
    });
    this.checkThreshold(dev.rt, now);
  }

  private skip(dev: DevRt, reason: string, now: number): void {
    const d = dev.d;
    d.reason = reason;
    d.finishedAt = now;
    delete d.notBefore;
    this.setState(dev, "skipped", now);
    this.emit(dev.rt, "device.skipped", ROLLOUT_SYSTEM_ACTOR, now, {
      reason,
      wave: d.wave,
      deviceId: d.deviceId,
    });
  }

  private defer(dev: DevRt, now: number, reason: string): void {
    const rt = dev.rt;
    if (rt.r.state === "cancelled") {
      this.skip(dev, `cancelled (${reason})`, now);
      return;
    }
    const d = dev.d;
    d.reason = reason;
    d.notBefore = now + rt.r.spec.inCallRetryMs;
    this.setState(dev, "deferred", now);
    this.emit(rt, "device.deferred", ROLLOUT_SYSTEM_ACTOR, now, {
      reason: `${reason}; next try in ${seconds(rt.r.spec.inCallRetryMs)}`,
      wave: d.wave,
      deviceId: d.deviceId,
    });
  }

  // ---------------------------------------------------------------- threshold and gate

  private thresholdBreach(rt: RolloutRt): string | undefined {
    const failed = (rt.r.counts.failed ?? 0) - rt.baseline;
    if (failed <= 0) return undefined;
    const started = rt.started - rt.baseline;
    const pct = rt.r.spec.errorThresholdPct;
    if (failed * 100 <= pct * started) return undefined;
    const share = Math.round((failed * 1000) / started) / 10;
    const accepted = rt.baseline > 0 ? ` (besides ${rt.baseline} accepted on resume)` : "";
    return `error threshold exceeded: failures ${failed}/${started} = ${share}% > ${pct}%${accepted}`;
  }

  private checkThreshold(rt: RolloutRt, now: number): boolean {
    if (rt.r.state !== "running" && rt.r.state !== "paused") return false;
    const breach = this.thresholdBreach(rt);
    if (breach === undefined) return false;
    this.halt(rt, now, breach);
    return true;
  }

  /** Current wave failed, rollout halted (from running or paused). */
  private halt(rt: RolloutRt, now: number, reason: string): void {
    const r = rt.r;
    if (r.state !== "running" && r.state !== "paused") return;
    const w = r.waves[r.currentWave] as WaveRecord;
    if (w.state === "running" || w.state === "soaking") {
      w.state = "failed";
      w.gatedAt = now;
      w.reason = reason;
      this.emit(rt, "wave.failed", ROLLOUT_SYSTEM_ACTOR, now, { reason, wave: w.index });
    }
    this.setRolloutState(rt, "halted", now, reason);
    this.emit(rt, "halted", ROLLOUT_SYSTEM_ACTOR, now, { reason, wave: w.index });
  }

  /** Why a succeeded device breaks its wave's health gate now, if it does. */
  private gateViolation(dev: DevRt, atEnd = false): string | undefined {
    const d = dev.d;
    const r = dev.rt.r;
    if (this.superseded(dev)) return undefined;
    const gate = r.spec.healthGate;
    const since = (r.waves[d.wave] as WaveRecord).startedAt ?? 0;
    if (gate.noNewCriticalAlerts) {
      const c = this.critical.get(d.deviceId);
      if (c && c.at >= since) return `device ${d.deviceId}: new critical alert ${c.rule}`;
    }
    if (gate.requireTargetVersion) {
      const s = this.seen.get(d.deviceId);
      // Only what was learnt after the device finished: earlier readings describe it before or during the
      // update. A version counts from a reading taken (lastSeen) after it finished, an unreachable state from
      // a record received after it finished (unreachable records keep the last lastSeen).
      const finished = d.finishedAt ?? 0;
      if (s && s.at >= finished) {
        // Unreachable counts at the end of the soak only: right after an update a poll that started while the
        // device was still rebooting may land after it finished. Lasting trouble during the soak raises the
        // device-unreachable alert, which the critical-alert check sees.
        if (!s.reachable && atEnd) return `device ${d.deviceId}: unreachable at the end of the soak`;
        if (s.lastSeen >= finished && s.version !== undefined && !this.same(dev, s.version))
          return `device ${d.deviceId}: reports ${s.version}, expected ${d.targetVersion}`;
      }
    }
    return undefined;
  }

  /** Another rollout dispatched the device after it finished here: its state is that rollout's business now. */
  private superseded(dev: DevRt): boolean {
    const members = this.members.get(dev.d.deviceId);
    if (!members || members.length < 2) return false;
    const finished = dev.d.finishedAt ?? 0;
    for (const other of members)
      if (other !== dev && other.d.dispatchedAt !== undefined && other.d.dispatchedAt >= finished)
        return true;
    return false;
  }

  /** A succeeded device changed (reading, alert): fails the gate of its soaking wave when it breaks it. */
  private watchGate(dev: DevRt, now: number): void {
    const r = dev.rt.r;
    if (r.state !== "running" && r.state !== "paused") return;
    if (dev.d.wave !== r.currentWave || (r.waves[r.currentWave] as WaveRecord).state !== "soaking") return;
    const v = this.gateViolation(dev);
    if (v !== undefined) this.halt(dev.rt, now, `health gate of wave ${dev.d.wave + 1}: ${v}`);
  }

  // ---------------------------------------------------------------- tick

  /** Timeouts and reconciliation of the active devices. */
  private checkActive(rt: RolloutRt, now: number): void {
    if (rt.active.size === 0) return;
    const limit = rt.r.spec.deviceTimeoutMs + TIMEOUT_GRACE_MS;
    for (const dev of [...rt.active]) {
      const d = dev.d;
      if (dev.reconcileFrom !== undefined && dev.reconcileLast - dev.reconcileFrom >= RECONCILE_GRACE_MS) {
        const v = this.seen.get(d.deviceId)?.version ?? d.targetVersion;
        d.reportedVersion = v;
        this.succeed(dev, now, `verified from the inventory: reachable on ${v} (no final progress event)`);
      } else if (now >= (d.dispatchedAt ?? now) + limit) {
        this.failAttempt(
          dev,
          "timeout",
          `no answer from the agent within ${seconds(limit)} (last state ${d.state})`,
          now,
        );
      }
    }
  }

  private reconcileReading(dev: DevRt, s: Seen, now: number): void {
    const d = dev.d;
    const ok =
      s.reachable &&
      s.version !== undefined &&
      d.dispatchedAt !== undefined &&
      s.lastSeen > d.dispatchedAt &&
      now > d.dispatchedAt &&
      this.same(dev, s.version);
    if (!ok) {
      dev.reconcileFrom = undefined;
      return;
    }
    if (dev.reconcileFrom === undefined) dev.reconcileFrom = now;
    dev.reconcileLast = now;
  }

  /** Wave end (soak start), gate pass, next wave, completion. */
  private advance(rt: RolloutRt, now: number): void {
    const r = rt.r;
    if (r.state !== "running" && r.state !== "paused") return;
    const idx = r.currentWave;
    const w = r.waves[idx] as WaveRecord;
    if (w.state === "running" && this.openUpTo(rt, idx) === 0) {
      w.state = "soaking";
      w.finishedAt = now;
      this.touchRollout(rt, now);
      this.emit(rt, "wave.soaking", ROLLOUT_SYSTEM_ACTOR, now, { wave: idx });
      if (this.checkThreshold(rt, now)) return;
      for (const dev of (rt.waves[idx] as WaveRt).devs) {
        if (dev.d.state !== "succeeded") continue;
        const v = this.gateViolation(dev);
        if (v !== undefined) {
          this.halt(rt, now, `health gate of wave ${idx + 1}: ${v}`);
          return;
        }
      }
    }
    if (
      w.state === "soaking" &&
      r.state === "running" &&
      now >= (w.finishedAt ?? now) + r.spec.healthGate.soakMs
    ) {
      for (const dev of (rt.waves[idx] as WaveRt).devs) {
        if (dev.d.state !== "succeeded") continue;
        const v = this.gateViolation(dev, true);
        if (v !== undefined) {
          this.halt(rt, now, `health gate of wave ${idx + 1}: ${v}`);
          return;
        }
      }
      w.state = "passed";
      w.gatedAt = now;
      this.touchRollout(rt, now);
      this.emit(rt, "wave.passed", ROLLOUT_SYSTEM_ACTOR, now, { wave: idx });
      this.nextWave(rt, now, ROLLOUT_SYSTEM_ACTOR);
    }
  }

  private nextWave(rt: RolloutRt, now: number, actor: string): void {
    const r = rt.r;
    if (r.currentWave + 1 < r.waves.length) {
      this.startWave(rt, r.currentWave + 1, now, actor);
      return;
    }
    r.endedAt = now;
    this.setRolloutState(rt, "completed", now);
    const c = r.counts;
    this.emit(rt, "completed", actor, now, {
      reason: `${c.succeeded ?? 0} succeeded, ${c.failed ?? 0} failed, ${c.skipped ?? 0} skipped`,
    });
  }

  private startWave(rt: RolloutRt, idx: number, now: number, actor: string, reason?: string): void {
    const r = rt.r;
    r.currentWave = idx;
    const w = r.waves[idx] as WaveRecord;
    w.state = "running";
    w.startedAt = now;
    delete w.finishedAt;
    delete w.gatedAt;
    delete w.reason;
    rt.windowState = undefined;
    this.touchRollout(rt, now);
    this.emit(rt, "wave.started", actor, now, { wave: idx, ...(reason === undefined ? {} : { reason }) });
  }

  private openWindows(ids: readonly string[], now: number): CompiledWindow[] {
    if (this.windowCacheAt !== now) {
      this.windowCache.clear();
      this.windowCacheAt = now;
    }
    const out: CompiledWindow[] = [];
    for (const id of ids) {
      const w = this.windows.get(id);
      if (!w) continue;
      let active = this.windowCache.get(id);
      if (active === undefined) {
        active = isWindowActive(w.window.schedule, now);
        this.windowCache.set(id, active);
      }
      if (active) out.push(w);
    }
    return out;
  }

  /** Marks the waiting devices of the started waves for a window change (closed: waitingWindow; open: queued). */
  private markWindow(rt: RolloutRt, state: "open" | "closed", now: number): void {
    rt.windowState = state;
    for (let i = 0; i <= rt.r.currentWave && i < rt.waves.length; i++) {
      for (const q of (rt.waves[i] as WaveRt).queues.values()) {
        q.forEach((dev) => {
          const d = dev.d;
          if (state === "closed" && d.state === "queued") {
            d.reason = "maintenance window closed";
            this.setState(dev, "waitingWindow", now);
          } else if (state === "open" && d.state === "waitingWindow") {
            delete d.reason;
            this.setState(dev, "queued", now);
          }
        });
      }
    }
  }

  private dispatchRollout(rt: RolloutRt, now: number): void {
    const r = rt.r;
    const spec = r.spec;
    let open: CompiledWindow[] | undefined;
    if (spec.windowIds.length > 0) {
      open = this.openWindows(spec.windowIds, now);
      if (open.length === 0) {
        if (rt.windowState !== "closed") this.markWindow(rt, "closed", now);
        return;
      }
      if (rt.windowState !== "open") this.markWindow(rt, "open", now);
    }
    for (let wi = 0; wi <= r.currentWave && wi < rt.waves.length; wi++) {
      const wave = rt.waves[wi] as WaveRt;
      if (wave.queues.size === 0 || (r.waves[wi] as WaveRecord).state === "pending") continue;
      for (const [site, q] of wave.queues) {
        if (r.state !== "running") return;
        let free = spec.concurrencyPerSite - (rt.siteActive.get(site) ?? 0);
        if (free > 0) {
          q.scan((dev) => {
            if (!WAITING.has(dev.d.state)) {
              dev.inQueue = false;
              return "drop";
            }
            if (free <= 0 || r.state !== "running") return "stop";
            const v = this.tryStart(dev, now, open);
            if (v === "waiting") return "keep";
            dev.inQueue = false;
            if (v === "started") free--;
            return "drop";
          });
        }
        if (q.size === 0) wave.queues.delete(site);
      }
    }
  }

  /** One waiting device: started, still waiting, or gone (skipped or failed). */
  private tryStart(
    dev: DevRt,
    now: number,
    open: CompiledWindow[] | undefined,
  ): "started" | "waiting" | "gone" {
    const d = dev.d;
    const rt = dev.rt;
    const spec = rt.r.spec;
    if (d.notBefore !== undefined && d.notBefore > now) return "waiting";
    const s = this.seen.get(d.deviceId);
    if (open !== undefined) {
      const labels: Record<string, string> = {
        siteId: d.siteId,
        deviceId: d.deviceId,
        model: d.model,
        agentId: s?.agentId ?? d.agentId,
        family: dev.target.family,
        ...(s ? { address: s.address } : {}),
      };
      if (!open.some((w) => matchesAll(w.matchers, labels))) {
        if (d.state !== "waitingWindow") {
          d.reason = "outside its maintenance windows";
          this.setState(dev, "waitingWindow", now);
        }
        return "waiting";
      }
      if (d.state === "waitingWindow") {
        delete d.reason;
        this.setState(dev, "queued", now);
      }
    }
    const busy = this.activeByDevice.get(d.deviceId);
    if (busy !== undefined) {
      this.note(dev, `another update is running on the device (rollout ${busy.rt.r.id})`, now);
      return "waiting";
    }
    const down = this.blocked(s);
    if (down !== undefined) {
      const waveStart = (rt.r.waves[d.wave] as WaveRecord).startedAt ?? now;
      if (now - Math.max(down.since, waveStart) >= spec.deviceTimeoutMs) {
        if (d.attempts === 0) this.skip(dev, `unreachable: ${down.why}`, now);
        else {
          d.failureClass ??= "timeout";
          this.failFinal(dev, `unreachable after a failed attempt: ${down.why}`, now);
        }
        return "gone";
      }
      this.note(dev, `waiting: ${down.why}`, now);
      return "waiting";
    }
    const seen = s as Seen;
    if (d.attempts === 0 && seen.version !== undefined && this.same(dev, seen.version)) {
      this.skip(dev, `already on ${seen.version}`, now);
      return "gone";
    }
    if (seen.inCall) {
      this.defer(dev, now, "in a call");
      return "waiting";
    }
    if (this.checkThreshold(rt, now)) return "waiting";
    this.dispatch(dev, seen, now);
    return "started";
  }

  /** Sets a waiting device's reason when it changed (no write otherwise). */
  private note(dev: DevRt, reason: string, now: number): void {
    if (dev.d.reason === reason) return;
    dev.d.reason = reason;
    this.touch(dev, now);
  }

  /** Why and since when a device cannot be reached now (undefined when it can). */
  private blocked(s: Seen | undefined): { why: string; since: number } | undefined {
    if (!s) return { why: "no inventory record of the device", since: 0 };
    const agent = this.agents.get(s.agentId);
    const agentDown = agent !== undefined && !agent.online;
    if (s.reachable && !agentDown) return undefined;
    if (!s.reachable && agentDown)
      return {
        why: `device unreachable and agent ${s.agentId} offline`,
        since: Math.min(s.downSince ?? 0, agent.since),
      };
    if (agentDown) return { why: `agent ${s.agentId} offline`, since: agent.since };
    return { why: "device unreachable", since: s.downSince ?? 0 };
  }

  private dispatch(dev: DevRt, s: Seen, now: number): void {
    const d = dev.d;
    const rt = dev.rt;
    const attempt = d.attempts + 1;
    if (d.attempts === 0) rt.started++;
    d.attempts = attempt;
    d.commandId = commandIdFor(rt.r.id, d.deviceId, attempt);
    d.dispatchedAt = now;
    d.agentId = s.agentId;
    delete d.notBefore;
    delete d.reason;
    delete d.failureClass;
    delete d.finishedAt;
    delete d.reportedVersion;
    this.setState(dev, "downloading", now);
    this.dispatches.push({
      rolloutId: rt.r.id,
      deviceId: d.deviceId,
      agentId: s.agentId,
      siteId: s.siteId,
      commandId: d.commandId,
      attempt,
      target: dev.target,
      timeoutMs: rt.r.spec.deviceTimeoutMs,
    });
    this.emit(rt, "device.dispatched", ROLLOUT_SYSTEM_ACTOR, now, {
      reason: `attempt ${attempt}: ${d.fromVersion ?? "?"} → ${d.targetVersion}`,
      wave: d.wave,
      deviceId: d.deviceId,
    });
  }
}
