import { topicFor } from "@polyfleet/shared";
import { connect, type MqttClient } from "mqtt";

/** One reading as the observer keeps it: when the poll started and ended (agent clock), and its outcome. */
export interface ObservedPoll {
  startMs: number;
  endMs: number;
  latencyMs: number;
  reachable: boolean;
}

/** What the readings of one device set say about a time window. */
export interface PollTiming {
  devices: number;
  /** Readings whose poll started in the window. */
  polls: number;
  ok: number;
  failed: number;
  /** Devices of the set with no reading started in the window. */
  devicesWithoutPoll: number;
  /** Poll latency of the reachable readings (ms). */
  okLatencyMs: { p50: number; p95: number; p99: number; max: number } | undefined;
  /** Gaps between consecutive poll starts of one device, where the later start is in the window. */
  gaps: number;
  maxGapMs: number | undefined;
  /** Gaps longer than interval × (1 + jitter) + slack: the device's poll started late. */
  lateGaps: number;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

/**
 * Watches an agent's telemetry topic (QoS 0, no acks: the TestCollector acks) and keeps, per device address,
 * the start and end of every poll (`ts` is when the reading entered the outbox, `ts − pollLatencyMs` when
 * the poll began). Used to tell whether the answering devices were polled on time while others did not answer.
 */
export class TelemetryObserver {
  readonly byAddress = new Map<string, ObservedPoll[]>();
  readings = 0;
  unparsable = 0;
  private client: MqttClient | undefined;

  constructor(
    private readonly url: string,
    private readonly siteId: string,
    private readonly agentId: string,
  ) {}

  async start(): Promise<void> {
    const topic = topicFor("telemetry", { site: this.siteId, agent: this.agentId });
    const client = connect(this.url, {
      clientId: `bench-observer-${this.agentId}-${Math.random().toString(36).slice(2, 8)}`,
      protocolVersion: 5,
      clean: true,
      reconnectPeriod: 500,
    });
    this.client = client;
    client.on("error", () => {});
    client.on("message", (_t, payload) => this.onMessage(payload));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`observer could not connect to ${this.url}`)), 10_000);
      client.once("connect", () => {
        client.subscribe(topic, { qos: 0 }, (err) => {
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

  private onMessage(payload: Buffer): void {
    let msg: unknown;
    try {
      msg = JSON.parse(payload.toString("utf8"));
    } catch {
      this.unparsable++;
      return;
    }
    const m = msg as { kind?: string; items?: unknown[] };
    const items = m.kind === "batch" && Array.isArray(m.items) ? m.items : [msg];
    for (const it of items) {
      const r = it as {
        ts?: unknown;
        pollLatencyMs?: unknown;
        reachable?: unknown;
        identity?: { address?: unknown };
      };
      if (
        typeof r.ts !== "number" ||
        typeof r.pollLatencyMs !== "number" ||
        typeof r.identity?.address !== "string"
      ) {
        this.unparsable++;
        continue;
      }
      this.readings++;
      let list = this.byAddress.get(r.identity.address);
      if (!list) {
        list = [];
        this.byAddress.set(r.identity.address, list);
      }
      list.push({
        startMs: r.ts - r.pollLatencyMs,
        endMs: r.ts,
        latencyMs: r.pollLatencyMs,
        reachable: r.reachable === true,
      });
    }
  }

  /** Poll timing of `addresses` for polls started in [fromMs, toMs). */
  timing(
    addresses: readonly string[],
    fromMs: number,
    toMs: number,
    intervalMs: number,
    jitterPct: number,
    slackMs = 1000,
  ): PollTiming {
    const lat: number[] = [];
    let polls = 0;
    let ok = 0;
    let without = 0;
    let gaps = 0;
    let lateGaps = 0;
    let maxGap: number | undefined;
    const lateAfter = intervalMs * (1 + jitterPct / 100) + slackMs;
    for (const a of addresses) {
      const list = (this.byAddress.get(a) ?? []).slice().sort((x, y) => x.startMs - y.startMs);
      // The agent re-keys a device by its MAC after its first answer and re-arms it at a fresh point of
      // the interval: the gap after that poll is not lateness.
      const rekeyed = list.findIndex((p) => p.reachable);
      let any = false;
      for (let i = 0; i < list.length; i++) {
        const p = list[i] as ObservedPoll;
        if (p.startMs < fromMs || p.startMs >= toMs) continue;
        any = true;
        polls++;
        if (p.reachable) {
          ok++;
          lat.push(p.latencyMs);
        }
        const prev = list[i - 1];
        if (prev && i - 1 !== rekeyed) {
          const gap = p.startMs - prev.startMs;
          gaps++;
          maxGap = maxGap === undefined ? gap : Math.max(maxGap, gap);
          if (gap > lateAfter) lateGaps++;
        }
      }
      if (!any) without++;
    }
    lat.sort((x, y) => x - y);
    return {
      devices: addresses.length,
      polls,
      ok,
      failed: polls - ok,
      devicesWithoutPoll: without,
      okLatencyMs:
        lat.length === 0
          ? undefined
          : {
              p50: quantile(lat, 0.5),
              p95: quantile(lat, 0.95),
              p99: quantile(lat, 0.99),
              max: lat[lat.length - 1] as number,
            },
      gaps,
      maxGapMs: maxGap,
      lateGaps,
    };
  }
}
