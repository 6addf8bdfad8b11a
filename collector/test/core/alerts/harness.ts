/**
 * A `promtool test rules`-style harness for the alert engine: a case is a series of timed steps (inputs
 * at a second offset, then expectations on the active alerts and on the notifications sent since the
 * previous expectation). Between steps the harness ticks the engine once per simulated second, like the
 * collector does, and keeps what a state store would (latest version of every alert) for restarts.
 */
import {
  type AgentEvent,
  type Alert,
  type AlertNotification,
  type AlertRuleInput,
  type DeviceRecord,
  type HealthItem,
  type MaintenanceWindow,
  type Matcher,
  type Peripheral,
  PolyfleetError,
  type Reading,
  type SipLine,
  type WindowSchedule,
} from "@polyfleet/shared";
import { expect } from "vitest";
import { AlertEngine } from "../../../src/core/alerts/engine.js";
import { rulesFile } from "../../../src/core/alerts/rules.js";

/** 2024-01-01T00:00:00Z, a Monday. */
export const T0 = Date.UTC(2024, 0, 1);

export interface DeviceSpec {
  deviceId: string;
  siteId?: string;
  agentId?: string;
  model?: string;
  address?: string;
  softwareVersion?: string;
}

export interface ReadingInput {
  device: string;
  reachable?: boolean;
  health?: HealthItem[];
  peripherals?: Peripheral[];
  lines?: SipLine[];
  cpuPct?: number;
  memPct?: number;
  packetLossPct?: number;
  softwareVersion?: string;
}

/** An event body: the header (v, agentId, siteId, seq, ts) is filled in from the device or given. */
export type EventInput = {
  [K in AgentEvent["type"]]: Omit<
    Extract<AgentEvent, { type: K }>,
    "v" | "seq" | "ts" | "agentId" | "siteId"
  > & { agentId?: string; siteId?: string };
}[AgentEvent["type"]];

export type Input =
  | { reading: ReadingInput }
  | { event: EventInput }
  | { agent: { agentId: string; siteId?: string; status: "online" | "offline"; hostname?: string } }
  | { ack: { alert: string; by?: string; comment?: string; expectError?: string } }
  | { silences: { matchers: Matcher[]; startsAt?: number; endsAt: number }[] }
  | { windows: { matchers?: Matcher[]; schedule: WindowSchedule }[] }
  | { baseline: Record<string, string[]> }
  | { restart: true };

/** `rule:subject[:item]`, e.g. `device-unreachable:d1`, `status-item-down:d1:camera`. */
export type AlertKey = string;

export interface AlertExpect {
  key: AlertKey;
  state?: Alert["state"];
  severity?: Alert["severity"];
  flapping?: boolean;
  silenced?: boolean;
  escalationLevel?: number;
  labels?: Record<string, string>;
  ackBy?: string;
}

export interface NotificationExpect {
  reason: AlertNotification["reason"];
  alerts: AlertKey[];
  /** Seconds since T0. */
  at?: number;
  escalationLevel?: number;
}

export interface Step {
  /** Seconds since T0 (non-decreasing). */
  at: number;
  inputs?: Input[];
  /** The exact set of active alerts after the step. */
  expectActive?: AlertExpect[];
  /** The exact list of notifications sent since the previous `expectNotifications`. */
  expectNotifications?: NotificationExpect[];
}

export interface AlertCase {
  name: string;
  rules?: Parameters<typeof rulesFile>[0];
  devices?: DeviceSpec[];
  steps: Step[];
}

export function keyOf(a: Alert): AlertKey {
  const subject = a.deviceId ?? a.labels.source ?? a.agentId ?? "?";
  return a.labels.item === undefined ? `${a.rule}:${subject}` : `${a.rule}:${subject}:${a.labels.item}`;
}

export class AlertHarness {
  nowMs = T0;
  engine: AlertEngine;
  /** Every transition, in order, across restarts. */
  readonly changed: Alert[] = [];
  /** Every notification, in order, across restarts. */
  readonly notifications: AlertNotification[] = [];
  /** The state store: latest version of every alert by id. */
  readonly store = new Map<string, Alert>();
  private readonly devices = new Map<string, DeviceSpec>();
  private readonly rules: Parameters<typeof rulesFile>[0];
  private seq = 0;
  private ids = 0;
  private notifiedUpTo = 0;
  private lastTickSec = -1;

  constructor(rules: Parameters<typeof rulesFile>[0] = {}, devices: DeviceSpec[] = []) {
    this.rules = rules;
    for (const d of devices) this.devices.set(d.deviceId, d);
    this.engine = this.newEngine();
  }

  private newEngine(): AlertEngine {
    return new AlertEngine({
      rules: rulesFile(this.rules),
      clock: { now: () => this.nowMs },
      newId: () => `a${++this.ids}`,
    });
  }

  get sec(): number {
    return (this.nowMs - T0) / 1000;
  }

  /** Ticks once per second up to `sec` (inclusive), draining after every tick. */
  advanceTo(sec: number): void {
    for (let s = Math.max(this.lastTickSec + 1, Math.ceil(this.sec)); s <= sec; s++) {
      this.nowMs = T0 + s * 1000;
      this.engine.tick();
      this.lastTickSec = s;
      this.drain();
    }
    this.nowMs = T0 + sec * 1000;
  }

  drain(): void {
    const out = this.engine.drain();
    for (const a of out.changed) {
      this.changed.push(a);
      this.store.set(a.id, a);
    }
    this.notifications.push(...out.notifications);
  }

  device(id: string): DeviceSpec {
    let d = this.devices.get(id);
    if (d === undefined) {
      d = { deviceId: id };
      this.devices.set(id, d);
    }
    return d;
  }

  record(spec: DeviceSpec, r: ReadingInput): DeviceRecord {
    return {
      deviceId: spec.deviceId,
      siteId: spec.siteId ?? "hq",
      agentId: spec.agentId ?? "agent1",
      address: spec.address ?? `10.0.0.${spec.deviceId.length}`,
      family: "videoos",
      driver: "poly-videoos",
      model: spec.model ?? "G7500",
      softwareVersion: r.softwareVersion ?? spec.softwareVersion ?? "4.1.0",
      firmware: [],
      health: r.health ?? [],
      peripherals: r.peripherals ?? [],
      lines: r.lines ?? [],
      reachable: r.reachable ?? true,
      tags: [],
      firstSeen: T0,
      lastSeen: this.nowMs,
    };
  }

  readingOf(r: ReadingInput): { reading: Reading; device: DeviceRecord } {
    const spec = this.device(r.device);
    const device = this.record(spec, r);
    const reading: Reading = {
      v: 1,
      agentId: device.agentId,
      siteId: device.siteId,
      seq: ++this.seq,
      ts: this.nowMs,
      kind: "reading",
      deviceId: spec.deviceId,
      driver: "poly-videoos",
      reachable: device.reachable,
      pollLatencyMs: 12,
      identity: { address: device.address, family: "videoos", model: device.model },
      firmware: [],
      health: device.health,
      peripherals: device.peripherals,
      lines: device.lines,
      network: r.packetLossPct === undefined ? {} : { packetLossPct: r.packetLossPct },
      errors: [],
    };
    if (r.cpuPct !== undefined) reading.cpuPct = r.cpuPct;
    if (r.memPct !== undefined) reading.memPct = r.memPct;
    return { reading, device };
  }

  reading(r: ReadingInput): void {
    const { reading, device } = this.readingOf(r);
    this.engine.onReading(reading, device);
  }

  event(e: EventInput): void {
    const deviceId = "deviceId" in e ? e.deviceId : undefined;
    const spec = deviceId === undefined ? undefined : this.device(deviceId);
    const full = {
      ...e,
      v: 1,
      seq: ++this.seq,
      ts: this.nowMs,
      agentId: e.agentId ?? spec?.agentId ?? "agent1",
      siteId: e.siteId ?? spec?.siteId ?? "hq",
    } as AgentEvent;
    this.engine.onEvent(full);
  }

  /** Simulates a collector restart: a new engine restored from the store's active alerts. */
  restart(): void {
    this.drain();
    this.engine = this.newEngine();
    this.engine.restore([...this.store.values()].filter((a) => a.state !== "resolved"));
    this.drain();
  }

  /** Finds the active alert with the given key (test helper for acks). */
  find(key: AlertKey): Alert | undefined {
    return this.engine.active().find((a) => keyOf(a) === key);
  }

  apply(input: Input): void {
    if ("reading" in input) this.reading(input.reading);
    else if ("event" in input) this.event(input.event);
    else if ("agent" in input) {
      const a = input.agent;
      this.engine.onAgentState({
        agentId: a.agentId,
        siteId: a.siteId ?? "hq",
        status: a.status,
        sessionId: "s1",
        capabilities: [],
        since: this.nowMs,
        lastSeen: this.nowMs,
        ackedSeq: 0,
        ...(a.hostname === undefined ? {} : { hostname: a.hostname }),
      });
    } else if ("ack" in input) {
      const target = this.find(input.ack.alert);
      const r = this.engine.ack(
        target?.id ?? input.ack.alert,
        input.ack.by ?? "noc",
        input.ack.comment ?? "on it",
      );
      if (input.ack.expectError !== undefined) {
        expect(r).toBeInstanceOf(PolyfleetError);
        expect((r as PolyfleetError).code).toBe(input.ack.expectError);
      } else {
        expect(r).not.toBeInstanceOf(PolyfleetError);
      }
    } else if ("silences" in input) {
      const errors = this.engine.setSilences(
        input.silences.map((s, i) => ({
          id: `s${i}`,
          matchers: s.matchers,
          startsAt: T0 + (s.startsAt ?? 0) * 1000,
          endsAt: T0 + s.endsAt * 1000,
          createdBy: "noc",
          comment: "test",
        })),
      );
      expect(errors).toEqual([]);
    } else if ("windows" in input) {
      const list: MaintenanceWindow[] = input.windows.map((w, i) => ({
        id: `w${i}`,
        name: `window ${i}`,
        matchers: w.matchers ?? [],
        schedule: w.schedule,
        createdBy: "noc",
      }));
      expect(this.engine.setWindows(list)).toEqual([]);
    } else if ("baseline" in input) this.engine.setBaseline(input.baseline);
    else this.restart();
  }

  /** Notifications since the last call, in a readable form. */
  takeNotifications(): (NotificationExpect & { at: number; escalationLevel: number })[] {
    const out = this.notifications.slice(this.notifiedUpTo).map((n) => ({
      reason: n.reason,
      alerts: n.alertIds.map((id) => {
        const a = this.store.get(id);
        return a === undefined ? `?${id}` : keyOf(a);
      }),
      at: (n.ts - T0) / 1000,
      escalationLevel: n.escalationLevel,
    }));
    this.notifiedUpTo = this.notifications.length;
    return out;
  }
}

/** Runs a case: for each step, advance to `at`, apply its inputs, tick once more, then check expectations. */
export function runCase(c: AlertCase): AlertHarness {
  const h = new AlertHarness(c.rules, c.devices);
  for (const step of c.steps) {
    h.advanceTo(step.at);
    for (const input of step.inputs ?? []) h.apply(input);
    h.engine.tick();
    h.drain();
    if (step.expectActive !== undefined) {
      const active = h.engine.active();
      const got = active.map((a) => ({
        key: keyOf(a),
        state: a.state,
        severity: a.severity,
        flapping: a.flapping,
        silenced: a.silenced,
        escalationLevel: a.escalationLevel,
        labels: a.labels,
        ackBy: a.ack?.by,
      }));
      expect(got.map((g) => g.key).sort(), `${c.name} @${step.at}s: active alerts`).toEqual(
        step.expectActive.map((e) => e.key).sort(),
      );
      for (const e of step.expectActive) {
        const g = got.find((x) => x.key === e.key);
        const { labels, ...rest } = e;
        expect(g, `${c.name} @${step.at}s: ${e.key}`).toMatchObject(rest);
        if (labels !== undefined)
          expect(g?.labels, `${c.name} @${step.at}s: ${e.key} labels`).toMatchObject(labels);
      }
    }
    if (step.expectNotifications !== undefined) {
      const got = h.takeNotifications().map((n) => ({ ...n, alerts: [...n.alerts].sort() }));
      expect(got.length, `${c.name} @${step.at}s: notifications ${JSON.stringify(got)}`).toBe(
        step.expectNotifications.length,
      );
      step.expectNotifications.forEach((e, i) => {
        expect(got[i], `${c.name} @${step.at}s: notification ${i}`).toMatchObject({
          ...e,
          alerts: [...e.alerts].sort(),
        });
      });
    }
  }
  return h;
}

/** A rule in input form (for readability in cases). */
export type RuleInput = AlertRuleInput;
