import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { PolyfleetError } from "@polyfleet/shared";
import { canonicalJson } from "./canonical-json.js";
import { keyIdOf, type SignedEnvelope } from "./catalog.js";

/** A new ed25519 key pair: the public key as base64 of the raw 32 bytes, the private key as PKCS#8 PEM. */
export function generateKeyPair(): { publicKey: string; privateKeyPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  return {
    publicKey: rawPublicKeyB64(publicKey),
    privateKeyPem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
  };
}

function rawPublicKeyB64(key: KeyObject): string {
  const jwk = key.export({ format: "jwk" });
  if (typeof jwk.x !== "string") throw new TypeError("not an OKP public key");
  return Buffer.from(jwk.x, "base64url").toString("base64");
}

/** Reads a PKCS#8 PEM private key; throws CATALOG_INVALID unless it is ed25519. Never echoes the key. */
export function loadPrivateKey(privateKeyPem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: privateKeyPem, format: "pem" });
  } catch (err) {
    throw new PolyfleetError("POLYFLEET_ERR_CATALOG_INVALID", "signing key is not a PEM private key", {
      cause: err,
    });
  }
  if (key.asymmetricKeyType !== "ed25519")
    throw new PolyfleetError(
      "POLYFLEET_ERR_CATALOG_INVALID",
      `signing key is ${key.asymmetricKeyType ?? "unknown"}, not ed25519`,
    );
  return key;
}

/** The public key (base64 of the raw 32 bytes) of a PEM private key. */
export function publicKeyOf(privateKeyPem: string): string {
  return rawPublicKeyB64(createPublicKey(loadPrivateKey(privateKeyPem)));
}

function signatureOf(signed: unknown, privateKeyPem: string): { keyid: string; sig: string } {
  const key = loadPrivateKey(privateKeyPem);
  const keyid = keyIdOf(rawPublicKeyB64(createPublicKey(key)));
  const sig = sign(null, Buffer.from(canonicalJson(signed), "utf8"), key).toString("base64");
  return { keyid, sig };
}

/** Signs `signed` with each key (ed25519 over its canonical JSON). Repeated keys sign once. */
export function signEnvelope<T>(signed: T, privateKeysPem: string[]): SignedEnvelope<T> {
  let env: SignedEnvelope<T> = { signed, signatures: [] };
  for (const pem of privateKeysPem) env = addSignature(env, pem);
  return env;
}

/** Adds the signature of one key, replacing an earlier signature by the same key. Returns a new envelope. */
export function addSignature<T>(envelope: SignedEnvelope<T>, privateKeyPem: string): SignedEnvelope<T> {
  const s = signatureOf(envelope.signed, privateKeyPem);
  return {
    signed: envelope.signed,
    signatures: [...envelope.signatures.filter((x) => x.keyid !== s.keyid), s],
  };
}
