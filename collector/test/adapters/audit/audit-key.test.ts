import { createHash, createPublicKey, generateKeyPairSync } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  auditPublicKeyFromPem,
  loadAuditPublicKey,
  loadOrCreateAuditKey,
  NODE_AUDIT_CRYPTO,
} from "../../../src/adapters/audit/audit-key.js";

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "pf-audit-key-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("audit key management", () => {
  it("generates a key file with mode 0600 when absent, and loads the same key afterwards", () => {
    const file = join(tmp(), "state", "audit-key.pem");
    const a = loadOrCreateAuditKey(file);
    expect(a.created).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, "utf8")).toMatch(/BEGIN PRIVATE KEY/);
    const b = loadOrCreateAuditKey(file);
    expect(b.created).toBe(false);
    expect(b.signer.keyId).toBe(a.signer.keyId);
    const sig = a.signer.sign("hello");
    expect(NODE_AUDIT_CRYPTO.verify("hello", sig, b.signer.publicKeyPem)).toBe(true);
    expect(NODE_AUDIT_CRYPTO.verify("hellO", sig, b.signer.publicKeyPem)).toBe(false);
  });

  it("keyId is the first 16 hex digits of sha256 over the SPKI DER, same from the private or public PEM", () => {
    const file = join(tmp(), "k.pem");
    const { signer } = loadOrCreateAuditKey(file);
    const der = createPublicKey(readFileSync(file, "utf8")).export({ type: "spki", format: "der" });
    expect(signer.keyId).toBe(createHash("sha256").update(der).digest("hex").slice(0, 16));
    expect(loadAuditPublicKey(file).keyId).toBe(signer.keyId);
    expect(auditPublicKeyFromPem(signer.publicKeyPem)).toEqual({
      keyId: signer.keyId,
      publicKeyPem: signer.publicKeyPem,
    });
  });

  it("refuses a private key file readable by others, and keys that are not ed25519", () => {
    const d = tmp();
    const file = join(d, "k.pem");
    loadOrCreateAuditKey(file);
    chmodSync(file, 0o644);
    expect(() => loadOrCreateAuditKey(file)).toThrow(
      expect.objectContaining({ code: "POLYFLEET_ERR_AUDIT_KEY_INVALID" }),
    );
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
    const rsaFile = join(d, "rsa.pem");
    writeFileSync(rsaFile, rsa.privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    expect(() => loadOrCreateAuditKey(rsaFile)).toThrow(
      expect.objectContaining({ code: "POLYFLEET_ERR_AUDIT_KEY_INVALID" }),
    );
    expect(() => loadAuditPublicKey(join(d, "missing.pem"))).toThrow(
      expect.objectContaining({ code: "POLYFLEET_ERR_AUDIT_KEY_INVALID" }),
    );
    expect(NODE_AUDIT_CRYPTO.verify("x", "AAAA", "not a key")).toBe(false);
  });
});
