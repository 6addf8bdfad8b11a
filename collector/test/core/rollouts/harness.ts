/**
 * A simulated fleet around the rollout engine: a fake clock, devices with a version, reachability and call
 * state, agents that answer update commands after a behaviour chosen per device and attempt, a store that
 * keeps what every drain returned (for restarts), and invariant checks on every drain:
 * - a device is never dispatched while an update is out on it (in any rollout),
 * - a dispatch only happens while its rollout is running and for a device of a started wave,
 * - a device is only marked succeeded while it really runs the target version,
 * - counts match the devices and sum to the device count.
 */
import {
  type CommandResult,
  type DeviceRecord,
  type MaintenanceWindow,
  type Rollout,
  RolloutCreate,
  type RolloutCreateInput,
  type RolloutDevice,
  type RolloutPreview,
  type RolloutTargetRelease,
  type UpdateProgress,
} from "@polyfleet/shared";
import {
  type Dispatch,
  type Eligibility,
  type PlanDevice,
  planRollout,
  RolloutEngine,
  type RolloutTransition,
  targetVersionOf,
} from "../../../src/core/rollouts/index.js";

/** 2024-01-01T00:00:00Z, a Monday. */
export const T0 = Date.UTC(2024, 0, 1);

export function spec(input: Partial<RolloutCreateInput> = {}): RolloutCreate {
  return RolloutCreate.parse({
    name: "test rollout",
    reason: "CHG-1 firmware update",
    target: { kind: "release", version: "2.0.0" },
    ...input,
  });
}

export function release(
  model: string,
  version = "2.0.0",
  family: "uc" | "videoos" = "uc",
): RolloutTargetRelease {
  return {
    family,
    model,
    version,
    image: { fileName: `${model.replace(/\s/g, "_")}-${version}.ld`, length: 1000, sha256: "a".repeat(64) },
    downgrade: false,
  };
}

export interface FleetDevice {
  deviceId: string;
  siteId: string;
  agentId: string;
  model: string;
  family: "uc" | "videoos";
  version: string;
  reachable: boolean;
  inCall: boolean;
  tags: string[];
}

/** `n` devices `d000..`, spread round-robin over `sites` sites (agent per site) and `models` models, on `version`. */
export function fleet(
  n: number,
  opts: { sites?: number; models?: string[]; version?: string; prefix?: string } = {},
): FleetDevice[] {
  const sites = opts.sites ?? 1;
  const models = opts.models ?? ["VVX 450"];
  const out: FleetDevice[] = [];
  for (let i = 0; i < n; i++) {
    const site = `site${i % sites}`;
    out.push({
      deviceId: `${opts.prefix ?? "d"}${String(i).padStart(4, "0")}`,
      siteId: site,
      agentId: `agent-${site}`,
      model: models[Math.floor(i / sites) % models.length] as string,
      family: "uc",
      version: opts.version ?? "1.0.0",
      reachable: true,
      inCall: false,
      tags: [],
    });
  }
  return out;
}

export function planDeviceOf(d: FleetDevice): PlanDevice {
  return {
    deviceId: d.deviceId,
    siteId: d.siteId,
    agentId: d.agentId,
    family: d.family,
    model: d.model,
    softwareVersion: d.version,
    tags: d.tags,
    reachable: d.reachable,
    inCall: d.inCall,
  };
}

export const sameVersion = (_family: string, reported: string, target: RolloutTargetRelease): boolean =>
  reported === targetVersionOf(target) || reported === target.version;

export const alwaysEligible: Eligibility = (d, t) =>
  d.softwareVersion === t.version ? { ok: false, reason: `already on ${t.version}` } : { ok: true };

/** What the agent does with one update command. */
export type Behaviour =
  /** Normal update: accepted, downloading, installing, rebooting (unreachable), back on the target, succeeded. */
  | { kind: "ok"; noReportedVersion?: boolean; slowMs?: number }
  /** Fails after downloading with this code. */
  | { kind: "fail"; code: string }
  /** Nothing at all: no answer, no progress. */
  | { kind: "silent" }
  /** Reboots and comes back on the old version; the agent says so (WRONG_VERSION) or claims success. */
  | { kind: "oldVersion"; claimSuccess: boolean }
  /** Refuses the command with this error code. */
  | { kind: "reject"; code: string }
  /** Does the update but every progress event is lost (the device ends on the target). */
  | { kind: "lostEvents" };

export interface SimOptions {
  tickMs?: number;
  /** Periodic inventory readings of every device (0 = only on changes). */
  readingEveryMs?: number;
  behaviour?: (deviceId: string, attempt: number, rolloutId: string) => Behaviour;
  /** Called on every drain after the built-in invariant checks. */
  check?: (sim: Sim) => void;
}

interface Scheduled {
  at: number;
  seq: number;
  fn: () => void;
}

/** A binary min-heap of scheduled events by (at, seq). */
class Agenda {
  private readonly h: Scheduled[] = [];
  private seq = 0;
  get size(): number {
    return this.h.length;
  }
  peek(): Scheduled | undefined {
    return this.h[0];
  }
  push(at: number, fn: () => void): void {
    const h = this.h;
    h.push({ at, seq: this.seq++, fn });
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p] as Scheduled, h[i] as Scheduled)) break;
      [h[p], h[i]] = [h[i] as Scheduled, h[p] as Scheduled];
      i = p;
    }
  }
  pop(): Scheduled | undefined {
    const h = this.h;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l] as Scheduled, h[m] as Scheduled)) m = l;
        if (r < h.length && less(h[r] as Scheduled, h[m] as Scheduled)) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i] as Scheduled, h[m] as Scheduled];
        i = m;
      }
    }
    return top;
  }
}

function less(a: Scheduled, b: Scheduled): boolean {
  return a.at !== b.at ? a.at < b.at : a.seq < b.seq;
}

export class InvariantError extends Error {}

export class Sim {
  now = T0;
  engine: RolloutEngine;
  readonly devices = new Map<string, FleetDevice>();
  readonly agenda = new Agenda();
  /** Every dispatch the service would have published, in order, across restarts. */
  readonly dispatches: Dispatch[] = [];
  /** Every transition, in order, across restarts. */
  readonly transitions: RolloutTransition[] = [];
  /** The state store: latest drained version of every rollout and device. */
  readonly storedRollouts = new Map<string, Rollout>();
  readonly storedDevices = new Map<string, RolloutDevice>();
  windows: MaintenanceWindow[] = [];
  readonly agentsOffline = new Set<string>();
  readonly opts: SimOptions;
  /** Rollout state as the transition stream tells it, and the waves it started. */
  private readonly streamState = new Map<string, string>();
  private readonly startedWaves = new Map<string, Set<number>>();
  /** deviceId → rollout with an update out (from the transition stream). */
  private readonly out = new Map<string, string>();
  private readonly targets = new Map<string, Map<string, RolloutTargetRelease>>();
  private ids = 0;
  private nextReadingAt = Number.POSITIVE_INFINITY;

  constructor(devices: FleetDevice[], opts: SimOptions = {}) {
    this.opts = opts;
    for (const d of devices) this.devices.set(d.deviceId, { ...d, tags: [...d.tags] });
    this.engine = this.newEngine();
    this.feedAll();
    if (opts.readingEveryMs) this.nextReadingAt = this.now + opts.readingEveryMs;
  }

  private newEngine(): RolloutEngine {
    return new RolloutEngine({ clock: { now: () => this.now }, sameVersion });
  }

  device(id: string): FleetDevice {
    const d = this.devices.get(id);
    if (!d) throw new Error(`no device ${id}`);
    return d;
  }

  record(d: FleetDevice): DeviceRecord {
    return {
      deviceId: d.deviceId,
      siteId: d.siteId,
      agentId: d.agentId,
      address: `10.0.${d.siteId.length}.${d.deviceId.length}`,
      family: d.family,
      driver: d.family === "uc" ? "poly-uc" : "poly-videoos",
      model: d.model,
      softwareVersion: d.version,
      firmware: [],
      health: [],
      peripherals: [],
      lines: [],
      reachable: d.reachable,
      inCall: d.inCall,
      tags: d.tags,
      firstSeen: T0,
      lastSeen: this.now,
    };
  }

  /** Sends the device's current record to the engine. */
  reading(id: string): void {
    this.engine.onDevice(this.record(this.device(id)));
  }

  /** Changes a device and sends its record. */
  set(id: string, change: Partial<Pick<FleetDevice, "version" | "reachable" | "inCall">>): void {
    Object.assign(this.device(id), change);
    this.reading(id);
  }

  setAgent(agentId: string, online: boolean): void {
    if (online) this.agentsOffline.delete(agentId);
    else this.agentsOffline.add(agentId);
    const site = [...this.devices.values()].find((d) => d.agentId === agentId)?.siteId ?? "site0";
    this.engine.onAgent({
      agentId,
      siteId: site,
      status: online ? "online" : "offline",
      sessionId: "s1",
      capabilities: [],
      since: this.now,
      lastSeen: this.now,
      ackedSeq: 0,
    });
  }

  setWindows(windows: MaintenanceWindow[]): void {
    this.windows = windows;
    this.engine.setWindows(windows);
  }

  /** What a restarting service feeds the engine: windows, agents, every device record. */
  feedAll(): void {
    this.engine.setWindows(this.windows);
    const agents = new Set([...this.devices.values()].map((d) => d.agentId));
    for (const a of agents) this.setAgent(a, !this.agentsOffline.has(a));
    for (const d of this.devices.values()) this.engine.onDevice(this.record(d));
  }

  preview(
    input: Partial<RolloutCreateInput>,
    targets?: RolloutTargetRelease[],
    eligibility = alwaysEligible,
  ) {
    const s = spec(input);
    const models = new Set([...this.devices.values()].map((d) => d.model));
    const t = targets ?? [...models].map((m) => release(m));
    return {
      spec: s,
      preview: planRollout({
        spec: s,
        targets: t,
        devices: [...this.devices.values()].map(planDeviceOf),
        eligibility,
        catalogVersion: 7,
      }),
    };
  }

  /** Plans and creates a rollout (pending); returns its id. */
  create(
    input: Partial<RolloutCreateInput> = {},
    targets?: RolloutTargetRelease[],
    preview?: RolloutPreview,
  ): string {
    const p = this.preview(input, targets);
    const id = `r${++this.ids}`;
    this.engine.create({
      id,
      spec: p.spec,
      preview: preview ?? p.preview,
      catalogVersion: 7,
      actor: "alice",
    });
    this.drain();
    return id;
  }

  /** An action as the service runs it: the action, a tick, a drain. */
  act(
    id: string,
    action: "start" | "pause" | "resume" | "cancel" | "retryFailed",
    reason = "because",
  ): Rollout {
    const r = this.engine[action](id, "alice", reason);
    this.engine.tick();
    this.drain();
    return r;
  }

  /** The collector dies without draining and restarts from the store. */
  restart(): void {
    this.engine = this.newEngine();
    this.engine.load([...this.storedRollouts.values()], [...this.storedDevices.values()]);
    this.feedAll();
    this.drain();
  }

  /** Delivers due agent events and ticks every tickMs until `until` (absolute ms) or `stop()` is true. */
  run(until: number, stop?: () => boolean): void {
    const tickMs = this.opts.tickMs ?? 1000;
    while (this.now < until) {
      const next = Math.min(this.now + tickMs, until);
      this.deliverUntil(next);
      this.now = next;
      this.engine.tick();
      this.drain();
      if (stop?.()) return;
    }
  }

  /** Delivers due agent events for `ms` without ticking or draining (what happens just before a crash). */
  advance(ms: number): void {
    this.deliverUntil(this.now + ms);
    this.now += ms;
  }

  /** Runs (at most `maxMs` more) until every rollout is completed or cancelled and nothing is active. */
  runToEnd(maxMs = 24 * 3_600_000): void {
    this.run(this.now + maxMs, () => this.engine.list().every((r) => this.finished(r)));
  }

  finished(r: Rollout): boolean {
    if (r.state !== "completed" && r.state !== "cancelled" && r.state !== "halted") return false;
    const c = r.counts;
    return (c.downloading ?? 0) + (c.installing ?? 0) + (c.rebooting ?? 0) + (c.verifying ?? 0) === 0;
  }

  private deliverUntil(t: number): void {
    for (;;) {
      const readingDue = this.nextReadingAt <= t;
      const e = this.agenda.peek();
      if (e && e.at <= t && (!readingDue || e.at <= this.nextReadingAt)) {
        this.agenda.pop();
        this.now = Math.max(this.now, e.at);
        e.fn();
      } else if (readingDue) {
        this.now = Math.max(this.now, this.nextReadingAt);
        for (const d of this.devices.values()) this.engine.onDevice(this.record(d));
        this.nextReadingAt += this.opts.readingEveryMs ?? Number.POSITIVE_INFINITY;
      } else return;
    }
  }

  later(ms: number, fn: () => void): void {
    this.agenda.push(this.now + ms, fn);
  }

  drain(): void {
    const out = this.engine.drain();
    for (const r of out.rollouts) {
      this.storedRollouts.set(r.id, r);
      if (!this.targets.has(r.id)) this.targets.set(r.id, new Map(r.targets.map((t) => [t.model, t])));
    }
    for (const d of out.devices) this.storedDevices.set(`${d.rolloutId}/${d.deviceId}`, d);
    for (const t of out.transitions) this.checkTransition(t);
    this.transitions.push(...out.transitions);
    for (const d of out.dispatches) {
      this.dispatches.push(d);
      this.agentRuns(d);
    }
    this.checkCounts();
    this.opts.check?.(this);
  }

  private checkTransition(t: RolloutTransition): void {
    const fail = (msg: string) => {
      throw new InvariantError(`${msg} (at +${(t.at - T0) / 1000}s: ${JSON.stringify(t)})`);
    };
    const prev = this.streamState.get(t.rolloutId);
    switch (t.event) {
      case "created":
        this.streamState.set(t.rolloutId, "pending");
        this.startedWaves.set(t.rolloutId, new Set());
        break;
      case "started":
      case "resumed":
        this.streamState.set(t.rolloutId, "running");
        break;
      case "paused":
      case "halted":
      case "cancelled":
      case "completed":
        this.streamState.set(t.rolloutId, t.event);
        break;
      case "retried":
        if (prev === "halted" || prev === "completed") this.streamState.set(t.rolloutId, "running");
        break;
      case "wave.started":
        this.startedWaves.get(t.rolloutId)?.add(t.wave ?? -1);
        break;
      case "device.dispatched": {
        const id = t.deviceId ?? "";
        if (this.out.has(id)) fail(`device ${id} dispatched while an update is out in ${this.out.get(id)}`);
        if (prev !== "running") fail(`dispatch while the rollout is ${prev}`);
        if (!this.startedWaves.get(t.rolloutId)?.has(t.wave ?? -1))
          fail(`dispatch in wave ${t.wave}, not started`);
        this.out.set(id, t.rolloutId);
        break;
      }
      case "device.succeeded": {
        const id = t.deviceId ?? "";
        const dev = this.device(id);
        const stored = this.engine.devices(t.rolloutId).find((d) => d.deviceId === id);
        const target = this.targets.get(t.rolloutId)?.get(dev.model);
        if (!target || !sameVersion(dev.family, dev.version, target))
          fail(`device ${id} marked succeeded while it runs ${dev.version} (${stored?.targetVersion})`);
        if (this.out.get(id) === t.rolloutId) this.out.delete(id);
        break;
      }
      case "device.failed":
      case "device.retrying":
      case "device.deferred":
      case "device.skipped":
        if (this.out.get(t.deviceId ?? "") === t.rolloutId) this.out.delete(t.deviceId ?? "");
        break;
      default:
        break;
    }
  }

  private checkCounts(): void {
    for (const r of this.engine.list()) {
      const devices = this.engine.devices(r.id);
      const tally: Record<string, number> = {};
      for (const d of devices) tally[d.state] = (tally[d.state] ?? 0) + 1;
      let sum = 0;
      for (const [state, n] of Object.entries(r.counts)) {
        sum += n;
        if ((tally[state] ?? 0) !== n)
          throw new InvariantError(`${r.id}: counts.${state} = ${n}, devices say ${tally[state] ?? 0}`);
      }
      if (sum !== devices.length)
        throw new InvariantError(`${r.id}: counts sum ${sum} != ${devices.length} devices`);
    }
  }

  /** The agent's side of one update command. */
  private agentRuns(d: Dispatch): void {
    const b = this.opts.behaviour?.(d.deviceId, d.attempt, d.rolloutId) ?? { kind: "ok" };
    const dev = this.device(d.deviceId);
    const target = targetVersionOf(d.target);
    const result = (ok: boolean, code?: string): CommandResult =>
      ok
        ? {
            v: 1,
            agentId: d.agentId,
            commandId: d.commandId,
            status: "ok",
            ts: this.now,
            durationMs: 1,
            data: {},
          }
        : {
            v: 1,
            agentId: d.agentId,
            commandId: d.commandId,
            status: "error",
            ts: this.now,
            durationMs: 1,
            error: { code: code ?? "POLYFLEET_ERR_COMMAND_FAILED", message: "refused" },
          };
    const progress = (
      phase: UpdateProgress["phase"],
      extra: Partial<UpdateProgress> = {},
    ): UpdateProgress => ({
      v: 1,
      agentId: d.agentId,
      siteId: d.siteId,
      seq: 1,
      ts: this.now,
      type: "update.progress",
      deviceId: d.deviceId,
      commandId: d.commandId,
      rolloutId: d.rolloutId,
      phase,
      targetVersion: target,
      ...extra,
    });
    const send = (ms: number, e: () => UpdateProgress) => this.later(ms, () => this.engine.onProgress(e()));
    switch (b.kind) {
      case "silent":
        return;
      case "reject":
        this.later(1000, () => this.engine.onCommandResult(result(false, b.code)));
        return;
      case "fail":
        this.later(1000, () => this.engine.onCommandResult(result(true)));
        send(2000, () => progress("downloading"));
        send(5000, () => progress("failed", { code: b.code, reason: "simulated failure" }));
        return;
      case "lostEvents":
        this.later(20_000, () => this.set(dev.deviceId, { reachable: false }));
        this.later(40_000, () => this.set(dev.deviceId, { reachable: true, version: target }));
        return;
      case "oldVersion": {
        const old = dev.version;
        this.later(1000, () => this.engine.onCommandResult(result(true)));
        send(2000, () => progress("downloading"));
        send(10_000, () => progress("installing"));
        send(20_000, () => progress("rebooting"));
        this.later(20_000, () => this.set(dev.deviceId, { reachable: false }));
        this.later(40_000, () => this.set(dev.deviceId, { reachable: true, version: old }));
        send(42_000, () =>
          b.claimSuccess
            ? progress("succeeded", { reportedVersion: old })
            : progress("failed", { code: "POLYFLEET_ERR_UPDATE_WRONG_VERSION", reportedVersion: old }),
        );
        return;
      }
      case "ok": {
        const k = b.slowMs ?? 0;
        this.later(1000, () => this.engine.onCommandResult(result(true)));
        send(2000 + k, () => progress("downloading", { bytes: 0, totalBytes: 1000 }));
        send(10_000 + k, () => progress("installing"));
        send(20_000 + k, () => progress("rebooting"));
        this.later(20_000 + k, () => this.set(dev.deviceId, { reachable: false }));
        this.later(40_000 + k, () => this.set(dev.deviceId, { reachable: true, version: target }));
        send(41_000 + k, () => progress("verifying"));
        send(42_000 + k, () =>
          b.noReportedVersion ? progress("succeeded") : progress("succeeded", { reportedVersion: target }),
        );
        return;
      }
    }
  }

  /** Dispatches per device id. */
  dispatchCount(): Map<string, number> {
    const m = new Map<string, number>();
    for (const d of this.dispatches) m.set(d.deviceId, (m.get(d.deviceId) ?? 0) + 1);
    return m;
  }

  events(rolloutId: string, prefix = ""): RolloutTransition[] {
    return this.transitions.filter((t) => t.rolloutId === rolloutId && t.event.startsWith(prefix));
  }

  states(id: string): Record<string, string> {
    return Object.fromEntries(this.engine.devices(id).map((d) => [d.deviceId, d.state]));
  }
}
