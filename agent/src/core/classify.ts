import type { DeviceFamily } from "@polyfleet/shared";
import type { DriverName } from "../ports/driver.js";

/**
 * Fingerprint classification (pure): what discovery saw at an address → device family and driver.
 *
 * Signatures (checked against `/work/shared/poly-devices.md` §1.1, §2.1, §3 and the simulator):
 * - UC Software phones (VVX, Trio, CCX) answer `GET /api/v1/mgmt/device/info` without credentials with
 *   `401` + `WWW-Authenticate: Basic realm="API Authentication"`, or with an HTML `404` when their REST API is
 *   disabled, and send `Server: Polycom SoundPoint IP Telephone HTTPd`.
 * - VideoOS (Studio X, G7500) answers `/rest/...` without a session with a JSON `401`/`403`
 *   (`{"success":false,...}`) and takes its login at `POST /rest/current/session` (left to the driver's
 *   `identify`, which holds the credentials: an anonymous login attempt would raise a security trap).
 * - SNMP: a sysObjectID under `1.3.6.1.4.1.13885` (Polycom) is a Poly video system; any other agent that
 *   answers is `snmp-generic`.
 */

/** The path of the first HTTPS probe (UC REST; every HTTPS device gets it). */
export const UC_PROBE_PATH = "/api/v1/mgmt/device/info";
/** The path of the second HTTPS probe, sent only when the first answer is not a UC phone. */
export const VIDEOOS_PROBE_PATH = "/rest/system";
/** Polycom's enterprise subtree. */
export const POLYCOM_ENTERPRISE_OID = "1.3.6.1.4.1.13885";
export const SYS_DESCR_OID = "1.3.6.1.2.1.1.1.0";
export const SYS_OBJECT_ID_OID = "1.3.6.1.2.1.1.2.0";
/** ifPhysAddress of ifIndex 1: the MAC of the first interface (the only one on a video bar). */
export const IF_PHYS_ADDRESS_1_OID = "1.3.6.1.2.1.2.2.1.6.1";

const UC_SERVER = /polycom soundpoint ip telephone/i;
const UC_REALM = /realm\s*=\s*"?API Authentication"?/i;

/** What one unauthenticated HTTPS GET returned. */
export interface HttpsFingerprint {
  port: number;
  path: string;
  status: number;
  server?: string;
  wwwAuthenticate?: string;
  contentType?: string;
  /** The first bytes of the body (bounded by the prober). */
  bodyStart: string;
}

/** What an SNMP GET of sysObjectID and sysDescr returned. */
export interface SnmpFingerprint {
  port: number;
  /** Name of the credential profile that got an answer (never the secret). */
  credentialName: string;
  sysObjectId?: string;
  sysDescr?: string;
  /** ifPhysAddress.1 as 12 lowercase hex digits, when the agent has it. */
  mac?: string;
}

export interface HttpsVerdict {
  family: "uc" | "videoos";
  reason: string;
}

export interface Classification {
  driver: DriverName;
  family: DeviceFamily;
  via: ("snmp" | "https")[];
  /** The HTTPS port whose answer classified the device, if any. */
  httpsPort?: number;
  /** The SNMP port that answered, if any. */
  snmpPort?: number;
  /** The profile that answered SNMP, tried first by the driver. */
  snmpCredentialName?: string;
  /** Model named by the fingerprint (sysDescr), when it names one; the driver's identity is authoritative. */
  modelHint?: string;
  /** MAC seen over SNMP (ifPhysAddress.1), used when the driver's identity has none. */
  mac?: string;
  reason: string;
}

export const DRIVER_FAMILY: Record<DriverName, DeviceFamily> = {
  "poly-ucs": "uc",
  "poly-videoos": "videoos",
  "snmp-generic": "snmp",
};

function isJsonErrorBody(fp: HttpsFingerprint): boolean {
  const body = fp.bodyStart.trim();
  if (!body.startsWith("{")) return false;
  // A bounded prefix may be cut mid-object: accept a recognisable error envelope without parsing it all.
  if (/"success"\s*:\s*false/.test(body) || /"errorCode"\s*:/.test(body)) return true;
  return /json/i.test(fp.contentType ?? "") && /^\{\s*"/.test(body);
}

/** Classifies one HTTPS answer; undefined when it is not recognisably a Poly device. */
export function classifyHttps(fp: HttpsFingerprint): HttpsVerdict | undefined {
  if (fp.server !== undefined && UC_SERVER.test(fp.server)) {
    const rest = fp.status === 404 ? " (REST API disabled)" : "";
    return { family: "uc", reason: `Server: ${fp.server}${rest}` };
  }
  if (fp.status === 401 && fp.wwwAuthenticate !== undefined && UC_REALM.test(fp.wwwAuthenticate)) {
    return { family: "uc", reason: `401 with ${fp.wwwAuthenticate} on ${fp.path}` };
  }
  if (fp.path.startsWith("/rest/") && (fp.status === 401 || fp.status === 403) && isJsonErrorBody(fp)) {
    return { family: "videoos", reason: `JSON ${fp.status} on ${fp.path}` };
  }
  return undefined;
}

/**
 * Whether the second probe (`VIDEOOS_PROBE_PATH`) is worth sending after this first answer: only when the
 * server answered HTTP and was not recognised as a UC phone.
 */
export function wantsVideoOsProbe(first: HttpsFingerprint): boolean {
  return classifyHttps(first)?.family !== "uc";
}

/**
 * A MAC as 12 lowercase hex digits from the forms SNMP clients decode ifPhysAddress into: `00:e0:db:12:34:56`,
 * `00-e0-db-…`, `00e0db123456`, or the 6 raw bytes as a string. Undefined for anything else and for all-zero.
 */
export function normalizeMac(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  let hex: string | undefined;
  if (/^[0-9a-f]{2}([:-]?[0-9a-f]{2}){5}$/i.test(value)) hex = value.replace(/[:-]/g, "").toLowerCase();
  else if (value.length === 6 && [...value].every((c) => c.charCodeAt(0) < 256)) {
    hex = [...value].map((c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join("");
  }
  return hex === undefined || hex === "000000000000" ? undefined : hex;
}

function normalizeOid(oid: string): string {
  return oid.startsWith(".") ? oid.slice(1) : oid;
}

/** Model from a VideoOS sysDescr such as `Videoconferencing Device, Poly StudioX50, VideoOS 4.1.0-401117`. */
export function modelFromSysDescr(sysDescr: string | undefined): string | undefined {
  if (!sysDescr) return undefined;
  const m = /\bPoly(?:com)?\s+([A-Za-z][A-Za-z0-9 ]*?[A-Za-z0-9])\s*(?:,|$)/.exec(sysDescr);
  return m?.[1];
}

/** Classifies an SNMP answer: Polycom enterprise subtree → VideoOS, anything else → generic SNMP. */
export function classifySnmp(fp: SnmpFingerprint): { family: "videoos" | "snmp"; reason: string } {
  const oid = fp.sysObjectId === undefined ? undefined : normalizeOid(fp.sysObjectId);
  if (oid === POLYCOM_ENTERPRISE_OID || oid?.startsWith(`${POLYCOM_ENTERPRISE_OID}.`)) {
    return { family: "videoos", reason: `sysObjectID ${oid} (Polycom)` };
  }
  return { family: "snmp", reason: `SNMP agent, sysObjectID ${oid ?? "none"}` };
}

/**
 * Combines every fingerprint of one address into a classification, or undefined when nothing answered in a
 * recognisable way. HTTPS evidence of a UC phone wins; VideoOS needs either HTTPS or SNMP evidence; any
 * other SNMP agent is generic.
 */
export function classifyFingerprints(input: {
  https: readonly HttpsFingerprint[];
  snmp: readonly SnmpFingerprint[];
}): Classification | undefined {
  const verdicts = input.https.flatMap((fp) => {
    const v = classifyHttps(fp);
    return v ? [{ fp, v }] : [];
  });
  const snmp = input.snmp[0];
  const snmpVerdict = snmp ? classifySnmp(snmp) : undefined;
  const snmpPart = snmp
    ? {
        snmpPort: snmp.port,
        snmpCredentialName: snmp.credentialName,
        ...hint(snmp.sysDescr),
        ...(snmp.mac === undefined ? {} : { mac: snmp.mac }),
      }
    : {};

  const uc = verdicts.find((x) => x.v.family === "uc");
  if (uc) {
    return {
      driver: "poly-ucs",
      family: "uc",
      via: snmp ? ["https", "snmp"] : ["https"],
      httpsPort: uc.fp.port,
      ...snmpPart,
      reason: uc.v.reason,
    };
  }
  const video = verdicts.find((x) => x.v.family === "videoos");
  if (video || snmpVerdict?.family === "videoos") {
    const via: ("snmp" | "https")[] = [];
    if (video) via.push("https");
    if (snmp) via.push("snmp");
    return {
      driver: "poly-videoos",
      family: "videoos",
      via,
      ...(video ? { httpsPort: video.fp.port } : {}),
      ...snmpPart,
      reason: [video?.v.reason, snmpVerdict?.family === "videoos" ? snmpVerdict.reason : undefined]
        .filter((r) => r !== undefined)
        .join("; "),
    };
  }
  if (snmp && snmpVerdict) {
    return { driver: "snmp-generic", family: "snmp", via: ["snmp"], ...snmpPart, reason: snmpVerdict.reason };
  }
  return undefined;
}

function hint(sysDescr: string | undefined): { modelHint?: string } {
  const m = modelFromSysDescr(sysDescr);
  return m === undefined ? {} : { modelHint: m };
}
