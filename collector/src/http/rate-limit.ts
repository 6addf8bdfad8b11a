import type { Clock } from "@polyfleet/shared";

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export type RateDecision = { ok: true } | { ok: false; retryAfterSec: number };

/**
 * Token buckets per key (token id, client IP): `perMinute` requests may burst, refilled continuously at
 * `perMinute` per minute. Bounded: beyond `maxKeys` the least recently used buckets are forgotten.
 */
export class TokenBucketLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly capacity: number;
  private readonly perMs: number;

  constructor(
    perMinute: number,
    private readonly clock: Clock,
    private readonly maxKeys = 10_000,
  ) {
    this.capacity = Math.max(1, perMinute);
    this.perMs = this.capacity / 60_000;
  }

  /** Takes one token for `key`, or says how many seconds to wait. */
  take(key: string): RateDecision {
    const now = this.clock.now();
    const b = this.buckets.get(key) ?? { tokens: this.capacity, updatedAt: now };
    b.tokens = Math.min(this.capacity, b.tokens + Math.max(0, now - b.updatedAt) * this.perMs);
    b.updatedAt = now;
    // Re-insert: Map order is then least recently used first.
    this.buckets.delete(key);
    this.buckets.set(key, b);
    this.evict();
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterSec: Math.max(1, Math.ceil((1 - b.tokens) / this.perMs / 1000)) };
  }

  private evict(): void {
    while (this.buckets.size > this.maxKeys) {
      const oldest = this.buckets.keys().next();
      if (oldest.done === true) return;
      this.buckets.delete(oldest.value);
    }
  }
}
