import { type Clock, PolyfleetError, type Reading, SYSTEM_CLOCK } from "@polyfleet/shared";
import { isMetricField, METRIC_FIELDS, readingMetricValues } from "../../core/line-protocol.js";
import type { MetricsStore, MetricsWriteStats, SeriesPoint, SeriesQuery } from "../../ports/metrics-store.js";

export interface MemoryMetricsStoreOptions {
  /** How long points are kept (default 360 minutes). */
  retentionMinutes?: number;
  /** Points kept per device; when a device's ring is full its oldest point goes (default 4320: 5 s polls for 6 h). */
  maxPointsPerDevice?: number;
  /** Devices tracked; readings of further devices are dropped and counted (default 100,000). */
  maxDevices?: number;
  clock?: Clock;
}

const NF = METRIC_FIELDS.length;
const FIELD_INDEX = new Map<string, number>(METRIC_FIELDS.map((f, i) => [f, i]));
const SWEEP_EVERY_MS = 60_000;

/**
 * One device's points, oldest first, in a growable ring: `ts[k]` and `vals[k*NF + f]` (NaN = field absent)
 * at physical slot k = (head + logical index) % capacity. Kept sorted by time.
 */
class DeviceRing {
  ts: Float64Array;
  vals: Float64Array;
  head = 0;
  size = 0;

  constructor(initial: number) {
    this.ts = new Float64Array(initial);
    this.vals = new Float64Array(initial * NF);
  }

  get capacity(): number {
    return this.ts.length;
  }

  slot(i: number): number {
    return (this.head + i) % this.ts.length;
  }

  tsAt(i: number): number {
    return this.ts[this.slot(i)] ?? Number.NaN;
  }

  /** Re-lays the ring out in a larger buffer, oldest at slot 0. */
  grow(capacity: number): void {
    const ts = new Float64Array(capacity);
    const vals = new Float64Array(capacity * NF);
    for (let i = 0; i < this.size; i++) {
      const k = this.slot(i);
      ts[i] = this.ts[k] ?? 0;
      vals.set(this.vals.subarray(k * NF, k * NF + NF), i * NF);
    }
    this.ts = ts;
    this.vals = vals;
    this.head = 0;
  }

  dropOldest(): void {
    this.head = (this.head + 1) % this.ts.length;
    this.size--;
  }

  /** First logical index with ts >= t (binary search). */
  lowerBound(t: number): number {
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.tsAt(mid) < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Writes ts and values into logical index i (which must exist). */
  put(i: number, t: number, values: readonly (number | undefined)[], merge: boolean): void {
    const k = this.slot(i);
    this.ts[k] = t;
    for (let f = 0; f < NF; f++) {
      const v = values[f];
      if (v !== undefined) this.vals[k * NF + f] = v;
      else if (!merge) this.vals[k * NF + f] = Number.NaN;
    }
  }

  /** Moves logical entries [i, size) one slot later (size must be below capacity). */
  shiftRight(i: number): void {
    for (let j = this.size; j > i; j--) {
      const to = this.slot(j);
      const from = this.slot(j - 1);
      this.ts[to] = this.ts[from] ?? 0;
      this.vals.copyWithin(to * NF, from * NF, from * NF + NF);
    }
  }
}

/**
 * The embedded MetricsStore: the last `retentionMinutes` of every device's readings in memory, in bounded
 * per-device rings, for the dashboard. Queries average per epoch-aligned bucket exactly like InfluxDB's
 * `mean() ... GROUP BY time(step)`, so both adapters answer the same. A point written again for the same
 * device and time merges into the earlier one (as InfluxDB does). Nothing survives a restart.
 */
export class MemoryMetricsStore implements MetricsStore {
  private readonly retentionMs: number;
  private readonly maxPoints: number;
  private readonly maxDevices: number;
  private readonly clock: Clock;
  private readonly devices = new Map<string, DeviceRing>();
  private written = 0;
  private dropped = 0;
  private lastSweep = 0;

  constructor(opts: MemoryMetricsStoreOptions = {}) {
    this.retentionMs = Math.max(1, opts.retentionMinutes ?? 360) * 60_000;
    this.maxPoints = Math.max(1, opts.maxPointsPerDevice ?? 4320);
    this.maxDevices = Math.max(1, opts.maxDevices ?? 100_000);
    this.clock = opts.clock ?? SYSTEM_CLOCK;
  }

  start(): Promise<void> {
    this.lastSweep = this.clock.now();
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.devices.clear();
    return Promise.resolve();
  }

  write(readings: readonly Reading[]): void {
    const now = this.clock.now();
    const cutoff = now - this.retentionMs;
    for (const r of readings) {
      if (r.ts < cutoff) continue; // already expired: nothing to keep
      let ring = this.devices.get(r.deviceId);
      if (!ring) {
        if (this.devices.size >= this.maxDevices) {
          this.dropped++;
          continue;
        }
        ring = new DeviceRing(Math.min(16, this.maxPoints));
        this.devices.set(r.deviceId, ring);
      }
      this.insert(ring, Math.trunc(r.ts), readingMetricValues(r), cutoff);
      this.written++;
    }
    if (now - this.lastSweep >= SWEEP_EVERY_MS) this.sweep(now);
  }

  query(q: SeriesQuery): Promise<SeriesPoint[]> {
    try {
      return Promise.resolve(this.querySync(q));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  stats(): MetricsWriteStats {
    return { written: this.written, buffered: 0, dropped: this.dropped, retries: 0 };
  }

  private querySync(q: SeriesQuery): SeriesPoint[] {
    const f = FIELD_INDEX.get(q.field);
    if (f === undefined || !isMetricField(q.field)) {
      throw new PolyfleetError("POLYFLEET_ERR_METRICS_FIELD_UNKNOWN", `unknown metrics field "${q.field}"`, {
        details: { field: q.field },
      });
    }
    const ring = this.devices.get(q.deviceId);
    if (!ring) return [];
    this.expire(ring, this.clock.now() - this.retentionMs);
    const from = Math.ceil(q.from);
    const to = Math.floor(q.to);
    const step = Math.floor(q.stepMs ?? 0);
    const out: SeriesPoint[] = [];
    let bucket = Number.NaN;
    let sum = 0;
    let count = 0;
    for (let i = ring.lowerBound(from); i < ring.size; i++) {
      const k = ring.slot(i);
      const t = ring.ts[k] ?? Number.NaN;
      if (t > to) break;
      const v = ring.vals[k * NF + f] ?? Number.NaN;
      if (Number.isNaN(v)) continue;
      if (step <= 0) {
        out.push({ ts: t, value: v });
        continue;
      }
      const b = Math.floor(t / step) * step;
      if (b !== bucket) {
        if (count > 0) out.push({ ts: bucket, value: sum / count });
        bucket = b;
        sum = 0;
        count = 0;
      }
      sum += v;
      count++;
    }
    if (step > 0 && count > 0) out.push({ ts: bucket, value: sum / count });
    return out;
  }

  private insert(ring: DeviceRing, t: number, values: (number | undefined)[], cutoff: number): void {
    this.expire(ring, cutoff);
    const last = ring.size > 0 ? ring.tsAt(ring.size - 1) : Number.NEGATIVE_INFINITY;
    // Common case: newest point of the device.
    if (t > last) {
      this.makeRoom(ring);
      ring.size++;
      ring.put(ring.size - 1, t, values, false);
      return;
    }
    const i = ring.lowerBound(t);
    if (i < ring.size && ring.tsAt(i) === t) {
      ring.put(i, t, values, true);
      return;
    }
    // Late point inside the window: insert in time order.
    if (ring.size >= this.maxPoints && i === 0) {
      this.dropped++; // older than everything a full ring holds
      return;
    }
    const evicted = this.makeRoom(ring);
    const at = evicted ? i - 1 : i;
    ring.shiftRight(at);
    ring.size++;
    ring.put(at, t, values, false);
  }

  /** Ensures one free slot: grows the ring up to maxPoints, else evicts the oldest point (counted). */
  private makeRoom(ring: DeviceRing): boolean {
    if (ring.size < ring.capacity) return false;
    if (ring.capacity < this.maxPoints) {
      ring.grow(Math.min(this.maxPoints, ring.capacity * 2));
      return false;
    }
    ring.dropOldest();
    this.dropped++;
    return true;
  }

  private expire(ring: DeviceRing, cutoff: number): void {
    while (ring.size > 0 && ring.tsAt(0) < cutoff) ring.dropOldest();
  }

  /** Forgets devices whose every point has expired. */
  private sweep(now: number): void {
    this.lastSweep = now;
    const cutoff = now - this.retentionMs;
    for (const [id, ring] of this.devices) {
      this.expire(ring, cutoff);
      if (ring.size === 0) this.devices.delete(id);
    }
  }
}
