import { AuditCheckpoint, AuditEntry, type AuditVerifyResult } from "@polyfleet/shared";
import type { AuditHead, StoredAuditCheckpoint } from "./audit-chain.js";
import { AuditVerifier, type AuditVerifyOptions } from "./audit-verify.js";
import { canonicalJson } from "./canonical-json.js";

/**
 * Export format (JSON lines, UTF-8, one JSON object per line, canonical JSON):
 * - one line per entry, in seq order: exactly an `AuditEntry` (no `type` key);
 * - `{"type":"checkpoint", seq, hash, ts, keyId, signature, publicKey}` right after the entry it covers;
 * - last, `{"type":"head", seq, hash, keyId, signature}`: the signed head.
 * The public key in a checkpoint line only says which key signed it; verifiers trust only the keys they are
 * given (`--public-key`).
 */
export function* formatAuditExport(
  entries: Iterable<AuditEntry>,
  checkpoints: readonly StoredAuditCheckpoint[],
  head: AuditHead | undefined,
): Generator<string> {
  const sorted = [...checkpoints].sort((a, b) => a.seq - b.seq);
  let i = 0;
  for (const e of entries) {
    yield canonicalJson(e);
    while (sorted[i] !== undefined && (sorted[i]?.seq ?? 0) <= e.seq) {
      yield canonicalJson({ type: "checkpoint", ...sorted[i] });
      i++;
    }
  }
  for (; i < sorted.length; i++) yield canonicalJson({ type: "checkpoint", ...sorted[i] });
  if (head !== undefined) yield canonicalJson({ type: "head", ...head });
}

export type AuditExportLine =
  | { kind: "entry"; entry: AuditEntry }
  | { kind: "checkpoint"; checkpoint: StoredAuditCheckpoint }
  | { kind: "head"; head: AuditHead }
  | { kind: "invalid"; reason: string };

const ENTRY_KEYS = new Set(Object.keys(AuditEntry.shape));
const HEAD_KEYS = ["type", "seq", "hash", "keyId", "signature"];

/** Parses one export line. Entry lines must hold exactly the AuditEntry fields (extra fields are refused). */
export function parseAuditExportLine(line: string): AuditExportLine {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { kind: "invalid", reason: "not JSON" };
  }
  if (v === null || typeof v !== "object" || Array.isArray(v))
    return { kind: "invalid", reason: "not an object" };
  const o = v as Record<string, unknown>;
  if (o.type === "checkpoint") {
    const { type: _t, publicKey, ...rest } = o;
    const cp = AuditCheckpoint.safeParse(rest);
    if (
      !cp.success ||
      Object.keys(rest).length !== 5 ||
      (publicKey !== undefined && typeof publicKey !== "string")
    ) {
      return { kind: "invalid", reason: "malformed checkpoint" };
    }
    return {
      kind: "checkpoint",
      checkpoint: typeof publicKey === "string" ? { ...cp.data, publicKey } : cp.data,
    };
  }
  if (o.type === "head") {
    const ok =
      Object.keys(o).length === HEAD_KEYS.length &&
      Number.isInteger(o.seq) &&
      typeof o.hash === "string" &&
      typeof o.keyId === "string" &&
      typeof o.signature === "string";
    if (!ok) return { kind: "invalid", reason: "malformed head" };
    return {
      kind: "head",
      head: {
        seq: o.seq as number,
        hash: o.hash as string,
        keyId: o.keyId as string,
        signature: o.signature as string,
      },
    };
  }
  if ("type" in o) return { kind: "invalid", reason: `unknown line type ${JSON.stringify(o.type)}` };
  const extra = Object.keys(o).filter((k) => !ENTRY_KEYS.has(k));
  if (extra.length > 0) return { kind: "invalid", reason: `entry has unknown fields: ${extra.join(", ")}` };
  const e = AuditEntry.safeParse(o);
  if (!e.success) {
    const issue = e.error.issues[0];
    return {
      kind: "invalid",
      reason: `malformed entry (${issue?.path.join(".") ?? ""}: ${issue?.message ?? ""})`,
    };
  }
  return { kind: "entry", entry: e.data };
}

/** Verifies an exported log (the whole JSONL text) offline, against the trusted keys in `opts`. */
export function verifyAuditExport(
  text: string,
  opts: Omit<AuditVerifyOptions, "checkpoints" | "head">,
): AuditVerifyResult {
  const lines = text.split("\n");
  const parsed: { lineNo: number; line: AuditExportLine }[] = [];
  const checkpoints: StoredAuditCheckpoint[] = [];
  let head: AuditHead | undefined;
  let heads = 0;
  lines.forEach((raw, idx) => {
    if (raw.trim() === "") return;
    const line = parseAuditExportLine(raw);
    parsed.push({ lineNo: idx + 1, line });
    if (line.kind === "checkpoint") checkpoints.push(line.checkpoint);
    if (line.kind === "head") {
      head = line.head;
      heads++;
    }
  });
  const v = new AuditVerifier({ ...opts, checkpoints, head });
  let position = 0;
  for (const { lineNo, line } of parsed) {
    if (line.kind === "entry") {
      position++;
      if (!v.add(line.entry)) break;
    } else if (line.kind === "invalid") {
      v.fail(position + 1, `line ${lineNo}: ${line.reason}`);
      break;
    } else if (line.kind === "head" && heads > 1) {
      v.fail(Math.min(line.head.seq, position + 1), `line ${lineNo}: more than one head line`);
      break;
    }
  }
  return v.result();
}
