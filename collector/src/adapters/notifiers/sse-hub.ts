import type { IncomingMessage, ServerResponse } from "node:http";
import {
  Alert,
  type AlertNotification,
  type Clock,
  type Logger,
  type RolloutNotification,
  SYSTEM_CLOCK,
  type TimerHandle,
} from "@polyfleet/shared";
import type { Notifier } from "../../ports/notifier.js";
import {
  NOOP_NOTIFIER_METRICS,
  NOTIFIER_METRIC,
  type NotifierMetrics,
  silentLogger,
} from "./notifier-support.js";

/** Which sites' alerts a client may see: every alert (`*`), or only alerts of the listed sites. */
export type SseScope = "*" | readonly string[];

export interface SseHubOptions {
  log?: Logger;
  metrics?: NotifierMetrics;
  clock?: Clock;
  /** Notifier name used in logs and metric labels (default `sse`). */
  name?: string;
  /** Interval of `: heartbeat` comments (default 15 s). */
  heartbeatMs?: number;
  /** Events kept for `Last-Event-ID` replay (default 1000). */
  replayBufferSize?: number;
  /** Bytes a client may have queued unsent before it is dropped as too slow (default 1 MiB). */
  maxClientBacklogBytes?: number;
  /** Reconnect delay advertised to EventSource clients (default 3000 ms). */
  retryMs?: number;
}

interface SseEvent {
  id: number;
  siteId: string | undefined;
  frame: string;
}

interface SseClient {
  res: ServerResponse;
  scope: "*" | ReadonlySet<string>;
}

/**
 * A live Server-Sent Events stream of alert transitions. `handle(req, res, scope)` serves one client
 * (with fastify: `reply.hijack()` then `hub.handle(request.raw, reply.raw, scope)`); every `publish(alert)`
 * is written as `event: alert` with a sequence id, replayable from a bounded buffer via `Last-Event-ID`.
 * A client whose unsent backlog exceeds the bound is dropped (and counted) so it cannot hold memory.
 */
export class SseHub implements Notifier {
  readonly name: string;
  private readonly log: Logger;
  private readonly metrics: NotifierMetrics;
  private readonly clock: Clock;
  private readonly heartbeatMs: number;
  private readonly replayBufferSize: number;
  private readonly maxBacklog: number;
  private readonly retryMs: number;
  private readonly connected = new Set<SseClient>();
  private readonly buffer: SseEvent[] = [];
  private seq = 0;
  private heartbeat: TimerHandle | undefined;
  private stopped = false;

  constructor(opts: SseHubOptions = {}) {
    this.name = opts.name ?? "sse";
    this.log = (opts.log ?? silentLogger()).child({ component: "sse-hub" });
    this.metrics = opts.metrics ?? NOOP_NOTIFIER_METRICS;
    this.clock = opts.clock ?? SYSTEM_CLOCK;
    this.heartbeatMs = opts.heartbeatMs ?? 15_000;
    this.replayBufferSize = Math.max(1, opts.replayBufferSize ?? 1000);
    this.maxBacklog = opts.maxClientBacklogBytes ?? 1024 * 1024;
    this.retryMs = opts.retryMs ?? 3000;
  }

  /** Serves one SSE client until it disconnects or the hub stops. `scope` defaults to every site. */
  handle(req: IncomingMessage, res: ServerResponse, scope: SseScope = "*"): void {
    if (this.stopped) {
      res.writeHead(503, { "content-type": "text/plain" });
      res.end("stream stopped\n");
      return;
    }
    const client: SseClient = { res, scope: scope === "*" ? "*" : new Set(scope) };
    req.socket.setNoDelay(true);
    req.socket.setKeepAlive(true);
    req.socket.setTimeout(0);
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    this.connected.add(client);
    res.on("close", () => this.remove(client));
    res.on("error", () => this.remove(client));
    this.write(client, `retry: ${this.retryMs}\n\n`);
    for (const ev of this.replayAfter(req.headers["last-event-id"])) {
      if (!this.connected.has(client)) break;
      if (this.visible(client, ev)) this.write(client, ev.frame);
    }
    this.ensureHeartbeat();
  }

  /** Sends one alert transition to every client whose scope covers it. Invalid alerts are counted and skipped. */
  publish(alert: Alert): void {
    if (this.stopped) return;
    const parsed = Alert.safeParse(alert);
    if (!parsed.success) {
      this.metrics.inc(NOTIFIER_METRIC.invalid, { notifier: this.name });
      this.log.warn({ issues: parsed.error.issues }, "invalid alert not streamed");
      return;
    }
    this.seq += 1;
    const ev: SseEvent = {
      id: this.seq,
      siteId: parsed.data.siteId,
      frame: `event: alert\ndata: ${JSON.stringify(parsed.data)}\nid: ${this.seq}\n\n`,
    };
    this.buffer.push(ev);
    if (this.buffer.length > this.replayBufferSize)
      this.buffer.splice(0, this.buffer.length - this.replayBufferSize);
    for (const client of [...this.connected]) {
      if (this.visible(client, ev)) this.write(client, ev.frame);
    }
    this.metrics.inc(NOTIFIER_METRIC.sent, { notifier: this.name });
  }

  /**
   * Streams a rollout transition as `event: rollout`. Rollouts may span sites, so only clients with every
   * site in scope see them.
   */
  publishRollout(n: RolloutNotification): void {
    if (this.stopped) return;
    this.seq += 1;
    const ev: SseEvent = {
      id: this.seq,
      siteId: undefined,
      frame: `event: rollout\ndata: ${JSON.stringify(n)}\nid: ${this.seq}\n\n`,
    };
    this.buffer.push(ev);
    if (this.buffer.length > this.replayBufferSize)
      this.buffer.splice(0, this.buffer.length - this.replayBufferSize);
    for (const client of [...this.connected]) {
      if (this.visible(client, ev)) this.write(client, ev.frame);
    }
  }

  notify(_n: AlertNotification, alerts: readonly Alert[]): Promise<void> {
    for (const alert of alerts) this.publish(alert);
    return Promise.resolve();
  }

  /** Number of connected clients. */
  clients(): number {
    return this.connected.size;
  }

  /** Ends every client stream and the heartbeat; later `handle` calls get 503. */
  stop(): Promise<void> {
    this.stopped = true;
    if (this.heartbeat) this.clock.clearTimeout(this.heartbeat);
    this.heartbeat = undefined;
    for (const client of [...this.connected]) {
      this.connected.delete(client);
      // A client with unsent backlog would keep its socket open until it reads; cut it off.
      if (client.res.writableLength > 0) client.res.destroy();
      else client.res.end();
    }
    return Promise.resolve();
  }

  private replayAfter(header: string | string[] | undefined): SseEvent[] {
    const raw = Array.isArray(header) ? header[0] : header;
    if (raw === undefined || !/^\d+$/.test(raw.trim())) return [];
    const last = Number(raw.trim());
    // An id from before a restart (ahead of ours): the client missed everything we still hold.
    if (last > this.seq) return [...this.buffer];
    return this.buffer.filter((ev) => ev.id > last);
  }

  private visible(client: SseClient, ev: SseEvent): boolean {
    if (client.scope === "*") return true;
    return ev.siteId !== undefined && client.scope.has(ev.siteId);
  }

  private write(client: SseClient, frame: string): void {
    const res = client.res;
    if (res.destroyed || res.writableEnded) {
      this.remove(client);
      return;
    }
    if (res.writableLength + Buffer.byteLength(frame) > this.maxBacklog) {
      this.metrics.inc(NOTIFIER_METRIC.dropped, { notifier: this.name, reason: "slow_client" });
      this.log.warn({ backlogBytes: res.writableLength }, "dropping slow SSE client");
      this.remove(client);
      res.destroy();
      return;
    }
    res.write(frame);
  }

  private remove(client: SseClient): void {
    this.connected.delete(client);
    if (this.connected.size === 0 && this.heartbeat) {
      this.clock.clearTimeout(this.heartbeat);
      this.heartbeat = undefined;
    }
  }

  private ensureHeartbeat(): void {
    if (this.heartbeat || this.stopped || this.connected.size === 0) return;
    this.heartbeat = this.clock.setTimeout(() => {
      this.heartbeat = undefined;
      for (const client of [...this.connected]) this.write(client, ": heartbeat\n\n");
      this.ensureHeartbeat();
    }, this.heartbeatMs);
  }
}
