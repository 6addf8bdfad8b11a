import {
  type FirmwareComponent,
  type HealthItem,
  type NetworkRates,
  type Peripheral,
  type SipLine,
  Telemetry,
} from "@polyfleet/shared";
import type { DeviceSim } from "../simulator/device.js";
import { createFleet, DEFAULT_FLEET } from "../simulator/fleet.js";
import { createRandom } from "../simulator/random.js";

/**
 * Realistic readings for the collector benchmark, as the agent's drivers produce them (agent/src/core/
 * normalize-uc.ts, normalize-videoos.ts): the device identities come from the simulator's fleet builder (real
 * model mix, Poly OUIs, serials, part numbers, firmware lines, a few faults), the shape from the normalisers
 * (UC: application / updater / bootBlock firmware, status / sipRegistration / ready / provisioning / lan
 * health, one SIP line, CPU and memory, packet rates; VideoOS: system + TC8 + camera firmware, the twelve
 * `system.status.*` items and the three MIB hardware states, TC8 and camera peripherals, byte and packet
 * rates). A small share of devices does not answer (reachable false, a poll error, last known identity).
 *
 * Every reading is JSON text built by concatenation: the per-device parts that do not change between polls
 * (identity, firmware, health, peripherals, lines) are serialised once, and each device has a ring of
 * pre-serialised "hot" variants (CPU, memory, uptime, latency, network rates) that successive readings walk
 * through, so the publishers spend little CPU and the collector still sees changing values.
 */

export interface BenchDevice {
  id: string;
  family: "uc" | "videoos";
  model: string;
  reachable: boolean;
  /** `"deviceId":…,"driver":…` */
  head: string;
  /** `"identity":…,"firmware":…,"health":…,"peripherals":…,"lines":…` */
  cold: string;
  /** Ring of hot variants: `"reachable":…,"pollLatencyMs":…` and `"cpuPct":…,"network":…,"errors":[…]`. */
  hot: [front: string, back: string][];
  /** Readings emitted so far (walks the hot ring). */
  n: number;
  /** Timestamp of the last reading: every reading of a device gets a later one (one InfluxDB point each). */
  lastTs: number;
}

export interface FleetStats {
  devices: number;
  byFamily: Record<string, number>;
  byModel: Record<string, number>;
  unreachable: number;
  faults: Record<string, number>;
  /** Mean size of one reading's JSON, bytes. */
  meanReadingBytes: number;
}

export interface BenchFleetOptions {
  devices: number;
  seed: number;
  /** Percent of devices not answering (default 1). */
  unreachablePct?: number;
  /** Hot variants per device (default 16). */
  variants?: number;
}

const j = JSON.stringify;

function ucParts(
  d: DeviceSim,
  rand: () => number,
): { identity: object; firmware: FirmwareComponent[]; health: HealthItem[]; peripherals: Peripheral[] } & {
  lines: SipLine[];
} {
  const unregistered = d.faults.has("sipUnregistered");
  const lines: SipLine[] = d.lines.map((l) => ({
    line: l.number,
    address: l.address,
    label: l.label,
    registered: !unregistered,
    state: unregistered ? "unregistered" : "registered",
  }));
  const health: HealthItem[] = [
    { name: "status", state: "up" },
    unregistered
      ? { name: "sipRegistration", state: "down", detail: "unregistered: line 1" }
      : { name: "sipRegistration", state: "up" },
    { name: "ready", state: "up" },
    { name: "provisioning", state: rand() < 0.8 ? "up" : "off" },
    { name: "lan", state: "up" },
  ];
  const peripherals: Peripheral[] = [];
  if (d.spec.series === "Trio" && rand() < 0.4) {
    const serial = `${d.serial.slice(0, 8)}${Math.floor(rand() * 1e4)
      .toString()
      .padStart(4, "0")}`;
    peripherals.push(
      { id: `displayUI:${serial}`, category: "displayUI", name: "Trio Visual+", state: "connected", serial },
      { id: `cameraSrc:${serial}C`, category: "cameraSrc", name: "EagleEye Mini", state: "connected" },
    );
  }
  const firmware: FirmwareComponent[] = [
    { component: "application", version: d.firmware.version, build: d.firmware.date },
    { component: "updater", version: d.updaterVersion },
    { component: "bootBlock", version: d.bootBlock.replace(/\s*\(.*$/, "") },
  ];
  return {
    identity: {
      address: d.address,
      family: "uc",
      vendor: "Polycom",
      model: d.spec.model,
      serial: d.mac.toUpperCase(),
      mac: d.mac,
      partNumber: d.spec.partNumber.replace(/^\d+-/, ""),
    },
    firmware,
    health,
    peripherals,
    lines,
  };
}

function videoParts(d: DeviceSim): {
  identity: object;
  firmware: FirmwareComponent[];
  health: HealthItem[];
  peripherals: Peripheral[];
} & {
  lines: SipLine[];
} {
  const cameraDown = d.faults.has("cameraDown");
  const micDown = d.faults.has("microphoneDown");
  const sipDown = d.faults.has("sipUnregistered");
  const builtIn = d.spec.series === "StudioX";
  const base = d.serial.slice(0, -2);
  const st = (name: string, state: HealthItem["state"]): HealthItem => ({ name, state });
  const health: HealthItem[] = [
    st("provisioning", "off"),
    st("ipnetwork", "up"),
    st("trackablecamera", cameraDown ? "down" : "up"),
    st("sipserver", sipDown ? "down" : "up"),
    st("gatekeeper", "off"),
    st("camera", cameraDown ? "down" : "up"),
    st("microphone", micDown ? "down" : "up"),
    st("remotecontrol", "up"),
    st("logthreshold", "up"),
    st("autoanswerp2p", "off"),
    st("globaldirectory", "off"),
    st("calendar", "off"),
    st("hardware", cameraDown || micDown ? "down" : "up"),
    st("hardwareMicrophone", micDown ? "down" : "up"),
    st("hardwareCamera", cameraDown ? "down" : "up"),
  ];
  const tcVersion = `${d.firmware.version.split(".").slice(0, 2).join(".")}.0-${d.index % 900}`;
  const camName = builtIn ? `${d.spec.model} Camera` : "EagleEye IV";
  const camVersion = builtIn ? d.firmware.version : "1.4.2";
  const tcMac = (Number.parseInt(d.mac.slice(6), 16) + 1).toString(16).padStart(6, "0").slice(-6);
  const peripherals: Peripheral[] = [
    {
      id: String(100_000 + d.index),
      category: "module",
      name: "Poly TC8",
      state: "paired",
      serial: `${base}FD`,
      firmware: tcVersion,
      mac: `${d.mac.slice(0, 6)}${tcMac}`.replace(/(..)(?!$)/g, "$1:"),
    },
    {
      id: "local-camera",
      category: "camera",
      name: camName,
      state: cameraDown ? "missing" : "connected",
      serial: builtIn ? d.serial : `${base}CA`,
      firmware: camVersion,
    },
  ];
  const system: FirmwareComponent = { component: "system", version: d.firmware.version };
  if (d.firmware.build) system.build = d.firmware.build;
  const firmware: FirmwareComponent[] = [
    system,
    { component: "Poly TC8", version: tcVersion },
    { component: camName, version: camVersion },
  ];
  return {
    identity: {
      address: d.address,
      family: "videoos",
      vendor: "Poly",
      model: d.spec.model,
      serial: d.serial,
      mac: d.mac,
      systemName: `${d.spec.model}-${d.serial.slice(-8)}`,
    },
    firmware,
    health,
    peripherals,
    lines: [],
  };
}

/** The changing parts of one reading: before the cold parts (reachable, latency) and after them (the rest). */
function hotVariant(
  d: DeviceSim,
  reachable: boolean,
  rand: () => number,
  k: number,
): [front: string, back: string] {
  if (!reachable) {
    const err = {
      code: "POLYFLEET_ERR_DEVICE_TIMEOUT",
      message: "device did not answer in time",
      endpoint: d.family === "uc" ? "/api/v2/mgmt/device/info" : "/rest/system",
    };
    return [`"reachable":false,"pollLatencyMs":5000`, `"network":{},"errors":[${j(err)}]`];
  }
  const latency = +(d.family === "uc" ? 40 + rand() * 160 : 120 + rand() * 400).toFixed(1);
  const uptime = Math.round(d.uptimeSec() + k * 30);
  const inCall = rand() < 0.12;
  const rx = +(5 + rand() * 40 + (inCall ? 50 : 0)).toFixed(2);
  const tx = +(4 + rand() * 30 + (inCall ? 50 : 0)).toFixed(2);
  const parts: string[] = [];
  if (d.family === "uc") {
    const cpu = d.faults.has("highCpu") ? 95 + rand() * 4 : 8 + rand() * 25;
    const total = d.spec.series === "VVX" ? 268_435_456 : 1_073_741_824;
    const used = Math.round(total * (0.4 + rand() * 0.2));
    parts.push(
      `"cpuPct":${cpu.toFixed(1)}`,
      `"memPct":${((used / total) * 100).toFixed(2)}`,
      `"memUsedBytes":${used}`,
      `"memTotalBytes":${total}`,
      `"uptimeSec":${uptime}`,
      `"inCall":${inCall}`,
    );
    const net: NetworkRates = { rxPacketsPerSec: rx, txPacketsPerSec: tx, linkSpeedMbps: 1000 };
    if (inCall) net.packetLossPct = d.faults.has("packetLoss") ? 12 : +(rand() * 0.5).toFixed(2);
    parts.push(`"network":${j(net)}`);
  } else {
    parts.push(`"uptimeSec":${uptime}`, `"inCall":${inCall}`);
    const net: NetworkRates = {
      rxPacketsPerSec: rx * 10,
      txPacketsPerSec: tx * 10,
      rxBytesPerSec: Math.round(rx * 10 * (inCall ? 1100 : 300)),
      txBytesPerSec: Math.round(tx * 10 * (inCall ? 1100 : 300)),
      linkSpeedMbps: 1000,
    };
    parts.push(`"network":${j(net)}`);
  }
  parts.push(`"errors":[]`);
  return [`"reachable":true,"pollLatencyMs":${latency}`, parts.join(",")];
}

/** Builds the benchmark fleet (deterministic per seed) and checks a reading of every device against the schema. */
export function buildBenchFleet(opts: BenchFleetOptions): { devices: BenchDevice[]; stats: FleetStats } {
  const fleet = createFleet({
    ...DEFAULT_FLEET,
    devices: opts.devices,
    subnet: "10.40.0.0/16",
    seed: opts.seed,
    snmpPort: 161,
    httpsPort: 443,
    faults: [
      { fault: "cameraDown", percent: 2 },
      { fault: "sipUnregistered", percent: 1 },
      { fault: "highCpu", percent: 1 },
      { fault: "packetLoss", percent: 1 },
    ],
  });
  const rand = createRandom(opts.seed * 31 + 7);
  const unreachablePct = opts.unreachablePct ?? 1;
  const variants = Math.max(1, opts.variants ?? 16);
  const stats: FleetStats = {
    devices: 0,
    byFamily: {},
    byModel: {},
    unreachable: 0,
    faults: {},
    meanReadingBytes: 0,
  };
  const devices: BenchDevice[] = [];
  for (const d of fleet.devices) {
    const reachable = rand() * 100 >= unreachablePct;
    const parts = d.family === "uc" ? ucParts(d, rand) : videoParts(d);
    const driver = d.family === "uc" ? "poly-ucs" : "poly-videoos";
    const cold =
      `"identity":${j(parts.identity)},"firmware":${j(parts.firmware)},"health":${j(reachable ? parts.health : [])},` +
      `"peripherals":${j(parts.peripherals)},"lines":${j(parts.lines)}`;
    const hot = Array.from({ length: variants }, (_, k) => hotVariant(d, reachable, rand, k));
    devices.push({
      id: d.id,
      family: d.family,
      model: d.spec.model,
      reachable,
      head: `"deviceId":${j(d.id)},"driver":${j(driver)}`,
      cold,
      hot,
      n: 0,
      lastTs: 0,
    });
    stats.devices++;
    stats.byFamily[d.family] = (stats.byFamily[d.family] ?? 0) + 1;
    stats.byModel[d.spec.model] = (stats.byModel[d.spec.model] ?? 0) + 1;
    if (!reachable) stats.unreachable++;
    for (const f of d.faults) stats.faults[f] = (stats.faults[f] ?? 0) + 1;
  }
  // Every device's readings must be what the collector accepts: parse one batch per device with the contract.
  let bytes = 0;
  for (const d of devices) {
    const probe = { ...d, n: 0, lastTs: 0 };
    const items = d.hot.map(() => readingJson(probe, "bench-agent", "bench-site", 1, Date.now()));
    for (const t of items) bytes += t.length;
    const batch = `{"v":1,"kind":"batch","agentId":"bench-agent","siteId":"bench-site","items":[${items.join(",")}]}`;
    const r = Telemetry.safeParse(JSON.parse(batch));
    if (!r.success) throw new Error(`generated reading of ${d.id} is invalid: ${r.error.message}`);
  }
  stats.meanReadingBytes = Math.round(bytes / (devices.length * variants));
  return { devices, stats };
}

/**
 * The next reading of `d` as JSON text (a `Reading` with the stream header). Its timestamp is `now`, or one
 * millisecond after the device's previous reading when that is later, so every reading is its own point.
 */
export function readingJson(
  d: BenchDevice,
  agentId: string,
  siteId: string,
  seq: number,
  now: number,
): string {
  const ts = now > d.lastTs ? now : d.lastTs + 1;
  d.lastTs = ts;
  const [front, back] = d.hot[d.n++ % d.hot.length] as [string, string];
  return `{"v":1,"agentId":"${agentId}","siteId":"${siteId}","seq":${seq},"ts":${ts},"kind":"reading",${d.head},${front},${d.cold},${back}}`;
}

/** The constant head of an agent's `ReadingBatch` (as agent/src/core/outbox-batching.ts builds it). */
export function batchPrefix(agentId: string, siteId: string): string {
  return `{"v":1,"kind":"batch","agentId":${j(agentId)},"siteId":${j(siteId)},"items":[`;
}
