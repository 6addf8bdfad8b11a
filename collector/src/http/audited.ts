import { PolyfleetError } from "@polyfleet/shared";
import type { ApiDeps, Principal } from "./api-deps.js";

/** What a state-changing API call records in the audit log. Never holds a secret. */
export interface AuditIntent {
  action: string;
  target: string;
  reason: string;
  details?: Record<string, unknown>;
}

/**
 * Runs a state-changing action the audited way: the audit entry is appended BEFORE the action takes effect;
 * if the append fails the action is refused with 503 POLYFLEET_ERR_AUDIT_WRITE_FAILED (fail closed). If the
 * action itself then fails, a second entry with result `failed` is appended (best effort) and the error
 * propagates.
 */
export async function performAudited<T>(
  deps: Pick<ApiDeps, "audit" | "log">,
  p: Principal,
  intent: AuditIntent,
  action: () => Promise<T>,
): Promise<T> {
  const entry = {
    actor: p.actor,
    action: intent.action,
    target: intent.target,
    reason: intent.reason,
    ...(intent.details === undefined ? {} : { details: intent.details }),
  };
  let seq: number;
  try {
    seq = (await deps.audit.append({ ...entry, result: "ok" })).seq;
  } catch (err) {
    deps.log.error(
      { err, action: intent.action, target: intent.target },
      "audit write failed; action refused",
    );
    throw new PolyfleetError("POLYFLEET_ERR_AUDIT_WRITE_FAILED", undefined, { cause: err });
  }
  try {
    return await action();
  } catch (err) {
    const code = err instanceof PolyfleetError ? err.code : "POLYFLEET_ERR_INTERNAL";
    try {
      await deps.audit.append({
        ...entry,
        result: "failed",
        details: { ...intent.details, intentSeq: seq, code },
      });
    } catch (auditErr) {
      deps.log.error({ err: auditErr, action: intent.action }, "audit write of a failed action failed");
    }
    throw err;
  }
}
