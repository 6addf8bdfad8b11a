import type { Severity } from "@polyfleet/shared";
import type { EventBody } from "../ports/sink.js";

/** POLYCOM-ENDPOINT-MIB notifications: `polycom-endpointNotifications` = 1.3.6.1.4.1.13885.101.0. */
export const POLY_ENDPOINT_NOTIFICATIONS = "1.3.6.1.4.1.13885.101.0";
/** POLYCOM-ENDPOINT-MIB notificationVariable* varbinds (…101.1.99.N). */
export const POLY_NOTIFICATION_VARIABLES = "1.3.6.1.4.1.13885.101.1.99";
/** SNMPv2-MIB snmpTrapOID.0 (second varbind of a v2c/v3 notification). */
export const SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0";
/** SNMPv2-MIB sysUpTime.0 (first varbind of a v2c/v3 notification). */
export const SYS_UPTIME = "1.3.6.1.2.1.1.3.0";

export type TrapKind = "problem" | "resolution" | "info";

export interface TrapDef {
  /** N in …101.0.N. */
  n: number;
  name: string;
  kind: TrapKind;
  severity: Severity;
  /** For a problem: the N of its resolution; for a resolution: the N of the problem it clears. */
  pair?: number;
}

function problem(n: number, name: string, severity: Severity, pair: number): TrapDef {
  return { n, name, kind: "problem", severity, pair };
}
function resolution(n: number, name: string, pair: number): TrapDef {
  return { n, name, kind: "resolution", severity: "info", pair };
}
function info(n: number, name: string, severity: Severity = "info"): TrapDef {
  return { n, name, kind: "info", severity };
}

/**
 * Every POLYCOM-ENDPOINT-MIB notification (poly-devices.md §3.3). Severities are our choice (the MIB has
 * none per trap): hardware and registration losses are major, media quality and secondary services are
 * warning/minor. softwareUpdateFailed (69) is a problem cleared by the next softwareUpdateComplete (68).
 */
export const POLY_TRAPS: readonly TrapDef[] = [
  info(17, "securityFailedAuthAttempt", "warning"),
  info(19, "securitySuccessfulAuthAttempt"),
  problem(21, "securityPortLocked", "minor", 22),
  resolution(22, "securityPortUnlocked", 21),
  problem(23, "securityAccountLocked", "minor", 24),
  resolution(24, "securityAccountUnlocked", 23),
  info(25, "securityConfigChange"),
  info(67, "softwareUpdateStarted"),
  resolution(68, "softwareUpdateComplete", 69),
  problem(69, "softwareUpdateFailed", "major", 68),
  problem(70, "h323GateKeeperRegistrationFailed", "major", 71),
  resolution(71, "h323GateKeeperRegistrationOK", 70),
  problem(72, "sipRegistrationFailed", "major", 73),
  resolution(73, "sipRegistrationOK", 72),
  problem(74, "isdnLineDown", "major", 75),
  resolution(75, "isdnLineUp", 74),
  problem(76, "primaryCameraDown", "major", 77),
  resolution(77, "primaryCameraOK", 76),
  info(78, "callConnected"),
  info(79, "callDisconnected"),
  info(80, "callFailed", "warning"),
  problem(81, "jitterExcessive", "warning", 82),
  resolution(82, "jitterOK", 81),
  problem(83, "latencyExcessive", "warning", 84),
  resolution(84, "latencyOK", 83),
  problem(85, "packetLossExcessive", "warning", 86),
  resolution(86, "packetLossOK", 85),
  problem(87, "presenceServerDown", "minor", 88),
  resolution(88, "presenceServerOK", 87),
  problem(89, "cdrServerDown", "minor", 90),
  resolution(90, "cdrServerOK", 89),
  problem(91, "syslogServerDown", "minor", 92),
  resolution(92, "syslogServerOK", 91),
  problem(93, "softwareUpdateServerDown", "minor", 94),
  resolution(94, "softwareUpdateServerOK", 93),
  problem(95, "provisioningServerDown", "major", 96),
  resolution(96, "provisioningServerOK", 95),
  problem(97, "calendarServerDown", "minor", 98),
  resolution(98, "calendarServerOK", 97),
  problem(99, "directoryServerDown", "minor", 100),
  resolution(100, "directoryServerOK", 99),
  problem(101, "remoteControlBatteryLow", "warning", 102),
  resolution(102, "remoteControlBatteryOK", 101),
];

const BY_N = new Map(POLY_TRAPS.map((t) => [t.n, t]));

/** SNMPv2-MIB generic notifications (snmpTraps = 1.3.6.1.6.3.1.1.5.N). */
const GENERIC: ReadonlyMap<string, { name: string; kind: TrapKind; severity: Severity }> = new Map([
  ["1.3.6.1.6.3.1.1.5.1", { name: "coldStart", kind: "info", severity: "info" }],
  ["1.3.6.1.6.3.1.1.5.2", { name: "warmStart", kind: "info", severity: "info" }],
  ["1.3.6.1.6.3.1.1.5.3", { name: "linkDown", kind: "problem", severity: "major" }],
  ["1.3.6.1.6.3.1.1.5.4", { name: "linkUp", kind: "resolution", severity: "info" }],
  ["1.3.6.1.6.3.1.1.5.5", { name: "authenticationFailure", kind: "info", severity: "warning" }],
]);

/** The Poly trap definition for an N, if it is one of POLY_TRAPS. */
export function polyTrap(n: number): TrapDef | undefined {
  return BY_N.get(n);
}

export interface TrapClass {
  name: string;
  kind: TrapKind;
  severity: Severity;
}

/** notificationVariableType (…99.3.0): problem(1) resolution(2) info(3). */
function kindFromVarbind(v: string | undefined): TrapKind | undefined {
  if (v === "1") return "problem";
  if (v === "2") return "resolution";
  if (v === "3") return "info";
  return undefined;
}

/** notificationVariableSeverity (…99.7.0): syslog-like 0 emergency … 7 debug. */
function severityFromVarbind(v: string | undefined): Severity | undefined {
  if (v === undefined || !/^\d$/.test(v)) return undefined;
  const s = Number(v);
  if (s <= 2) return "critical";
  if (s === 3) return "major";
  if (s === 4) return "warning";
  return "info";
}

/**
 * Classifies a notification by its snmpTrapOID. Known Poly traps use the table (kind and severity from the
 * table, whatever the varbinds say); unknown N under the Poly notifications use the notificationVariable
 * Type/Severity varbinds when present; SNMPv2-MIB generic traps are named; anything else is `info`.
 * Total: never throws, whatever the input.
 */
export function classifyTrap(
  trapOid: string,
  varbinds: readonly { oid: string; value: string }[],
): TrapClass {
  const prefix = `${POLY_ENDPOINT_NOTIFICATIONS}.`;
  if (trapOid.startsWith(prefix)) {
    const rest = trapOid.slice(prefix.length);
    if (/^\d{1,9}$/.test(rest)) {
      const n = Number(rest);
      const def = BY_N.get(n);
      if (def) return { name: def.name, kind: def.kind, severity: def.severity };
      const vb = (suffix: string) =>
        varbinds.find((v) => v.oid === `${POLY_NOTIFICATION_VARIABLES}.${suffix}`)?.value;
      const kind = kindFromVarbind(vb("3.0")) ?? "info";
      const severity = severityFromVarbind(vb("7.0")) ?? (kind === "problem" ? "warning" : "info");
      return { name: `polycomEndpointNotification${n}`, kind, severity };
    }
  }
  const generic = GENERIC.get(trapOid);
  if (generic) return { ...generic };
  return { name: trapOid, kind: "info", severity: "info" };
}

/** A received, authenticated notification, values already rendered as strings. */
export interface ReceivedTrap {
  trapOid: string;
  /** Every varbind except sysUpTime.0 and snmpTrapOID.0. */
  varbinds: { oid: string; value: string }[];
  source: string;
  deviceId?: string | undefined;
}

/** Bounds on what one trap may put in the outbox (a hostile sender cannot make huge events). */
export const MAX_TRAP_VARBINDS = 64;
export const MAX_TRAP_VALUE_CHARS = 1024;

const OID_RE = /^\d+(\.\d+)+$/;

/** True when `s` is a dotted numeric OID with at least two arcs (the event contract's rule). */
export function isNumericOid(s: string): boolean {
  return s.length <= 1024 && OID_RE.test(s);
}

/**
 * The `trap` event for a notification, or undefined when the trap OID is not a numeric OID (the receiver
 * counts that as malformed). Varbinds are capped at MAX_TRAP_VARBINDS, values at MAX_TRAP_VALUE_CHARS.
 */
export function toTrapEvent(trap: ReceivedTrap): EventBody | undefined {
  if (!isNumericOid(trap.trapOid)) return undefined;
  const varbinds = trap.varbinds.slice(0, MAX_TRAP_VARBINDS).map((v) => ({
    oid: v.oid.slice(0, 1024),
    value: v.value.length > MAX_TRAP_VALUE_CHARS ? v.value.slice(0, MAX_TRAP_VALUE_CHARS) : v.value,
  }));
  const c = classifyTrap(trap.trapOid, varbinds);
  const event: EventBody = {
    type: "trap",
    source: trap.source,
    trapOid: trap.trapOid,
    name: c.name,
    kind: c.kind,
    severity: c.severity,
    varbinds,
  };
  if (trap.deviceId !== undefined) event.deviceId = trap.deviceId;
  return event;
}

/** SNMPv1 trap → SNMPv2 notification OID (RFC 3584 §3.1). */
export function v1TrapOid(enterprise: string, generic: number, specific: number): string {
  if (generic >= 0 && generic < 6) return `1.3.6.1.6.3.1.1.5.${generic + 1}`;
  return `${enterprise}.0.${specific}`;
}
