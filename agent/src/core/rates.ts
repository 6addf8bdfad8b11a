/**
 * Rates from monotonically increasing device counters sampled at two polls (pure).
 *
 * Rules:
 * - first poll (no previous sample) or no time elapsed → no rate;
 * - the device rebooted (its uptime went down) → counters restarted from 0 → no rate for this interval;
 * - a counter went down while the uptime did not: a wrap when the counter is declared `Counter32`/`Counter64`
 *   (delta = cur + 2^bits − prev), otherwise a reset → no rate for that counter;
 * - a wrapped delta implying more than `maxPerSec` is treated as a reset too (a reset the uptime missed).
 * A rate is therefore never negative, NaN or infinite.
 */

export type CounterKind = "counter32" | "counter64" | "plain";

export interface CounterSample {
  /** Agent clock (ms) when the counters were read. */
  atMs: number;
  /** Device uptime in seconds when known: a drop means a reboot. */
  uptimeSec?: number | undefined;
  /** Counter values by name; absent or non-finite values are skipped. */
  values: Record<string, number | undefined>;
}

export interface RateOptions {
  kind: CounterKind;
  /** A rate above this is implausible and dropped (default: unbounded for plain, 2^bits / 60 s otherwise). */
  maxPerSec?: number;
}

const WRAP: Record<CounterKind, number> = { counter32: 2 ** 32, counter64: 2 ** 64, plain: 0 };

/** Whether the device rebooted between two samples (uptime dropped). */
export function rebootedBetween(prev: CounterSample, cur: CounterSample): boolean {
  return prev.uptimeSec !== undefined && cur.uptimeSec !== undefined && cur.uptimeSec < prev.uptimeSec;
}

/** The per-second rate of one counter between two readings; undefined when it cannot be known honestly. */
export function counterRate(
  prevValue: number | undefined,
  curValue: number | undefined,
  elapsedSec: number,
  opts: RateOptions,
): number | undefined {
  if (prevValue === undefined || curValue === undefined) return undefined;
  if (!Number.isFinite(prevValue) || !Number.isFinite(curValue) || prevValue < 0 || curValue < 0)
    return undefined;
  if (!(elapsedSec > 0) || !Number.isFinite(elapsedSec)) return undefined;
  let delta = curValue - prevValue;
  if (delta < 0) {
    const wrap = WRAP[opts.kind];
    if (wrap === 0 || prevValue >= wrap || curValue >= wrap) return undefined;
    delta = curValue + wrap - prevValue;
    const limit = opts.maxPerSec ?? wrap / 60;
    if (delta / elapsedSec > limit) return undefined;
  }
  const rate = delta / elapsedSec;
  if (opts.maxPerSec !== undefined && rate > opts.maxPerSec) return undefined;
  return Number.isFinite(rate) && rate >= 0 ? rate : undefined;
}

/** Rates of every counter present in both samples; `{}` on the first poll or after a reboot. */
export function counterRates(
  prev: CounterSample | undefined,
  cur: CounterSample,
  opts: RateOptions,
): Record<string, number> {
  const out: Record<string, number> = {};
  if (!prev || rebootedBetween(prev, cur)) return out;
  const elapsedSec = (cur.atMs - prev.atMs) / 1000;
  for (const name of Object.keys(cur.values)) {
    const r = counterRate(prev.values[name], cur.values[name], elapsedSec, opts);
    if (r !== undefined) out[name] = r;
  }
  return out;
}
