import type { CredentialProfile, SecretRef } from "@polyfleet/shared";
import { CredentialProfile as CredentialProfileSchema, PolyfleetError } from "@polyfleet/shared";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  checkSnmpv3Policy,
  resolveSnmpCredential,
  type SnmpProfile,
  snmpPolicyWarnings,
} from "../../src/core/snmp-policy.js";

const AUTH = "auth-secret-123";
const PRIV = "priv-secret-456";
const secret = (ref: SecretRef): string => {
  if (typeof ref === "string") return ref;
  if ("env" in ref) return `env-value-of-${ref.env}`;
  return `file-value-of-${ref.file}`;
};

function v3(extra: Record<string, unknown> = {}): SnmpProfile {
  return CredentialProfileSchema.parse({
    type: "snmpv3",
    user: "monitor",
    authKey: AUTH,
    privKey: PRIV,
    ...extra,
  }) as SnmpProfile;
}

function refusal(fn: () => unknown): PolyfleetError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PolyfleetError);
    return err as PolyfleetError;
  }
  throw new Error("expected a refusal");
}

describe("resolveSnmpCredential", () => {
  it("defaults to authPriv with SHA-256 and AES-128", () => {
    const c = resolveSnmpCredential("video", v3(), secret);
    expect(c).toEqual({
      name: "video",
      type: "snmpv3",
      user: "monitor",
      level: "authPriv",
      authProtocol: "sha256",
      authKey: AUTH,
      privProtocol: "aes128",
      privKey: PRIV,
    });
  });

  it("accepts sha512 / aes256 and resolves env and file secrets", () => {
    const c = resolveSnmpCredential(
      "strong",
      v3({
        authProtocol: "sha512",
        privProtocol: "aes256",
        authKey: { env: "A_KEY" },
        privKey: { file: "/run/p" },
      }),
      secret,
    );
    expect(c).toMatchObject({
      authProtocol: "sha512",
      privProtocol: "aes256",
      authKey: "env-value-of-A_KEY",
      privKey: "file-value-of-/run/p",
    });
  });

  it("accepts SHA-1 only with allowLegacySha1", () => {
    const e = refusal(() => resolveSnmpCredential("old", v3({ authProtocol: "sha1" }), secret));
    expect(e.code).toBe("POLYFLEET_ERR_SNMP_INSECURE");
    expect(e.message).toContain('"old"');
    expect(e.message).toContain("authProtocol sha1");
    expect(e.message).toContain("allowLegacySha1: true");
    expect(e.message).toContain("sha256");
    const ok = resolveSnmpCredential("old", v3({ authProtocol: "sha1", allowLegacySha1: true }), secret);
    expect(ok).toMatchObject({ authProtocol: "sha1", level: "authPriv" });
  });

  it.each([
    [{ authProtocol: "md5" }, "authProtocol md5", "sha256"],
    [{ privProtocol: "des" }, "privProtocol des", "aes128"],
    [{ securityLevel: "noAuthNoPriv" }, "securityLevel noAuthNoPriv", "authPriv"],
    [{ securityLevel: "authNoPriv" }, "securityLevel authNoPriv", "authPriv"],
    [{ authProtocol: "md5", allowLegacySha1: true }, "authProtocol md5", "sha256"],
  ])("refuses %o naming the profile, the setting and the fix", (extra, setting, instead) => {
    const e = refusal(() => resolveSnmpCredential("lab", v3(extra), secret));
    expect(e.code).toBe("POLYFLEET_ERR_SNMP_INSECURE");
    expect(e.message).toContain('credential profile "lab"');
    expect(e.message).toContain(setting);
    expect(e.message).toContain(`use `);
    expect(e.message).toContain(instead);
    expect(e.details).toMatchObject({ profile: "lab" });
    expect(e.message).not.toContain(AUTH);
    expect(e.message).not.toContain(PRIV);
  });

  it("checks the policy before resolving any secret", () => {
    let resolved = 0;
    refusal(() =>
      resolveSnmpCredential("lab", v3({ authProtocol: "md5" }), (r) => {
        resolved++;
        return secret(r);
      }),
    );
    expect(resolved).toBe(0);
  });

  it("refuses passphrases shorter than 8 characters without echoing them", () => {
    const e = refusal(() => resolveSnmpCredential("short", v3({ authKey: "abc1234" }), secret));
    expect(e.code).toBe("POLYFLEET_ERR_SNMP_INSECURE");
    expect(e.message).toContain("authKey");
    expect(e.message).not.toContain("abc1234");
    const p = refusal(() => resolveSnmpCredential("short", v3({ privKey: "xyz" }), secret));
    expect(p.message).toContain("privKey");
    expect(p.message).not.toContain("xyz ");
  });

  it("allows v2c and flags it in a warning (without the community)", () => {
    const p = CredentialProfileSchema.parse({ type: "snmpv2c", community: "s3cret-comm" }) as SnmpProfile;
    expect(resolveSnmpCredential("legacy", p, secret)).toEqual({
      name: "legacy",
      type: "snmpv2c",
      community: "s3cret-comm",
    });
    const w = snmpPolicyWarnings("legacy", p);
    expect(w).toHaveLength(1);
    expect(w[0]).toContain("SNMPv2c");
    expect(w[0]).not.toContain("s3cret-comm");
    expect(snmpPolicyWarnings("video", v3())).toEqual([]);
    expect(snmpPolicyWarnings("old", v3({ authProtocol: "sha1", allowLegacySha1: true }))[0]).toContain(
      "SHA-1",
    );
  });

  it("property: no error message ever contains a key, and accepted profiles are authPriv", () => {
    const profiles = fc.record({
      authProtocol: fc.constantFrom("sha256", "sha512", "sha1", "md5"),
      privProtocol: fc.constantFrom("aes128", "aes256", "des"),
      securityLevel: fc.constantFrom("authPriv", "authNoPriv", "noAuthNoPriv"),
      allowLegacySha1: fc.boolean(),
      authKey: fc.string({ minLength: 1, maxLength: 24 }).map((s) => `K${s}`),
      privKey: fc.string({ minLength: 1, maxLength: 24 }).map((s) => `P${s}`),
    });
    fc.assert(
      fc.property(profiles, (raw) => {
        const p = v3(raw);
        try {
          const c = resolveSnmpCredential("x", p, secret);
          expect(c.type).toBe("snmpv3");
          if (c.type !== "snmpv3") return;
          expect(c.level).toBe("authPriv");
          expect(["sha256", "sha512", "sha1"]).toContain(c.authProtocol);
          if (c.authProtocol === "sha1") expect(raw.allowLegacySha1).toBe(true);
          expect(["aes128", "aes256"]).toContain(c.privProtocol);
        } catch (err) {
          expect(err).toBeInstanceOf(PolyfleetError);
          const e = err as PolyfleetError;
          expect(e.code).toBe("POLYFLEET_ERR_SNMP_INSECURE");
          if (raw.authKey.length >= 4) expect(e.message).not.toContain(raw.authKey);
          if (raw.privKey.length >= 4) expect(e.message).not.toContain(raw.privKey);
        }
      }),
    );
  });

  it("checkSnmpv3Policy alone passes the default profile", () => {
    const p = v3() as Extract<CredentialProfile, { type: "snmpv3" }>;
    expect(() => checkSnmpv3Policy("video", p)).not.toThrow();
  });
});
