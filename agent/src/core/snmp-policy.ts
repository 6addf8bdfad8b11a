import { type CredentialProfile, PolyfleetError, type SecretRef } from "@polyfleet/shared";
import type { ResolvedCredential } from "../ports/credentials.js";

/** The SNMP kinds of credential profile from `agent.yaml`. */
export type SnmpProfile = Extract<CredentialProfile, { type: "snmpv3" | "snmpv2c" }>;
export type SnmpResolvedCredential = Extract<ResolvedCredential, { type: "snmpv3" | "snmpv2c" }>;

/**
 * Turns a secret reference into its value (main.ts passes the env/file resolver). `key` is the config path
 * used in error messages, e.g. `credentials.video.authKey`; the resolver must never put the value in an error.
 */
export type SecretResolver = (ref: SecretRef, key: string) => string;

/** RFC 3414 §11.2: USM passphrases shorter than 8 characters are refused by Net-SNMP and most agents. */
export const MIN_USM_PASSPHRASE = 8;

function insecure(profile: string, setting: string, reason: string, instead: string): PolyfleetError {
  return new PolyfleetError(
    "POLYFLEET_ERR_SNMP_INSECURE",
    `credential profile "${profile}": ${setting} ${reason}; ${instead}`,
    { details: { profile, setting } },
  );
}

/**
 * Checks an SNMP credential profile against the security policy, then resolves its secrets.
 *
 * Policy (issue 3): SNMPv3 is `authPriv` with SHA-256 (or SHA-512) and AES-128 (or AES-256) by default.
 * - SHA-1 only with `allowLegacySha1: true` in that profile (old devices: VideoOS's default is SHA).
 * - MD5, DES and `noAuthNoPriv` are refused.
 * - `authNoPriv` is refused too: every device we manage (VideoOS: CFB-AES128; Net-SNMP) supports AES, and
 *   without privacy the whole PDU (serials, names, addresses) travels in clear text, the same exposure as
 *   v2c but with a false sense of security. A user who accepts clear text can say so with v2c.
 * - SNMPv2c is allowed (the user's choice); `snmpPolicyWarnings` flags it.
 *
 * The policy is checked before any secret is resolved. Errors are PolyfleetError
 * POLYFLEET_ERR_SNMP_INSECURE naming the profile and the setting and saying what to use instead; they never
 * contain a key or community.
 */
export function resolveSnmpCredential(
  name: string,
  profile: SnmpProfile,
  secret: SecretResolver,
): SnmpResolvedCredential {
  if (profile.type === "snmpv2c") {
    return { name, type: "snmpv2c", community: secret(profile.community, `credentials.${name}.community`) };
  }
  checkSnmpv3Policy(name, profile);
  const authKey = secret(profile.authKey, `credentials.${name}.authKey`);
  const privKey = secret(profile.privKey, `credentials.${name}.privKey`);
  if (authKey.length < MIN_USM_PASSPHRASE) {
    throw insecure(
      name,
      "authKey",
      `is shorter than ${MIN_USM_PASSPHRASE} characters (RFC 3414 minimum)`,
      "use a passphrase of at least 8 characters, ideally 16 or more",
    );
  }
  if (privKey.length < MIN_USM_PASSPHRASE) {
    throw insecure(
      name,
      "privKey",
      `is shorter than ${MIN_USM_PASSPHRASE} characters (RFC 3414 minimum)`,
      "use a passphrase of at least 8 characters, ideally 16 or more",
    );
  }
  // checkSnmpv3Policy refused md5 and des, so the protocols are the ones the port type allows.
  return {
    name,
    type: "snmpv3",
    user: profile.user,
    level: "authPriv",
    authProtocol: profile.authProtocol as "sha1" | "sha256" | "sha512",
    authKey,
    privProtocol: profile.privProtocol as "aes128" | "aes256",
    privKey,
  };
}

/** The policy part of `resolveSnmpCredential` alone (no secrets needed): throws POLYFLEET_ERR_SNMP_INSECURE. */
export function checkSnmpv3Policy(name: string, profile: Extract<SnmpProfile, { type: "snmpv3" }>): void {
  if (profile.securityLevel === "noAuthNoPriv") {
    throw insecure(
      name,
      "securityLevel noAuthNoPriv",
      "is refused (no authentication, no privacy)",
      "use securityLevel: authPriv with authProtocol: sha256 and privProtocol: aes128",
    );
  }
  if (profile.securityLevel === "authNoPriv") {
    throw insecure(
      name,
      "securityLevel authNoPriv",
      "is refused (PDUs travel unencrypted)",
      "use securityLevel: authPriv with privProtocol: aes128 (or aes256)",
    );
  }
  if (profile.authProtocol === "md5") {
    throw insecure(
      name,
      "authProtocol md5",
      "is refused as insecure",
      "use authProtocol: sha256 (or sha512)",
    );
  }
  if (profile.authProtocol === "sha1" && !profile.allowLegacySha1) {
    throw insecure(
      name,
      "authProtocol sha1",
      "is refused unless the profile sets allowLegacySha1: true",
      "use authProtocol: sha256 (or sha512), or set allowLegacySha1: true for devices that support nothing better",
    );
  }
  if (profile.privProtocol === "des") {
    throw insecure(
      name,
      "privProtocol des",
      "is refused as insecure",
      "use privProtocol: aes128 (or aes256)",
    );
  }
}

/**
 * Warnings (for the start-up log) about profiles the policy accepts but that are weaker than the default:
 * SNMPv2c (community in clear text, no authentication) and SHA-1 accepted through `allowLegacySha1`.
 */
export function snmpPolicyWarnings(name: string, profile: SnmpProfile): string[] {
  if (profile.type === "snmpv2c") {
    return [
      `credential profile "${name}" uses SNMPv2c: the community travels in clear text and answers are not authenticated; prefer snmpv3 with authPriv, sha256 and aes128`,
    ];
  }
  if (profile.authProtocol === "sha1" && profile.allowLegacySha1) {
    return [
      `credential profile "${name}" uses legacy SHA-1 authentication (allowLegacySha1: true); move the devices to sha256 when their firmware allows`,
    ];
  }
  return [];
}
