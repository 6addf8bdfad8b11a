import { Writable } from "node:stream";
import { type Alert, type AlertNotification, createLogger, type Logger } from "@polyfleet/shared";
import type { NotifierMetrics } from "../../../src/adapters/notifiers/index.js";

let counter = 0;

/** A schema-valid alert; override any field. */
export function makeAlert(over: Partial<Alert> = {}): Alert {
  counter += 1;
  return {
    v: 1,
    id: `alert-${counter}`,
    fingerprint: `fp-${counter}`,
    rule: "deviceUnreachable",
    severity: "critical",
    state: "firing",
    summary: `Device dev-${counter} is unreachable`,
    siteId: "site-a",
    agentId: "agent-1",
    deviceId: `dev-${counter}`,
    labels: { model: "CCX500" },
    startsAt: 1_700_000_000_000,
    updatedAt: 1_700_000_000_500,
    flapping: false,
    escalationLevel: 0,
    silenced: false,
    ...over,
  };
}

export function makeNotification(
  alerts: readonly Alert[],
  over: Partial<AlertNotification> = {},
): AlertNotification {
  return {
    v: 1,
    groupKey: "siteId=site-a,rule=deviceUnreachable",
    reason: "firing",
    escalationLevel: 0,
    ts: 1_700_000_001_000,
    alertIds: alerts.map((a) => a.id),
    ...over,
  };
}

/** Counting metrics, keyed `name{k=v,...}` with sorted labels. */
export class CountingMetrics implements NotifierMetrics {
  readonly counts = new Map<string, number>();
  inc(name: string, labels: Record<string, string> = {}): void {
    const key = `${name}{${Object.entries(labels)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}=${v}`)
      .join(",")}}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }
  get(name: string, labels: Record<string, string> = {}): number {
    let total = 0;
    for (const [key, n] of this.counts) {
      if (!key.startsWith(`${name}{`)) continue;
      if (Object.entries(labels).every(([k, v]) => key.includes(`${k}=${v}`))) total += n;
    }
    return total;
  }
}

/** A pino logger writing into memory, so tests can assert on what was (not) logged. */
export function memoryLogger(): { log: Logger; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString("utf8"));
      cb();
    },
  });
  return { log: createLogger({ level: "trace" }, stream), text: () => chunks.join("") };
}
