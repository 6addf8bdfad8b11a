import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { PolyfleetError } from "@polyfleet/shared";
import type { AuditCrypto, AuditPublicKey, AuditSigner } from "../../core/audit/audit-chain.js";

/** File name of the generated checkpoint key in the collector's state directory. */
export const DEFAULT_AUDIT_KEY_FILE = "audit-key.pem";

/** Public keys parsed from PEM, cached: verifying thousands of checkpoints must not re-parse the key each time. */
const publicKeyCache = new Map<string, KeyObject | null>();

function cachedPublicKey(pem: string): KeyObject | null {
  let k = publicKeyCache.get(pem);
  if (k === undefined) {
    try {
      k = createPublicKey(pem);
      if (k.asymmetricKeyType !== "ed25519") k = null;
    } catch {
      k = null;
    }
    if (publicKeyCache.size > 64) publicKeyCache.clear();
    publicKeyCache.set(pem, k);
  }
  return k;
}

/** `AuditCrypto` on node:crypto: sha256 and ed25519 verification. */
export const NODE_AUDIT_CRYPTO: AuditCrypto = {
  sha256: (text) => createHash("sha256").update(text, "utf8").digest("hex"),
  verify: (data, signature, publicKeyPem) => {
    const key = cachedPublicKey(publicKeyPem);
    if (key === null) return false;
    try {
      return verify(null, Buffer.from(data, "utf8"), key, Buffer.from(signature, "base64"));
    } catch {
      return false;
    }
  },
};

/** First 16 hex digits of sha256 over the key's SPKI DER. */
export function auditKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(der).digest("hex").slice(0, 16);
}

/** The trusted public half of a key given as PEM: an SPKI public key, or a PKCS#8 private key. */
export function auditPublicKeyFromPem(pem: string): AuditPublicKey {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new PolyfleetError("POLYFLEET_ERR_AUDIT_KEY_INVALID", "not a PEM key", { cause: err });
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new PolyfleetError(
      "POLYFLEET_ERR_AUDIT_KEY_INVALID",
      `not an ed25519 key (${key.asymmetricKeyType})`,
    );
  }
  const publicKeyPem = key.export({ type: "spki", format: "pem" }).toString();
  return { keyId: auditKeyId(key), publicKeyPem };
}

/** Reads a trusted public key (or the public half of a private key) from a PEM file. */
export function loadAuditPublicKey(file: string): AuditPublicKey {
  let pem: string;
  try {
    pem = readFileSync(file, "utf8");
  } catch (err) {
    throw new PolyfleetError("POLYFLEET_ERR_AUDIT_KEY_INVALID", `cannot read ${file}`, { cause: err });
  }
  return auditPublicKeyFromPem(pem);
}

/** A signer over a private key (PEM, PKCS#8, ed25519). */
export function auditSignerFromPem(privateKeyPem: string): AuditSigner {
  let key: KeyObject;
  try {
    key = createPrivateKey(privateKeyPem);
  } catch (err) {
    throw new PolyfleetError("POLYFLEET_ERR_AUDIT_KEY_INVALID", "not a PEM private key", { cause: err });
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new PolyfleetError(
      "POLYFLEET_ERR_AUDIT_KEY_INVALID",
      `not an ed25519 key (${key.asymmetricKeyType})`,
    );
  }
  const pub = createPublicKey(key);
  return {
    keyId: auditKeyId(pub),
    publicKeyPem: pub.export({ type: "spki", format: "pem" }).toString(),
    sign: (data) => sign(null, Buffer.from(data, "utf8"), key).toString("base64"),
  };
}

/** A fresh ed25519 key: the signer and its private key as PEM (PKCS#8). */
export function generateAuditKey(): { signer: AuditSigner; privateKeyPem: string } {
  const { privateKey } = generateKeyPairSync("ed25519");
  const privateKeyPem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  return { signer: auditSignerFromPem(privateKeyPem), privateKeyPem };
}

/**
 * Loads the checkpoint signing key from `file`, or, when the file does not exist, generates one and writes it
 * there with mode 0600 (never overwriting a file that appeared meanwhile). An existing key file readable or
 * writable by group or others is refused (like ssh does), since whoever reads it can forge checkpoints.
 */
export function loadOrCreateAuditKey(file: string): { signer: AuditSigner; created: boolean } {
  let pem: string | undefined;
  try {
    if (process.platform !== "win32" && (statSync(file).mode & 0o077) !== 0) {
      throw new PolyfleetError(
        "POLYFLEET_ERR_AUDIT_KEY_INVALID",
        `${file} is accessible by group or others: chmod 600 it`,
      );
    }
    pem = readFileSync(file, "utf8");
  } catch (err) {
    if (err instanceof PolyfleetError) throw err;
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      throw new PolyfleetError("POLYFLEET_ERR_AUDIT_KEY_INVALID", `cannot read ${file}`, { cause: err });
    }
  }
  if (pem !== undefined) return { signer: auditSignerFromPem(pem), created: false };
  const { signer, privateKeyPem } = generateAuditKey();
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, privateKeyPem, { mode: 0o600, flag: "wx" });
  } catch (err) {
    throw new PolyfleetError("POLYFLEET_ERR_AUDIT_KEY_INVALID", `cannot write ${file}`, { cause: err });
  }
  return { signer, created: true };
}
