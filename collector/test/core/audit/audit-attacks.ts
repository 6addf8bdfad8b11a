// Attack model for the audit property tests: an attacker with full write access to the stored log (entries,
// checkpoints, head row) but without the ed25519 private key.
import type { AuditEntry } from "@polyfleet/shared";
import fc from "fast-check";
import { NODE_AUDIT_CRYPTO } from "../../../src/adapters/audit/audit-key.js";
import type { AuditSnapshot } from "../../../src/adapters/audit/memory-audit-log.js";
import { GENESIS_HASH, hashAuditEntry } from "../../../src/core/audit/audit-chain.js";

export const CONTENT_FIELDS = ["ts", "actor", "action", "target", "reason", "result", "details"] as const;
export const ALL_FIELDS = [...CONTENT_FIELDS, "seq", "prevHash", "hash"] as const;
export type Field = (typeof ALL_FIELDS)[number];

/** What the attacker does with the head row after rewriting entries. */
export type HeadMove = "keep" | "rewrite" | "drop" | "checkpointSig";
/** What the attacker does with the checkpoints at or after the first rewritten position. */
export type CheckpointMove = "keep" | "drop" | "rewriteHashes";

export interface Cover {
  /** Recompute seq, prevHash and hash from the first touched position on (the chain then verifies alone). */
  rehash: boolean;
  /** Without rehash: renumber seq to the position (what a table keyed by seq forces). */
  renumber: boolean;
  head: HeadMove;
  checkpoints: CheckpointMove;
}

export type Attack =
  | { kind: "edit"; at: number; field: Field; salt: number; cover: Cover }
  | { kind: "delete"; at: number; cover: Cover }
  | { kind: "insert"; at: number; salt: number; cover: Cover }
  | { kind: "swap"; at: number; with: number; cover: Cover }
  | { kind: "truncate"; keep: number; cover: Cover };

const coverArb = (allowRehash: boolean, forceRehash: boolean): fc.Arbitrary<Cover> =>
  fc.record({
    rehash: allowRehash ? (forceRehash ? fc.constant(true) : fc.boolean()) : fc.constant(false),
    renumber: fc.boolean(),
    head: fc.constantFrom<HeadMove>("keep", "rewrite", "drop", "checkpointSig"),
    checkpoints: fc.constantFrom<CheckpointMove>("keep", "drop", "rewriteHashes"),
  });

export type AttackKind = Attack["kind"];

/**
 * One random attack of the given kinds on a log of n ≥ 1 entries (swap needs n ≥ 2). `forceRehash`: every
 * edit, deletion, insertion and swap is covered up by recomputing the chain.
 */
export function attackArb(
  n: number,
  kinds: readonly AttackKind[] = ["edit", "delete", "insert", "swap", "truncate"],
  forceRehash = false,
): fc.Arbitrary<Attack> {
  const cover = (allowRehash: boolean) => coverArb(allowRehash, forceRehash);
  const pos = fc.integer({ min: 0, max: n - 1 });
  const salt = fc.integer({ min: 1, max: 1_000_000 });
  const arbs: fc.Arbitrary<Attack>[] = [];
  if (kinds.includes("edit")) {
    arbs.push(
      fc
        .record({
          at: pos,
          salt,
          rehash: forceRehash ? fc.constant(true) : fc.boolean(),
          cover: cover(false),
        })
        .chain(({ at, salt, rehash, cover: c }) =>
          fc
            .constantFrom<Field>(...(rehash ? CONTENT_FIELDS : ALL_FIELDS))
            .map((field): Attack => ({ kind: "edit", at, field, salt, cover: { ...c, rehash } })),
        ),
    );
  }
  if (kinds.includes("delete")) {
    arbs.push(fc.record({ at: pos, cover: cover(true) }).map((a): Attack => ({ kind: "delete", ...a })));
  }
  if (kinds.includes("insert")) {
    arbs.push(
      fc
        .record({ at: fc.integer({ min: 0, max: n }), salt, cover: cover(true) })
        .map((a): Attack => ({ kind: "insert", ...a })),
    );
  }
  if (kinds.includes("truncate")) {
    arbs.push(
      fc
        .record({ keep: fc.integer({ min: 0, max: n - 1 }), cover: cover(false) })
        .map((a): Attack => ({ kind: "truncate", ...a })),
    );
  }
  if (kinds.includes("swap") && n >= 2) {
    arbs.push(
      fc
        .tuple(pos, pos, cover(true))
        .filter(([i, j]) => i !== j)
        .map(([i, j, c]): Attack => ({ kind: "swap", at: Math.min(i, j), with: Math.max(i, j), cover: c })),
    );
  }
  return fc.oneof(...arbs);
}

function flipHex(h: string, salt: number): string {
  const i = salt % h.length;
  const c = h[i] === "0" ? "1" : "0";
  return h.slice(0, i) + c + h.slice(i + 1);
}

/** A value of `field` that differs from the current one (canonically). */
function edited(e: AuditEntry, field: Field, salt: number): AuditEntry {
  const out = { ...e, details: { ...e.details } };
  switch (field) {
    case "seq":
      out.seq = e.seq + 1 + (salt % 5);
      break;
    case "ts":
      out.ts = e.ts + 1 + salt;
      break;
    case "actor":
    case "action":
    case "target":
    case "reason":
      out[field] = `${e[field]}x${salt}`;
      break;
    case "result":
      out.result = e.result === "ok" ? "failed" : "ok";
      break;
    case "details": {
      const keys = Object.keys(e.details);
      const k = keys[salt % Math.max(1, keys.length)];
      if (k !== undefined && salt % 2 === 0) delete out.details[k];
      else out.details[`tamper${salt}`] = salt;
      break;
    }
    case "prevHash":
      out.prevHash = flipHex(e.prevHash, salt);
      break;
    case "hash":
      out.hash = flipHex(e.hash, salt);
      break;
  }
  return out;
}

function forged(prev: AuditEntry | undefined, seq: number, salt: number): AuditEntry {
  const body = {
    seq,
    ts: (prev?.ts ?? 1_700_000_000_000) + 1,
    actor: "user:mallory",
    action: "device.reboot",
    target: `device:${salt}`,
    reason: "forged",
    result: "ok" as const,
    details: { salt },
    prevHash: prev?.hash ?? GENESIS_HASH,
  };
  // A forged entry always carries a correct own hash: the naive check cannot tell it from a real one.
  return { ...body, hash: hashAuditEntry(body, NODE_AUDIT_CRYPTO) };
}

function rehashFrom(entries: AuditEntry[], from: number): void {
  for (let p = from; p < entries.length; p++) {
    const prev = entries[p - 1];
    const e = entries[p];
    if (e === undefined) continue;
    const body = { ...e, seq: p + 1, prevHash: prev?.hash ?? GENESIS_HASH };
    const { hash: _h, ...rest } = body;
    entries[p] = { ...rest, hash: hashAuditEntry(rest, NODE_AUDIT_CRYPTO) };
  }
}

/** The first position (0-based) the attack touches. */
export function firstTouched(a: Attack): number {
  return a.kind === "truncate" ? a.keep : a.at;
}

/** Applies the attack to a copy of the snapshot. */
export function applyAttack(s: AuditSnapshot, a: Attack): AuditSnapshot {
  const entries = structuredClone(s.entries);
  let checkpoints = structuredClone(s.checkpoints);
  let head = s.head && { ...s.head };
  switch (a.kind) {
    case "edit": {
      const e = entries[a.at];
      if (e !== undefined) entries[a.at] = edited(e, a.field, a.salt);
      break;
    }
    case "delete":
      entries.splice(a.at, 1);
      break;
    case "insert":
      entries.splice(a.at, 0, forged(entries[a.at - 1], a.at + 1, a.salt));
      break;
    case "swap": {
      const x = entries[a.at];
      const y = entries[a.with];
      if (x !== undefined && y !== undefined) {
        entries[a.at] = y;
        entries[a.with] = x;
      }
      break;
    }
    case "truncate":
      entries.length = a.keep;
      break;
  }
  const from = firstTouched(a);
  if (a.cover.rehash) rehashFrom(entries, from);
  else if (a.cover.renumber && a.kind !== "edit") {
    for (const [p, e] of entries.entries()) e.seq = p + 1;
  }
  if (a.cover.checkpoints === "drop") checkpoints = checkpoints.filter((c) => c.seq <= from);
  if (a.cover.checkpoints === "rewriteHashes") {
    checkpoints = checkpoints.map((c) => {
      const e = entries[c.seq - 1];
      return e !== undefined && c.seq > from ? { ...c, hash: e.hash } : c;
    });
  }
  const last = entries.at(-1);
  if (head !== undefined) {
    if (a.cover.head === "drop") head = undefined;
    else if (a.cover.head === "rewrite")
      head = { ...head, seq: last?.seq ?? 0, hash: last?.hash ?? GENESIS_HASH };
    else if (a.cover.head === "checkpointSig") {
      const cp = s.checkpoints.at(-1);
      if (cp !== undefined) {
        head = {
          seq: last?.seq ?? 0,
          hash: last?.hash ?? GENESIS_HASH,
          keyId: cp.keyId,
          signature: cp.signature,
        };
      }
    }
  }
  return { entries, checkpoints, head };
}

/**
 * The wipe: no entries, no checkpoints, no head. Indistinguishable from a fresh log without an external anchor
 * (documented limitation, tested separately).
 */
export function isWipe(s: AuditSnapshot): boolean {
  return s.entries.length === 0 && s.checkpoints.length === 0 && s.head === undefined;
}

/**
 * The bounds on the seq the verifier must name, for an untouched log of n entries. Naive edits, deletions and
 * swaps are named exactly; a naive insertion is named at the forged entry or the next one (whose duplicate
 * seq exposes it); re-hashed rewrites at the first signed checkpoint or head that no longer matches.
 */
export function expectedFirstBad(a: Attack, n: number): { min: number; max: number } {
  const p = firstTouched(a);
  if (a.kind === "truncate") return { min: a.keep === 0 ? 0 : a.keep, max: a.keep + 1 };
  if (a.cover.rehash) return { min: p, max: n + 2 };
  if (a.kind === "insert") return { min: p + 1, max: p + 2 };
  // Deleting the newest entry is a truncation: a rewritten (unsigned) head is named at its own seq.
  if (a.kind === "delete" && p === n - 1) return { min: p, max: p + 1 };
  return { min: p + 1, max: p + 1 };
}
