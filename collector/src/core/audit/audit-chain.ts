import { type AuditCheckpoint, type AuditEntry, redactDeep } from "@polyfleet/shared";
import type { AuditInput } from "../../ports/audit-log.js";
import { canonicalJson, toJsonValue } from "./canonical-json.js";

/** `prevHash` of the first entry. */
export const GENESIS_HASH = "0".repeat(64);

/** Domain-separation tags inside the signed payloads, so a checkpoint signature never verifies as a head's. */
export const CHECKPOINT_DOMAIN = "polyfleet-audit-checkpoint/v1";
export const HEAD_DOMAIN = "polyfleet-audit-head/v1";

/** Hashing and signature checks, implemented outside the core (node:crypto in adapters/audit/audit-key.ts). */
export interface AuditCrypto {
  /** sha256 of the UTF-8 text, lowercase hex. */
  sha256(text: string): string;
  /** ed25519 check of `signature` (base64) over the UTF-8 `data` with the PEM (SPKI) public key. */
  verify(data: string, signature: string, publicKeyPem: string): boolean;
}

/** An ed25519 signing key (private half held by the adapter). */
export interface AuditSigner {
  /** First 16 hex digits of sha256 over the public key's SPKI DER. */
  readonly keyId: string;
  /** The public key, PEM (SPKI). */
  readonly publicKeyPem: string;
  /** ed25519 signature over the UTF-8 `data`, base64. */
  sign(data: string): string;
}

/** A public key the verifier trusts. */
export interface AuditPublicKey {
  keyId: string;
  publicKeyPem: string;
}

/**
 * The signed chain head, kept in its own row and re-signed on every append: it commits to the newest entry
 * (and through the chain to every earlier one), so entries after the last checkpoint are covered too.
 */
export interface AuditHead {
  seq: number;
  hash: string;
  keyId: string;
  signature: string;
}

/** A checkpoint as stored: the shared contract plus the public key that signed it (informational only). */
export type StoredAuditCheckpoint = AuditCheckpoint & { publicKey?: string };

/** The fields an entry's `hash` covers: every field but `hash`. */
export type AuditEntryBody = Omit<AuditEntry, "hash">;

/** sha256 hex over the canonical JSON of every field but `hash`. */
export function hashAuditEntry(body: AuditEntryBody, crypto: AuditCrypto): string {
  return crypto.sha256(
    canonicalJson({
      seq: body.seq,
      ts: body.ts,
      actor: body.actor,
      action: body.action,
      target: body.target,
      reason: body.reason,
      result: body.result,
      details: body.details,
      prevHash: body.prevHash,
    }),
  );
}

/**
 * Normalizes `details` for the log: a JSON round trip (so the hashed value is exactly what is stored and Dates
 * read as strings), then secret-named keys redacted at any depth (`redactDeep`). Throws when the value cannot
 * be JSON (bigint, cycles).
 */
export function normalizeAuditDetails(details: Record<string, unknown> | undefined): Record<string, unknown> {
  const v = redactDeep(toJsonValue(details ?? {}));
  if (v === null || typeof v !== "object" || Array.isArray(v)) return {};
  return v as Record<string, unknown>;
}

/** The next entry after `prev` (undefined for the first): seq + 1, chained to prev's hash, hashed. */
export function createAuditEntry(
  prev: { seq: number; hash: string } | undefined,
  input: AuditInput,
  ts: number,
  crypto: AuditCrypto,
): AuditEntry {
  const body: AuditEntryBody = {
    seq: (prev?.seq ?? 0) + 1,
    ts,
    actor: input.actor,
    action: input.action,
    target: input.target,
    reason: input.reason,
    result: input.result,
    details: normalizeAuditDetails(input.details),
    prevHash: prev?.hash ?? GENESIS_HASH,
  };
  return { ...body, hash: hashAuditEntry(body, crypto) };
}

/** The text a checkpoint's signature covers: (seq, hash, ts), domain-tagged, canonical JSON. */
export function checkpointPayload(seq: number, hash: string, ts: number): string {
  return canonicalJson({ domain: CHECKPOINT_DOMAIN, seq, hash, ts });
}

/** The text the head's signature covers: (seq, hash), domain-tagged, canonical JSON. */
export function headPayload(seq: number, hash: string): string {
  return canonicalJson({ domain: HEAD_DOMAIN, seq, hash });
}

/** Signs a checkpoint over the entry `at` (the current head). */
export function signCheckpoint(
  at: { seq: number; hash: string },
  ts: number,
  signer: AuditSigner,
): StoredAuditCheckpoint {
  return {
    seq: at.seq,
    hash: at.hash,
    ts,
    keyId: signer.keyId,
    signature: signer.sign(checkpointPayload(at.seq, at.hash, ts)),
    publicKey: signer.publicKeyPem,
  };
}

/** Signs the head record for the entry `at`. */
export function signHead(at: { seq: number; hash: string }, signer: AuditSigner): AuditHead {
  return {
    seq: at.seq,
    hash: at.hash,
    keyId: signer.keyId,
    signature: signer.sign(headPayload(at.seq, at.hash)),
  };
}

/**
 * Before extending the chain, the writer checks that the newest stored entry is the one the signed head names
 * (and the head's signature is good): otherwise appending would re-sign a head over a truncated or re-hashed
 * tail and hide the tampering. Returns undefined when the log may be extended, else why not.
 */
export function checkHeadContinuity(
  last: { seq: number; hash: string } | undefined,
  head: AuditHead | undefined,
  trustedKeys: readonly AuditPublicKey[],
  crypto: AuditCrypto,
): string | undefined {
  if (last === undefined && head === undefined) return undefined;
  if (head === undefined) return "the log has entries but no signed head";
  if (last === undefined) return `the signed head names seq ${head.seq} but the log is empty`;
  if (head.seq !== last.seq || head.hash !== last.hash) {
    return `the newest entry (seq ${last.seq}) is not the one the signed head names (seq ${head.seq})`;
  }
  const pem = trustedKeys.find((k) => k.keyId === head.keyId)?.publicKeyPem;
  if (pem === undefined) return `the head is signed by untrusted key ${head.keyId}`;
  if (!crypto.verify(headPayload(head.seq, head.hash), head.signature, pem))
    return "the head's signature is invalid";
  return undefined;
}

/** Default and maximum page size of audit queries. */
export const AUDIT_QUERY_DEFAULT_LIMIT = 1000;
export const AUDIT_QUERY_MAX_LIMIT = 10_000;

/** The effective limit of a query: default when absent, clamped to 1..max. */
export function auditQueryLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return AUDIT_QUERY_DEFAULT_LIMIT;
  return Math.min(AUDIT_QUERY_MAX_LIMIT, Math.max(1, Math.floor(limit)));
}
