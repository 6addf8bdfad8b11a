import { z } from "zod";
import { EpochMs } from "./common.js";

/** One audit record: who did what to which target, when, why, and how it ended. Never holds a secret. */
export const AuditEntry = z.object({
  seq: z.int().positive(),
  ts: EpochMs,
  /** `user:<name>`, `token:<name>`, `system:<component>`. */
  actor: z.string().min(1),
  action: z.string().regex(/^[a-z][a-zA-Z0-9_.-]*$/),
  target: z.string(),
  reason: z.string(),
  result: z.enum(["ok", "refused", "failed"]),
  details: z.record(z.string(), z.unknown()),
  /** sha256 hex of the previous entry's `hash` (64 zeros for the first). */
  prevHash: z.string().regex(/^[0-9a-f]{64}$/),
  /** sha256 hex over the canonical JSON of every other field. */
  hash: z.string().regex(/^[0-9a-f]{64}$/),
});
export type AuditEntry = z.infer<typeof AuditEntry>;

/** An ed25519-signed checkpoint over the chain head at `seq`. */
export const AuditCheckpoint = z.object({
  seq: z.int().positive(),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  ts: EpochMs,
  keyId: z.string(),
  signature: z.string().min(1),
});
export type AuditCheckpoint = z.infer<typeof AuditCheckpoint>;

export const AuditVerifyResult = z.object({
  ok: z.boolean(),
  entries: z.int().nonnegative(),
  checkpoints: z.int().nonnegative(),
  /** The first entry found bad, and why. */
  firstBad: z.object({ seq: z.int().nonnegative(), reason: z.string() }).optional(),
});
export type AuditVerifyResult = z.infer<typeof AuditVerifyResult>;
