/**
 * Credentials as drivers receive them: secrets already resolved from env/file by main.ts, security policy
 * already checked (see core/snmp-policy.ts). Never logged: the logger redacts these key names.
 */
export type ResolvedCredential =
  | { name: string; type: "http"; user: string; password: string }
  | { name: string; type: "snmpv2c"; community: string }
  | {
      name: string;
      type: "snmpv3";
      user: string;
      level: "authPriv" | "authNoPriv";
      authProtocol: "sha1" | "sha256" | "sha512";
      authKey: string;
      privProtocol: "aes128" | "aes256";
      privKey: string;
    };
