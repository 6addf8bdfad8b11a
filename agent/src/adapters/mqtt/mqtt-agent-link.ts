import { randomUUID } from "node:crypto";
import type { Socket } from "node:net";
import {
  Ack,
  type AgentState,
  Command,
  type CommandResult,
  type Logger,
  parseMessage,
  type TopicKey,
  topicFor,
} from "@polyfleet/shared";
import { connect, type IClientOptions, type IConnackPacket, type MqttClient } from "mqtt";
import {
  type BackoffOptions,
  isProtocolRefusal,
  reconnectDelayMs,
  replayTimeoutMs,
} from "../../core/mqtt-link-policy.js";
import { batchPrefix, type OutboxEntry, planPublishUnits } from "../../core/outbox-batching.js";
import type { Clock, TimerHandle } from "../../ports/clock.js";
import type { Metrics } from "../../ports/metrics.js";

export const MQTT_RECONNECTS_TOTAL = "polyfleet_agent_mqtt_reconnects_total";
export const MQTT_CONNECTED = "polyfleet_agent_mqtt_connected";
export const PUBLISHED_TOTAL = "polyfleet_agent_published_total";
export const ACKED_SEQ = "polyfleet_agent_acked_seq";
export const INVALID_MESSAGES_TOTAL = "polyfleet_agent_invalid_messages_total";
export const OUTBOX_REPLAYS_TOTAL = "polyfleet_agent_outbox_replays_total";

/** What the link needs from the outbox (`SqliteOutbox` implements it). */
export interface LinkOutbox {
  /** Up to `limit` entries with seq > `afterSeq`, in seq order. */
  pending(afterSeq: number, limit: number): OutboxEntry[];
  /** Deletes every entry <= seq; idempotent. */
  ack(seq: number): number;
  ackedSeq(): number;
  lastSeq(): number;
  /** Calls `listener` after every append; returns the unsubscribe function. */
  onAppend(listener: () => void): () => void;
}

export interface MqttLinkBroker {
  /** `mqtt://host:port` or `mqtts://host:port`. */
  url: string;
  username?: string | undefined;
  /** Already resolved from its SecretRef; never logged. */
  password?: string | undefined;
  /** PEM contents (main.ts reads the files). */
  ca?: string | Buffer | undefined;
  cert?: string | Buffer | undefined;
  key?: string | Buffer | undefined;
  /** 5, 4 (3.1.1), or "auto" (default): MQTT 5, falling back to 3.1.1 when the broker refuses v5. */
  protocolVersion?: 4 | 5 | "auto" | undefined;
  keepaliveSec?: number | undefined;
}

export interface MqttAgentLinkOptions {
  agentId: string;
  siteId: string;
  broker: MqttLinkBroker;
  outbox: LinkOutbox;
  /** Readings per `ReadingBatch` (`outbox.batchSize`). */
  batchSize: number;
  /** Entries published beyond the ack watermark and not yet acked, at most (default 20 batches). */
  windowEntries?: number;
  /** MQTT messages awaiting PUBACK, at most (default 32; lower when the broker's v5 receive maximum is). */
  maxInflightMessages?: number;
  /** Wait this long after an append before publishing, so readings of a burst share a batch (default 10). */
  lingerMs?: number;
  /** No ack progress for this long with entries in flight: replay from the watermark (default 15 s, doubling). */
  ackTimeoutMs?: number;
  ackTimeoutMaxMs?: number;
  reconnect?: BackoffOptions;
  connectTimeoutMs?: number;
  /** MQTT 5 session expiry (default 7 days): acks and commands queued by the broker while we are away. */
  sessionExpirySec?: number;
  /** Agent version for the birth message. */
  version: string;
  capabilities: string[];
  hostname?: string;
  /** This run's session id (default a random UUID); the Will and the birth carry it. */
  sessionId?: string;
  clock: Clock;
  metrics: Metrics;
  log: Logger;
  random?: () => number;
}

interface QueuedResult {
  payload: string;
  resolve: () => void;
  reject: (err: Error) => void;
}

const MAX_QUEUED_RESULTS = 1000;

/**
 * The agent's MQTT link: publishes the outbox in seq order with QoS 1 (readings batched, events one per
 * message), deletes entries only when the collector's `Ack` covers them, replays from the ack watermark
 * after every reconnect (and after a long silence of acks), keeps a retained birth / Last Will on the state
 * topic, and receives commands. One mqtt.js client per connection: its in-memory store dies with the
 * connection, so the only resends are the link's own replays from the watermark.
 */
export class MqttAgentLink {
  private readonly o: MqttAgentLinkOptions;
  private readonly log: Logger;
  private readonly sessionId: string;
  private readonly topics: Record<"state" | "telemetry" | "events" | "cmd" | "cmdResult" | "ack", string>;
  private readonly prefix: string;
  private readonly windowEntries: number;
  private readonly maxInflight: number;
  private readonly lingerMs: number;
  private readonly handlers = new Set<(cmd: Command) => void>();
  private readonly rawHandlers = new Set<(payload: Buffer) => void>();
  private readonly results: QueuedResult[] = [];

  private client: MqttClient | undefined;
  private gen = 0;
  private isConnected = false;
  private everConnected = false;
  private stopping = false;
  private started = false;
  private protocol: 4 | 5;
  private fallbackNow = false;
  private attempts = 0;
  private sentUpTo = 0;
  private inflight = 0;
  private serverReceiveMax = Number.POSITIVE_INFINITY;
  private fruitlessReplays = 0;
  private unsubscribeOutbox: (() => void) | undefined;
  private reconnectTimer: TimerHandle | undefined;
  private lingerTimer: TimerHandle | undefined;
  private ackTimer: TimerHandle | undefined;
  private pumpQueued = false;

  constructor(opts: MqttAgentLinkOptions) {
    this.o = opts;
    this.log = opts.log.child({ component: "mqtt-link" });
    this.sessionId = opts.sessionId ?? randomUUID();
    const p = { site: opts.siteId, agent: opts.agentId };
    const t = (k: TopicKey & keyof MqttAgentLink["topics"]) => topicFor(k, p);
    this.topics = {
      state: t("state"),
      telemetry: t("telemetry"),
      events: t("events"),
      cmd: t("cmd"),
      cmdResult: t("cmdResult"),
      ack: t("ack"),
    };
    this.prefix = batchPrefix(opts.agentId, opts.siteId);
    this.windowEntries = opts.windowEntries ?? Math.max(1000, opts.batchSize * 20);
    this.maxInflight = opts.maxInflightMessages ?? 32;
    this.lingerMs = opts.lingerMs ?? 10;
    this.protocol = opts.broker.protocolVersion === 4 ? 4 : 5;
  }

  /** True while a connection to the broker is up (CONNACK received). */
  get connected(): boolean {
    return this.isConnected;
  }

  /** The MQTT protocol version in use (or being tried): 5, or 4 after a fallback. */
  get protocolVersion(): 4 | 5 {
    return this.protocol;
  }

  /** This run's session id (in the birth message and the Will). */
  get session(): string {
    return this.sessionId;
  }

  /** Connects (and keeps reconnecting until `stop`). Resolves at once; watch `connected`. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.stopping = false;
    this.unsubscribeOutbox = this.o.outbox.onAppend(() => this.schedulePump(this.lingerMs));
    this.o.metrics.set(MQTT_CONNECTED, 0);
    this.o.metrics.set(ACKED_SEQ, this.o.outbox.ackedSeq());
    this.connect();
  }

  /**
   * Publishes the retained `shutdown` state (when connected), disconnects cleanly (so the broker does not
   * send the Will) and stops reconnecting. Queued command results are rejected.
   */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.stopping = true;
    this.unsubscribeOutbox?.();
    this.unsubscribeOutbox = undefined;
    this.clearTimer("reconnectTimer");
    this.clearTimer("lingerTimer");
    this.clearTimer("ackTimer");
    const client = this.client;
    this.client = undefined;
    this.gen++;
    const wasConnected = this.isConnected;
    this.setConnected(false);
    for (const r of this.results.splice(0)) r.reject(new Error("MQTT link stopped"));
    if (!client) return;
    if (wasConnected) {
      const offline: AgentState = {
        v: 1,
        agentId: this.o.agentId,
        siteId: this.o.siteId,
        status: "offline",
        sessionId: this.sessionId,
        ts: this.o.clock.now(),
        reason: "shutdown",
      };
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 2000);
        client.publish(this.topics.state, JSON.stringify(offline), { qos: 1, retain: true }, () => {
          clearTimeout(t);
          resolve();
        });
      });
      await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
    } else {
      client.end(true);
    }
  }

  /**
   * Registers a handler for the raw payload of every message on this agent's command topic, before any
   * validation: the command runner validates and answers invalid commands itself. With a raw handler set, the
   * link does not count invalid commands (the runner does). Returns the unsubscribe.
   */
  onCommandPayload(handler: (payload: Buffer) => void): () => void {
    this.rawHandlers.add(handler);
    return () => this.rawHandlers.delete(handler);
  }

  /** Registers a handler for every valid command on this agent's command topic. Returns the unsubscribe. */
  onCommand(handler: (cmd: Command) => void): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  /**
   * Publishes a command result (QoS 1) on the result topic, directly (not via the outbox). Resolves on the
   * broker's PUBACK; while disconnected the result waits in a bounded memory queue (lost if the agent dies).
   */
  publishResult(result: CommandResult): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.stopping || !this.started) {
        reject(new Error("MQTT link is not running"));
        return;
      }
      this.results.push({ payload: JSON.stringify(result), resolve, reject });
      while (this.results.length > MAX_QUEUED_RESULTS) {
        this.results.shift()?.reject(new Error("command result queue full: oldest result dropped"));
      }
      this.flushResults();
    });
  }

  // ---- connection ---------------------------------------------------------------------------------------

  private connect(): void {
    if (this.stopping) return;
    const gen = ++this.gen;
    const b = this.o.broker;
    const will: AgentState = {
      v: 1,
      agentId: this.o.agentId,
      siteId: this.o.siteId,
      status: "offline",
      sessionId: this.sessionId,
      ts: this.o.clock.now(),
      reason: "will",
    };
    const opts: IClientOptions = {
      protocolVersion: this.protocol,
      clientId: this.o.agentId,
      clean: false,
      keepalive: b.keepaliveSec ?? 30,
      reconnectPeriod: 0,
      connectTimeout: this.o.connectTimeoutMs ?? 10_000,
      resubscribe: false,
      will: { topic: this.topics.state, payload: Buffer.from(JSON.stringify(will)), qos: 1, retain: true },
    };
    if (this.protocol === 5)
      opts.properties = { sessionExpiryInterval: this.o.sessionExpirySec ?? 7 * 86_400 };
    if (b.username !== undefined) opts.username = b.username;
    if (b.password !== undefined) opts.password = b.password;
    if (b.ca !== undefined) opts.ca = b.ca;
    if (b.cert !== undefined) opts.cert = b.cert;
    if (b.key !== undefined) opts.key = b.key;
    this.log.debug({ url: b.url, protocolVersion: this.protocol, attempt: this.attempts }, "connecting");
    let client: MqttClient;
    try {
      client = connect(b.url, opts);
    } catch (err) {
      this.log.error({ err, url: b.url }, "cannot create the MQTT client");
      this.scheduleReconnect();
      return;
    }
    this.client = client;
    noDelay(client);
    client.on("connect", (connack) => {
      if (gen === this.gen) this.onConnect(client, connack);
    });
    client.on("message", (topic, payload) => {
      if (gen === this.gen) this.onMessage(topic, payload);
    });
    client.on("error", (err) => {
      if (gen !== this.gen) return;
      const code = (err as { code?: unknown }).code;
      if (this.o.broker.protocolVersion !== 5 && this.protocol === 5 && isProtocolRefusal(code)) {
        this.log.info({ url: b.url }, "broker refused MQTT 5: falling back to MQTT 3.1.1");
        this.protocol = 4;
        this.fallbackNow = true;
        return;
      }
      this.log.warn({ err: { message: err.message, code } }, "MQTT connection error");
    });
    client.on("close", () => {
      if (gen !== this.gen) return;
      this.onClose(client);
    });
  }

  private onConnect(client: MqttClient, connack: IConnackPacket): void {
    if (this.everConnected) this.o.metrics.inc(MQTT_RECONNECTS_TOTAL);
    this.everConnected = true;
    this.attempts = 0;
    noDelay(client);
    this.serverReceiveMax = connack.properties?.receiveMaximum ?? Number.POSITIVE_INFINITY;
    this.setConnected(true);
    this.log.info(
      { protocolVersion: this.protocol, sessionPresent: connack.sessionPresent, sessionId: this.sessionId },
      "connected to the broker",
    );
    client.subscribe([this.topics.ack, this.topics.cmd], { qos: 1 }, (err) => {
      if (err) this.log.warn({ err }, "subscribe failed");
    });
    const birth: AgentState = {
      v: 1,
      agentId: this.o.agentId,
      siteId: this.o.siteId,
      status: "online",
      sessionId: this.sessionId,
      ts: this.o.clock.now(),
      version: this.o.version,
      capabilities: this.o.capabilities,
      protocolVersion: this.protocol,
      ...(this.o.hostname === undefined ? {} : { hostname: this.o.hostname }),
    };
    client.publish(this.topics.state, JSON.stringify(birth), { qos: 1, retain: true });
    // Replay from the watermark: whatever was in flight on the previous connection may be lost.
    this.sentUpTo = this.o.outbox.ackedSeq();
    this.inflight = 0;
    this.fruitlessReplays = 0;
    this.flushResults();
    this.pump();
  }

  private onClose(client: MqttClient): void {
    const was = this.isConnected;
    this.setConnected(false);
    this.clearTimer("ackTimer");
    this.inflight = 0;
    client.removeAllListeners("message");
    client.on("error", () => {});
    client.end(true);
    if (this.client === client) this.client = undefined;
    if (was) this.log.warn("disconnected from the broker");
    if (this.stopping) return;
    if (this.fallbackNow) {
      this.fallbackNow = false;
      this.connect();
      return;
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stopping || this.reconnectTimer) return;
    const delay = reconnectDelayMs(
      this.attempts++,
      this.o.reconnect ?? { minMs: 500, maxMs: 30_000 },
      this.o.random ?? Math.random,
    );
    this.reconnectTimer = this.o.clock.setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect();
    }, delay);
  }

  private setConnected(v: boolean): void {
    this.isConnected = v;
    this.o.metrics.set(MQTT_CONNECTED, v ? 1 : 0);
  }

  // ---- inbound -----------------------------------------------------------------------------------------

  private onMessage(topic: string, payload: Buffer): void {
    if (topic === this.topics.ack) this.onAck(payload);
    else if (topic === this.topics.cmd) this.onCommandMessage(payload);
    else this.invalid("unknown", `message on unexpected topic ${topic}`);
  }

  private onAck(payload: Buffer): void {
    const r = parseMessage(Ack, payload);
    if (!r.ok) {
      this.invalid("ack", r.error.message);
      return;
    }
    if (r.value.agentId !== this.o.agentId) {
      this.invalid("ack", `ack for agent ${r.value.agentId}`);
      return;
    }
    const before = this.o.outbox.ackedSeq();
    if (r.value.seq <= before) return;
    this.o.outbox.ack(r.value.seq);
    const after = this.o.outbox.ackedSeq();
    if (after <= before) return;
    this.o.metrics.set(ACKED_SEQ, after);
    this.fruitlessReplays = 0;
    if (this.sentUpTo < after) this.sentUpTo = after;
    this.clearTimer("ackTimer");
    this.armAckTimer();
    this.schedulePump(0);
  }

  private onCommandMessage(payload: Buffer): void {
    for (const h of this.rawHandlers) {
      try {
        h(payload);
      } catch (err) {
        this.log.error({ err }, "command payload handler failed");
      }
    }
    if (this.handlers.size === 0) return;
    const r = parseMessage(Command, payload);
    if (!r.ok) {
      this.invalid("cmd", r.error.message);
      return;
    }
    if (r.value.agentId !== this.o.agentId) {
      this.invalid("cmd", `command for agent ${r.value.agentId}`);
      return;
    }
    for (const h of this.handlers) {
      try {
        h(r.value);
      } catch (err) {
        this.log.error({ err, commandId: r.value.commandId }, "command handler failed");
      }
    }
  }

  private invalid(topic: string, reason: string): void {
    this.o.metrics.inc(INVALID_MESSAGES_TOTAL, { topic });
    this.log.warn({ topic, reason }, "invalid inbound message dropped");
  }

  // ---- outbound ----------------------------------------------------------------------------------------

  private schedulePump(delayMs: number): void {
    if (!this.isConnected) return;
    if (delayMs > 0) {
      if (this.lingerTimer || this.pumpQueued) return;
      this.lingerTimer = this.o.clock.setTimeout(() => {
        this.lingerTimer = undefined;
        this.pump();
      }, delayMs);
      return;
    }
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    setImmediate(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  /** Publishes as much of the outbox as the window and the in-flight bound allow. */
  private pump(): void {
    const client = this.client;
    if (!client || !this.isConnected || this.stopping) return;
    this.clearTimer("lingerTimer");
    const acked = this.o.outbox.ackedSeq();
    if (this.sentUpTo < acked) this.sentUpTo = acked;
    const gen = this.gen;
    const batchSize = Math.max(1, this.o.batchSize);
    for (;;) {
      const msgRoom = Math.min(this.maxInflight, this.serverReceiveMax) - this.inflight;
      const entryRoom = this.windowEntries - (this.sentUpTo - acked);
      if (msgRoom <= 0 || entryRoom <= 0) break;
      const entries = this.o.outbox.pending(this.sentUpTo, Math.min(entryRoom, msgRoom * batchSize));
      if (entries.length === 0) break;
      const units = planPublishUnits(entries, batchSize, this.prefix);
      const n = Math.min(units.length, msgRoom);
      for (let i = 0; i < n; i++) {
        const u = units[i];
        if (!u) break;
        this.inflight++;
        this.sentUpTo = u.lastSeq;
        const kind = u.topic === "telemetry" ? "reading" : "event";
        const count = u.count;
        client.publish(this.topics[u.topic], u.payload, { qos: 1 }, (err) => {
          if (gen !== this.gen) return;
          this.inflight--;
          if (!err) this.o.metrics.inc(PUBLISHED_TOTAL, { kind }, count);
          this.schedulePump(0);
        });
      }
    }
    this.armAckTimer();
  }

  private armAckTimer(): void {
    if (this.ackTimer || !this.isConnected) return;
    if (this.sentUpTo <= this.o.outbox.ackedSeq()) return;
    const ms = replayTimeoutMs(
      this.o.ackTimeoutMs ?? 15_000,
      this.fruitlessReplays,
      this.o.ackTimeoutMaxMs ?? 300_000,
    );
    this.ackTimer = this.o.clock.setTimeout(() => {
      this.ackTimer = undefined;
      const acked = this.o.outbox.ackedSeq();
      if (!this.isConnected || this.sentUpTo <= acked) return;
      this.log.info(
        { ackedSeq: acked, sentUpTo: this.sentUpTo, waitedMs: ms },
        "no ack progress: replaying from the ack watermark",
      );
      this.o.metrics.inc(OUTBOX_REPLAYS_TOTAL, { reason: "ack-timeout" });
      this.fruitlessReplays++;
      this.sentUpTo = acked;
      this.pump();
    }, ms);
  }

  private flushResults(): void {
    const client = this.client;
    if (!client || !this.isConnected) return;
    const gen = this.gen;
    for (const item of this.results.splice(0)) {
      client.publish(this.topics.cmdResult, item.payload, { qos: 1 }, (err) => {
        if (!err) {
          item.resolve();
          return;
        }
        if (this.stopping) item.reject(new Error("MQTT link stopped"));
        // Connection lost before PUBACK: send again after the reconnect.
        else this.results.unshift(item);
        if (gen === this.gen) this.flushResults();
      });
    }
  }

  private clearTimer(name: "reconnectTimer" | "lingerTimer" | "ackTimer"): void {
    const t = this[name];
    if (t) this.o.clock.clearTimeout(t);
    this[name] = undefined;
  }
}

/** Disables Nagle on the client's TCP (or TLS) socket: QoS 1 round trips must not wait 40 ms for ACK delay. */
function noDelay(client: MqttClient): void {
  const s = client.stream as unknown as Partial<Pick<Socket, "setNoDelay">>;
  s.setNoDelay?.(true);
}
