import dgram from "node:dgram";
import { createRequire } from "node:module";
import type { DeviceSim, SimTrap } from "../device.js";
import { videoosUpdateStatus } from "./auto-update.js";

/**
 * The SNMP agent of a simulated VideoOS device (../shared/poly-devices.md §3): SNMPv2-MIB system group,
 * IF-MIB ifTable with one ethernet interface, and the POLYCOM-ENDPOINT-MIB objects monitoring tools read,
 * all computed from the device on every request. v3 authPriv always; v2c only when `snmp.version2.enable`.
 * Traps for device events go to `snmp.trapTarget.1.*` when `snmp.notification.enabled`.
 */

// net-snmp ships no type declarations; this is the slice of its API the agent uses (see its README).
interface SnmpVarbind {
  oid: string;
  type: number;
  value: unknown;
}
interface SnmpUser {
  name: string;
  level: number;
  authProtocol?: number;
  authKey?: string;
  privProtocol?: number;
  privKey?: string;
}
interface SnmpMib {
  registerProvider(def: Record<string, unknown>): void;
  setScalarValue(name: string, value: unknown): void;
  addTableRow(name: string, row: unknown[]): void;
  setTableSingleCell(name: string, column: number, rowIndex: unknown[], value: unknown): void;
}
interface SnmpAuthorizer {
  addUser(user: SnmpUser): void;
  addCommunity(community: string): void;
  deleteCommunity(community: string): void;
  getCommunities(): string[];
}
interface SnmpAgent {
  getMib(): SnmpMib;
  getAuthorizer(): SnmpAuthorizer;
  close(cb?: () => void): void;
  onMsg(socket: dgram.Socket, buffer: Buffer, rinfo: dgram.RemoteInfo): void;
}
interface SnmpSession {
  on(event: string, cb: (...args: unknown[]) => void): void;
  trap(oid: string, varbinds: SnmpVarbind[], options: { upTime?: number }, cb: (err: unknown) => void): void;
  close(): void;
}
interface NetSnmp {
  createAgent(options: Record<string, unknown>, cb: (err: unknown, data: unknown) => void): SnmpAgent;
  createSession(target: string, community: string, options: Record<string, unknown>): SnmpSession;
  createV3Session(target: string, user: SnmpUser, options: Record<string, unknown>): SnmpSession;
  ObjectType: Record<string, number>;
  MibProviderType: Record<string, number>;
  MaxAccess: Record<string, number>;
  SecurityLevel: Record<string, number>;
  AuthProtocols: Record<string, number>;
  PrivProtocols: Record<string, number>;
  Version1: number;
  Version2c: number;
  Version3: number;
}

const require = createRequire(import.meta.url);
const snmp = require("net-snmp") as NetSnmp;

const T = {
  int: num(snmp.ObjectType.Integer),
  str: num(snmp.ObjectType.OctetString),
  oid: num(snmp.ObjectType.OID),
  counter: num(snmp.ObjectType.Counter),
  gauge: num(snmp.ObjectType.Gauge),
  ticks: num(snmp.ObjectType.TimeTicks),
};
const READ_ONLY = num(snmp.MaxAccess["read-only"]);
const SCALAR = num(snmp.MibProviderType.Scalar);
const TABLE = num(snmp.MibProviderType.Table);

function num(v: number | undefined): number {
  if (v === undefined) throw new Error("net-snmp constant missing");
  return v;
}

export const POLYCOM_ENTERPRISE = "1.3.6.1.4.1.13885";
export const ENDPOINT_MIB = `${POLYCOM_ENTERPRISE}.101`;
/** sysObjectID of every simulated VideoOS model: UNCONFIRMED, the POLYCOM-ENDPOINT-MIB root (README). */
export const VIDEOOS_SYS_OBJECT_ID = ENDPOINT_MIB;
const E = `${ENDPOINT_MIB}.1`;
const U32 = 2 ** 32;

/** POLYCOM-ENDPOINT-MIB status enum: disabled(1) ok(2) failed(3). */
const DISABLED = 1;
const OK = 2;
const FAILED = 3;

interface ScalarDef {
  name: string;
  oid: string;
  type: number;
  value: (d: DeviceSim) => unknown;
}
interface TableDef {
  name: string;
  /** The entry OID (table OID + ".1"). */
  oid: string;
  columns: { number: number; name: string; type: number }[];
  /** One row per table: [index, ...]; cells may change with the device. */
  row: (d: DeviceSim) => unknown[];
}

function status(failed: boolean): number {
  return failed ? FAILED : OK;
}

function macBytes(mac: string): Buffer {
  const hex = mac
    .replace(/[^0-9a-fA-F]/g, "")
    .padEnd(12, "0")
    .slice(0, 12);
  return Buffer.from(hex, "hex");
}
function macText(mac: string): string {
  return [...macBytes(mac)].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/** SNMPv2-TC DateAndTime (8 octets) from the firmware date ("2022-12-01" or "02-Jul-19 06:14"). */
function dateAndTime(date: string): Buffer {
  const t = Date.parse(date);
  const d = new Date(Number.isFinite(t) ? t : 0);
  const b = Buffer.alloc(8);
  b.writeUInt16BE(d.getUTCFullYear(), 0);
  b[2] = d.getUTCMonth() + 1;
  b[3] = d.getUTCDate();
  b[4] = d.getUTCHours();
  b[5] = d.getUTCMinutes();
  b[6] = d.getUTCSeconds();
  b[7] = 0;
  return b;
}

function softwareInfo(d: DeviceSim): string {
  return d.firmware.build ? `${d.firmware.version}-${d.firmware.build}` : d.firmware.version;
}

function cfg(d: DeviceSim, name: string, fallback: string): string {
  return d.config.get(name) ?? fallback;
}

const hwFailed = (d: DeviceSim) => d.faults.has("cameraDown") || d.faults.has("microphoneDown");

function softwareUpdateStatus(d: DeviceSim): number {
  if (d.config.get("upgrade.auto.enable") !== "true") return DISABLED;
  const s = videoosUpdateStatus(d);
  return status(s.serverDown || s.lastUpdateFailed);
}
function provisioningStatus(d: DeviceSim): number {
  return cfg(d, "device.prov.serverName", "") === "" ? DISABLED : OK;
}

const SCALARS: ScalarDef[] = [
  // SNMPv2-MIB system group
  {
    name: "sysDescr",
    oid: "1.3.6.1.2.1.1.1",
    type: T.str,
    value: (d) =>
      `${cfg(d, "snmp.systemDesc", "Videoconferencing Device")}, Poly ${d.spec.model}, VideoOS ${softwareInfo(d)}`,
  },
  { name: "sysObjectID", oid: "1.3.6.1.2.1.1.2", type: T.oid, value: () => VIDEOOS_SYS_OBJECT_ID },
  {
    name: "sysUpTime",
    oid: "1.3.6.1.2.1.1.3",
    type: T.ticks,
    value: (d) => Math.floor(d.uptimeSec() * 100) % U32,
  },
  {
    name: "sysContact",
    oid: "1.3.6.1.2.1.1.4",
    type: T.str,
    value: (d) => cfg(d, "snmp.contactName", "IT Administrator"),
  },
  { name: "sysName", oid: "1.3.6.1.2.1.1.5", type: T.str, value: (d) => cfg(d, "system.name", d.spec.model) },
  { name: "sysLocation", oid: "1.3.6.1.2.1.1.6", type: T.str, value: (d) => cfg(d, "snmp.locationName", "") },
  { name: "sysServices", oid: "1.3.6.1.2.1.1.7", type: T.int, value: () => 72 },
  // IF-MIB
  { name: "ifNumber", oid: "1.3.6.1.2.1.2.1", type: T.int, value: () => 1 },
  // POLYCOM-ENDPOINT-MIB identity
  { name: "identitySoftwareInfo", oid: `${E}.1.1`, type: T.str, value: softwareInfo },
  { name: "identityBuildDate", oid: `${E}.1.2`, type: T.str, value: (d) => dateAndTime(d.firmware.date) },
  { name: "identityDeviceType", oid: `${E}.1.3`, type: T.str, value: (d) => d.spec.series },
  { name: "identityDeviceModel", oid: `${E}.1.4`, type: T.str, value: (d) => d.spec.model },
  { name: "identityDeviceSerialNumber", oid: `${E}.1.5`, type: T.str, value: (d) => d.serial },
  {
    name: "identityStatus",
    oid: `${E}.1.6`,
    type: T.int,
    value: (d) => status(hwFailed(d) || d.faults.has("sipUnregistered")),
  },
  { name: "identityDebugMode", oid: `${E}.1.7`, type: T.int, value: () => 2 },
  { name: "identityConsoleAccess", oid: `${E}.1.8`, type: T.int, value: () => 2 },
  { name: "identityMIBVersionSupported", oid: `${E}.1.9`, type: T.str, value: () => "1.0" },
  // services
  { name: "serviceH323Status", oid: `${E}.2.7.1`, type: T.int, value: () => DISABLED },
  { name: "serviceH323RegistrationStatus", oid: `${E}.2.7.2`, type: T.int, value: () => DISABLED },
  {
    name: "serviceSipStatus",
    oid: `${E}.2.8.1`,
    type: T.int,
    value: (d) => status(d.faults.has("sipUnregistered")),
  },
  // hardware
  { name: "hardwareOverallStatus", oid: `${E}.3.1`, type: T.int, value: (d) => status(hwFailed(d)) },
  {
    name: "hardwareMicrophoneStatus",
    oid: `${E}.3.5.1`,
    type: T.int,
    value: (d) => status(d.faults.has("microphoneDown")),
  },
  {
    name: "hardwareCameraStatus",
    oid: `${E}.3.6.1`,
    type: T.int,
    value: (d) => status(d.faults.has("cameraDown")),
  },
  { name: "hardwareNICStatus", oid: `${E}.3.10.1`, type: T.int, value: () => OK },
  { name: "hardwarePTCStatus", oid: `${E}.3.11.1`, type: T.int, value: () => OK },
  // conference
  {
    name: "conferenceNumberActiveConferences",
    oid: `${E}.5.1`,
    type: T.gauge,
    value: (d) => (d.inCall ? 1 : 0),
  },
  // external integration
  {
    name: "externalIntegrationStatus",
    oid: `${E}.6.1`,
    type: T.int,
    value: (d) => (softwareUpdateStatus(d) === FAILED || provisioningStatus(d) === FAILED ? FAILED : OK),
  },
  { name: "externalIntegrationPresenceStatus", oid: `${E}.6.7.1`, type: T.int, value: () => DISABLED },
  { name: "externalIntegrationCDRStatus", oid: `${E}.6.8.1`, type: T.int, value: () => DISABLED },
  { name: "externalIntegrationSyslogStatus", oid: `${E}.6.9.1`, type: T.int, value: () => DISABLED },
  {
    name: "externalIntegrationSoftwareUpdateStatus",
    oid: `${E}.6.10.1`,
    type: T.int,
    value: softwareUpdateStatus,
  },
  {
    name: "externalIntegrationProvisioningStatus",
    oid: `${E}.6.11.1`,
    type: T.int,
    value: provisioningStatus,
  },
];

const TABLES: TableDef[] = [
  {
    name: "ifTable",
    oid: "1.3.6.1.2.1.2.2.1",
    columns: [
      { number: 1, name: "ifIndex", type: T.int },
      { number: 2, name: "ifDescr", type: T.str },
      { number: 3, name: "ifType", type: T.int },
      { number: 4, name: "ifMtu", type: T.int },
      { number: 5, name: "ifSpeed", type: T.gauge },
      { number: 6, name: "ifPhysAddress", type: T.str },
      { number: 7, name: "ifAdminStatus", type: T.int },
      { number: 8, name: "ifOperStatus", type: T.int },
      { number: 9, name: "ifLastChange", type: T.ticks },
      { number: 10, name: "ifInOctets", type: T.counter },
      { number: 11, name: "ifInUcastPkts", type: T.counter },
      { number: 13, name: "ifInDiscards", type: T.counter },
      { number: 14, name: "ifInErrors", type: T.counter },
      { number: 16, name: "ifOutOctets", type: T.counter },
      { number: 17, name: "ifOutUcastPkts", type: T.counter },
      { number: 19, name: "ifOutDiscards", type: T.counter },
      { number: 20, name: "ifOutErrors", type: T.counter },
    ],
    row: (d) => {
      const c = d.packetCounters();
      const lossDrops = d.faults.has("packetLoss") ? Math.floor(c.rx * 0.12) : 0;
      return [
        1,
        "eth0",
        6,
        1500,
        1_000_000_000,
        macBytes(d.mac),
        1,
        1,
        0,
        c.rxBytes % U32,
        c.rx % U32,
        0,
        lossDrops % U32,
        c.txBytes % U32,
        c.tx % U32,
        0,
        0,
      ];
    },
  },
  {
    name: "serviceSipProxyTable",
    oid: `${E}.2.8.2.1`,
    columns: [
      { number: 1, name: "serviceSipProxyIndex", type: T.int },
      { number: 2, name: "serviceSipProxyStatus", type: T.int },
    ],
    row: (d) => [1, status(d.faults.has("sipUnregistered"))],
  },
  {
    name: "serviceSipRegistrationTable",
    oid: `${E}.2.8.3.1`,
    columns: [
      { number: 1, name: "serviceSipRegistrationIndex", type: T.int },
      { number: 2, name: "serviceSipRegistrationStatus", type: T.int },
    ],
    row: (d) => [1, status(d.faults.has("sipUnregistered"))],
  },
  {
    name: "hardwareMicrophoneMicrophonesTable",
    oid: `${E}.3.5.2.1`,
    columns: [
      { number: 1, name: "hardwareMicrophoneIndex", type: T.int },
      { number: 2, name: "hardwareMicrophoneName", type: T.str },
      { number: 3, name: "hardwareMicrophoneStatusEntry", type: T.int },
    ],
    row: (d) => [
      1,
      d.spec.series === "StudioX" ? "Built-in Microphone" : "Microphone 1",
      status(d.faults.has("microphoneDown")),
    ],
  },
  {
    name: "hardwareCameraCamerasTable",
    oid: `${E}.3.6.2.1`,
    columns: [
      { number: 1, name: "hardwareCameraIndex", type: T.int },
      { number: 2, name: "hardwareCameraName", type: T.str },
      { number: 3, name: "hardwareCameraStatusEntry", type: T.int },
    ],
    row: (d) => [
      1,
      d.spec.series === "StudioX" ? "Built-in Camera" : "EagleEye IV",
      status(d.faults.has("cameraDown")),
    ],
  },
  {
    name: "hardwareNICNICsTable",
    oid: `${E}.3.10.2.1`,
    columns: [
      { number: 1, name: "hardwareNICIndex", type: T.int },
      { number: 2, name: "hardwareNICName", type: T.str },
      { number: 3, name: "hardwareNICMACAddress", type: T.str },
      { number: 4, name: "hardwareNICSpeed", type: T.int },
      { number: 5, name: "hardwareNICDuplex", type: T.str },
      { number: 6, name: "hardwareNICStatusEntry", type: T.int },
      { number: 7, name: "hardwareNICIPType", type: T.str },
    ],
    row: (d) => [1, "LAN", macText(d.mac), 1000, "FULL", OK, "IPv4"],
  },
  {
    name: "hardwarePTCsTable",
    oid: `${E}.3.11.2.1`,
    columns: [
      { number: 1, name: "hardwarePTCIndex", type: T.int },
      { number: 2, name: "hardwarePTCStatusEntry", type: T.str },
    ],
    row: () => [1, "Poly TC8: connected"],
  },
];

/** Which SNMP message version a datagram claims (BER peek), or undefined when it is not SNMP-shaped. */
export function peekSnmpVersion(buf: Buffer): number | undefined {
  if (buf.length < 5 || buf[0] !== 0x30) return undefined;
  const l = buf[1] ?? 0;
  let i = 2;
  if (l & 0x80) i += l & 0x7f;
  if (buf[i] !== 0x02 || buf[i + 1] !== 0x01) return undefined;
  return buf[i + 2];
}

function versionAllowed(d: DeviceSim, version: number | undefined): boolean {
  if (version === snmp.Version3) return d.config.get("snmp.version3.enable") !== "false";
  if (version === snmp.Version2c) return d.config.get("snmp.version2.enable") === "true";
  if (version === snmp.Version1) return d.config.get("snmp.version1.enable") === "true";
  return true; // garbage: let net-snmp reject it (the robustness path is the same as on a real socket)
}

/** RFC 3411 engine ID: enterprise 13885, format 3 (MAC address). */
function engineIdFor(d: DeviceSim): string {
  return `8000363d03${macBytes(d.mac).toString("hex")}`;
}

const SEVERITY: Record<SimTrap["kind"], number> = { problem: 3, resolution: 5, info: 6 };
const TRAP_TYPE: Record<SimTrap["kind"], number> = { problem: 1, resolution: 2, info: 3 };

export interface DeviceSnmpOptions {
  log?: (msg: string) => void;
  /** Share of requests dropped under the `packetLoss` fault. Default 0.3. */
  packetLossRatio?: number;
}

/**
 * Starts the device's SNMP agent on `device.address:device.snmpPort` (UDP). Resolves once the socket is
 * bound; rejects when it cannot bind. `close()` stops answering and sending traps.
 */
export async function startDeviceSnmp(
  device: DeviceSim,
  opts: DeviceSnmpOptions = {},
): Promise<{ close(): Promise<void> }> {
  const port = device.snmpPort;
  const creds = device.snmp;
  if (port === null || creds === null) throw new Error(`device ${device.id} has no SNMP agent`);
  const log = opts.log;
  const lossRatio = opts.packetLossRatio ?? 0.3;

  let socket: dgram.Socket | undefined;
  const dgramModule = {
    createSocket(type: dgram.SocketType): dgram.Socket {
      const s = dgram.createSocket(type);
      socket = s;
      return s;
    },
  };
  let errorsLogged = 0;
  const agent = snmp.createAgent(
    { port, address: device.address, transport: "udp4", engineID: engineIdFor(device), dgramModule },
    (err: unknown) => {
      // Called for every request; errors are bad/unauthorised packets. Log a few, never throw.
      if (err && log && errorsLogged < 20) {
        errorsLogged++;
        log(`${device.id}: snmp: ${err instanceof Error ? err.message : String(err)}`);
      }
    },
  );
  const sock = socket;
  if (!sock) throw new Error("net-snmp did not create its socket through dgramModule");

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      sock.off("listening", onListening);
      try {
        agent.close();
      } catch {
        // already closed
      }
      reject(err);
    };
    const onListening = () => {
      sock.off("error", onError);
      resolve();
    };
    sock.once("error", onError);
    sock.once("listening", onListening);
  });

  const mib = agent.getMib();
  const auth = agent.getAuthorizer();
  const authProtocol =
    creds.v3.authProtocol === "sha256" ? snmp.AuthProtocols.sha256 : snmp.AuthProtocols.sha;
  auth.addUser({
    name: creds.v3.user,
    level: num(snmp.SecurityLevel.authPriv),
    authProtocol: num(authProtocol),
    authKey: creds.v3.authKey,
    privProtocol: num(snmp.PrivProtocols.aes),
    privKey: creds.v3.privKey,
  });

  for (const s of SCALARS) {
    mib.registerProvider({
      name: s.name,
      type: SCALAR,
      oid: s.oid,
      scalarType: s.type,
      maxAccess: READ_ONLY,
    });
  }
  for (const t of TABLES) {
    mib.registerProvider({
      name: t.name,
      type: TABLE,
      oid: t.oid,
      maxAccess: num(snmp.MaxAccess["not-accessible"]),
      tableColumns: t.columns.map((c) => ({ ...c, maxAccess: READ_ONLY })),
      tableIndex: [{ columnName: t.columns[0]?.name }],
    });
    mib.addTableRow(t.name, t.row(device));
  }

  let community: string | undefined;
  const refresh = (): void => {
    for (const s of SCALARS) {
      try {
        mib.setScalarValue(s.name, s.value(device));
      } catch (err) {
        log?.(`${device.id}: snmp: ${s.name}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    for (const t of TABLES) {
      const row = t.row(device);
      const index = [row[0]];
      t.columns.forEach((c, i) => {
        if (i === 0) return;
        try {
          mib.setTableSingleCell(t.name, c.number, index, row[i]);
        } catch (err) {
          log?.(
            `${device.id}: snmp: ${t.name}.${c.number}: ${err instanceof Error ? err.message : String(err)}`,
          );
        }
      });
    }
    const wanted = device.config.get("snmp.community") ?? creds.community;
    if (wanted !== community) {
      if (community !== undefined) auth.deleteCommunity(community);
      auth.addCommunity(wanted);
      community = wanted;
    }
  };
  refresh();

  // Gate every datagram before net-snmp sees it: a down device, `noAnswer`, `packetLoss` and disabled
  // SNMP versions drop the request; anything net-snmp throws is contained here.
  sock.removeAllListeners("message");
  sock.on("message", (msg: Buffer, rinfo: dgram.RemoteInfo) => {
    try {
      if (!device.isUp() || device.faults.has("noAnswer")) return;
      if (device.config.get("snmp.enable") === "false") return;
      if (device.faults.has("packetLoss") && Math.random() < lossRatio) return;
      if (!versionAllowed(device, peekSnmpVersion(msg))) return;
      refresh();
      agent.onMsg(sock, msg, rinfo);
    } catch (err) {
      if (log && errorsLogged < 20) {
        errorsLogged++;
        log(`${device.id}: snmp: request failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  });
  // net-snmp logs socket errors through the agent callback; keep one listener so none is ever unhandled.
  sock.on("error", () => undefined);

  const onTrap = (trap: SimTrap): void => {
    try {
      sendTrap(device, trap, engineIdFor(device), log);
    } catch (err) {
      log?.(
        `${device.id}: snmp trap ${trap.trap} failed: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  };
  device.events.on("trap", onTrap);

  let closed: Promise<void> | undefined;
  return {
    close(): Promise<void> {
      if (!closed) {
        device.events.off("trap", onTrap);
        closed = new Promise<void>((resolve) => {
          try {
            agent.close(() => resolve());
          } catch {
            resolve();
          }
        });
      }
      return closed;
    },
  };
}

/** Sends one POLYCOM-ENDPOINT-MIB notification to trap target 1, if notifications are on. */
function sendTrap(device: DeviceSim, trap: SimTrap, engineID: string, log?: (msg: string) => void): void {
  const c = device.config;
  if (c.get("snmp.notification.enabled") !== "true") return;
  if (c.get("snmp.trapTarget.1.enable") === "false") return;
  const target = c.get("snmp.trapTarget.1.address") ?? "";
  if (target === "" || !device.isUp()) return;
  const portNum = Number(c.get("snmp.trapTarget.1.port") ?? "162");
  const trapPort = Number.isInteger(portNum) && portNum > 0 && portNum < 65536 ? portNum : 162;
  const creds = device.snmp;
  if (!creds) return;
  const varbinds: SnmpVarbind[] = [
    { oid: `${E}.99.1.0`, type: T.str, value: c.get("system.name") ?? device.spec.model },
    { oid: `${E}.99.3.0`, type: T.int, value: TRAP_TYPE[trap.kind] },
    { oid: `${E}.99.6.0`, type: T.str, value: trap.summary },
    { oid: `${E}.99.7.0`, type: T.int, value: SEVERITY[trap.kind] },
  ];
  const proto = (c.get("snmp.trapTarget.1.protocolVersion") ?? "v3").toLowerCase();
  const options = { trapPort, sourceAddress: device.address };
  let session: SnmpSession;
  if (proto === "v2c" || proto === "v2" || proto === "v1") {
    const version = proto === "v1" ? snmp.Version1 : snmp.Version2c;
    session = snmp.createSession(target, c.get("snmp.community") ?? creds.community, { ...options, version });
  } else {
    const user: SnmpUser = {
      name: creds.v3.user,
      level: num(snmp.SecurityLevel.authPriv),
      authProtocol: num(
        creds.v3.authProtocol === "sha256" ? snmp.AuthProtocols.sha256 : snmp.AuthProtocols.sha,
      ),
      authKey: creds.v3.authKey,
      privProtocol: num(snmp.PrivProtocols.aes),
      privKey: creds.v3.privKey,
    };
    session = snmp.createV3Session(target, user, { ...options, engineID, version: snmp.Version3 });
  }
  session.on("error", () => undefined);
  const upTime = Math.floor(device.uptimeSec() * 100) % U32;
  session.trap(`${ENDPOINT_MIB}.0.${trap.trap}`, varbinds, { upTime }, (err: unknown) => {
    if (err)
      log?.(`${device.id}: snmp trap ${trap.trap}: ${err instanceof Error ? err.message : String(err)}`);
    try {
      session.close();
    } catch {
      // already closed
    }
  });
}
