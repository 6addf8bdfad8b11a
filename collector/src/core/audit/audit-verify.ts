import type { AuditCheckpoint, AuditEntry, AuditVerifyResult } from "@polyfleet/shared";
import {
  type AuditCrypto,
  type AuditHead,
  type AuditPublicKey,
  checkpointPayload,
  GENESIS_HASH,
  hashAuditEntry,
  headPayload,
} from "./audit-chain.js";

export interface AuditVerifyOptions {
  /** Every stored checkpoint, in any order. */
  checkpoints: readonly AuditCheckpoint[];
  /** The signed head record; required whenever the log has entries. */
  head: AuditHead | undefined;
  /** Keys whose signatures are accepted. Never take them from the log under test: an attacker writes those. */
  trustedKeys: readonly AuditPublicKey[];
  crypto: AuditCrypto;
  /**
   * A head remembered outside the log (an earlier export, a ticket, a monitoring system): the log must still
   * hold this entry, unchanged. The only defence against rolling the whole log back to an older genuine state.
   */
  anchor?: { seq: number; hash: string } | undefined;
}

/** Options of one verification run of a stored log. */
export interface AuditVerifyRunOptions {
  /** An externally remembered head the log must still contain (see AuditVerifyOptions.anchor). */
  anchor?: { seq: number; hash: string } | undefined;
}

interface Bad {
  seq: number;
  reason: string;
}

/**
 * Streaming verifier: feed entries in stored order with `add`, then read `result()`. Checks, per entry: seq is
 * the previous + 1 (no gap, duplicate or reordering), prevHash is the previous entry's hash, hash matches the
 * content, and every checkpoint at that seq is signed by a trusted key over exactly this entry's hash. At the
 * end: no checkpoint beyond the last entry, the signed head names the last entry, and the anchor (if given)
 * is present. The result names the first bad entry: the lowest seq proven not genuine.
 */
export class AuditVerifier {
  private readonly opts: AuditVerifyOptions;
  private readonly trusted: Map<string, string>;
  private readonly byseq = new Map<number, AuditCheckpoint[]>();
  private count = 0;
  private entries = 0;
  private lastHash = GENESIS_HASH;
  /** seq of the newest checkpoint verified so far (0 = none): bounds where a re-hashed edit can hide. */
  private lastCheckpointSeq = 0;
  private anchorHash: string | undefined;
  private bad: Bad | undefined;

  constructor(opts: AuditVerifyOptions) {
    this.opts = opts;
    this.trusted = new Map(opts.trustedKeys.map((k) => [k.keyId, k.publicKeyPem]));
    for (const cp of opts.checkpoints) {
      const list = this.byseq.get(cp.seq) ?? [];
      list.push(cp);
      this.byseq.set(cp.seq, list);
    }
  }

  /** Records a failure found outside the verifier (e.g. an unreadable export line); the lowest seq wins. */
  fail(seq: number, reason: string): void {
    if (this.bad === undefined || seq < this.bad.seq) this.bad = { seq, reason };
  }

  /** Feeds the next entry in stored order. Returns false once the log is known bad (later entries are only counted). */
  add(e: AuditEntry): boolean {
    this.entries++;
    if (this.bad !== undefined) return false;
    const expected = this.count + 1;
    if (e.seq !== expected) {
      this.fail(
        expected,
        `sequence broken: expected seq ${expected}, found seq ${String(e.seq)} (entry deleted, inserted or reordered)`,
      );
      return false;
    }
    if (e.prevHash !== this.lastHash) {
      this.fail(
        expected,
        expected === 1
          ? "prevHash of the first entry is not the genesis hash"
          : `prevHash does not match the hash of entry ${expected - 1} (entry inserted, deleted or reordered)`,
      );
      return false;
    }
    if (hashAuditEntry(e, this.opts.crypto) !== e.hash) {
      this.fail(expected, "hash does not match the entry's content (entry modified)");
      return false;
    }
    for (const cp of this.byseq.get(expected) ?? []) {
      const sig = this.checkSignature(cp.keyId, checkpointPayload(cp.seq, cp.hash, cp.ts), cp.signature);
      if (sig !== undefined) {
        this.fail(expected, `checkpoint at seq ${expected}: ${sig}`);
        return false;
      }
      if (cp.hash !== e.hash) {
        this.fail(
          expected,
          `hash differs from the signed checkpoint at seq ${expected}: an entry in seq ${this.lastCheckpointSeq + 1}..${expected} was altered and the chain re-hashed`,
        );
        return false;
      }
      this.lastCheckpointSeq = expected;
    }
    if (this.opts.anchor?.seq === expected) this.anchorHash = e.hash;
    this.count = expected;
    this.lastHash = e.hash;
    return true;
  }

  /** The verdict over everything fed so far. */
  result(): AuditVerifyResult {
    if (this.bad === undefined) this.finish();
    const base = { entries: this.entries, checkpoints: this.opts.checkpoints.length };
    return this.bad === undefined ? { ok: true, ...base } : { ok: false, ...base, firstBad: this.bad };
  }

  private finish(): void {
    const n = this.count;
    const beyond = [...this.byseq.keys()]
      .filter((s) => s > n || !Number.isInteger(s) || s < 1)
      .sort((a, b) => a - b);
    const firstBeyond = beyond[0];
    if (firstBeyond !== undefined) {
      const cp = this.byseq.get(firstBeyond)?.[0];
      const sig =
        cp && this.checkSignature(cp.keyId, checkpointPayload(cp.seq, cp.hash, cp.ts), cp.signature);
      this.fail(
        n + 1,
        sig === undefined
          ? `log ends at seq ${n} but a signed checkpoint covers seq ${firstBeyond} (entries deleted from the tail)`
          : `checkpoint at seq ${firstBeyond} beyond the end of the log (seq ${n}): ${sig}`,
      );
    }
    const head = this.opts.head;
    if (head === undefined) {
      if (n > 0) this.fail(n, "head record missing (removed, or the log was truncated and the head deleted)");
    } else {
      const sig = this.checkSignature(head.keyId, headPayload(head.seq, head.hash), head.signature);
      if (sig !== undefined) {
        this.fail(Math.min(head.seq, n + 1), `head record: ${sig} (head rewritten)`);
      } else if (head.seq > n) {
        this.fail(
          n + 1,
          `log ends at seq ${n} but the signed head records seq ${head.seq} (entries deleted from the tail)`,
        );
      } else if (head.seq < n) {
        this.fail(
          head.seq + 1,
          `entry beyond the signed head at seq ${head.seq} (appended without the signing key)`,
        );
      } else if (head.hash !== this.lastHash) {
        this.fail(
          n,
          `hash differs from the signed head at seq ${n}: an entry in seq ${this.lastCheckpointSeq + 1}..${n} was altered and the chain re-hashed`,
        );
      }
    }
    const anchor = this.opts.anchor;
    if (anchor !== undefined) {
      if (anchor.seq > n) {
        this.fail(
          n + 1,
          `log ends at seq ${n} but the expected head is seq ${anchor.seq} (truncated or rolled back)`,
        );
      } else if (anchor.seq >= 1 && this.anchorHash !== anchor.hash) {
        this.fail(
          anchor.seq,
          `hash differs from the expected head at seq ${anchor.seq} (log rewritten or rolled back)`,
        );
      }
    }
  }

  /** undefined when the signature is good and the key trusted, else why not. */
  private checkSignature(keyId: string, payload: string, signature: string): string | undefined {
    const pem = this.trusted.get(keyId);
    if (pem === undefined) return `signed by untrusted key ${keyId}`;
    return this.opts.crypto.verify(payload, signature, pem) ? undefined : "invalid signature";
  }
}

/** Verifies a whole log held in memory (entries in stored order). */
export function verifyAuditLog(entries: Iterable<AuditEntry>, opts: AuditVerifyOptions): AuditVerifyResult {
  const v = new AuditVerifier(opts);
  for (const e of entries) v.add(e);
  return v.result();
}
