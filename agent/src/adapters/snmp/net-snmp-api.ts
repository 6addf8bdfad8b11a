import type dgram from "node:dgram";
import { createRequire } from "node:module";
import type { SnmpCredential, Varbind } from "../../ports/snmp.js";

/**
 * The slice of net-snmp 3.x the adapters use, typed here: @types/net-snmp lags the library and does not
 * describe `dgramModule`, `reqs` or `onMsg`, which the adapters rely on (checked against net-snmp 3.29
 * index.js: Session constructor, Session.prototype.onMsg/registerRequest, Receiver/Listener).
 */
export interface RawVarbind {
  oid: string;
  type: number;
  value: unknown;
}

export interface RawUser {
  name: string;
  level: number;
  authProtocol?: number;
  authKey?: string;
  privProtocol?: number;
  privKey?: string;
}

/** What net-snmp needs from a dgram module: only createSocket. */
export interface DgramModule {
  createSocket(type: unknown): unknown;
}

export interface RawSession {
  on(event: "error", cb: (err: unknown) => void): void;
  on(event: "close", cb: () => void): void;
  get(oids: string[], cb: (err: unknown, varbinds?: RawVarbind[]) => void): void;
  getBulk(
    oids: string[],
    nonRepeaters: number,
    maxRepetitions: number,
    cb: (err: unknown, varbinds?: (RawVarbind | RawVarbind[])[]) => void,
  ): void;
  close(): void;
  /** Pending requests by request-id (v1/v2c) or msgID (v3); internal to net-snmp. */
  reqs?: Record<string, unknown>;
}

export interface RawReceiver {
  getAuthorizer(): {
    addUser(user: RawUser): void;
    addCommunity(community: string): void;
  };
  onMsg(socket: dgram.Socket, buffer: Buffer, rinfo: dgram.RemoteInfo): void;
  close(cb?: () => void): void;
}

export interface NetSnmp {
  createSession(target: string, community: string, options: Record<string, unknown>): RawSession;
  createV3Session(target: string, user: RawUser, options: Record<string, unknown>): RawSession;
  createReceiver(options: Record<string, unknown>, cb: (err: unknown, data: unknown) => void): RawReceiver;
  ObjectType: Record<string, number | string>;
  SecurityLevel: Record<string, number>;
  AuthProtocols: Record<string, number>;
  PrivProtocols: Record<string, number>;
  ResponseInvalidCode: Record<string, number | string>;
  Version1: number;
  Version2c: number;
  Version3: number;
}

const require = createRequire(import.meta.url);
export const snmp = require("net-snmp") as NetSnmp;

function num(v: number | undefined, what: string): number {
  if (v === undefined) throw new Error(`net-snmp constant ${what} missing`);
  return v;
}

/** ObjectType numbers the adapters test for. */
export const OT = {
  octetString: num(snmp.ObjectType.OctetString as number, "OctetString"),
  oid: num(snmp.ObjectType.OID as number, "OID"),
  counter64: num(snmp.ObjectType.Counter64 as number, "Counter64"),
  noSuchObject: num(snmp.ObjectType.NoSuchObject as number, "NoSuchObject"),
  noSuchInstance: num(snmp.ObjectType.NoSuchInstance as number, "NoSuchInstance"),
  endOfMibView: num(snmp.ObjectType.EndOfMibView as number, "EndOfMibView"),
  opaque: num(snmp.ObjectType.Opaque as number, "Opaque"),
};

/**
 * net-snmp user for a resolved v3 credential. aes128 → `aes` (CFB-AES-128, RFC 3826); aes256 → `aes256b`
 * (AES-256 with Blumenthal key extension, what Net-SNMP 5.9 calls AES-256; Cisco's "AES256C" is the Reeder
 * variant `aes256r`, not offered).
 */
export function rawUser(c: Extract<SnmpCredential, { type: "snmpv3" }>): RawUser {
  const auth =
    c.authProtocol === "sha512"
      ? snmp.AuthProtocols.sha512
      : c.authProtocol === "sha256"
        ? snmp.AuthProtocols.sha256
        : snmp.AuthProtocols.sha;
  const priv = c.privProtocol === "aes256" ? snmp.PrivProtocols.aes256b : snmp.PrivProtocols.aes;
  const level = c.level === "authPriv" ? snmp.SecurityLevel.authPriv : snmp.SecurityLevel.authNoPriv;
  return {
    name: c.user,
    level: num(level, "SecurityLevel"),
    authProtocol: num(auth, "AuthProtocols"),
    authKey: c.authKey,
    ...(c.level === "authPriv" ? { privProtocol: num(priv, "PrivProtocols"), privKey: c.privKey } : {}),
  };
}

function printable(b: Buffer): boolean {
  for (const c of b) {
    if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return false;
    if (c === 0x7f) return false;
  }
  return true;
}

/**
 * An OCTET STRING as text: UTF-8 when it is printable, else hex pairs joined by ":" (MAC addresses,
 * DateAndTime, binary opaque values).
 */
export function octetsToString(b: Buffer): string {
  if (printable(b)) {
    const s = b.toString("utf8");
    if (!s.includes("\ufffd")) return s;
  }
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
}

/** net-snmp's decoded varbind → the port's Varbind (type name, value as string/number/bigint/null). */
export function toVarbind(v: RawVarbind): Varbind {
  const typeName = snmp.ObjectType[String(v.type)];
  const type = typeof typeName === "string" ? typeName : String(v.type);
  let value: Varbind["value"];
  const raw = v.value;
  if (raw === null || raw === undefined) value = null;
  else if (Buffer.isBuffer(raw)) {
    if (v.type === OT.counter64) value = raw.length === 0 ? 0n : BigInt(`0x${raw.toString("hex")}`);
    else value = octetsToString(raw);
  } else if (typeof raw === "number" || typeof raw === "string" || typeof raw === "bigint") value = raw;
  else if (typeof raw === "boolean") value = raw ? 1 : 0;
  else value = String(raw);
  return { oid: v.oid, type, value };
}

/** True for noSuchObject / noSuchInstance / endOfMibView. */
export function isException(type: number): boolean {
  return type === OT.noSuchObject || type === OT.noSuchInstance || type === OT.endOfMibView;
}
