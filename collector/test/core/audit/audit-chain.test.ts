import { describe, expect, it } from "vitest";
import { generateAuditKey, NODE_AUDIT_CRYPTO } from "../../../src/adapters/audit/audit-key.js";
import { MemoryAuditLog } from "../../../src/adapters/audit/memory-audit-log.js";
import {
  checkpointPayload,
  createAuditEntry,
  GENESIS_HASH,
  hashAuditEntry,
  headPayload,
} from "../../../src/core/audit/audit-chain.js";
import { parseAuditExportLine, verifyAuditExport } from "../../../src/core/audit/audit-export.js";
import { verifyAuditLog } from "../../../src/core/audit/audit-verify.js";
import { canonicalJson } from "../../../src/core/audit/canonical-json.js";
import { SIGNER, steppingClock, TRUSTED } from "./audit-log-builder.js";

const input = {
  actor: "user:alice",
  action: "device.reboot",
  target: "device:d1",
  reason: "frozen",
  result: "ok" as const,
};

describe("canonicalJson", () => {
  it("is independent of key order and drops undefined keys", () => {
    expect(canonicalJson({ b: 1, a: { d: [1, "x"], c: null }, u: undefined })).toBe(
      '{"a":{"c":null,"d":[1,"x"]},"b":1}',
    );
    expect(canonicalJson({ a: { c: null, d: [1, "x"] }, b: 1 })).toBe(
      canonicalJson({ b: 1, a: { d: [1, "x"], c: null } }),
    );
  });
  it("refuses values JSON cannot hold", () => {
    expect(() => canonicalJson(Number.NaN)).toThrow();
    expect(() => canonicalJson(10n)).toThrow();
  });
});

describe("createAuditEntry", () => {
  it("chains from the genesis hash and hashes every field but hash", () => {
    const e = createAuditEntry(undefined, { ...input, details: { n: 1 } }, 1000, NODE_AUDIT_CRYPTO);
    expect(e.seq).toBe(1);
    expect(e.prevHash).toBe(GENESIS_HASH);
    const { hash, ...body } = e;
    expect(hash).toBe(NODE_AUDIT_CRYPTO.sha256(canonicalJson(body)));
    const e2 = createAuditEntry(e, input, 2000, NODE_AUDIT_CRYPTO);
    expect(e2).toMatchObject({ seq: 2, prevHash: e.hash, details: {} });
    expect(hashAuditEntry({ ...body, details: { n: 2 } }, NODE_AUDIT_CRYPTO)).not.toBe(hash);
  });
  it("redacts secret-named keys at any depth before hashing (secrets never enter the log)", () => {
    const e = createAuditEntry(
      undefined,
      {
        ...input,
        details: { password: "hunter2", profile: { community: "s3cret", name: "p1" }, when: new Date(0) },
      },
      1,
      NODE_AUDIT_CRYPTO,
    );
    expect(e.details).toEqual({
      password: "[redacted]",
      profile: { community: "[redacted]", name: "p1" },
      when: "1970-01-01T00:00:00.000Z",
    });
    expect(JSON.stringify(e)).not.toMatch(/hunter2|s3cret/);
  });
  it("separates checkpoint and head signatures by domain", () => {
    expect(checkpointPayload(3, GENESIS_HASH, 5)).not.toBe(headPayload(3, GENESIS_HASH));
  });
});

describe("verify: keys", () => {
  it("refuses checkpoints and heads signed by a key it was not given, even if the log carries the key", async () => {
    const other = generateAuditKey().signer;
    const log = new MemoryAuditLog({ signer: other, checkpointEvery: 2, clock: steppingClock() });
    for (let i = 0; i < 3; i++) await log.append(input);
    const s = log.snapshot();
    expect(s.checkpoints[0]?.publicKey).toBe(other.publicKeyPem);
    const r = verifyAuditLog(s.entries, { ...s, trustedKeys: TRUSTED, crypto: NODE_AUDIT_CRYPTO });
    expect(r.ok).toBe(false);
    expect(r.firstBad).toEqual({
      seq: 2,
      reason: `checkpoint at seq 2: signed by untrusted key ${other.keyId}`,
    });
    expect(
      verifyAuditLog(s.entries, {
        ...s,
        trustedKeys: [...TRUSTED, { keyId: other.keyId, publicKeyPem: other.publicKeyPem }],
        crypto: NODE_AUDIT_CRYPTO,
      }).ok,
    ).toBe(true);
  });
});

describe("export lines", () => {
  it("writes entries, checkpoint lines after their entry, and the head last", async () => {
    const log = new MemoryAuditLog({ signer: SIGNER, checkpointEvery: 2, clock: steppingClock() });
    for (let i = 0; i < 3; i++) await log.append({ ...input, details: { i } });
    const lines = log.exportLines().map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.type ?? `entry${String(l.seq)}`)).toEqual([
      "entry1",
      "entry2",
      "checkpoint",
      "entry3",
      "head",
    ]);
    expect(lines[2]).toMatchObject({ type: "checkpoint", seq: 2, keyId: SIGNER.keyId });
    expect(lines[4]).toMatchObject({ type: "head", seq: 3, keyId: SIGNER.keyId });
  });
  it("refuses entry lines with extra fields, unknown line types and non-JSON, naming the position", async () => {
    expect(parseAuditExportLine('{"type":"nope"}').kind).toBe("invalid");
    expect(parseAuditExportLine("{").kind).toBe("invalid");
    const log = new MemoryAuditLog({ signer: SIGNER, clock: steppingClock() });
    for (let i = 0; i < 3; i++) await log.append(input);
    const lines = log.exportLines();
    const e2 = JSON.parse(lines[1] ?? "") as Record<string, unknown>;
    lines[1] = JSON.stringify({ ...e2, note: "added" });
    const r = verifyAuditExport(lines.join("\n"), { trustedKeys: TRUSTED, crypto: NODE_AUDIT_CRYPTO });
    expect(r.ok).toBe(false);
    expect(r.firstBad).toEqual({ seq: 2, reason: "line 2: entry has unknown fields: note" });
  });
});
