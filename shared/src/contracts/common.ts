import { z } from "zod";

/** An identifier that is safe as one MQTT topic level: no `/`, `+`, `#`, no spaces. */
export const TopicId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, "must be 1-64 of A-Z a-z 0-9 _ . - and start alphanumeric");
export type TopicId = z.infer<typeof TopicId>;

/** A device id: stable across polls. The agent uses the 12-hex MAC when known, else `ip-<address>`. */
export const DeviceId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/, "invalid device id");
export type DeviceId = z.infer<typeof DeviceId>;

/** Milliseconds since the Unix epoch. */
export const EpochMs = z.int().nonnegative();
export type EpochMs = z.infer<typeof EpochMs>;

/** Per-agent sequence number: every reading and event in the agent's outbox gets the next one. */
export const Seq = z.int().positive();
export type Seq = z.infer<typeof Seq>;

/** 12 lowercase hex digits, no separators (the form Poly devices report). */
export const Mac = z.string().regex(/^[0-9a-f]{12}$/, "MAC must be 12 lowercase hex digits");
export type Mac = z.infer<typeof Mac>;

export const DeviceFamily = z.enum(["uc", "videoos", "snmp"]);
export type DeviceFamily = z.infer<typeof DeviceFamily>;

/** Header every message of an agent's stream carries. */
export const StreamHeader = {
  v: z.literal(1),
  agentId: TopicId,
  siteId: TopicId,
  seq: Seq,
  ts: EpochMs,
};

export const Severity = z.enum(["critical", "major", "minor", "warning", "info"]);
export type Severity = z.infer<typeof Severity>;

/** A secret in a config file: inline, or read from an environment variable or a file at start. */
export const SecretRef = z.union([
  z.string().min(1),
  z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/) }),
  z.strictObject({ file: z.string().min(1) }),
]);
export type SecretRef = z.infer<typeof SecretRef>;
