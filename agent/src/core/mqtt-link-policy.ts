/** Pure decisions of the agent's MQTT link: reconnect backoff, protocol fallback, replay timeout. */

export interface BackoffOptions {
  /** First delay (ms). */
  minMs: number;
  /** Cap (ms). */
  maxMs: number;
}

/**
 * Delay before reconnect attempt `attempt` (0-based): exponential from `minMs`, capped at `maxMs`, with
 * "equal jitter" (half fixed, half random) so a fleet of agents does not reconnect in lockstep after a
 * broker restart. `random` returns [0, 1).
 */
export function reconnectDelayMs(attempt: number, opts: BackoffOptions, random: () => number): number {
  const exp = Math.min(opts.maxMs, opts.minMs * 2 ** Math.min(attempt, 30));
  const half = exp / 2;
  return Math.round(half + random() * half);
}

/**
 * True when a CONNACK refusal means "this broker does not speak MQTT 5": return code 1 (3.1.1's
 * "unacceptable protocol version", what aedes 1.x answers to a v5 CONNECT) or reason code 132 (v5's
 * "unsupported protocol version").
 */
export function isProtocolRefusal(code: unknown): boolean {
  return code === 1 || code === 132;
}

/**
 * Time to wait for ack progress before replaying the un-acked window from the ack watermark. Doubles with
 * every replay that brought no progress (a collector that is down must not make the agent flood the
 * broker), capped at `maxMs`.
 */
export function replayTimeoutMs(baseMs: number, fruitlessReplays: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(fruitlessReplays, 20));
}
