import type {
  DeviceIdentity,
  FirmwareComponent,
  HealthItem,
  HealthState,
  NetworkRates,
  Peripheral,
  PollError,
  polyVideoOs,
} from "@polyfleet/shared";
import type { z } from "zod";
import type { ReadingBody } from "../ports/driver.js";
import type { Varbind } from "../ports/snmp.js";
import { type CounterSample, counterRates } from "./rates.js";

/**
 * Pure normalisation of Poly VideoOS answers (Studio X, G7500): REST `/rest/system`, `/rest/system/status`,
 * `/rest/current/devicemanagement/devices`, `/rest/conferences`, and optionally SNMP (IF-MIB counters of
 * ifIndex 1, POLYCOM-ENDPOINT-MIB hardware status) into one reading.
 *
 * Choices:
 * - status items keep their key without the `system.status.` prefix; `mr.audio` → `microphone`,
 *   `mr.camera` → `camera`; a state list with any down/failed state is `down`.
 * - identity.mac is the codec's `macAddress` in the device-management list (`/rest/system` has none),
 *   normalised to the shared `Mac` form; kept from the previous poll when that list did not answer.
 * - peripherals: the codec itself (`local-system` / CODEC) is the device, not a peripheral; a reported
 *   DISCONNECTED/OFFLINE is `missing` (the camera of a Studio X with `cameraDown`), and one seen before that
 *   vanished from the list is `missing` too.
 * - IF-MIB octets and packets are Counter32 (wrap handled); a reboot gives no rate for that interval.
 */

export type VideoOsSystem = z.infer<typeof polyVideoOs.VideoOsSystem>;
export type VideoOsSystemStatus = z.infer<typeof polyVideoOs.VideoOsSystemStatus>;
export type VideoOsPeripherals = z.infer<typeof polyVideoOs.VideoOsPeripherals>;
export type VideoOsConferences = z.infer<typeof polyVideoOs.VideoOsConferences>;

/** The OIDs the driver reads over SNMP (all scalars or ifIndex 1). */
export const VIDEOOS_SNMP_OIDS = {
  sysUpTime: "1.3.6.1.2.1.1.3.0",
  ifSpeed: "1.3.6.1.2.1.2.2.1.5.1",
  ifInOctets: "1.3.6.1.2.1.2.2.1.10.1",
  ifInUcastPkts: "1.3.6.1.2.1.2.2.1.11.1",
  ifOutOctets: "1.3.6.1.2.1.2.2.1.16.1",
  ifOutUcastPkts: "1.3.6.1.2.1.2.2.1.17.1",
  hardwareOverallStatus: "1.3.6.1.4.1.13885.101.1.3.1.0",
  hardwareMicrophoneStatus: "1.3.6.1.4.1.13885.101.1.3.5.1.0",
  hardwareCameraStatus: "1.3.6.1.4.1.13885.101.1.3.6.1.0",
  serviceSipStatus: "1.3.6.1.4.1.13885.101.1.2.8.1.0",
  activeConferences: "1.3.6.1.4.1.13885.101.1.5.1.0",
} as const;
export type VideoOsSnmpKey = keyof typeof VIDEOOS_SNMP_OIDS;
export type VideoOsSnmpValues = Partial<Record<VideoOsSnmpKey, number>>;

const BY_OID = new Map<string, VideoOsSnmpKey>(
  (Object.entries(VIDEOOS_SNMP_OIDS) as [VideoOsSnmpKey, string][]).map(([k, o]) => [o, k]),
);

/** Picks the numeric values out of an SNMP answer; missing, non-numeric and exception values are skipped. */
export function videoOsSnmpValues(varbinds: readonly Varbind[]): VideoOsSnmpValues {
  const out: VideoOsSnmpValues = {};
  for (const vb of varbinds) {
    const key = BY_OID.get(vb.oid.replace(/^\./, ""));
    if (!key) continue;
    const v = typeof vb.value === "bigint" ? Number(vb.value) : vb.value;
    if (typeof v === "number" && Number.isFinite(v) && v >= 0) out[key] = v;
  }
  return out;
}

export interface VideoOsAnswers {
  system?: VideoOsSystem | undefined;
  status?: VideoOsSystemStatus | undefined;
  peripherals?: VideoOsPeripherals | undefined;
  conferences?: VideoOsConferences | undefined;
  snmp?: VideoOsSnmpValues | undefined;
}

export interface VideoOsPrevious {
  counters?: CounterSample | undefined;
  identity?: DeviceIdentity | undefined;
  firmware?: FirmwareComponent[] | undefined;
  peripherals?: ReadonlyMap<string, Peripheral> | undefined;
}

export interface VideoOsNormalizeInput {
  deviceId: string;
  address: string;
  reachable: boolean;
  pollLatencyMs: number;
  nowMs: number;
  answers: VideoOsAnswers;
  errors: PollError[];
  previous?: VideoOsPrevious | undefined;
}

export interface VideoOsNormalized {
  reading: ReadingBody;
  next: VideoOsPrevious;
}

// A Map, not an object: status names come from the device ("__proto__" must not reach a prototype).
const STATUS_NAMES = new Map([
  ["mr.audio", "microphone"],
  ["mr.camera", "camera"],
]);

/** `["up"]`, `["down"]`, `["off"]`... → one health state; anything down wins. */
export function videoOsHealthState(states: readonly string[]): HealthState {
  const s = states.map((x) => x.toLowerCase());
  if (s.some((x) => x === "down" || x === "failed" || x === "error" || x === "fail")) return "down";
  if (s.length > 0 && s.every((x) => x === "up" || x === "ok" || x === "on")) return "up";
  if (s.length > 0 && s.every((x) => x === "off" || x === "disabled" || x === "na" || x === "n/a"))
    return "off";
  return "unknown";
}

function healthOfStatus(status: VideoOsSystemStatus): HealthItem[] {
  const out: HealthItem[] = [];
  const seen = new Set<string>();
  for (const item of status) {
    const key = item.name.replace(/^system\.status\./, "");
    const name = (STATUS_NAMES.get(key) ?? key).slice(0, 100);
    if (!name || seen.has(name)) continue;
    seen.add(name);
    const state = videoOsHealthState(item.stateList);
    out.push(
      state === "unknown" ? { name, state, detail: item.stateList.join(",").slice(0, 100) } : { name, state },
    );
  }
  return out;
}

/** POLYCOM-ENDPOINT-MIB status enum: disabled(1) ok(2) failed(3). */
function mibState(v: number | undefined): HealthState | undefined {
  if (v === undefined) return undefined;
  return v === 1 ? "off" : v === 2 ? "up" : v === 3 ? "down" : "unknown";
}

function peripheralState(raw: string): Peripheral["state"] {
  switch (raw.toUpperCase()) {
    case "CONNECTED":
    case "ONLINE":
    case "ACTIVE":
      return "connected";
    case "PAIRED":
      return "paired";
    case "DISCONNECTED":
    case "OFFLINE":
    case "MISSING":
    case "NOT_CONNECTED":
      return "missing";
    case "UNPAIRED":
      return "disconnected";
    default:
      return "unknown";
  }
}

function isCodec(p: VideoOsPeripherals[number]): boolean {
  return p.uid === "local-system" || p.deviceType.toUpperCase() === "CODEC";
}

// Six hex pairs with one consistent separator (`:`, `-` or none), or the dotted `0011.2233.4455` form.
const MAC_PAIRS = /^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$/i;
const MAC_DOTTED = /^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$/i;

/**
 * A MAC as the device reports it → the shared `Mac` form (12 lowercase hex, no separators); anything else
 * (empty, wrong length, stray text, the all-zero and broadcast addresses, which identify no device) → undefined.
 */
export function normalizeVideoOsMac(raw: string | undefined): string | undefined {
  const s = raw?.trim();
  if (!s || !(MAC_PAIRS.test(s) || MAC_DOTTED.test(s))) return undefined;
  const hex = s.replace(/[^0-9a-f]/gi, "").toLowerCase();
  return hex === "000000000000" || hex === "ffffffffffff" ? undefined : hex;
}

/**
 * The codec's own MAC from `POST /rest/current/devicemanagement/devices`: the `macAddress` of the first
 * `local-system` / CODEC entry that carries a valid one. This is the device id the agent uses everywhere
 * (discovery, configuration, REST and SNMP polls).
 */
export function videoOsCodecMac(peripherals: VideoOsPeripherals): string | undefined {
  for (const p of peripherals) {
    if (!isCodec(p)) continue;
    const mac = normalizeVideoOsMac(p.macAddress);
    if (mac) return mac;
  }
  return undefined;
}

/** Builds the reading of one VideoOS poll; never throws on schema-valid answers. */
export function normalizeVideoOsReading(input: VideoOsNormalizeInput): VideoOsNormalized {
  const a = input.answers;
  const prev = input.previous;
  const identity: DeviceIdentity = { ...(prev?.identity ?? {}), address: input.address, family: "videoos" };
  const sys = a.system;
  if (sys) {
    identity.vendor = "Poly";
    identity.model = sys.model;
    if (sys.serialNumber) identity.serial = sys.serialNumber;
    if (sys.systemName) identity.systemName = sys.systemName;
  }
  const firmware: FirmwareComponent[] = [];
  if (sys) {
    const fw: FirmwareComponent = { component: "system", version: sys.softwareVersion };
    if (sys.build) fw.build = sys.build;
    firmware.push(fw);
  }

  const known = new Map<string, Peripheral>();
  const peripherals: Peripheral[] = [];
  if (a.peripherals) {
    const usedComponents = new Set<string>();
    const mac = videoOsCodecMac(a.peripherals);
    if (mac) identity.mac = mac;
    for (const p of a.peripherals) {
      if (isCodec(p)) continue;
      if (!p.uid || known.has(p.uid)) continue;
      const out: Peripheral = {
        id: p.uid.slice(0, 200),
        category: (p.deviceCategory || p.deviceType || "unknown").toLowerCase(),
        name: p.productName,
        state: peripheralState(p.deviceState),
      };
      if (p.serialNumber) out.serial = p.serialNumber;
      if (p.softwareVersion) out.firmware = p.softwareVersion;
      if (p.macAddress) out.mac = p.macAddress;
      known.set(out.id, out);
      peripherals.push(out);
      const component = p.productName || p.deviceType;
      if (sys && p.softwareVersion && component && !usedComponents.has(component)) {
        usedComponents.add(component);
        firmware.push({ component, version: p.softwareVersion });
      }
    }
    for (const [id, p] of prev?.peripherals ?? []) {
      if (known.has(id)) continue;
      const missing: Peripheral = { ...p, state: "missing" };
      known.set(id, missing);
      peripherals.push(missing);
    }
  } else {
    for (const [id, p] of prev?.peripherals ?? []) {
      known.set(id, p);
      peripherals.push(p);
    }
  }

  const health: HealthItem[] = a.status ? healthOfStatus(a.status) : [];
  const snmp = a.snmp;
  if (snmp) {
    const add = (name: string, v: number | undefined): void => {
      const s = mibState(v);
      if (s) health.push({ name, state: s });
    };
    add("hardware", snmp.hardwareOverallStatus);
    add("hardwareMicrophone", snmp.hardwareMicrophoneStatus);
    add("hardwareCamera", snmp.hardwareCameraStatus);
  }

  const reading: ReadingBody = {
    deviceId: input.deviceId,
    driver: "poly-videoos",
    reachable: input.reachable,
    pollLatencyMs: Math.max(0, input.pollLatencyMs),
    identity,
    firmware: sys ? firmware : (prev?.firmware ?? []),
    health,
    peripherals,
    lines: [],
    network: {},
    errors: input.errors,
  };

  const uptime = sys?.uptime ?? (snmp?.sysUpTime !== undefined ? snmp.sysUpTime / 100 : undefined);
  if (uptime !== undefined && Number.isFinite(uptime) && uptime >= 0) reading.uptimeSec = uptime;

  if (a.conferences) reading.inCall = a.conferences.some((c) => c.isActive !== false);
  else if (snmp?.activeConferences !== undefined) reading.inCall = snmp.activeConferences > 0;

  const network: NetworkRates = {};
  if (sys?.lanStatus && Number.isFinite(sys.lanStatus.speedMbps) && sys.lanStatus.speedMbps >= 0) {
    network.linkSpeedMbps = sys.lanStatus.speedMbps;
  } else if (snmp?.ifSpeed !== undefined) {
    network.linkSpeedMbps = snmp.ifSpeed / 1_000_000;
  }
  let sample = prev?.counters;
  if (snmp && (snmp.ifInOctets !== undefined || snmp.ifInUcastPkts !== undefined)) {
    sample = {
      atMs: input.nowMs,
      uptimeSec: snmp.sysUpTime !== undefined ? snmp.sysUpTime / 100 : uptime,
      values: {
        rxBytes: snmp.ifInOctets,
        txBytes: snmp.ifOutOctets,
        rxPackets: snmp.ifInUcastPkts,
        txPackets: snmp.ifOutUcastPkts,
      },
    };
    // 10 Gbit/s is the ceiling of any video bar's port: above it a "wrap" was really a reset.
    const bytes = counterRates(prev?.counters, sample, { kind: "counter32", maxPerSec: 1.25e9 });
    const pkts = counterRates(prev?.counters, sample, { kind: "counter32", maxPerSec: 15e6 });
    if (bytes.rxBytes !== undefined) network.rxBytesPerSec = bytes.rxBytes;
    if (bytes.txBytes !== undefined) network.txBytesPerSec = bytes.txBytes;
    if (pkts.rxPackets !== undefined) network.rxPacketsPerSec = pkts.rxPackets;
    if (pkts.txPackets !== undefined) network.txPacketsPerSec = pkts.txPackets;
  }
  reading.network = network;

  return {
    reading,
    next: {
      counters: sample,
      identity: sys ? identity : prev?.identity,
      firmware: sys ? reading.firmware : prev?.firmware,
      peripherals: a.peripherals || prev?.peripherals ? known : undefined,
    },
  };
}
