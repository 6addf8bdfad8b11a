/**
 * Scheduling math of the poller (pure): when a device is due next, how failures back off, and the
 * reachability state machine driven by consecutive misses. The scheduler adapter owns timers and I/O.
 */

export interface PollPlanConfig {
  /** Poll interval. */
  intervalMs: number;
  /** Each delay is varied uniformly by ± this percentage (0-50). */
  jitterPct: number;
  /** Upper bound of a backed-off delay (before jitter); never below the interval. */
  backoffMaxMs: number;
  /** Consecutive misses after which a device is unreachable (>= 1). */
  missesBeforeUnreachable: number;
  /** A device unanswered this long (since its last answer, or since it was added) is lost. */
  lostAfterMs: number;
}

/** Golden-ratio fraction: consecutive indices land evenly spread over [0, 1) however many there are. */
const GOLDEN = 0.618_033_988_749_895;

/**
 * Fraction in [0, 1) for the n-th device added (additive recurrence with the golden ratio, offset by `seed`
 * in [0, 1)): first polls of 2,000 devices added at once are spread evenly over the interval, and devices
 * added later still fall into the largest gaps.
 */
export function spreadFraction(n: number, seed = 0): number {
  const f = (seed + n * GOLDEN) % 1;
  return f < 0 ? f + 1 : f;
}

/** Delay of a device's first poll: a fraction (`spreadFraction`) of its interval, in [0, intervalMs). */
export function firstPollDelay(intervalMs: number, fraction: number): number {
  return Math.min(intervalMs - 1, Math.max(0, Math.floor(clamp01(fraction) * intervalMs)));
}

/**
 * `baseMs` varied by ±`jitterPct` percent; `rand` in [0, 1) maps linearly onto [base·(1-j), base·(1+j)].
 * Rounded to whole milliseconds and never negative.
 */
export function jittered(baseMs: number, jitterPct: number, rand: number): number {
  const j = Math.min(50, Math.max(0, jitterPct)) / 100;
  return Math.max(0, Math.round(baseMs * (1 + j * (2 * clamp01(rand) - 1))));
}

/**
 * Delay before the next poll after `failures` consecutive failed polls, before jitter: the interval while
 * the device is still below its miss threshold (so detection is not slowed), then doubling per further
 * failure, capped at `max(backoffMaxMs, intervalMs)`. Non-decreasing in `failures`.
 */
export function backoffBase(failures: number, cfg: PollPlanConfig): number {
  const cap = Math.max(cfg.backoffMaxMs, cfg.intervalMs);
  const extra = failures - Math.max(1, cfg.missesBeforeUnreachable) + 1;
  if (extra <= 0) return cfg.intervalMs;
  // 2^31 intervals exceed every cap; stop the exponent there to keep the number finite.
  return Math.min(cap, cfg.intervalMs * 2 ** Math.min(extra, 31));
}

/** The next poll's delay after a poll with `failures` consecutive failures so far (0 after a success). */
export function nextPollDelay(failures: number, cfg: PollPlanConfig, rand: number): number {
  return jittered(backoffBase(failures, cfg), cfg.jitterPct, rand);
}

/**
 * When the next poll is due, keeping the device's phase: `due + delay`, or `now` when a slow poll already
 * ran past that (a late device catches up once instead of firing a burst).
 */
export function nextDueAt(previousDue: number, delayMs: number, now: number): number {
  return Math.max(previousDue + delayMs, now);
}

export type ReachabilityState = "unknown" | "reachable" | "unreachable" | "lost";

export interface DeviceHealth {
  state: ReachabilityState;
  /** Consecutive failed polls. */
  misses: number;
  /** Last successful poll (epoch ms), or when the device was first tracked if it never answered. */
  lastSeenAt: number;
}

export type Transition =
  | { type: "reachability"; reachable: boolean; missedPolls: number }
  | { type: "lost"; missedPolls: number; absentMs: number };

/** The state of a device the scheduler just started tracking. */
export function initialHealth(now: number): DeviceHealth {
  return { state: "unknown", misses: 0, lastSeenAt: now };
}

/**
 * Applies one poll outcome. A success resets the misses and makes the device reachable at once; a failure
 * makes it unreachable only at the `missesBeforeUnreachable`-th consecutive miss, and lost once it has been
 * absent `lostAfterMs`. Each transition is returned exactly once, when it happens: `unknown → reachable`
 * is not reported (readings carry that), `unreachable/lost → reachable` is.
 */
export function applyOutcome(
  h: DeviceHealth,
  ok: boolean,
  now: number,
  cfg: Pick<PollPlanConfig, "missesBeforeUnreachable" | "lostAfterMs">,
): { health: DeviceHealth; transitions: Transition[] } {
  if (ok) {
    const transitions: Transition[] =
      h.state === "unreachable" || h.state === "lost"
        ? [{ type: "reachability", reachable: true, missedPolls: h.misses }]
        : [];
    return { health: { state: "reachable", misses: 0, lastSeenAt: now }, transitions };
  }
  const misses = h.misses + 1;
  const transitions: Transition[] = [];
  let state = h.state;
  if ((state === "unknown" || state === "reachable") && misses >= Math.max(1, cfg.missesBeforeUnreachable)) {
    state = "unreachable";
    transitions.push({ type: "reachability", reachable: false, missedPolls: misses });
  }
  const absentMs = now - h.lastSeenAt;
  if (state === "unreachable" && absentMs >= cfg.lostAfterMs) {
    state = "lost";
    transitions.push({ type: "lost", missedPolls: misses, absentMs });
  }
  return { health: { state, misses, lastSeenAt: h.lastSeenAt }, transitions };
}

function clamp01(x: number): number {
  if (!(x >= 0)) return 0;
  return x >= 1 ? 1 - Number.EPSILON : x;
}
