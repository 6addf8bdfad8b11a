import {
  type AgentEvent,
  type AgentRecord,
  type Alert,
  type AlertNotification,
  type AlertRule,
  type AlertRulesFile,
  type Clock,
  type DeviceRecord,
  type MaintenanceWindow,
  PolyfleetError,
  type Reading,
  type Severity,
  type Silence,
} from "@polyfleet/shared";
import { alertFingerprint } from "./fingerprint.js";
import { type CompiledMatcher, compileMatchers, matchesAll } from "./matchers.js";
import { effectiveRules } from "./rules.js";
import { problemsClearedBy } from "./trap-pairs.js";
import { isWindowActive, windowScheduleError } from "./windows.js";

/** An `outboxDrops` alert resolves after this long without a new `outbox.dropped` event from the agent. */
export const OUTBOX_QUIET_MS = 15 * 60_000;

export interface AlertEngineOptions {
  /** The parsed rules file (loadRules / rulesFile); built-ins are merged in unless `builtins: false`. */
  rules: AlertRulesFile;
  clock: Pick<Clock, "now">;
  /** A new unique alert id (e.g. crypto.randomUUID from the composition root). */
  newId: () => string;
}

/** Everything the engine produced since the last drain. */
export interface AlertOutput {
  /** Every alert transition, in order: persist each (StateStore.saveAlert) and publish it. */
  changed: Alert[];
  /**
   * Grouped notifications to hand to the notifiers. They name alerts by id: the latest version of each is in
   * `changed` of this or an earlier drain (flap damping can hold a notification for a window).
   */
  notifications: AlertNotification[];
}

type Reason = AlertNotification["reason"];
type SlotKey = string | number;

const SEVERITY_RANK: Readonly<Record<Severity, number>> = {
  info: 0,
  warning: 1,
  minor: 2,
  major: 3,
  critical: 4,
};
const REASON_ORDER: readonly Reason[] = ["firing", "flapping", "escalated", "acknowledged", "resolved"];

interface CompiledRule {
  readonly idx: number;
  readonly rule: AlertRule;
  readonly forMs: number;
  /** healthDown: lower-cased item substrings (empty = every item) and a memo of names already matched. */
  readonly items: readonly string[];
  readonly itemMemo: Map<string, boolean>;
  /** trap: names/OIDs covered (empty = all). */
  readonly traps: ReadonlySet<string>;
}

/** A device, an agent, or the source address of a trap without a device id: what conditions are about. */
interface Subject {
  readonly key: string;
  readonly kind: "device" | "agent" | "source";
  readonly id: string;
  siteId: string;
  agentId: string;
  record: DeviceRecord | undefined;
  hostname: string | undefined;
  readonly slots: (Map<SlotKey, Cond> | undefined)[];
  /** How many of its conditions flap (they hold their alerts open and the notification says `flapping`). */
  flappingConds: number;
  /** A condition of it started flapping since its last notification: the next one says `flapping`. */
  flappedSinceNotify: boolean;
  /**
   * When it was last named in a notification (escalations aside): flap damping holds its next one until
   * `flap.windowSec` after this.
   */
  lastNotifyAt: number;
}

/** One condition (rule x subject x item): pending, holding an alert, or neither. */
interface Cond {
  readonly subject: Subject;
  readonly rule: CompiledRule;
  readonly slotKey: SlotKey;
  readonly item: string | undefined;
  readonly extraLabels: Record<string, string> | undefined;
  active: boolean;
  since: number;
  /** Last time the condition was reported true (outbox drops resolve after a quiet period). */
  lastTrueAt: number;
  value: string | undefined;
  severity: Severity;
  track: Track | undefined;
  /** The reading (epoch) that last saw the condition true. */
  seen: number;
  /** Ring of the last `flap.threshold` change times (oldest at changeHead). */
  readonly changes: number[];
  changeHead: number;
  flapping: boolean;
}

/** The engine's side of one alert (resolved tracks live on only until their last notification). */
interface Track {
  alert: Alert;
  readonly cond: Cond;
  readonly group: Group;
  /** A notification naming it went out (so it is followed up: acknowledged, escalated, resolved). */
  notified: boolean;
  /** Order of its latest queued notification reason (the latest one of a subject names a merged notification). */
  seq: number;
  /** Kept open while its subject flaps although the condition is false. */
  held: boolean;
  matchSilenced: boolean;
  inhibitedBy: string | undefined;
}

/** A track taken from its group's pending map, with the reason it was queued with. */
interface Queued {
  readonly t: Track;
  readonly reason: Reason;
}

interface Group {
  readonly key: string;
  readonly pending: Map<Track, Reason>;
  readonly members: Set<Track>;
  /** When the group may send next (`waitSec` before its first notification, then `intervalSec`). */
  nextAt: number;
  lastSentAt: number | undefined;
  /** Something was queued since the last flush looked at the group. */
  fresh: boolean;
  /** When the first entry held back by flap damping becomes free (infinity: none). */
  heldUntil: number;
}

interface ActiveSilence {
  readonly silence: Silence;
  readonly matchers: readonly CompiledMatcher[];
  active: boolean;
}

interface ActiveWindow {
  readonly window: MaintenanceWindow;
  readonly matchers: readonly CompiledMatcher[];
  active: boolean;
}

/**
 * The alert engine: a pure core fed with readings, events and agent states, driven by `tick()` once a
 * second, and read with `drain()`. It keeps one condition per rule x device (x item), fires an alert when a
 * condition has held `forSec`, deduplicates by fingerprint, groups notifications, applies inhibition,
 * flap damping, silences, maintenance windows and escalation. No I/O and no timers: time comes from the
 * injected clock. Not thread-safe (single event loop).
 */
export class AlertEngine {
  private readonly opts: AlertEngineOptions;
  private readonly rules: CompiledRule[];
  private readonly readingRules: CompiledRule[];
  private readonly subjects = new Map<string, Subject>();
  private readonly pendingConds = new Set<Cond>();
  private readonly timedConds = new Set<Cond>();
  private readonly tracks = new Map<string, Track>();
  private readonly groups = new Map<string, Group>();
  private readonly flappingConds = new Set<Cond>();
  private nextPruneAt = 0;
  private changed: Alert[] = [];
  private notifications: AlertNotification[] = [];
  private silences: ActiveSilence[] = [];
  private windows: ActiveWindow[] = [];
  private silencesDirty = false;
  private nextSilenceBoundary = Number.POSITIVE_INFINITY;
  private baseline = new Map<string, ReadonlySet<string>>();
  private epoch = 0;
  private intentSeq = 0;

  constructor(opts: AlertEngineOptions) {
    this.opts = opts;
    this.rules = compileRules(opts.rules);
    this.readingRules = this.rules.filter((r) => READING_KINDS.has(r.rule.kind));
  }

  // ---------------------------------------------------------------- inputs

  /**
   * One reading of a device with its inventory record (after the inventory applied the reading). Hot path:
   * O(rules x items of the reading), allocates only when a condition changes. A reading with
   * `reachable: false` carries no health data and changes nothing (unreachability comes from the agent's
   * debounced `device.reachability` events); a reachable one clears an unreachable condition.
   */
  onReading(reading: Reading, device: DeviceRecord): void {
    const s = this.deviceSubject(reading.deviceId, device.siteId, device.agentId);
    s.record = device;
    if (!reading.reachable) return;
    const now = this.opts.clock.now();
    const epoch = ++this.epoch;
    const rules = this.readingRules;
    for (let r = 0; r < rules.length; r++) {
      const cr = rules[r] as CompiledRule;
      const rule = cr.rule;
      switch (rule.kind) {
        case "deviceUnreachable":
          this.clearSlot(s, cr, now);
          break;
        case "healthDown": {
          const health = reading.health;
          for (let i = 0; i < health.length; i++) {
            const h = health[i];
            if (h === undefined || h.state !== "down" || !healthItemMatches(cr, h.name)) continue;
            this.mark(s, cr, h.name, h.name, undefined, epoch, now, h.detail);
          }
          this.sweep(s, cr, epoch, now);
          break;
        }
        case "peripheralMissing": {
          const ps = reading.peripherals;
          for (let i = 0; i < ps.length; i++) {
            const p = ps[i];
            if (p === undefined || p.state !== "missing") continue;
            this.mark(s, cr, p.id, p.id, p, epoch, now, p.name);
          }
          this.sweep(s, cr, epoch, now);
          break;
        }
        case "lineUnregistered": {
          const lines = reading.lines;
          for (let i = 0; i < lines.length; i++) {
            const l = lines[i];
            if (l === undefined || l.registered) continue;
            this.mark(s, cr, l.line, undefined, l, epoch, now, l.state);
          }
          this.sweep(s, cr, epoch, now);
          break;
        }
        case "threshold": {
          const v = rule.metric === "packetLossPct" ? reading.network.packetLossPct : reading[rule.metric];
          if (v === undefined) break;
          const on = compare(v, rule.op, rule.value);
          const c = this.slotCond(s, cr, "");
          if (c === undefined ? !on : c.active === on) break;
          this.setCond(s, cr, "", undefined, undefined, on, now, String(round1(v)));
          break;
        }
        case "firmwareCompliance":
          this.evalFirmware(s, cr, device, now);
          break;
        default:
          break;
      }
    }
  }

  /** One agent event: reachability and lost devices, traps (problem raises, resolution clears its pair), outbox drops. */
  onEvent(event: AgentEvent): void {
    const now = this.opts.clock.now();
    switch (event.type) {
      case "device.reachability":
      case "device.lost": {
        const s = this.deviceSubject(event.deviceId, event.siteId, event.agentId);
        const down = event.type === "device.lost" || !event.reachable;
        for (const cr of this.rules) {
          if (cr.rule.kind !== "deviceUnreachable") continue;
          const c = this.slotCond(s, cr, "");
          if (!down && c === undefined) continue;
          if (c !== undefined && c.active === down) continue;
          this.setCond(s, cr, "", undefined, undefined, down, now, String(event.missedPolls));
        }
        return;
      }
      case "trap": {
        if (event.kind === "info") return;
        const s =
          event.deviceId !== undefined
            ? this.deviceSubject(event.deviceId, event.siteId, event.agentId)
            : this.subject("source", event.source, event.siteId, event.agentId);
        const names = event.kind === "problem" ? [event.name] : problemsClearedBy(event.name);
        for (const cr of this.rules) {
          if (cr.rule.kind !== "trap") continue;
          for (const name of names) {
            if (cr.traps.size > 0 && !cr.traps.has(name) && !cr.traps.has(event.trapOid)) continue;
            const on = event.kind === "problem";
            const c = this.slotCond(s, cr, name);
            if (!on && c === undefined) continue;
            if (c !== undefined && c.active === on) continue;
            const severity = maxSeverity(cr.rule.severity, event.severity);
            this.setCond(s, cr, name, name, { trapOid: event.trapOid }, on, now, undefined, severity);
          }
        }
        return;
      }
      case "outbox.dropped": {
        const s = this.subject("agent", event.agentId, event.siteId, event.agentId);
        for (const cr of this.rules) {
          if (cr.rule.kind !== "outboxDrops") continue;
          const c = this.slotCond(s, cr, "");
          if (c?.active) {
            c.lastTrueAt = now;
            c.value = String(event.totalDropped);
            continue;
          }
          const nc = this.setCond(s, cr, "", undefined, undefined, true, now, String(event.totalDropped));
          if (nc !== undefined) this.timedConds.add(nc);
        }
        return;
      }
      default:
        return;
    }
  }

  /** An agent's inventory state (birth / Will): offline raises agentOffline and inhibits its devices' unreachable alerts. */
  onAgentState(agent: AgentRecord): void {
    const now = this.opts.clock.now();
    const s = this.subject("agent", agent.agentId, agent.siteId, agent.agentId);
    s.hostname = agent.hostname;
    const offline = agent.status === "offline";
    for (const cr of this.rules) {
      if (cr.rule.kind !== "agentOffline") continue;
      const c = this.slotCond(s, cr, "");
      if (!offline && c === undefined) continue;
      if (c !== undefined && c.active === offline) continue;
      this.setCond(s, cr, "", undefined, undefined, offline, now, agent.status);
    }
    this.reinhibit(agent.agentId, now);
  }

  /**
   * Evaluates time: `forSec` durations, outbox quiet periods, the end of flapping, silence and maintenance
   * window boundaries, escalation, and due group notifications. Call once a second.
   */
  tick(): void {
    const now = this.opts.clock.now();
    for (const c of this.pendingConds) {
      if (!c.active) {
        this.pendingConds.delete(c);
        continue;
      }
      if (now - c.since >= c.rule.forMs) {
        this.pendingConds.delete(c);
        this.fire(c, now);
      }
    }
    for (const c of this.timedConds) {
      if (!c.active) this.timedConds.delete(c);
      else if (now - c.lastTrueAt >= OUTBOX_QUIET_MS) {
        this.timedConds.delete(c);
        this.setCond(c.subject, c.rule, c.slotKey, c.item, c.extraLabels, false, now, c.value);
      }
    }
    for (const c of this.flappingConds) this.checkFlapEnd(c, now);
    if (now >= this.nextPruneAt) this.prune(now);
    this.refreshSuppression(now);
    this.escalate(now);
    this.flush(now);
  }

  /**
   * Acknowledges a firing alert: state `acknowledged`, `ack: { by, at, comment }`. Returns the new alert, or a
   * PolyfleetError value: POLYFLEET_ERR_NOT_FOUND (unknown or already resolved id), POLYFLEET_ERR_ALERT_STATE
   * (already acknowledged).
   */
  ack(alertId: string, by: string, comment: string): Alert | PolyfleetError {
    const t = this.tracks.get(alertId);
    if (t === undefined || t.alert.state === "resolved") {
      return new PolyfleetError("POLYFLEET_ERR_NOT_FOUND", `alert ${alertId} is not active`);
    }
    if (t.alert.state !== "firing") {
      return new PolyfleetError("POLYFLEET_ERR_ALERT_STATE", `alert ${alertId} is already acknowledged`);
    }
    const now = this.opts.clock.now();
    this.update(t, { state: "acknowledged", ack: { by, at: now, comment } }, now);
    this.intent(t, "acknowledged", now);
    return t.alert;
  }

  /**
   * Replaces the silences. Expired ones are ignored; a silence whose regex does not compile is skipped and
   * reported in the returned list (the API validates first, so this is a safety net).
   */
  setSilences(list: readonly Silence[]): PolyfleetError[] {
    const errors: PolyfleetError[] = [];
    const out: ActiveSilence[] = [];
    for (const s of list) {
      const m = compileMatchers(s.matchers);
      if (m instanceof PolyfleetError) errors.push(m);
      else out.push({ silence: s, matchers: m, active: false });
    }
    this.silences = out;
    this.silencesDirty = true;
    this.refreshSuppression(this.opts.clock.now());
    return errors;
  }

  /** Replaces the maintenance windows: an alert matching an active window's matchers (none = all) is silenced. */
  setWindows(list: readonly MaintenanceWindow[]): PolyfleetError[] {
    const errors: PolyfleetError[] = [];
    const out: ActiveWindow[] = [];
    for (const w of list) {
      const m = compileMatchers(w.matchers);
      const bad = m instanceof PolyfleetError ? m : windowScheduleError(w.schedule);
      if (bad !== undefined) errors.push(bad);
      else if (!(m instanceof PolyfleetError)) out.push({ window: w, matchers: m, active: false });
    }
    this.windows = out;
    this.silencesDirty = true;
    this.refreshSuppression(this.opts.clock.now());
    return errors;
  }

  /**
   * Sets the firmware baseline: model -> the versions that comply. Devices of models not in the map are not
   * judged. Re-evaluates every known device at once.
   */
  setBaseline(map: Readonly<Record<string, readonly string[]>>): void {
    const b = new Map<string, ReadonlySet<string>>();
    for (const [model, versions] of Object.entries(map)) b.set(model, new Set(versions));
    this.baseline = b;
    const now = this.opts.clock.now();
    for (const s of this.subjects.values()) {
      if (s.record === undefined || !s.record.reachable) continue;
      for (const cr of this.readingRules) {
        if (cr.rule.kind === "firmwareCompliance") this.evalFirmware(s, cr, s.record, now);
      }
    }
  }

  /**
   * After a restart: takes back the active (firing / acknowledged) alerts from the store, so a condition
   * still true keeps its alert (no duplicate, no repeated notification) and one that has cleared resolves.
   * Alerts of rules that no longer exist are resolved at once (a `changed` entry, no notification). Call
   * before the first input.
   */
  restore(alerts: readonly Alert[]): void {
    const now = this.opts.clock.now();
    for (const a of alerts) {
      if (a.state === "resolved" || this.tracks.has(a.id)) continue;
      const cr = this.rules.find((r) => r.rule.name === a.rule);
      const siteId = a.siteId ?? a.labels.siteId ?? "";
      const agentId = a.agentId ?? a.labels.agentId ?? "";
      let s: Subject | undefined;
      if (a.deviceId !== undefined) s = this.deviceSubject(a.deviceId, siteId, agentId);
      else if (a.labels.source !== undefined) s = this.subject("source", a.labels.source, siteId, agentId);
      else if (agentId !== "") s = this.subject("agent", agentId, siteId, agentId);
      if (cr === undefined || s === undefined) {
        this.changed.push({ ...a, state: "resolved", updatedAt: now, endsAt: now });
        continue;
      }
      const item = a.labels.item;
      const slotKey: SlotKey = cr.rule.kind === "lineUnregistered" ? Number(item) : (item ?? "");
      const existing = this.slotCond(s, cr, slotKey);
      if (existing?.track !== undefined) {
        // Two stored alerts for one condition (should not happen): keep the first, resolve the other.
        this.changed.push({ ...a, state: "resolved", updatedAt: now, endsAt: now });
        continue;
      }
      const c = existing ?? this.newCond(s, cr, slotKey, item, undefined, a.startsAt, a.severity);
      c.active = true;
      c.since = Math.min(c.since, a.startsAt);
      c.lastTrueAt = now;
      this.pendingConds.delete(c);
      if (cr.rule.kind === "outboxDrops") this.timedConds.add(c);
      const group = this.groupFor(a.labels, now);
      const t: Track = {
        alert: a,
        cond: c,
        group,
        notified: !a.silenced,
        seq: 0,
        held: false,
        matchSilenced: a.silenced && a.labels.inhibitedBy === undefined,
        inhibitedBy: a.labels.inhibitedBy,
      };
      c.track = t;
      group.members.add(t);
      this.tracks.set(a.id, t);
      if (a.flapping && !c.flapping) {
        // Flapping when stored: keep damping until a quiet window has passed.
        c.flapping = true;
        s.flappingConds++;
        s.lastNotifyAt = now;
        this.flappingConds.add(c);
      }
    }
    this.silencesDirty = true;
  }

  /** The active (firing or acknowledged) alerts, latest version of each. */
  active(): Alert[] {
    const out: Alert[] = [];
    for (const t of this.tracks.values()) if (t.alert.state !== "resolved") out.push(t.alert);
    return out;
  }

  /** Takes every alert transition and notification produced since the last call. */
  drain(): AlertOutput {
    const out = { changed: this.changed, notifications: this.notifications };
    if (this.changed.length > 0) this.changed = [];
    if (this.notifications.length > 0) this.notifications = [];
    return out;
  }

  // ---------------------------------------------------------------- conditions

  private subject(kind: Subject["kind"], id: string, siteId: string, agentId: string): Subject {
    const key = kind === "device" ? id : `${kind}\u001f${id}`;
    let s = this.subjects.get(key);
    if (s === undefined) {
      s = {
        key,
        kind,
        id,
        siteId,
        agentId,
        record: undefined,
        hostname: undefined,
        slots: new Array(this.rules.length).fill(undefined),
        flappingConds: 0,
        flappedSinceNotify: false,
        lastNotifyAt: Number.NEGATIVE_INFINITY,
      };
      this.subjects.set(key, s);
    } else if (s.siteId !== siteId || s.agentId !== agentId) {
      if (siteId !== "") s.siteId = siteId;
      if (agentId !== "") s.agentId = agentId;
    }
    return s;
  }

  private deviceSubject(deviceId: string, siteId: string, agentId: string): Subject {
    const s = this.subjects.get(deviceId);
    if (s !== undefined && s.siteId === siteId && s.agentId === agentId) return s;
    return this.subject("device", deviceId, siteId, agentId);
  }

  private slotCond(s: Subject, cr: CompiledRule, key: SlotKey): Cond | undefined {
    return s.slots[cr.idx]?.get(key);
  }

  /** Marks a condition true for this reading (epoch) without allocating when it already is. */
  private mark(
    s: Subject,
    cr: CompiledRule,
    key: SlotKey,
    item: string | undefined,
    src: { name?: string; category?: string; line?: number; address?: string } | undefined,
    epoch: number,
    now: number,
    value: string | undefined,
  ): void {
    let c = this.slotCond(s, cr, key);
    if (c === undefined || !c.active) {
      c = this.setCond(s, cr, key, item ?? String(key), extraLabelsOf(cr, src), true, now, value);
    }
    if (c !== undefined) c.seen = epoch;
  }

  /** Clears every condition of the rule on the subject not marked in this reading. */
  private sweep(s: Subject, cr: CompiledRule, epoch: number, now: number): void {
    const slot = s.slots[cr.idx];
    if (slot === undefined || slot.size === 0) return;
    for (const c of slot.values()) {
      if (c.active && c.seen !== epoch) {
        this.setCond(s, cr, c.slotKey, c.item, c.extraLabels, false, now, c.value);
      }
    }
  }

  private clearSlot(s: Subject, cr: CompiledRule, now: number): void {
    const c = this.slotCond(s, cr, "");
    if (c?.active) this.setCond(s, cr, "", undefined, undefined, false, now, c.value);
  }

  private evalFirmware(s: Subject, cr: CompiledRule, device: DeviceRecord, now: number): void {
    const model = device.model;
    const allowed = model === undefined ? undefined : this.baseline.get(model);
    const version = device.softwareVersion;
    const on = allowed !== undefined && version !== undefined && !allowed.has(version);
    const c = this.slotCond(s, cr, "");
    if (c === undefined ? !on : c.active === on) return;
    this.setCond(s, cr, "", undefined, undefined, on, now, version);
  }

  private newCond(
    s: Subject,
    cr: CompiledRule,
    key: SlotKey,
    item: string | undefined,
    extra: Record<string, string> | undefined,
    now: number,
    severity: Severity,
  ): Cond {
    const c: Cond = {
      subject: s,
      rule: cr,
      slotKey: key,
      item,
      extraLabels: extra,
      active: false,
      since: now,
      lastTrueAt: now,
      value: undefined,
      severity,
      track: undefined,
      seen: 0,
      changes: new Array<number>(this.opts.rules.flap.threshold).fill(Number.NEGATIVE_INFINITY),
      changeHead: 0,
      flapping: false,
    };
    let slot = s.slots[cr.idx];
    if (slot === undefined) {
      slot = new Map();
      s.slots[cr.idx] = slot;
    }
    slot.set(key, c);
    return c;
  }

  /** Sets a condition's truth; on a change: flap bookkeeping, pending / fire / resolve. */
  private setCond(
    s: Subject,
    cr: CompiledRule,
    key: SlotKey,
    item: string | undefined,
    extra: Record<string, string> | undefined,
    on: boolean,
    now: number,
    value: string | undefined,
    severity: Severity = cr.rule.severity,
  ): Cond | undefined {
    const found = this.slotCond(s, cr, key);
    if (found === undefined && !on) return undefined;
    const c = found ?? this.newCond(s, cr, key, item, extra, now, severity);
    c.value = value;
    if (on) c.lastTrueAt = now;
    if (c.active === on) return c;
    c.active = on;
    // Flapping is alert churn: a pending condition that never fired does not count.
    if (c.track !== undefined) this.recordChange(c, now);
    if (on) {
      c.since = now;
      c.severity = severity;
      if (c.track !== undefined) {
        // Still open (held while flapping): the condition came back, nothing new.
        c.track.held = false;
      } else if (cr.forMs === 0) this.fire(c, now);
      else this.pendingConds.add(c);
    } else {
      this.pendingConds.delete(c);
      const t = c.track;
      if (t !== undefined) {
        if (c.flapping) t.held = true;
        else this.resolve(t, now);
      }
    }
    return c;
  }

  // ---------------------------------------------------------------- alert lifecycle

  private fire(c: Cond, now: number): void {
    this.recordChange(c, now);
    const s = c.subject;
    const rule = c.rule.rule;
    const labels: Record<string, string> = { ...rule.labels, rule: rule.name, severity: c.severity };
    if (s.siteId !== "") labels.siteId = s.siteId;
    if (s.agentId !== "") labels.agentId = s.agentId;
    if (s.kind === "device") labels.deviceId = s.id;
    if (s.kind === "source") labels.source = s.id;
    const rec = s.record;
    if (rec?.model !== undefined) labels.model = rec.model;
    if (rec !== undefined && rec.address !== "") labels.address = rec.address;
    else if (s.kind === "source") labels.address = s.id;
    if (s.hostname !== undefined) labels.hostname = s.hostname;
    if (c.item !== undefined) labels.item = c.item;
    if (rule.kind === "threshold") labels.metric = rule.metric;
    if (c.extraLabels !== undefined) Object.assign(labels, c.extraLabels);
    const alert: Alert = {
      v: 1,
      id: this.opts.newId(),
      fingerprint: alertFingerprint(labels),
      rule: rule.name,
      severity: c.severity,
      state: "firing",
      summary: renderSummary(rule, labels, c.value),
      labels,
      startsAt: now,
      updatedAt: now,
      flapping: c.flapping,
      escalationLevel: 0,
      silenced: false,
    };
    if (s.siteId !== "") alert.siteId = s.siteId;
    if (s.agentId !== "") alert.agentId = s.agentId;
    if (s.kind === "device") alert.deviceId = s.id;
    const t: Track = {
      alert,
      cond: c,
      group: this.groupFor(labels, now),
      notified: false,
      seq: 0,
      held: false,
      matchSilenced: this.matchSilenced(labels),
      inhibitedBy: this.inhibitorOf(c),
    };
    t.alert = withSuppression(alert, t);
    c.track = t;
    t.group.members.add(t);
    this.tracks.set(alert.id, t);
    this.changed.push(t.alert);
    this.intent(t, "firing", now);
    // An agent going offline inhibits its devices' unreachable alerts (now that its alert exists).
    if (rule.kind === "agentOffline") this.reinhibit(s.agentId, now);
  }

  private resolve(t: Track, now: number): void {
    const c = t.cond;
    c.track = undefined;
    t.held = false;
    this.tracks.delete(t.alert.id);
    t.group.members.delete(t);
    this.update(t, { state: "resolved", endsAt: now, flapping: c.flapping }, now);
    this.intent(t, "resolved", now);
    if (c.rule.rule.kind === "agentOffline") this.reinhibit(c.subject.agentId, now);
  }

  private update(t: Track, patch: Partial<Alert>, now: number): void {
    t.alert = { ...t.alert, ...patch, updatedAt: now };
    this.changed.push(t.alert);
  }

  // ---------------------------------------------------------------- flap damping

  private recordChange(c: Cond, now: number): void {
    const ring = c.changes;
    ring[c.changeHead] = now;
    c.changeHead = (c.changeHead + 1) % ring.length;
    // The oldest of the last `threshold` changes is now at changeHead.
    const oldest = ring[c.changeHead] ?? Number.NEGATIVE_INFINITY;
    if (c.flapping || now - oldest >= this.opts.rules.flap.windowSec * 1000) return;
    c.flapping = true;
    c.subject.flappingConds++;
    c.subject.flappedSinceNotify = true;
    this.flappingConds.add(c);
    const t = c.track;
    if (t !== undefined && !t.alert.flapping) {
      this.update(t, { flapping: true }, now);
      this.intent(t, "flapping", now);
    }
  }

  /**
   * A condition stops flapping when fewer than `threshold` of its changes fall in the window and a window
   * has passed since its subject's last notification; an alert held open meanwhile then resolves.
   */
  private checkFlapEnd(c: Cond, now: number): void {
    const windowMs = this.opts.rules.flap.windowSec * 1000;
    const oldest = c.changes[c.changeHead] ?? Number.NEGATIVE_INFINITY;
    if (now - oldest < windowMs || now - c.subject.lastNotifyAt < windowMs) return;
    c.flapping = false;
    c.subject.flappingConds--;
    this.flappingConds.delete(c);
    const t = c.track;
    if (t === undefined) return;
    if (t.held) this.resolve(t, now);
    else if (t.alert.flapping) this.update(t, { flapping: false }, now);
  }

  /** Drops idle conditions (false, no alert, no change within the flap window) once a minute. */
  private prune(now: number): void {
    this.nextPruneAt = now + 60_000;
    const windowMs = this.opts.rules.flap.windowSec * 1000;
    for (const s of this.subjects.values()) {
      for (const slot of s.slots) {
        if (slot === undefined) continue;
        for (const c of slot.values()) {
          if (c.active || c.track !== undefined || c.flapping) continue;
          const newest = c.changes[(c.changeHead + c.changes.length - 1) % c.changes.length] ?? 0;
          if (now - newest >= windowMs) slot.delete(c.slotKey);
        }
      }
    }
  }

  // ---------------------------------------------------------------- suppression

  private matchSilenced(labels: Readonly<Record<string, string>>): boolean {
    for (const s of this.silences) if (s.active && matchesAll(s.matchers, labels)) return true;
    for (const w of this.windows) if (w.active && matchesAll(w.matchers, labels)) return true;
    return false;
  }

  /** The inhibiting alert's id for a device-unreachable condition whose agent is offline. */
  private inhibitorOf(c: Cond): string | undefined {
    if (c.rule.rule.kind !== "deviceUnreachable") return undefined;
    const agent = this.subjects.get(`agent\u001f${c.subject.agentId}`);
    if (agent === undefined) return undefined;
    for (const slot of agent.slots) {
      if (slot === undefined) continue;
      const ac = slot.get("");
      if (ac?.rule.rule.kind === "agentOffline" && ac.active && ac.track !== undefined)
        return ac.track.alert.id;
    }
    return undefined;
  }

  private reinhibit(agentId: string, now: number): void {
    for (const t of this.tracks.values()) {
      const c = t.cond;
      if (c.rule.rule.kind !== "deviceUnreachable" || c.subject.agentId !== agentId) continue;
      const by = this.inhibitorOf(c);
      if (by !== t.inhibitedBy) {
        t.inhibitedBy = by;
        this.applySuppression(t, now);
      }
    }
  }

  private refreshSuppression(now: number): void {
    let dirty = this.silencesDirty || now >= this.nextSilenceBoundary;
    for (const w of this.windows) {
      const a = isWindowActive(w.window.schedule, now);
      if (a !== w.active) {
        w.active = a;
        dirty = true;
      }
    }
    if (!dirty) return;
    this.silencesDirty = false;
    let next = Number.POSITIVE_INFINITY;
    for (const s of this.silences) {
      const { startsAt, endsAt } = s.silence;
      s.active = startsAt <= now && now < endsAt;
      if (startsAt > now) next = Math.min(next, startsAt);
      else if (endsAt > now) next = Math.min(next, endsAt);
    }
    this.nextSilenceBoundary = next;
    for (const t of this.tracks.values()) {
      const m = this.matchSilenced(t.alert.labels);
      if (m !== t.matchSilenced) {
        t.matchSilenced = m;
        this.applySuppression(t, now);
      }
    }
  }

  private applySuppression(t: Track, now: number): void {
    const next = withSuppression(t.alert, t);
    if (next === t.alert) return;
    const wasSilenced = t.alert.silenced;
    t.alert = { ...next, updatedAt: now };
    this.changed.push(t.alert);
    // Unsilenced and never announced: announce it now.
    if (wasSilenced && !t.alert.silenced && !t.notified && t.alert.state !== "resolved") {
      this.intent(t, "firing", now);
    }
  }

  // ---------------------------------------------------------------- escalation and notification

  private escalate(now: number): void {
    const levels = this.opts.rules.escalation;
    if (levels.length === 0) return;
    for (const t of this.tracks.values()) {
      const a = t.alert;
      if (a.state !== "firing") continue;
      let target = a.escalationLevel;
      for (const l of levels) {
        if (now - a.startsAt >= l.afterSec * 1000 && l.level > target) target = l.level;
      }
      if (target > a.escalationLevel) {
        this.update(t, { escalationLevel: target }, now);
        this.intent(t, "escalated", now);
      }
    }
  }

  private groupFor(labels: Readonly<Record<string, string>>, now: number): Group {
    let key = "{";
    const by = this.opts.rules.grouping.by;
    for (let i = 0; i < by.length; i++) {
      const name = by[i] as string;
      key += `${i === 0 ? "" : ","}${name}=${JSON.stringify(labels[name] ?? "")}`;
    }
    key += "}";
    let g = this.groups.get(key);
    if (g === undefined) {
      g = {
        key,
        pending: new Map(),
        members: new Set(),
        nextAt: now + this.opts.rules.grouping.waitSec * 1000,
        lastSentAt: undefined,
        fresh: false,
        heldUntil: Number.POSITIVE_INFINITY,
      };
      this.groups.set(key, g);
    }
    return g;
  }

  /** Queues a notification reason for an alert in its group (what is never announced is never followed up). */
  private intent(t: Track, reason: Reason, now: number): void {
    const g = t.group;
    const before = g.pending.get(t);
    if (reason === "firing") {
      if (t.notified) return;
      g.pending.set(t, "firing");
    } else if (reason === "resolved" && before === "firing" && !t.notified) {
      g.pending.delete(t);
    } else if (before === "firing") {
      // The firing notification is still to go: it carries the latest state anyway.
    } else if (t.notified) {
      g.pending.set(t, reason);
    } else {
      return;
    }
    t.seq = ++this.intentSeq;
    g.fresh = true;
    if (g.lastSentAt === undefined && g.pending.size > 0 && g.nextAt < now) {
      g.nextAt = now + this.opts.rules.grouping.waitSec * 1000;
    }
    if (reason === "escalated") g.nextAt = Math.min(g.nextAt, now);
  }

  /**
   * Sends the due notifications. Escalations go out at once. Everything else is damped per subject: a subject
   * is named in at most one notification per flap window, counted from its previous one. Its first change
   * goes out with its group as usual; what changes within the window waits and then goes out merged into one
   * notification, under the group and reason of its latest change (`flapping` if a condition of the subject
   * started flapping meanwhile or still flaps), taking along the subject's changes queued in other groups.
   */
  private flush(now: number): void {
    const windowMs = this.opts.rules.flap.windowSec * 1000;
    /** Subjects free to be notified now, with their due entries; escalations by group. */
    let bySubject: Map<Subject, Queued[]> | undefined;
    let escalated: Map<Group, Track[]> | undefined;
    const scanned = new Set<Group>();
    for (const g of this.groups.values()) {
      if (g.pending.size === 0) {
        if (g.members.size === 0) this.groups.delete(g.key);
        continue;
      }
      // Due by the grouping schedule, and either something new came or a held entry is free now.
      if (now < g.nextAt || (!g.fresh && now < g.heldUntil)) continue;
      scanned.add(g);
      g.fresh = false;
      let deferredUntil = Number.POSITIVE_INFINITY;
      for (const [t, reason] of g.pending) {
        if (t.alert.silenced) {
          g.pending.delete(t);
          continue;
        }
        if (reason === "escalated") {
          g.pending.delete(t);
          escalated ??= new Map();
          pushTo(escalated, g, t);
          continue;
        }
        const s = t.cond.subject;
        if (now - s.lastNotifyAt < windowMs) {
          deferredUntil = Math.min(deferredUntil, s.lastNotifyAt + windowMs);
          continue;
        }
        g.pending.delete(t);
        bySubject ??= new Map();
        pushTo(bySubject, s, { t, reason });
      }
      g.heldUntil = deferredUntil;
    }
    if (bySubject === undefined && escalated === undefined) return;
    if (bySubject !== undefined) {
      // A subject notified now takes along its changes queued in groups that are not due yet.
      for (const g of this.groups.values()) {
        if (scanned.has(g)) continue;
        for (const [t, reason] of g.pending) {
          const list = bySubject.get(t.cond.subject);
          if (list === undefined || reason === "escalated" || t.alert.silenced) continue;
          g.pending.delete(t);
          list.push({ t, reason });
        }
      }
    }
    // (group, reason) -> tracks: one notification each.
    const out = new Map<Group, Map<Reason, Track[]>>();
    if (escalated !== undefined) {
      for (const [g, list] of escalated) out.set(g, new Map([["escalated", list]]));
    }
    if (bySubject !== undefined) {
      for (const [s, list] of bySubject) {
        let latest = list[0] as Queued;
        for (const q of list) if (q.t.seq >= latest.t.seq) latest = q;
        const reason: Reason = s.flappingConds > 0 || s.flappedSinceNotify ? "flapping" : latest.reason;
        s.lastNotifyAt = now;
        s.flappedSinceNotify = false;
        let byReason = out.get(latest.t.group);
        if (byReason === undefined) {
          byReason = new Map();
          out.set(latest.t.group, byReason);
        }
        for (const q of list) {
          q.t.notified = true;
          pushTo(byReason, reason, q.t);
        }
      }
    }
    for (const [g, byReason] of out) {
      for (const reason of REASON_ORDER) {
        const list = byReason.get(reason);
        if (list === undefined) continue;
        let level = 0;
        for (const t of list) level = Math.max(level, t.alert.escalationLevel);
        this.notifications.push({
          v: 1,
          groupKey: g.key,
          reason,
          escalationLevel: level,
          ts: now,
          alertIds: list.map((t) => t.alert.id),
        });
      }
      g.lastSentAt = now;
      g.nextAt = now + this.opts.rules.grouping.intervalSec * 1000;
    }
    for (const g of this.groups.values()) {
      if (g.pending.size === 0 && g.members.size === 0) this.groups.delete(g.key);
    }
  }
}

// ------------------------------------------------------------------ helpers

function pushTo<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k);
  if (list === undefined) m.set(k, [v]);
  else list.push(v);
}

const READING_KINDS: ReadonlySet<AlertRule["kind"]> = new Set([
  "deviceUnreachable",
  "healthDown",
  "peripheralMissing",
  "lineUnregistered",
  "threshold",
  "firmwareCompliance",
]);

function compileRules(file: AlertRulesFile): CompiledRule[] {
  return effectiveRules(file)
    .filter((rule) => rule.enabled)
    .map((rule, idx) => ({
      idx,
      rule,
      forMs: rule.forSec * 1000,
      items: rule.kind === "healthDown" ? rule.items.map((i) => i.toLowerCase()) : [],
      itemMemo: new Map(),
      traps: new Set(rule.kind === "trap" ? rule.traps : []),
    }));
}

function healthItemMatches(cr: CompiledRule, name: string): boolean {
  if (cr.items.length === 0) return true;
  let m = cr.itemMemo.get(name);
  if (m === undefined) {
    const lc = name.toLowerCase();
    m = cr.items.some((i) => lc.includes(i));
    if (cr.itemMemo.size < 10_000) cr.itemMemo.set(name, m);
  }
  return m;
}

function extraLabelsOf(
  cr: CompiledRule,
  src: { name?: string; category?: string; line?: number; address?: string } | undefined,
): Record<string, string> | undefined {
  if (src === undefined) return undefined;
  if (cr.rule.kind === "peripheralMissing") {
    return { peripheral: src.name ?? "", category: src.category ?? "" };
  }
  if (cr.rule.kind === "lineUnregistered") return { lineAddress: src.address ?? "" };
  return undefined;
}

function compare(v: number, op: ">" | ">=" | "<" | "<=", limit: number): boolean {
  switch (op) {
    case ">":
      return v > limit;
    case ">=":
      return v >= limit;
    case "<":
      return v < limit;
    case "<=":
      return v <= limit;
  }
}

function round1(v: number): number {
  return Math.round(v * 10) / 10;
}

function maxSeverity(a: Severity, b: Severity): Severity {
  return SEVERITY_RANK[a] >= SEVERITY_RANK[b] ? a : b;
}

function withSuppression(a: Alert, t: Track): Alert {
  const silenced = t.matchSilenced || t.inhibitedBy !== undefined;
  const labelNow = a.labels.inhibitedBy;
  if (a.silenced === silenced && labelNow === t.inhibitedBy) return a;
  const labels = { ...a.labels };
  if (t.inhibitedBy === undefined) delete labels.inhibitedBy;
  else labels.inhibitedBy = t.inhibitedBy;
  return { ...a, silenced, labels };
}

const DEFAULT_SUMMARY: Readonly<Record<AlertRule["kind"], string>> = {
  agentOffline: "Agent {{agentId}} ({{hostname}}) at site {{siteId}} is offline",
  deviceUnreachable: "{{model}} {{deviceId}} at {{address}} is unreachable",
  healthDown: "{{item}} is down on {{model}} {{deviceId}} at {{address}}",
  peripheralMissing:
    "Peripheral {{peripheral}} ({{category}}) is missing on {{model}} {{deviceId}} at {{address}}",
  lineUnregistered:
    "SIP line {{item}} ({{lineAddress}}) is unregistered on {{model}} {{deviceId}} at {{address}}",
  threshold: "{{metric}} is {{value}} ({{op}} {{threshold}}) on {{model}} {{deviceId}} at {{address}}",
  firmwareCompliance:
    "{{model}} {{deviceId}} at {{address}} runs {{value}}, which is not in the firmware baseline",
  outboxDrops:
    "Agent {{agentId}} at site {{siteId}} dropped telemetry from its outbox ({{value}} entries in total)",
  trap: "Trap {{item}} from {{model}} {{deviceId}} at {{address}}",
};

function renderSummary(
  rule: AlertRule,
  labels: Readonly<Record<string, string>>,
  value: string | undefined,
): string {
  const template = rule.summary ?? DEFAULT_SUMMARY[rule.kind];
  return template.replace(/\{\{\s*([A-Za-z]+)\s*\}\}/g, (_m, name: string) => {
    if (name === "value") return value ?? "unknown";
    if (rule.kind === "threshold" && name === "op") return rule.op;
    if (rule.kind === "threshold" && name === "threshold") return String(rule.value);
    return labels[name] ?? "unknown";
  });
}
