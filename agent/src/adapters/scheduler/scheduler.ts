import type { Logger, PollError } from "@polyfleet/shared";
import { PolyfleetError } from "@polyfleet/shared";
import { DRIVER_FAMILY } from "../../core/classify.js";
import {
  applyOutcome,
  type DeviceHealth,
  firstPollDelay,
  initialHealth,
  nextDueAt,
  nextPollDelay,
  type PollPlanConfig,
  type ReachabilityState,
  spreadFraction,
  type Transition,
} from "../../core/poll-plan.js";
import type { Clock, TimerHandle } from "../../ports/clock.js";
import type { DeviceDriver, DeviceTarget, DriverName, ReadingBody } from "../../ports/driver.js";
import type { Metrics } from "../../ports/metrics.js";
import type { TelemetrySink } from "../../ports/sink.js";

/** One device the scheduler polls. */
export interface ScheduledDevice {
  target: DeviceTarget;
  driver: DriverName;
  /** This device's interval; the scheduler's `intervalMs` when absent. */
  intervalMs?: number;
}

export interface SchedulerOptions {
  /** Default poll interval (config `polling.intervalSec` × 1000). */
  intervalMs: number;
  /** ± jitter of every interval, percent (config `polling.jitterPct`). */
  jitterPct: number;
  /** Per-poll timeout: the driver's AbortSignal fires and the slot is freed (config `polling.timeoutMs`). */
  timeoutMs: number;
  /** Global bound on polls in flight (config `polling.concurrency`). */
  concurrency: number;
  /** Consecutive misses before `device.reachability` false (config `polling.missesBeforeUnreachable`). */
  missesBeforeUnreachable: number;
  /** Backoff cap for failing devices. Default: 8 × the interval. */
  backoffMaxMs?: number;
  /** A device unanswered this long gets one `device.lost` event. Default: 1 hour. */
  lostAfterMs?: number;
  /** A poll that starts more than this after it was due counts as late in `cycleStats()`. Default 1000. */
  lateThresholdMs?: number;
  /** Length of one `cycleStats()` bucket. Default: `intervalMs`. */
  cycleMs?: number;
  /** How many cycles `cycleStats()` keeps. Default 120. */
  maxCycles?: number;
  /** Source of jitter; `Math.random` by default (tests pass a seeded one). */
  random?: () => number;
}

export interface SchedulerDeps {
  drivers: Partial<Record<DriverName, DeviceDriver>>;
  sink: TelemetrySink;
  clock: Clock;
  metrics: Metrics;
  log?: Logger;
}

/** Poll counts of one cycle, by the time the polls were due. */
export interface CycleStats {
  index: number;
  /** Cycle window [startMs, endMs) on the scheduler's clock. */
  startMs: number;
  endMs: number;
  /** Polls whose due time fell in this window. */
  due: number;
  started: number;
  /** Polls that finished (answer, failure or timeout). */
  done: number;
  ok: number;
  failed: number;
  timedOut: number;
  /** Skipped because the device's previous poll was still running. */
  skipped: number;
  /** Started more than `lateThresholdMs` after they were due. */
  late: number;
  maxLatenessMs: number;
}

/** What the scheduler knows about one device (for /healthz, commands and tests). */
export interface ScheduledDeviceState {
  deviceId: string;
  address: string;
  driver: DriverName;
  state: ReachabilityState;
  misses: number;
  lastSeenAt: number;
  nextDueAt: number | undefined;
  running: boolean;
  queued: boolean;
}

interface Attempt {
  dueAt: number;
  startedAt: number;
  controller: AbortController;
  timer: TimerHandle | undefined;
  /** The slot was given back (answer or timeout); a later answer is ignored. */
  released: boolean;
}

interface Entry {
  dev: ScheduledDevice;
  index: number;
  health: DeviceHealth;
  dueAt: number;
  timer: TimerHandle | undefined;
  /** The driver has not returned from the last poll yet (even if it timed out). */
  running: boolean;
  queued: boolean;
  removed: boolean;
  attempt: Attempt | undefined;
}

const STATES: ReachabilityState[] = ["unknown", "reachable", "unreachable", "lost"];

export const SCHEDULER_METRICS = {
  polls: "polyfleet_agent_polls_total",
  failures: "polyfleet_agent_poll_failures_total",
  /** Polls of a device that answered, with errors (auth refused, HTTP 500, malformed answers), by reason. */
  partialFailures: "polyfleet_agent_poll_partial_failures_total",
  duration: "polyfleet_agent_poll_duration_seconds",
  skipped: "polyfleet_agent_poll_skipped_total",
  devices: "polyfleet_agent_devices",
} as const;

/**
 * Polls every device at its interval with jitter under one global concurrency bound (port-driven: drivers,
 * sink, clock and metrics are injected). A poll that exceeds `timeoutMs` is aborted and frees its slot at
 * once; a device whose previous poll is still running when it is due again is skipped for that round and
 * counted, never queued twice. Failures back off exponentially (capped) once past the miss threshold, and
 * reachability changes are appended as `device.reachability` / `device.lost` events exactly once each.
 */
export class Scheduler {
  private readonly entries = new Map<string, Entry>();
  private readonly queue: Entry[] = [];
  private readonly cycles = new Map<number, CycleStats>();
  private readonly stateCounts = new Map<string, number>();
  private active = 0;
  private added = 0;
  private started = false;
  private epoch = 0;
  private seed = 0;

  constructor(
    private readonly deps: SchedulerDeps,
    private readonly opts: SchedulerOptions,
  ) {}

  /** Arms every device's first poll, spread over its interval. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.epoch = this.deps.clock.now();
    this.seed = this.random();
    for (const e of this.entries.values()) this.armFirst(e);
  }

  /** Clears every timer and aborts polls in flight; their late answers are dropped. */
  stop(): Promise<void> {
    this.started = false;
    for (const e of this.entries.values()) {
      this.clearTimer(e);
      e.queued = false;
      const a = e.attempt;
      if (a && !a.released) {
        a.released = true;
        if (a.timer) this.deps.clock.clearTimeout(a.timer);
        a.controller.abort(new PolyfleetError("POLYFLEET_ERR_DEVICE_TIMEOUT", "scheduler stopped"));
      }
    }
    this.queue.length = 0;
    this.active = 0;
    return Promise.resolve();
  }

  /** Adds a device, or updates it when its deviceId is known. Throws when no driver serves it. */
  upsert(dev: ScheduledDevice): void {
    if (!this.deps.drivers[dev.driver]) {
      throw new PolyfleetError(
        "POLYFLEET_ERR_CONFIG_INVALID",
        `no driver "${dev.driver}" for ${dev.target.address}`,
      );
    }
    const existing = this.entries.get(dev.target.deviceId);
    if (existing) {
      this.update(existing, dev);
      return;
    }
    const e: Entry = {
      dev,
      index: this.added++,
      health: initialHealth(this.deps.clock.now()),
      dueAt: 0,
      timer: undefined,
      running: false,
      queued: false,
      removed: false,
      attempt: undefined,
    };
    this.entries.set(dev.target.deviceId, e);
    this.countState(dev.driver, e.health.state, 1);
    if (this.started) this.armFirst(e);
  }

  /** Stops polling a device; an answer still in flight is dropped and the driver forgets the device. */
  remove(deviceId: string): boolean {
    const e = this.entries.get(deviceId);
    if (!e) return false;
    e.removed = true;
    this.entries.delete(deviceId);
    this.clearTimer(e);
    if (e.queued) {
      const i = this.queue.indexOf(e);
      if (i >= 0) this.queue.splice(i, 1);
      e.queued = false;
    }
    const a = e.attempt;
    if (a && !a.released) {
      a.released = true;
      if (a.timer) this.deps.clock.clearTimeout(a.timer);
      a.controller.abort(new PolyfleetError("POLYFLEET_ERR_DEVICE_TIMEOUT", "device removed"));
      this.releaseSlot();
    }
    this.countState(e.dev.driver, e.health.state, -1);
    this.guard(() => this.deps.drivers[e.dev.driver]?.forget(deviceId), deviceId, "forget");
    return true;
  }

  has(deviceId: string): boolean {
    return this.entries.has(deviceId);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Polls in flight now (never above `concurrency`). */
  get inFlight(): number {
    return this.active;
  }

  device(deviceId: string): ScheduledDeviceState | undefined {
    const e = this.entries.get(deviceId);
    return e ? this.view(e) : undefined;
  }

  devices(): ScheduledDeviceState[] {
    return [...this.entries.values()].map((e) => this.view(e));
  }

  /** Per-cycle counts, oldest first (copies). */
  cycleStats(): CycleStats[] {
    return [...this.cycles.values()].sort((a, b) => a.index - b.index).map((c) => ({ ...c }));
  }

  private view(e: Entry): ScheduledDeviceState {
    return {
      deviceId: e.dev.target.deviceId,
      address: e.dev.target.address,
      driver: e.dev.driver,
      state: e.health.state,
      misses: e.health.misses,
      lastSeenAt: e.health.lastSeenAt,
      nextDueAt: e.timer ? e.dueAt : undefined,
      running: e.running,
      queued: e.queued,
    };
  }

  private update(e: Entry, dev: ScheduledDevice): void {
    const old = e.dev;
    e.dev = dev;
    if (old.driver !== dev.driver) {
      this.countState(old.driver, e.health.state, -1);
      this.countState(dev.driver, e.health.state, 1);
      this.guard(
        () => this.deps.drivers[old.driver]?.forget(dev.target.deviceId),
        dev.target.deviceId,
        "forget",
      );
    }
    if (this.intervalOf(old) !== this.intervalOf(dev) && e.timer) {
      this.clearTimer(e);
      this.armFirst(e);
    }
  }

  private intervalOf(dev: ScheduledDevice): number {
    return Math.max(1, dev.intervalMs ?? this.opts.intervalMs);
  }

  private plan(dev: ScheduledDevice): PollPlanConfig {
    const intervalMs = this.intervalOf(dev);
    return {
      intervalMs,
      jitterPct: this.opts.jitterPct,
      backoffMaxMs: this.opts.backoffMaxMs ?? intervalMs * 8,
      missesBeforeUnreachable: this.opts.missesBeforeUnreachable,
      lostAfterMs: this.opts.lostAfterMs ?? 3_600_000,
    };
  }

  private random(): number {
    return (this.opts.random ?? Math.random)();
  }

  private armFirst(e: Entry): void {
    const now = this.deps.clock.now();
    this.arm(e, now + firstPollDelay(this.intervalOf(e.dev), spreadFraction(e.index, this.seed)));
  }

  private arm(e: Entry, dueAt: number): void {
    this.clearTimer(e);
    e.dueAt = dueAt;
    const delay = Math.max(0, dueAt - this.deps.clock.now());
    e.timer = this.deps.clock.setTimeout(() => this.onDue(e), delay);
  }

  private clearTimer(e: Entry): void {
    if (e.timer) this.deps.clock.clearTimeout(e.timer);
    e.timer = undefined;
  }

  private onDue(e: Entry): void {
    e.timer = undefined;
    if (e.removed || !this.started) return;
    const cycle = this.cycle(e.dueAt);
    cycle.due++;
    if (e.running) {
      cycle.skipped++;
      this.deps.metrics.inc(SCHEDULER_METRICS.skipped, { driver: e.dev.driver });
      this.scheduleNext(e, e.dueAt);
      return;
    }
    if (this.active < this.opts.concurrency) {
      this.startPoll(e);
    } else {
      e.queued = true;
      this.queue.push(e);
    }
  }

  private releaseSlot(): void {
    this.active = Math.max(0, this.active - 1);
    while (this.started && this.active < this.opts.concurrency && this.queue.length > 0) {
      const next = this.queue.shift();
      if (!next) break;
      next.queued = false;
      if (next.removed) continue;
      this.startPoll(next);
    }
  }

  private startPoll(e: Entry): void {
    const clock = this.deps.clock;
    const now = clock.now();
    const dev = e.dev;
    const driver = this.deps.drivers[dev.driver];
    const cycle = this.cycle(e.dueAt);
    const lateness = Math.max(0, now - e.dueAt);
    cycle.started++;
    if (lateness > (this.opts.lateThresholdMs ?? 1000)) cycle.late++;
    cycle.maxLatenessMs = Math.max(cycle.maxLatenessMs, lateness);

    this.active++;
    e.running = true;
    const attempt: Attempt = {
      dueAt: e.dueAt,
      startedAt: now,
      controller: new AbortController(),
      timer: undefined,
      released: false,
    };
    e.attempt = attempt;
    attempt.timer = clock.setTimeout(() => this.onTimeout(e, attempt), this.opts.timeoutMs);

    const call = (async () => {
      if (!driver) throw new Error(`no driver ${dev.driver}`);
      return await driver.poll(dev.target, { signal: attempt.controller.signal });
    })();
    void call.then(
      (reading) => this.onSettled(e, attempt, dev, { reading }),
      (err: unknown) => this.onSettled(e, attempt, dev, { err }),
    );
  }

  private onTimeout(e: Entry, attempt: Attempt): void {
    attempt.timer = undefined;
    if (attempt.released) return;
    attempt.released = true;
    attempt.controller.abort(new PolyfleetError("POLYFLEET_ERR_DEVICE_TIMEOUT"));
    this.releaseSlot();
    if (e.removed || !this.started) return;
    const dev = e.dev;
    const error: PollError = {
      code: "POLYFLEET_ERR_DEVICE_TIMEOUT",
      message: `no answer within ${this.opts.timeoutMs} ms`,
    };
    this.record(e, attempt, dev, this.failedReading(dev, error, this.opts.timeoutMs), "timeout");
  }

  private onSettled(
    e: Entry,
    attempt: Attempt,
    dev: ScheduledDevice,
    outcome: { reading: ReadingBody } | { err: unknown },
  ): void {
    if (e.attempt === attempt) e.running = false;
    if (attempt.released) return;
    attempt.released = true;
    if (attempt.timer) this.deps.clock.clearTimeout(attempt.timer);
    attempt.timer = undefined;
    this.releaseSlot();
    if (e.removed || !this.started) return;
    if ("reading" in outcome && isReading(outcome.reading)) {
      this.record(e, attempt, dev, outcome.reading, outcome.reading.reachable ? "ok" : "failed");
      return;
    }
    // Drivers never throw by contract; a bug in one must not stop the device's polling.
    const err = "err" in outcome ? outcome.err : new Error("driver returned no reading");
    this.deps.log?.error({ err, deviceId: dev.target.deviceId, driver: dev.driver }, "driver poll threw");
    const error: PollError = { code: "POLYFLEET_ERR_INTERNAL", message: "driver failed unexpectedly" };
    const elapsed = this.deps.clock.now() - attempt.startedAt;
    this.record(e, attempt, dev, this.failedReading(dev, error, elapsed), "failed");
  }

  private failedReading(dev: ScheduledDevice, error: PollError, latencyMs: number): ReadingBody {
    return {
      deviceId: dev.target.deviceId,
      driver: dev.driver,
      reachable: false,
      pollLatencyMs: Math.max(0, latencyMs),
      identity: { address: dev.target.address, family: DRIVER_FAMILY[dev.driver] },
      firmware: [],
      health: [],
      peripherals: [],
      lines: [],
      network: {},
      errors: [error],
    };
  }

  private record(
    e: Entry,
    attempt: Attempt,
    dev: ScheduledDevice,
    reading: ReadingBody,
    result: "ok" | "failed" | "timeout",
  ): void {
    const { clock, metrics, sink } = this.deps;
    const now = clock.now();
    const deviceId = dev.target.deviceId;
    const cycle = this.cycle(attempt.dueAt);
    cycle.done++;
    if (result === "ok") cycle.ok++;
    else if (result === "timeout") cycle.timedOut++;
    else cycle.failed++;

    const labels = { driver: dev.driver };
    metrics.inc(SCHEDULER_METRICS.polls, { driver: dev.driver, result });
    metrics.observe(SCHEDULER_METRICS.duration, Math.max(0, now - attempt.startedAt) / 1000, labels);
    if (result !== "ok") {
      const reason = reading.errors[0]?.code ?? "POLYFLEET_ERR_DEVICE_UNREACHABLE";
      metrics.inc(SCHEDULER_METRICS.failures, { driver: dev.driver, reason });
    } else {
      // The device answered, but not everything it was asked (401, 500, malformed JSON…): each distinct
      // error code counts as a partial failure, so /metrics shows wrong credentials or HTTP 500s by reason.
      const seen = new Set<string>();
      for (const err of reading.errors) {
        if (seen.has(err.code)) continue;
        seen.add(err.code);
        metrics.inc(SCHEDULER_METRICS.partialFailures, { driver: dev.driver, reason: err.code });
      }
    }
    this.guard(() => sink.appendReading(reading), deviceId, "appendReading");

    const before = e.health.state;
    const { health, transitions } = applyOutcome(e.health, result === "ok", now, this.plan(dev));
    e.health = health;
    if (before !== health.state) {
      this.countState(dev.driver, before, -1);
      this.countState(dev.driver, health.state, 1);
    }
    for (const t of transitions) this.emit(dev, t);
    this.scheduleNext(e, attempt.dueAt);
  }

  private scheduleNext(e: Entry, previousDue: number): void {
    if (e.removed || !this.started) return;
    const delay = nextPollDelay(e.health.misses, this.plan(e.dev), this.random());
    this.arm(e, nextDueAt(previousDue, delay, this.deps.clock.now()));
  }

  private emit(dev: ScheduledDevice, t: Transition): void {
    const deviceId = dev.target.deviceId;
    if (t.type === "reachability") {
      this.guard(
        () =>
          this.deps.sink.appendEvent({
            type: "device.reachability",
            deviceId,
            reachable: t.reachable,
            missedPolls: t.missedPolls,
          }),
        deviceId,
        "appendEvent",
      );
      return;
    }
    this.guard(
      () =>
        this.deps.sink.appendEvent({
          type: "device.lost",
          deviceId,
          address: dev.target.address,
          missedPolls: t.missedPolls,
          reason: `no answer for ${Math.round(t.absentMs / 1000)} s (${t.missedPolls} polls missed)`,
        }),
      deviceId,
      "appendEvent",
    );
  }

  private countState(driver: DriverName, state: ReachabilityState, delta: number): void {
    const key = `${driver}|${state}`;
    const n = Math.max(0, (this.stateCounts.get(key) ?? 0) + delta);
    this.stateCounts.set(key, n);
    this.deps.metrics.set(SCHEDULER_METRICS.devices, n, { driver, state });
  }

  private cycle(dueAt: number): CycleStats {
    const len = Math.max(1, this.opts.cycleMs ?? this.opts.intervalMs);
    const index = Math.floor((dueAt - this.epoch) / len);
    let c = this.cycles.get(index);
    if (!c) {
      const startMs = this.epoch + index * len;
      c = {
        index,
        startMs,
        endMs: startMs + len,
        due: 0,
        started: 0,
        done: 0,
        ok: 0,
        failed: 0,
        timedOut: 0,
        skipped: 0,
        late: 0,
        maxLatenessMs: 0,
      };
      this.cycles.set(index, c);
      const max = this.opts.maxCycles ?? 120;
      if (this.cycles.size > max) {
        const oldest = Math.min(...this.cycles.keys());
        this.cycles.delete(oldest);
      }
    }
    return c;
  }

  /** Runs a port call that must not take the scheduler down (sink full, driver bug); logs what it threw. */
  private guard(fn: () => unknown, deviceId: string, what: string): void {
    try {
      fn();
    } catch (err) {
      this.deps.log?.error({ err, deviceId }, `${what} failed`);
    }
  }
}

function isReading(r: unknown): r is ReadingBody {
  return (
    typeof r === "object" &&
    r !== null &&
    typeof (r as { reachable?: unknown }).reachable === "boolean" &&
    Array.isArray((r as { errors?: unknown }).errors)
  );
}

/** Every (driver, state) pair of the devices gauge, for exporters that want zeros up front. */
export const DEVICE_STATES: readonly ReachabilityState[] = STATES;
