import {
  type Ack,
  type AgentEvent,
  AgentEvent as AgentEventSchema,
  AgentState,
  parseMessage,
  Telemetry,
  topicFor,
} from "@polyfleet/shared";
import { connect, type MqttClient } from "mqtt";

export interface TestCollectorOptions {
  url: string;
  siteId: string;
  agentId: string;
  /** Default `test-collector-<agentId>-<random>`. */
  clientId?: string;
  /** 5 (default) or 4. */
  protocolVersion?: 4 | 5;
  /** Seqs up to this are taken as already stored (default 0). */
  startAfter?: number;
  /** Reconnect period after a broker loss (default 250 ms). */
  reconnectMs?: number;
}

/**
 * A stand-in for the collector's ingest in tests: subscribes to one agent's telemetry, events and state,
 * validates every message with the shared schemas (invalid ones are counted and dropped), dedups by seq,
 * "stores" in memory in seq order (a reorder buffer releases contiguous runs; ranges an `outbox.dropped`
 * event announces are skipped) and publishes the `Ack` watermark (highest contiguous stored seq) on the
 * agent's ack topic after storing.
 */
export class TestCollector {
  /** Messages that failed their schema (or were not JSON). */
  invalid = 0;
  /** Entries received again after they had already been received (the agent's replays). */
  duplicates = 0;
  /** New entries that arrived below the highest seq received so far (filled in later by a replay). */
  lateArrivals = 0;
  /** MQTT messages received on telemetry/events. */
  messages = 0;
  /** Acks published. */
  acksSent = 0;
  /** Every valid event received (first copy), in arrival order. */
  readonly events: AgentEvent[] = [];
  /** Every valid state message received (retained or live), in arrival order. */
  readonly states: AgentState[] = [];

  private readonly o: TestCollectorOptions;
  private client: MqttClient | undefined;
  private readonly received = new Set<number>();
  private readonly ahead = new Map<number, true>();
  private readonly stored: number[] = [];
  private readonly droppedRanges: [number, number][] = [];
  private wm: number;
  private maxSeen = 0;
  private ackQueued = false;
  private readonly waiters = new Set<{ n: number; resolve: () => void }>();

  constructor(opts: TestCollectorOptions) {
    this.o = opts;
    this.wm = opts.startAfter ?? 0;
  }

  /** Connects and subscribes; resolves once subscribed. */
  async start(): Promise<void> {
    const p = { site: this.o.siteId, agent: this.o.agentId };
    const topics = {
      telemetry: topicFor("telemetry", p),
      events: topicFor("events", p),
      state: topicFor("state", p),
      ack: topicFor("ack", p),
    };
    const client = connect(this.o.url, {
      clientId:
        this.o.clientId ?? `test-collector-${this.o.agentId}-${Math.random().toString(36).slice(2, 8)}`,
      protocolVersion: this.o.protocolVersion ?? 5,
      clean: false,
      reconnectPeriod: this.o.reconnectMs ?? 250,
      connectTimeout: 5000,
      ...(this.o.protocolVersion === 4 ? {} : { properties: { sessionExpiryInterval: 3600 } }),
    });
    this.client = client;
    client.on("error", () => {});
    client.on("connect", () => {
      (client.stream as { setNoDelay?: (v: boolean) => void }).setNoDelay?.(true);
      // Re-subscribe on every connect: a restarted broker without persistence has forgotten the session.
      client.subscribe([topics.telemetry, topics.events, topics.state], { qos: 1 });
    });
    client.on("message", (topic, payload) => {
      if (topic === topics.telemetry) this.onTelemetry(payload);
      else if (topic === topics.events) this.onEvent(payload);
      else if (topic === topics.state) {
        const r = parseMessage(AgentState, payload);
        if (r.ok) this.states.push(r.value);
        else this.invalid++;
        return;
      }
      this.scheduleAck(topics.ack);
    });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`test collector could not connect to ${this.o.url}`)),
        10_000,
      );
      client.once("connect", () => {
        client.subscribe([topics.telemetry, topics.events, topics.state], { qos: 1 }, (err) => {
          clearTimeout(t);
          if (err) reject(err);
          else resolve();
        });
      });
    });
  }

  async stop(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await c.endAsync(true);
  }

  /** The highest contiguous stored seq (what the collector acks). */
  watermark(): number {
    return this.wm;
  }

  /** Stored seqs, in the order they were stored (seq order by construction). */
  seqs(): number[] {
    return [...this.stored];
  }

  /** Seqs above `startAfter` and up to the highest seen that were neither received nor announced dropped. */
  gaps(): number[] {
    const out: number[] = [];
    for (let s = (this.o.startAfter ?? 0) + 1; s <= this.maxSeen; s++) {
      if (!this.received.has(s) && !this.isDropped(s)) out.push(s);
    }
    return out;
  }

  /** Resolves once every seq up to `n` is stored (or announced dropped). */
  waitForSeq(n: number, timeoutMs: number): Promise<void> {
    if (this.wm >= n) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const w = {
        n,
        resolve: () => {
          clearTimeout(t);
          resolve();
        },
      };
      const t = setTimeout(() => {
        this.waiters.delete(w);
        reject(
          new Error(
            `test collector: seq ${n} not reached within ${timeoutMs} ms (watermark ${this.wm}, max seen ${this.maxSeen})`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(w);
    });
  }

  private onTelemetry(payload: Buffer): void {
    this.messages++;
    const r = parseMessage(Telemetry, payload);
    if (!r.ok) {
      this.invalid++;
      return;
    }
    const items = r.value.kind === "batch" ? r.value.items : [r.value];
    for (const reading of items) {
      if (reading.agentId !== this.o.agentId) {
        this.invalid++;
        continue;
      }
      this.receive(reading.seq);
    }
  }

  private onEvent(payload: Buffer): void {
    this.messages++;
    const r = parseMessage(AgentEventSchema, payload);
    if (!r.ok || r.value.agentId !== this.o.agentId) {
      this.invalid++;
      return;
    }
    const e = r.value;
    if (this.received.has(e.seq)) {
      this.duplicates++;
      return;
    }
    this.events.push(e);
    if (e.type === "outbox.dropped") this.droppedRanges.push([e.fromSeq, e.toSeq]);
    this.receive(e.seq);
  }

  private receive(seq: number): void {
    if (this.received.has(seq) || seq <= (this.o.startAfter ?? 0)) {
      this.duplicates++;
      this.release();
      return;
    }
    this.received.add(seq);
    if (seq < this.maxSeen) this.lateArrivals++;
    if (seq > this.maxSeen) this.maxSeen = seq;
    this.ahead.set(seq, true);
    this.release();
  }

  /** Moves the watermark over stored-in-order seqs and announced-dropped ranges. */
  private release(): void {
    for (;;) {
      const next = this.wm + 1;
      if (this.ahead.has(next)) {
        this.ahead.delete(next);
        this.stored.push(next);
        this.wm = next;
        continue;
      }
      if (this.isDropped(next)) {
        this.wm = next;
        continue;
      }
      break;
    }
    for (const w of this.waiters) {
      if (this.wm >= w.n) {
        this.waiters.delete(w);
        w.resolve();
      }
    }
  }

  private isDropped(seq: number): boolean {
    for (const [a, b] of this.droppedRanges) if (seq >= a && seq <= b && !this.received.has(seq)) return true;
    return false;
  }

  private scheduleAck(topic: string): void {
    if (this.ackQueued) return;
    this.ackQueued = true;
    setImmediate(() => {
      this.ackQueued = false;
      const c = this.client;
      if (!c?.connected || this.wm <= 0) return;
      const ack: Ack = { v: 1, agentId: this.o.agentId, seq: this.wm, ts: Date.now() };
      c.publish(topic, JSON.stringify(ack), { qos: 1 });
      this.acksSent++;
    });
  }
}
