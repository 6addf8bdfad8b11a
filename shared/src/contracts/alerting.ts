import { z } from "zod";
import { EpochMs, Severity } from "./common.js";

/** Label matcher, Alertmanager style. */
export const Matcher = z.strictObject({
  label: z.string().min(1),
  op: z.enum(["=", "!=", "=~", "!~"]).default("="),
  value: z.string(),
});
export type Matcher = z.infer<typeof Matcher>;

const RuleBase = {
  name: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/, "lower-case letters, digits, _ . -"),
  severity: Severity,
  enabled: z.boolean().default(true),
  /** The condition must hold this long before the alert fires. */
  forSec: z.int().min(0).max(86_400).default(0),
  /** Extra labels added to every alert of the rule. */
  labels: z.record(z.string(), z.string()).default({}),
  /** Summary template; `{{deviceId}}`, `{{model}}`, `{{address}}`, `{{siteId}}`, `{{value}}`, `{{item}}` are filled in. */
  summary: z.string().optional(),
};

/** One alert rule of `rules.yaml`. Built-in rules use the same shape. */
export const AlertRule = z.discriminatedUnion("kind", [
  z.strictObject({ ...RuleBase, kind: z.literal("agentOffline") }),
  z.strictObject({ ...RuleBase, kind: z.literal("deviceUnreachable") }),
  z.strictObject({
    ...RuleBase,
    kind: z.literal("healthDown"),
    /** Health item names (substring match, e.g. `camera`, `sipserver`, `provisioning`); empty = all. */
    items: z.array(z.string()).default([]),
  }),
  z.strictObject({ ...RuleBase, kind: z.literal("peripheralMissing") }),
  z.strictObject({ ...RuleBase, kind: z.literal("lineUnregistered") }),
  z.strictObject({
    ...RuleBase,
    kind: z.literal("threshold"),
    metric: z.enum(["cpuPct", "memPct", "packetLossPct"]),
    op: z.enum([">", ">=", "<", "<="]).default(">"),
    value: z.number(),
  }),
  z.strictObject({ ...RuleBase, kind: z.literal("firmwareCompliance") }),
  z.strictObject({ ...RuleBase, kind: z.literal("outboxDrops") }),
  z.strictObject({
    ...RuleBase,
    kind: z.literal("trap"),
    /** Trap names or OIDs this rule covers; empty = every problem/resolution trap. */
    traps: z.array(z.string()).default([]),
  }),
]);
export type AlertRule = z.infer<typeof AlertRule>;
export type AlertRuleInput = z.input<typeof AlertRule>;

export const EscalationLevel = z.strictObject({
  /** Unacknowledged this long after it started firing. */
  afterSec: z.int().min(60),
  level: z.int().min(1).max(10),
  /** Notifier names to notify at this level (default: all). */
  notify: z.array(z.string()).default([]),
});

/** `rules.yaml`: rules plus the engine's grouping, flap damping and escalation settings. */
export const AlertRulesFile = z.strictObject({
  rules: z.array(AlertRule).default([]),
  /** Keep the built-in rules (they can be overridden by name). */
  builtins: z.boolean().default(true),
  grouping: z
    .strictObject({
      by: z.array(z.string()).default(["siteId", "rule"]),
      waitSec: z.int().min(0).max(3600).default(10),
      intervalSec: z.int().min(0).max(86_400).default(300),
    })
    .default({ by: ["siteId", "rule"], waitSec: 10, intervalSec: 300 }),
  flap: z
    .strictObject({
      windowSec: z.int().min(10).max(86_400).default(600),
      /** State changes within the window at which an alert counts as flapping. */
      threshold: z.int().min(2).max(100).default(4),
    })
    .default({ windowSec: 600, threshold: 4 }),
  escalation: z.array(EscalationLevel).default([]),
});
export type AlertRulesFile = z.infer<typeof AlertRulesFile>;

export const Silence = z.object({
  id: z.string(),
  matchers: z.array(Matcher).min(1),
  startsAt: EpochMs,
  endsAt: EpochMs,
  createdBy: z.string(),
  comment: z.string(),
});
export type Silence = z.infer<typeof Silence>;

export const SilenceCreate = z
  .strictObject({
    matchers: z.array(Matcher).min(1),
    startsAt: EpochMs.optional(),
    endsAt: EpochMs,
    comment: z.string().min(1),
  })
  .refine((s) => s.startsAt === undefined || s.startsAt < s.endsAt, {
    message: "startsAt must be before endsAt",
    path: ["endsAt"],
  });
export type SilenceCreate = z.infer<typeof SilenceCreate>;

/** A maintenance window: silences alerts of matching devices, and (later) gates rollouts. */
export const WindowSchedule = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("once"), start: EpochMs, end: EpochMs }),
  z.strictObject({
    type: z.literal("weekly"),
    /** 0 = Sunday … 6 = Saturday. */
    days: z.array(z.int().min(0).max(6)).min(1),
    /** Local start time `HH:MM` in `timezone`. */
    start: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/),
    durationMin: z
      .int()
      .min(1)
      .max(7 * 24 * 60),
    timezone: z.string().default("UTC"),
  }),
]);
export type WindowSchedule = z.infer<typeof WindowSchedule>;

export const MaintenanceWindow = z.object({
  id: z.string(),
  name: z.string(),
  matchers: z.array(Matcher),
  schedule: WindowSchedule,
  createdBy: z.string(),
});
export type MaintenanceWindow = z.infer<typeof MaintenanceWindow>;

export const MaintenanceWindowCreate = z.strictObject({
  name: z.string().min(1),
  matchers: z.array(Matcher).default([]),
  schedule: WindowSchedule,
});
export type MaintenanceWindowCreate = z.infer<typeof MaintenanceWindowCreate>;

export const AlertAck = z.strictObject({ comment: z.string().min(1).max(2000) });
export type AlertAck = z.infer<typeof AlertAck>;

/** One notification the engine emits: a group of alerts whose state changed. */
export const AlertNotification = z.object({
  v: z.literal(1),
  groupKey: z.string(),
  reason: z.enum(["firing", "resolved", "escalated", "acknowledged", "flapping"]),
  escalationLevel: z.int().nonnegative(),
  ts: EpochMs,
  alertIds: z.array(z.string()).min(1),
});
export type AlertNotification = z.infer<typeof AlertNotification>;
