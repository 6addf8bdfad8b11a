import type { AuditEntry, AuditVerifyResult } from "@polyfleet/shared";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { NODE_AUDIT_CRYPTO } from "../../../src/adapters/audit/audit-key.js";
import type { AuditSnapshot } from "../../../src/adapters/audit/memory-audit-log.js";
import { GENESIS_HASH, hashAuditEntry } from "../../../src/core/audit/audit-chain.js";
import { formatAuditExport, verifyAuditExport } from "../../../src/core/audit/audit-export.js";
import { verifyAuditLog } from "../../../src/core/audit/audit-verify.js";
import {
  type Attack,
  type AttackKind,
  applyAttack,
  attackArb,
  expectedFirstBad,
  isWipe,
} from "./audit-attacks.js";
import { buildLog, type Plan, planArb, TRUSTED } from "./audit-log-builder.js";

const RUNS = 400;
/** Property tests build hundreds of signed logs: generous time, never a performance assertion. */
const T = { timeout: 180_000 };

function verify(s: AuditSnapshot, anchor?: { seq: number; hash: string }): AuditVerifyResult {
  return verifyAuditLog(s.entries, {
    checkpoints: s.checkpoints,
    head: s.head,
    trustedKeys: TRUSTED,
    crypto: NODE_AUDIT_CRYPTO,
    anchor,
  });
}

function verifyExported(s: AuditSnapshot, anchor?: { seq: number; hash: string }): AuditVerifyResult {
  const text = [...formatAuditExport(s.entries, s.checkpoints, s.head)].join("\n");
  return verifyAuditExport(text, { trustedKeys: TRUSTED, crypto: NODE_AUDIT_CRYPTO, anchor });
}

/** The chain alone (seq, prevHash, own hash), without checkpoints or head: what a re-hashing attacker fixes up. */
function chainAloneHolds(entries: AuditEntry[]): boolean {
  let prev = GENESIS_HASH;
  return entries.every((e, i) => {
    const ok = e.seq === i + 1 && e.prevHash === prev && hashAuditEntry(e, NODE_AUDIT_CRYPTO) === e.hash;
    prev = e.hash;
    return ok;
  });
}

const attacked = (kinds: readonly AttackKind[], forceRehash = false) =>
  planArb(kinds.length === 1 && kinds[0] === "swap" ? 2 : 1, 24).chain((plan) =>
    fc.tuple(fc.constant(plan), attackArb(plan.inputs.length, kinds, forceRehash)),
  );

async function checkDetected(plan: Plan, attack: Attack): Promise<{ tampered: AuditSnapshot } | undefined> {
  const { log } = await buildLog(plan);
  const genuine = log.snapshot();
  const tampered = applyAttack(genuine, attack);
  if (isWipe(tampered)) return undefined; // the documented limitation, tested below
  const n = genuine.entries.length;
  const r = verify(tampered);
  expect(r.ok, JSON.stringify(attack)).toBe(false);
  const { min, max } = expectedFirstBad(attack, n);
  expect(r.firstBad?.seq, `${JSON.stringify(attack)} → ${JSON.stringify(r.firstBad)}`).toBeGreaterThanOrEqual(
    min,
  );
  expect(r.firstBad?.seq, `${JSON.stringify(attack)} → ${JSON.stringify(r.firstBad)}`).toBeLessThanOrEqual(
    max,
  );
  // The offline verifier of an export reaches the same verdict and names the same entry.
  const x = verifyExported(tampered);
  expect(x.ok).toBe(false);
  expect(x.firstBad).toEqual(r.firstBad);
  return { tampered };
}

describe("audit verifier: property tests (attacker with write access, without the signing key)", () => {
  it("has no false positive on an untouched log (also after export and offline verify)", T, async () => {
    await fc.assert(
      fc.asyncProperty(planArb(0, 40), async (plan) => {
        const { log } = await buildLog(plan);
        const s = log.snapshot();
        const r = verify(s);
        expect(r).toEqual({ ok: true, entries: plan.inputs.length, checkpoints: s.checkpoints.length });
        expect(verifyExported(s)).toEqual(r);
        const last = s.entries.at(-1);
        if (last) expect(verify(s, { seq: last.seq, hash: last.hash }).ok).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  for (const kind of ["edit", "delete", "insert", "swap", "truncate"] as const) {
    it(
      `detects 100% of random single-entry ${kind}s, naive or covered up, and names the first bad entry`,
      T,
      async () => {
        await fc.assert(
          fc.asyncProperty(attacked([kind]), async ([plan, attack]) => {
            await checkDetected(plan, attack);
          }),
          { numRuns: RUNS },
        );
      },
    );
  }

  it(
    "detects re-hashed rewrites although the chain alone verifies: the signed checkpoints and head catch them",
    T,
    async () => {
      await fc.assert(
        fc.asyncProperty(attacked(["edit", "delete", "insert", "swap"], true), async ([plan, attack]) => {
          const out = await checkDetected(plan, attack);
          if (out) expect(chainAloneHolds(out.tampered.entries)).toBe(true);
        }),
        { numRuns: RUNS },
      );
    },
  );

  it("names a naive edit exactly, with a reason, at any position", T, async () => {
    await fc.assert(
      fc.asyncProperty(attacked(["edit"]), async ([plan, attack]) => {
        fc.pre(attack.kind === "edit" && !attack.cover.rehash);
        const { log } = await buildLog(plan);
        const r = verify(applyAttack(log.snapshot(), attack));
        expect(r.firstBad?.seq).toBe(attack.kind === "edit" ? attack.at + 1 : -1);
        expect(r.firstBad?.reason).toMatch(/entry modified|sequence broken|prevHash/);
      }),
      { numRuns: RUNS },
    );
  });

  it(
    "with an externally remembered head (anchor), detects every attack including the wipe and a rollback",
    T,
    async () => {
      await fc.assert(
        fc.asyncProperty(
          attacked(["edit", "delete", "insert", "swap", "truncate"]),
          fc.boolean(),
          async ([plan, attack], rollback) => {
            const { log, snapshots } = await buildLog(plan);
            const genuine = log.snapshot();
            const last = genuine.entries.at(-1);
            if (last === undefined) return;
            const anchor = { seq: last.seq, hash: last.hash };
            let tampered: AuditSnapshot;
            if (rollback) {
              // Roll back to an older genuine state the attacker copied earlier, with the later checkpoints removed.
              const k = attack.kind === "truncate" ? attack.keep : 0;
              tampered = snapshots[k] ?? { entries: [], checkpoints: [], head: undefined };
            } else {
              tampered = applyAttack(genuine, attack);
            }
            expect(verify(tampered, anchor).ok).toBe(false);
            expect(verifyExported(tampered, anchor).ok).toBe(false);
          },
        ),
        { numRuns: RUNS },
      );
    },
  );
});

describe("audit verifier: the documented limits (without an anchor)", () => {
  it(
    "a rollback to an older genuine state whose signed head the attacker kept verifies as that state",
    T,
    async () => {
      await fc.assert(
        fc.asyncProperty(planArb(2, 20), fc.nat(), async (plan, pick) => {
          const { log, snapshots } = await buildLog(plan);
          const k = pick % plan.inputs.length; // an earlier state: 0..n-1 entries
          const older = snapshots[k];
          if (older === undefined) return;
          // Rolled back with the checkpoints above k removed: not detectable from the log itself.
          expect(verify(older).ok).toBe(true);
          // Rolled back but the newer checkpoints still there: detected as a truncation.
          const current = log.snapshot();
          const withNewer = { ...older, checkpoints: current.checkpoints };
          if (current.checkpoints.some((c) => c.seq > k)) {
            const r = verify(withNewer);
            expect(r.ok).toBe(false);
            expect(r.firstBad?.seq).toBe(k + 1);
          }
        }),
        { numRuns: 100 },
      );
    },
  );

  it("a wipe (no entries, checkpoints or head) verifies as an empty log", () => {
    expect(verify({ entries: [], checkpoints: [], head: undefined })).toEqual({
      ok: true,
      entries: 0,
      checkpoints: 0,
    });
  });
});
