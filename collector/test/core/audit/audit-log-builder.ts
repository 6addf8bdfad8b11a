// Builds genuine audit logs for the tests, through the reference fake (same core code as SqliteAuditLog).
import type { AuditEntry } from "@polyfleet/shared";
import fc from "fast-check";
import { generateAuditKey } from "../../../src/adapters/audit/audit-key.js";
import { type AuditSnapshot, MemoryAuditLog } from "../../../src/adapters/audit/memory-audit-log.js";
import type { AuditSigner } from "../../../src/core/audit/audit-chain.js";
import type { AuditInput } from "../../../src/ports/audit-log.js";

export const KEY = generateAuditKey();
export const SIGNER: AuditSigner = KEY.signer;
export const TRUSTED = [{ keyId: SIGNER.keyId, publicKeyPem: SIGNER.publicKeyPem }];

/** A clock whose now() advances by 1000 ms per call, from a fixed start. */
export function steppingClock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => (t += 1000), setTimeout: () => ({ id: 0 }), clearTimeout: () => undefined };
}

const json: fc.Arbitrary<unknown> = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }),
);

export const auditInputArb: fc.Arbitrary<AuditInput> = fc.record({
  actor: fc.constantFrom("user:alice", "token:ci", "system:alerts", "user:bob"),
  action: fc.constantFrom("device.reboot", "alert.ack", "silence.create", "rollout.start"),
  target: fc.string({ minLength: 0, maxLength: 12 }),
  reason: fc.string({ maxLength: 20 }),
  result: fc.constantFrom("ok", "refused", "failed"),
  details: fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }), json, { maxKeys: 4 }),
});

export interface Plan {
  inputs: AuditInput[];
  checkpointEvery: number;
  /** Positions (after which append) to call checkpoint() on demand. */
  extraCheckpoints: number[];
}

export const planArb = (minEntries: number, maxEntries: number): fc.Arbitrary<Plan> =>
  fc.record({
    inputs: fc.array(auditInputArb, { minLength: minEntries, maxLength: maxEntries }),
    checkpointEvery: fc.integer({ min: 1, max: 12 }),
    extraCheckpoints: fc.array(fc.nat({ max: maxEntries }), { maxLength: 3 }),
  });

/** A genuine log built by appending the plan's inputs; heads[k] is the signed head after k appends. */
export async function buildLog(plan: Plan): Promise<{ log: MemoryAuditLog; snapshots: AuditSnapshot[] }> {
  const log = new MemoryAuditLog({
    signer: SIGNER,
    checkpointEvery: plan.checkpointEvery,
    clock: steppingClock(),
  });
  const snapshots: AuditSnapshot[] = [log.snapshot()];
  for (let i = 0; i < plan.inputs.length; i++) {
    const input = plan.inputs[i];
    if (input === undefined) continue;
    await log.append(input);
    if (plan.extraCheckpoints.includes(i)) await log.checkpoint();
    snapshots.push(log.snapshot());
  }
  return { log, snapshots };
}

export type { AuditEntry };
