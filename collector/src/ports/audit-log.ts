import type { AuditCheckpoint, AuditEntry, AuditVerifyResult } from "@polyfleet/shared";

export type AuditInput = Pick<AuditEntry, "actor" | "action" | "target" | "reason" | "result"> & {
  details?: Record<string, unknown>;
};

export interface AuditQuery {
  actor?: string;
  action?: string;
  target?: string;
  from?: number;
  to?: number;
  afterSeq?: number;
  limit?: number;
}

/**
 * Append-only, hash-chained audit log with periodic ed25519-signed checkpoints (port). `append` rejects when
 * the write fails: callers refuse the privileged action (fail closed). Details never hold secrets (the adapter
 * redacts secret-named keys as a last line of defence).
 */
export interface AuditLog {
  append(entry: AuditInput): Promise<AuditEntry>;
  query(q: AuditQuery): Promise<AuditEntry[]>;
  /** Checks chain, sequence and checkpoints; names the first bad entry. */
  verify(): Promise<AuditVerifyResult>;
  checkpoints(): Promise<AuditCheckpoint[]>;
}
