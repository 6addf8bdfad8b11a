import {
  type Ack,
  type AgentEvent,
  type AgentRecord,
  AgentState,
  type Clock,
  CommandResult,
  type DeviceRecord,
  AgentEvent as EventSchema,
  parseMessage,
  parseTopic,
  type Reading,
  Telemetry,
  type TimerHandle,
} from "@polyfleet/shared";
import type { MetricsStore } from "../ports/metrics-store.js";
import type { StateStore } from "../ports/state-store.js";
import { applyReading, type DeviceState } from "./device-state.js";

/** What the alert engine takes from ingest. */
export interface AlertInputs {
  onReading(reading: Reading, device: DeviceRecord): void;
  onEvent(event: AgentEvent): void;
  onAgentState(agent: AgentRecord): void;
}

export interface Counters {
  inc(name: string, labels?: Record<string, string>, n?: number): void;
}

export interface IngestLog {
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
  debug(obj: Record<string, unknown>, msg: string): void;
}

export interface DeadLetter {
  at: number;
  topic: string;
  reason: string;
  /** The first 512 bytes of the payload, as text. */
  excerpt: string;
}

export interface IngestorDeps {
  store: StateStore;
  metrics: MetricsStore;
  alerts?: AlertInputs;
  /** Publishes the ack watermark on the agent's ack topic (QoS 1). */
  publishAck(siteId: string, agentId: string, ack: Ack): Promise<void>;
  onCommandResult?(result: CommandResult): void;
  counters: Counters;
  clock: Clock;
  log: IngestLog;
  /** Wait at most this long to batch messages of one agent before storing them (default 20 ms). */
  batchMs?: number;
  /** Store at once when this many messages of one agent are waiting (default 2,000). */
  maxBatch?: number;
  /** Invalid messages kept for inspection (default 1,000). */
  deadLetterSize?: number;
}

interface AgentQueue {
  siteId: string;
  agentId: string;
  readings: Reading[];
  events: AgentEvent[];
  timer: TimerHandle | undefined;
  /** The flush in progress; flushes of one agent never overlap, so acks only move forward. */
  flushing: Promise<void>;
  watermark: number;
}

const DECODER = new TextDecoder();

export const INGEST_METRICS = {
  received: "polyfleet_collector_messages_total",
  invalid: "polyfleet_collector_invalid_messages_total",
  duplicates: "polyfleet_collector_duplicates_total",
  stored: "polyfleet_collector_stored_total",
  acks: "polyfleet_collector_acks_total",
  storeFailures: "polyfleet_collector_store_failures_total",
} as const;

/**
 * The ingest path: every message is validated against its contract (invalid ones are counted and
 * dead-lettered, never passed on), batched per agent, stored in one transaction (dedup by agent and seq), and
 * only then acknowledged with the agent's watermark. New readings and events go on to the alert engine and
 * the metrics store.
 */
export class Ingestor {
  private readonly queues = new Map<string, AgentQueue>();
  private readonly devices = new Map<string, DeviceState>();
  private readonly dead: DeadLetter[] = [];
  private stopped = false;

  constructor(private readonly deps: IngestorDeps) {}

  /** Handles one raw MQTT message. Never throws. */
  handle(topic: string, payload: Uint8Array): void {
    const parsed = parseTopic(topic);
    if (!parsed) {
      this.reject(topic, payload, "unknown topic", "unknown");
      return;
    }
    const { key, params } = parsed;
    this.deps.counters.inc(INGEST_METRICS.received, { kind: key });
    const problem = this.route(key, params, payload);
    if (problem) this.reject(topic, payload, problem, key);
  }

  /** Validates and routes one message; returns why it is invalid, or undefined. */
  private route(key: string, params: Record<string, string>, payload: Uint8Array): string | undefined {
    switch (key) {
      case "telemetry": {
        const r = parseMessage(Telemetry, payload);
        if (!r.ok) return r.error.message;
        if (r.value.agentId !== params.agent || r.value.siteId !== params.site)
          return "agentId/siteId differ from the topic";
        const items = r.value.kind === "batch" ? r.value.items : [r.value];
        if (items.some((item) => item.agentId !== r.value.agentId)) return "batch item of another agent";
        const q = this.queue(r.value.siteId, r.value.agentId);
        for (const item of items) q.readings.push(item);
        this.schedule(q);
        return undefined;
      }
      case "events": {
        const r = parseMessage(EventSchema, payload);
        if (!r.ok) return r.error.message;
        if (r.value.agentId !== params.agent || r.value.siteId !== params.site)
          return "agentId/siteId differ from the topic";
        const q = this.queue(r.value.siteId, r.value.agentId);
        q.events.push(r.value);
        this.schedule(q);
        return undefined;
      }
      case "state": {
        const r = parseMessage(AgentState, payload);
        if (!r.ok) return r.error.message;
        if (r.value.agentId !== params.agent) return "agentId differs from the topic";
        void this.applyState(r.value);
        return undefined;
      }
      case "cmdResult": {
        const r = parseMessage(CommandResult, payload);
        if (!r.ok) return r.error.message;
        this.deps.onCommandResult?.(r.value);
        return undefined;
      }
      default:
        // Our own topics (ack, cmd, alerts) echoed back by a broker: not for ingest.
        return undefined;
    }
  }

  /** Invalid messages seen last, newest last. */
  deadLetters(): DeadLetter[] {
    return [...this.dead];
  }

  /** The latest state of a device seen since start. */
  device(deviceId: string): DeviceRecord | undefined {
    return this.devices.get(deviceId)?.record;
  }

  /** Stores everything waiting (shutdown, tests). */
  async flushAll(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => this.flush(q)));
  }

  async stop(): Promise<void> {
    await this.flushAll();
    this.stopped = true;
  }

  private async applyState(state: AgentState): Promise<void> {
    try {
      const rec = await this.deps.store.applyAgentState(state, this.deps.clock.now());
      if (!rec) {
        this.deps.log.debug(
          { agentId: state.agentId, sessionId: state.sessionId },
          "stale Will of an old session ignored",
        );
        return;
      }
      this.deps.alerts?.onAgentState(rec);
    } catch (err) {
      this.deps.counters.inc(INGEST_METRICS.storeFailures, { kind: "state" });
      this.deps.log.error({ err, agentId: state.agentId }, "agent state not stored");
    }
  }

  private queue(siteId: string, agentId: string): AgentQueue {
    let q = this.queues.get(agentId);
    if (!q) {
      q = {
        siteId,
        agentId,
        readings: [],
        events: [],
        timer: undefined,
        flushing: Promise.resolve(),
        watermark: 0,
      };
      this.queues.set(agentId, q);
    }
    return q;
  }

  private schedule(q: AgentQueue): void {
    if (this.stopped) return;
    if (q.readings.length + q.events.length >= (this.deps.maxBatch ?? 2000)) {
      void this.flush(q);
      return;
    }
    if (!q.timer) q.timer = this.deps.clock.setTimeout(() => void this.flush(q), this.deps.batchMs ?? 20);
  }

  private flush(q: AgentQueue): Promise<void> {
    if (q.timer) {
      this.deps.clock.clearTimeout(q.timer);
      q.timer = undefined;
    }
    if (q.readings.length === 0 && q.events.length === 0) return q.flushing;
    const readings = q.readings.splice(0);
    const events = q.events.splice(0);
    q.flushing = q.flushing.then(() => this.store(q, readings, events));
    return q.flushing;
  }

  private async store(q: AgentQueue, readings: Reading[], events: AgentEvent[]): Promise<void> {
    const { deps } = this;
    // Already acknowledged: a replay after a reconnect. Not stored, not evaluated again.
    const freshReadings = readings.filter((r) => r.seq > q.watermark);
    const freshEvents = events.filter((e) => e.seq > q.watermark);
    const skipped = readings.length + events.length - freshReadings.length - freshEvents.length;
    try {
      const result = await deps.store.ingest({
        agentId: q.agentId,
        siteId: q.siteId,
        readings: freshReadings,
        events: freshEvents,
      });
      const duplicates = skipped + result.duplicates;
      if (duplicates) deps.counters.inc(INGEST_METRICS.duplicates, undefined, duplicates);
      deps.counters.inc(INGEST_METRICS.stored, undefined, result.stored);
      const previous = q.watermark;
      q.watermark = Math.max(q.watermark, result.watermark);
      if (q.watermark > 0) {
        await deps.publishAck(q.siteId, q.agentId, {
          v: 1,
          agentId: q.agentId,
          seq: q.watermark,
          ts: deps.clock.now(),
        });
        deps.counters.inc(INGEST_METRICS.acks);
      }
      if (freshReadings.length) deps.metrics.write(freshReadings);
      for (const r of freshReadings) {
        const next = applyReading(this.devices.get(r.deviceId), r);
        if (!next) continue;
        this.devices.set(r.deviceId, next);
        if (r.seq > previous) deps.alerts?.onReading(r, next.record);
      }
      for (const e of freshEvents) if (e.seq > previous) deps.alerts?.onEvent(e);
    } catch (err) {
      // Not stored, not acked: the agent keeps the entries and replays them.
      deps.counters.inc(INGEST_METRICS.storeFailures, { kind: "stream" });
      deps.log.error(
        { err, agentId: q.agentId, readings: readings.length, events: events.length },
        "batch not stored; the agent will replay it",
      );
    }
  }

  private reject(topic: string, payload: Uint8Array, reason: string, kind: string): void {
    this.deps.counters.inc(INGEST_METRICS.invalid, { kind });
    this.deps.log.warn({ topic, reason }, "invalid message dead-lettered");
    const excerpt = DECODER.decode(payload.subarray(0, 512));
    this.dead.push({ at: this.deps.clock.now(), topic, reason, excerpt });
    const max = this.deps.deadLetterSize ?? 1000;
    if (this.dead.length > max) this.dead.splice(0, this.dead.length - max);
  }
}
