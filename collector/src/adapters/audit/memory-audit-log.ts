import {
  type AuditCheckpoint,
  type AuditEntry,
  type AuditVerifyResult,
  type Clock,
  PolyfleetError,
  SYSTEM_CLOCK,
} from "@polyfleet/shared";
import {
  type AuditCrypto,
  type AuditHead,
  type AuditPublicKey,
  type AuditSigner,
  auditQueryLimit,
  checkHeadContinuity,
  createAuditEntry,
  type StoredAuditCheckpoint,
  signCheckpoint,
  signHead,
} from "../../core/audit/audit-chain.js";
import { formatAuditExport } from "../../core/audit/audit-export.js";
import { type AuditVerifyRunOptions, verifyAuditLog } from "../../core/audit/audit-verify.js";
import type { AuditInput, AuditLog, AuditQuery } from "../../ports/audit-log.js";
import { generateAuditKey, NODE_AUDIT_CRYPTO } from "./audit-key.js";

export interface MemoryAuditLogOptions {
  /** Signs checkpoints and the head; a fresh ephemeral key when absent. */
  signer?: AuditSigner | undefined;
  trustedKeys?: readonly AuditPublicKey[] | undefined;
  checkpointEvery?: number | undefined;
  clock?: Clock | undefined;
  crypto?: AuditCrypto | undefined;
}

/** The state of a log: what an export holds and what an attacker with write access could rewrite. */
export interface AuditSnapshot {
  entries: AuditEntry[];
  checkpoints: StoredAuditCheckpoint[];
  head: AuditHead | undefined;
}

/**
 * In-memory audit log (reference fake for tests of callers; same chain, checkpoints, head and verify as
 * `SqliteAuditLog`). `failWrites(true)` makes every append reject with POLYFLEET_ERR_AUDIT_WRITE_FAILED, to
 * test that callers fail closed.
 */
export class MemoryAuditLog implements AuditLog {
  private readonly signer: AuditSigner;
  private readonly clock: Clock;
  private readonly crypto: AuditCrypto;
  private readonly every: number;
  private readonly trusted: AuditPublicKey[];
  private state: AuditSnapshot = { entries: [], checkpoints: [], head: undefined };
  private failing = false;

  constructor(opts: MemoryAuditLogOptions = {}) {
    this.signer = opts.signer ?? generateAuditKey().signer;
    this.clock = opts.clock ?? SYSTEM_CLOCK;
    this.crypto = opts.crypto ?? NODE_AUDIT_CRYPTO;
    this.every = opts.checkpointEvery ?? 100;
    this.trusted = [
      { keyId: this.signer.keyId, publicKeyPem: this.signer.publicKeyPem },
      ...(opts.trustedKeys ?? []),
    ];
  }

  /** Makes appends and checkpoints reject (true) or work again (false). */
  failWrites(on: boolean): void {
    this.failing = on;
  }

  trustedKeys(): readonly AuditPublicKey[] {
    return this.trusted;
  }

  append(input: AuditInput): Promise<AuditEntry> {
    try {
      if (this.failing) throw new Error("simulated audit write failure");
      const { entries, checkpoints } = this.state;
      const prev = entries.at(-1);
      const refused = checkHeadContinuity(prev, this.state.head, this.trusted, this.crypto);
      if (refused !== undefined) throw new Error(`audit log refuses to append: ${refused}`);
      const ts = this.clock.now();
      const entry = createAuditEntry(prev, input, ts, this.crypto);
      const head = signHead(entry, this.signer);
      const cp = entry.seq % this.every === 0 ? signCheckpoint(entry, ts, this.signer) : undefined;
      // Commit only after everything that can throw has run: all or nothing, like the SQLite transaction.
      this.state = {
        entries: [...entries, entry],
        checkpoints: cp ? [...checkpoints, cp] : checkpoints,
        head,
      };
      return Promise.resolve(structuredClone(entry));
    } catch (err) {
      return Promise.reject(
        new PolyfleetError("POLYFLEET_ERR_AUDIT_WRITE_FAILED", undefined, { cause: err }),
      );
    }
  }

  /** Signs a checkpoint over the current head (the existing one when already checkpointed). */
  checkpoint(): Promise<AuditCheckpoint | undefined> {
    try {
      if (this.failing) throw new Error("simulated audit write failure");
      const last = this.state.entries.at(-1);
      if (last === undefined) return Promise.resolve(undefined);
      const existing = this.state.checkpoints.find((c) => c.seq === last.seq);
      const cp = existing ?? signCheckpoint(last, this.clock.now(), this.signer);
      if (existing === undefined)
        this.state = { ...this.state, checkpoints: [...this.state.checkpoints, cp] };
      return Promise.resolve({
        seq: cp.seq,
        hash: cp.hash,
        ts: cp.ts,
        keyId: cp.keyId,
        signature: cp.signature,
      });
    } catch (err) {
      return Promise.reject(
        new PolyfleetError("POLYFLEET_ERR_AUDIT_WRITE_FAILED", undefined, { cause: err }),
      );
    }
  }

  query(q: AuditQuery): Promise<AuditEntry[]> {
    const out = this.state.entries.filter(
      (e) =>
        (q.actor === undefined || e.actor === q.actor) &&
        (q.action === undefined || e.action === q.action) &&
        (q.target === undefined || e.target === q.target) &&
        (q.from === undefined || e.ts >= q.from) &&
        (q.to === undefined || e.ts <= q.to) &&
        (q.afterSeq === undefined || e.seq > q.afterSeq),
    );
    return Promise.resolve(structuredClone(out.slice(0, auditQueryLimit(q.limit))));
  }

  checkpoints(): Promise<AuditCheckpoint[]> {
    return Promise.resolve(
      this.state.checkpoints.map((c) => ({
        seq: c.seq,
        hash: c.hash,
        ts: c.ts,
        keyId: c.keyId,
        signature: c.signature,
      })),
    );
  }

  verify(opts: AuditVerifyRunOptions = {}): Promise<AuditVerifyResult> {
    const { entries, checkpoints, head } = this.state;
    return Promise.resolve(
      verifyAuditLog(entries, {
        checkpoints,
        head,
        trustedKeys: this.trusted,
        crypto: this.crypto,
        anchor: opts.anchor,
      }),
    );
  }

  head(): AuditHead | undefined {
    return this.state.head;
  }

  exportLines(): string[] {
    const { entries, checkpoints, head } = this.state;
    return [...formatAuditExport(entries, checkpoints, head)];
  }

  /** A deep copy of the stored state (what an attacker with write access sees). */
  snapshot(): AuditSnapshot {
    return structuredClone(this.state);
  }

  /** Replaces the stored state wholesale: simulates an attacker with write access (tests only). */
  overwrite(state: AuditSnapshot): void {
    this.state = structuredClone(state);
  }
}
