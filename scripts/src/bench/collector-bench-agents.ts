import { randomUUID } from "node:crypto";
import type { Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { topicFor } from "@polyfleet/shared";
import { connect, type MqttClient } from "mqtt";
import { type BenchDevice, batchPrefix, readingJson } from "./collector-bench-fleet.js";

/**
 * A synthetic agent for the collector benchmark: one mqtt.js client (MQTT 5, Nagle off, clientId = agentId)
 * that publishes a retained birth, then `ReadingBatch`es of its devices' readings with increasing seqs
 * (QoS 1, at most `maxInflight` messages awaiting PUBACK, as the agent's link), subscribes to its ack topic
 * and checks every ack: valid JSON of its own agent, never moving back, never beyond what was published.
 * Like the real agent it keeps at most `windowEntries` readings published but not yet acked.
 *
 * Batches can be sent as fast as the window allows (`fill`) or on a schedule (`enqueue` with the time the
 * batch was due): the publish→ack latency of a batch is measured from when it was due, so a batch held back
 * by a full window still counts its wait (no coordinated omission).
 */
export interface SyntheticAgentOptions {
  url: string;
  agentId: string;
  siteId: string;
  devices: BenchDevice[];
  batchSize: number;
  /** Readings published and not acked, at most (the agent's default: 20 batches). */
  windowEntries: number;
  /** Messages awaiting PUBACK, at most (the agent's default: 32). */
  maxInflight: number;
  /** When false (bare-subscriber phase), no ack is expected: the window is not enforced. */
  expectAcks: boolean;
}

interface Pending {
  lastSeq: number;
  dueAt: number;
}

export class SyntheticAgent {
  readonly agentId: string;
  readonly siteId: string;
  private readonly o: SyntheticAgentOptions;
  private readonly prefix: string;
  private readonly telemetryTopic: string;
  private readonly ackTopic: string;
  private client: MqttClient | undefined;
  private next = 0;
  /** Last seq published. */
  seq = 0;
  /** Highest seq acked. */
  acked = 0;
  acks = 0;
  /** Invalid acks and connection trouble (first 20). */
  ackProblems: string[] = [];
  published = 0;
  pubacks = 0;
  publishErrors = 0;
  private inflight = 0;
  /** Batches due but not yet published (window or in-flight bound full). */
  private backlog: number[] = [];
  private readonly pending: Pending[] = [];
  /** Publish→ack latency samples (ms) of batches enqueued while `recordLatency` is on. */
  latencies: number[] = [];
  recordLatency = false;
  private fillMode = false;
  private ackWaiters: (() => void)[] = [];

  constructor(opts: SyntheticAgentOptions) {
    this.o = opts;
    this.agentId = opts.agentId;
    this.siteId = opts.siteId;
    this.prefix = batchPrefix(opts.agentId, opts.siteId);
    const p = { site: opts.siteId, agent: opts.agentId };
    this.telemetryTopic = topicFor("telemetry", p);
    this.ackTopic = topicFor("ack", p);
  }

  /** Connects, subscribes to the ack topic and publishes the retained birth. */
  connect(): Promise<void> {
    const sessionId = randomUUID();
    const stateTopic = topicFor("state", { site: this.siteId, agent: this.agentId });
    const will = {
      v: 1,
      agentId: this.agentId,
      siteId: this.siteId,
      status: "offline",
      sessionId,
      ts: Date.now(),
      reason: "will",
    };
    const client = connect(this.o.url, {
      protocolVersion: 5,
      clientId: this.agentId,
      clean: true,
      keepalive: 30,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      will: { topic: stateTopic, payload: Buffer.from(JSON.stringify(will)), qos: 1, retain: true },
    });
    this.client = client;
    client.on("message", (topic, payload) => {
      if (topic === this.ackTopic) this.onAck(payload);
    });
    client.on("error", (err) => this.problem(`MQTT error: ${err.message}`));
    client.on("close", () => {
      if (this.client === client) this.problem("connection to the broker closed");
    });
    return new Promise<void>((resolve, reject) => {
      client.once("error", reject);
      client.once("connect", () => {
        (client.stream as unknown as Partial<Pick<Socket, "setNoDelay">>).setNoDelay?.(true);
        client.subscribe(this.ackTopic, { qos: 1 }, (err) => {
          if (err) {
            reject(err);
            return;
          }
          const birth = {
            v: 1,
            agentId: this.agentId,
            siteId: this.siteId,
            status: "online",
            sessionId,
            ts: Date.now(),
            version: "0.1.0-bench",
            capabilities: ["poll", "traps"],
            protocolVersion: 5,
            hostname: `bench-${this.agentId}`,
          };
          client.publish(stateTopic, JSON.stringify(birth), { qos: 1, retain: true }, (e) =>
            e ? reject(e) : resolve(),
          );
        });
      });
    });
  }

  /** Publishes batches while the window and the in-flight bound allow, and again whenever they free up. */
  startFill(): void {
    this.fillMode = true;
    this.pump();
  }

  stopFill(): void {
    this.fillMode = false;
  }

  /** A batch became due at `dueAt` (performance.now() ms): publish it now, or as soon as there is room. */
  enqueue(dueAt: number): void {
    this.backlog.push(dueAt);
    this.pump();
  }

  get backlogSize(): number {
    return this.backlog.length;
  }

  /** Resolves once every published reading is acked (true), or after `timeoutMs` (false). */
  waitAllAcked(timeoutMs: number): Promise<boolean> {
    if (this.acked >= this.seq) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.ackWaiters = this.ackWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(t);
        resolve(true);
      };
      this.ackWaiters.push(done);
    });
  }

  /** Resolves once every publish got its PUBACK (true), or after `timeoutMs` (false). */
  async waitPubacks(timeoutMs: number): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (this.inflight > 0 || this.backlog.length > 0) {
      if (Date.now() > until) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
    return true;
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await c.endAsync();
  }

  private room(): boolean {
    if (!this.client || this.inflight >= this.o.maxInflight) return false;
    if (!this.o.expectAcks) return true;
    return this.seq - this.acked + this.o.batchSize <= this.o.windowEntries;
  }

  private pump(): void {
    while (this.room()) {
      const due = this.backlog.shift();
      if (due === undefined && !this.fillMode) return;
      this.publishBatch(due ?? performance.now(), due !== undefined);
    }
  }

  private publishBatch(dueAt: number, scheduled: boolean): void {
    const client = this.client;
    if (!client) return;
    const devices = this.o.devices;
    const now = Date.now();
    const items: string[] = new Array(this.o.batchSize);
    for (let i = 0; i < this.o.batchSize; i++) {
      const d = devices[this.next++ % devices.length] as BenchDevice;
      items[i] = readingJson(d, this.agentId, this.siteId, ++this.seq, now);
    }
    const payload = `${this.prefix}${items.join(",")}]}`;
    if (scheduled && this.recordLatency && this.o.expectAcks) this.pending.push({ lastSeq: this.seq, dueAt });
    this.inflight++;
    this.published++;
    client.publish(this.telemetryTopic, payload, { qos: 1 }, (err) => {
      this.inflight--;
      if (err) this.publishErrors++;
      else this.pubacks++;
      this.pump();
    });
  }

  private onAck(payload: Buffer): void {
    const at = performance.now();
    let ack: { v?: unknown; agentId?: unknown; seq?: unknown; ts?: unknown };
    try {
      ack = JSON.parse(payload.toString("utf8")) as typeof ack;
    } catch {
      this.problem("ack is not JSON");
      return;
    }
    if (
      ack.v !== 1 ||
      ack.agentId !== this.agentId ||
      !Number.isInteger(ack.seq) ||
      typeof ack.ts !== "number"
    ) {
      this.problem(`malformed ack ${payload.toString("utf8").slice(0, 120)}`);
      return;
    }
    const seq = ack.seq as number;
    this.acks++;
    if (seq < this.acked) this.problem(`ack moved back from ${this.acked} to ${seq}`);
    if (seq > this.seq) this.problem(`ack ${seq} beyond the last published seq ${this.seq}`);
    if (seq <= this.acked) return;
    this.acked = seq;
    while (this.pending.length > 0 && (this.pending[0] as Pending).lastSeq <= seq) {
      const p = this.pending.shift() as Pending;
      this.latencies.push(at - p.dueAt);
    }
    if (this.acked >= this.seq && this.ackWaiters.length > 0) {
      const w = this.ackWaiters;
      this.ackWaiters = [];
      for (const f of w) f();
    }
    this.pump();
  }

  private problem(text: string): void {
    if (this.ackProblems.length < 20) this.ackProblems.push(text);
  }
}
