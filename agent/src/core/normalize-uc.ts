import type {
  DeviceIdentity,
  FirmwareComponent,
  HealthItem,
  NetworkRates,
  Peripheral,
  PollError,
  polyUc,
  SipLine,
} from "@polyfleet/shared";
import type { z } from "zod";
import type { ReadingBody } from "../ports/driver.js";
import { type CounterSample, counterRates } from "./rates.js";

/**
 * Pure normalisation of Poly UC Software REST answers (VVX, Trio, CCX, Edge) into one reading.
 * Input answers are already validated by the `polyUc.*` schemas at the edge (the poly-ucs driver).
 *
 * Choices:
 * - `cpuPct` is `CPU.Average`, not `CPU.Current`: Current is an instantaneous sample that swings with one
 *   key press or UI redraw, and alert thresholds with a `for` duration on it flap; Average is what the
 *   phone's own status page and monitoring plugins chart.
 * - `memPct` = (Used − SReclaim) / Total, as Centreon's Poly plugin computes it: reclaimable slab is cache.
 * - `serial` = the MAC upper-case (a Poly phone's serial number is its MAC).
 * - Packet counters are treated as Counter32 (wrap) with a plausibility bound of 2 M packets/s; a reboot
 *   (uptime dropped) yields no rate for that interval.
 */

export type UcDeviceInfoV2 = z.infer<typeof polyUc.UcDeviceInfoV2>["data"];
export type UcDeviceInfoV1 = z.infer<typeof polyUc.UcDeviceInfoV1>["data"];
export type UcDeviceStats = z.infer<typeof polyUc.UcDeviceStats>["data"];
export type UcNetworkStats = z.infer<typeof polyUc.UcNetworkStats>["data"];
export type UcNetworkInfo = z.infer<typeof polyUc.UcNetworkInfo>["data"];
export type UcLineInfoV1 = z.infer<typeof polyUc.UcLineInfoV1>["data"];
export type UcLineInfoV2 = z.infer<typeof polyUc.UcLineInfoV2>["data"];
export type UcPollForStatus = z.infer<typeof polyUc.UcPollForStatus>["data"];
export type UcCallStatusV2 = z.infer<typeof polyUc.UcCallStatusV2>["data"];
export type UcSessionStats = z.infer<typeof polyUc.UcSessionStats>["data"];
export type UcMrPair = z.infer<typeof polyUc.UcMrPair>["data"];

/** The answers one poll collected; any may be missing (endpoint failed or not asked). */
export interface UcAnswers {
  info?: { v: 2; data: UcDeviceInfoV2 } | { v: 1; data: UcDeviceInfoV1 } | undefined;
  stats?: UcDeviceStats | undefined;
  networkStats?: UcNetworkStats | undefined;
  networkInfo?: UcNetworkInfo | undefined;
  lines?: { v: 2; data: UcLineInfoV2 } | { v: 1; data: UcLineInfoV1 } | undefined;
  pollForStatus?: UcPollForStatus | undefined;
  callStatus?: UcCallStatusV2 | undefined;
  sessionStats?: UcSessionStats | undefined;
  mrpair?: UcMrPair | undefined;
}

/** Per-device memory the normaliser needs from the previous poll. */
export interface UcPrevious {
  counters?: CounterSample | undefined;
  identity?: DeviceIdentity | undefined;
  firmware?: FirmwareComponent[] | undefined;
  /** Peripherals seen before, by id: one that disappears is reported `missing`. */
  peripherals?: ReadonlyMap<string, Peripheral> | undefined;
}

export interface UcNormalizeInput {
  deviceId: string;
  address: string;
  reachable: boolean;
  pollLatencyMs: number;
  nowMs: number;
  answers: UcAnswers;
  errors: PollError[];
  previous?: UcPrevious | undefined;
}

export interface UcNormalized {
  reading: ReadingBody;
  /** What to remember for the next poll. */
  next: UcPrevious;
}

/** `5.9.7.4477 18-Feb-21 11:02` → version + build date. Falls back to the whole text as the version. */
export function parseUcVersion(text: string): { version: string; build?: string } | undefined {
  const raw = text.trim();
  if (raw === "") return undefined;
  const m = /(\d+\.){3}\d{4,}[A-Z]?/.exec(raw);
  if (!m) return { version: raw };
  const rest = (raw.slice(0, m.index) + raw.slice(m.index + m[0].length)).trim();
  return rest ? { version: m[0], build: rest } : { version: m[0] };
}

/** BootBlock `3.0.6.0002 (48830-001)` → version and the raw part-number tail in the parentheses. */
export function parseUcBootBlock(text: string): { version?: string; partNumber?: string } {
  const out: { version?: string; partNumber?: string } = {};
  const v = parseUcVersion(text.replace(/\([^)]*\)/g, ""));
  if (v) out.version = v.version;
  const p = /\(([^)]+)\)/.exec(text);
  if (p?.[1]?.trim()) out.partNumber = p[1].trim();
  return out;
}

/** `0 Day 22:02:09`, `3 days 4:05:06` → seconds. */
export function parseUcUptimeText(text: string): number | undefined {
  const m = /^\s*(\d+)\s+days?\s+(\d{1,2}):(\d{2}):(\d{2})\s*$/i.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * 86_400 + Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4]);
}

function num(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

function pct(n: number | undefined): number | undefined {
  if (n === undefined || !Number.isFinite(n)) return undefined;
  return Math.min(100, Math.max(0, n));
}

function normMac(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  const hex = raw.replace(/[^0-9a-fA-F]/g, "").toLowerCase();
  return hex.length === 12 ? hex : undefined;
}

interface UcInfo {
  model: string;
  vendor?: string | undefined;
  mac?: string | undefined;
  application?: string | undefined;
  updater?: string | undefined;
  bootBlock?: string | undefined;
  uptimeSec?: number | undefined;
  appState?: string | undefined;
  readyToUse?: boolean | undefined;
}

function infoOf(a: UcAnswers["info"]): UcInfo | undefined {
  if (!a) return undefined;
  if (a.v === 2) {
    const d = a.data;
    const up = d.UpTime;
    const uptime =
      Number(up.Days) * 86_400 + Number(up.Hours) * 3600 + Number(up.Minutes) * 60 + Number(up.Seconds);
    return {
      model: d.ModelNumber,
      vendor: d.DeviceVendor,
      mac: normMac(d.MACAddress),
      application: d.Firmware.Application,
      updater: d.Firmware.Updater,
      bootBlock: d.Firmware.BootBlock,
      uptimeSec: Number.isFinite(uptime) && uptime >= 0 ? uptime : undefined,
      appState: d.AppState,
      readyToUse: d.ReadyToUse === undefined ? undefined : d.ReadyToUse === "True",
    };
  }
  const d = a.data;
  if ("FirmwareRelease" in d) {
    return {
      model: d.ModelNumber,
      vendor: d.DeviceVendor,
      mac: normMac(d.MACAddress),
      application: d.FirmwareRelease,
      uptimeSec: parseUcUptimeText(d.UpTimeSinceLastReboot),
    };
  }
  const fw = d.Firmware as Record<string, unknown>;
  const up = d.UpTime as Record<string, unknown>;
  const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
  const parts = [up.Days, up.Hours ?? "0", up.Minutes ?? "0", up.Seconds ?? "0"].map((v) => Number(v));
  const uptime = (parts[0] ?? 0) * 86_400 + (parts[1] ?? 0) * 3600 + (parts[2] ?? 0) * 60 + (parts[3] ?? 0);
  return {
    model: d.ModelNumber,
    mac: normMac(d.MACAddress),
    application: str(fw.Application),
    updater: str(fw.Updater),
    bootBlock: str(fw.BootBlock),
    uptimeSec: Number.isFinite(uptime) && uptime >= 0 ? uptime : undefined,
  };
}

function firmwareOf(info: UcInfo): FirmwareComponent[] {
  const out: FirmwareComponent[] = [];
  const app = info.application ? parseUcVersion(info.application) : undefined;
  if (app) out.push({ component: "application", ...app });
  const upd = info.updater ? parseUcVersion(info.updater) : undefined;
  if (upd) out.push({ component: "updater", ...upd });
  const boot = info.bootBlock ? parseUcBootBlock(info.bootBlock) : undefined;
  if (boot?.version) out.push({ component: "bootBlock", version: boot.version });
  return out;
}

function linesOf(a: UcAnswers["lines"]): SipLine[] {
  if (!a) return [];
  if (a.v === 1) {
    return a.data.map((l, i) => {
      const line: SipLine = {
        line: positiveInt(l.LineNumber, i + 1),
        address: l.SIPAddress,
        registered: l.RegistrationStatus === "registered",
        state: l.RegistrationStatus,
      };
      if (l.Label !== undefined) line.label = l.Label;
      return line;
    });
  }
  return a.data.map((l, i) => {
    const server = l.CallServers[0];
    const host =
      typeof server === "object" &&
      server !== null &&
      typeof (server as { Address?: unknown }).Address === "string"
        ? (server as { Address: string }).Address
        : undefined;
    const user = l.Username ?? "";
    const line: SipLine = {
      line: positiveInt(l.LineNumber, i + 1),
      address: user && host ? `${user}@${host}` : user,
      registered: l.RegistrationStatus === "registered",
      state: l.RegistrationStatus,
    };
    if (l.Label !== undefined) line.label = l.Label;
    return line;
  });
}

function positiveInt(s: string | undefined, fallback: number): number {
  const n = Number(s);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

function statusHealth(p: UcPollForStatus): HealthItem {
  const state = p.State;
  const data =
    typeof p.StateData === "string" && p.StateData.length > 0 ? p.StateData.slice(0, 500) : undefined;
  const item = (s: HealthItem["state"], detail?: string): HealthItem =>
    detail ? { name: "status", state: s, detail } : { name: "status", state: s };
  switch (state) {
    case "Ready":
    case "InCall":
    case "Idle":
      return item("up");
    case "Updating":
      return item("up", data ? `Updating: ${data}` : "Updating");
    case "Error":
      return item("down", data ?? "Error");
    default:
      return item("unknown", state.slice(0, 100));
  }
}

function healthOf(a: UcAnswers, info: UcInfo | undefined, lines: SipLine[]): HealthItem[] {
  const out: HealthItem[] = [];
  if (a.pollForStatus) out.push(statusHealth(a.pollForStatus));
  if (a.lines) {
    const down = lines.filter((l) => !l.registered);
    if (lines.length === 0)
      out.push({ name: "sipRegistration", state: "off", detail: "no lines configured" });
    else if (down.length === 0) out.push({ name: "sipRegistration", state: "up" });
    else {
      out.push({
        name: "sipRegistration",
        state: "down",
        detail: `unregistered: ${down.map((l) => `line ${l.line}`).join(", ")}`,
      });
    }
  }
  if (info?.readyToUse !== undefined) out.push({ name: "ready", state: info.readyToUse ? "up" : "down" });
  if (a.networkInfo) {
    // The server address may embed user:password (ftp://user:pw@host): only its presence is reported.
    out.push({ name: "provisioning", state: a.networkInfo.ProvServerAddress.trim() ? "up" : "off" });
    const lan = a.networkInfo.LANPortStatus;
    out.push(
      lan.toLowerCase() === "active"
        ? { name: "lan", state: "up" }
        : { name: "lan", state: "down", detail: lan.slice(0, 100) },
    );
  }
  return out;
}

function peripheralsOf(
  a: UcMrPair | undefined,
  previous: ReadonlyMap<string, Peripheral> | undefined,
): { list: Peripheral[]; known: Map<string, Peripheral> | undefined } {
  if (!a) {
    return { list: previous ? [...previous.values()] : [], known: previous ? new Map(previous) : undefined };
  }
  const known = new Map<string, Peripheral>();
  const list: Peripheral[] = [];
  for (const dev of a.ConnectedDeviceList) {
    for (const c of dev.ComponentList) {
      const id = `${c.componentType}:${c.componentSerialNumber ?? c.componentName}`;
      const p: Peripheral = {
        id,
        category: c.componentType || "unknown",
        name: c.componentName,
        state: "connected",
      };
      if (c.componentSerialNumber) p.serial = c.componentSerialNumber;
      if (known.has(id)) continue;
      known.set(id, p);
      list.push(p);
    }
  }
  for (const [id, p] of previous ?? []) {
    if (known.has(id)) continue;
    const missing: Peripheral = { ...p, state: "missing" };
    known.set(id, missing);
    list.push(missing);
  }
  return { list, known };
}

function packetLossOf(s: UcSessionStats | undefined): number | undefined {
  if (!s) return undefined;
  let lost = 0;
  let expected = 0;
  for (const session of s) {
    for (const st of session.Streams) {
      const l = num(st.PacketsLost);
      const e = num(st.PacketsExpected);
      if (l === undefined || e === undefined || e <= 0 || l < 0) continue;
      lost += l;
      expected += e;
    }
  }
  return expected > 0 ? pct((lost / expected) * 100) : undefined;
}

/** Highest packet rate accepted as real (1 Gbit/s of minimum-size frames is about 1.5 M/s). */
const MAX_PPS = 2_000_000;

/** Builds the reading of one UC phone poll; never throws on schema-valid answers. */
export function normalizeUcReading(input: UcNormalizeInput): UcNormalized {
  const a = input.answers;
  const prev = input.previous;
  const info = infoOf(a.info);
  const identity: DeviceIdentity = { ...(prev?.identity ?? {}), address: input.address, family: "uc" };
  let partNumber: string | undefined;
  if (info) {
    identity.model = info.model;
    if (info.vendor) identity.vendor = info.vendor;
    if (info.mac) {
      identity.mac = info.mac;
      identity.serial = info.mac.toUpperCase();
    }
    if (info.bootBlock) partNumber = parseUcBootBlock(info.bootBlock).partNumber;
    if (partNumber) identity.partNumber = partNumber;
  }
  const firmware = info ? firmwareOf(info) : (prev?.firmware ?? []);
  const lines = linesOf(a.lines);
  const health = healthOf(a, info, lines);
  const { list: peripherals, known } = peripheralsOf(a.mrpair, prev?.peripherals);

  const reading: ReadingBody = {
    deviceId: input.deviceId,
    driver: "poly-ucs",
    reachable: input.reachable,
    pollLatencyMs: Math.max(0, input.pollLatencyMs),
    identity,
    firmware,
    health,
    peripherals,
    lines,
    network: {},
    errors: input.errors,
  };

  if (a.stats) {
    const cpu = pct(num(a.stats.CPU.Average));
    if (cpu !== undefined) reading.cpuPct = cpu;
    const total = num(a.stats.Memory.Total);
    const used = num(a.stats.Memory.Used);
    const reclaim = num(a.stats.Memory.SReclaim) ?? 0;
    if (total !== undefined && used !== undefined && total > 0) {
      const real = Math.max(0, used - reclaim);
      const mp = pct((real / total) * 100);
      if (mp !== undefined) reading.memPct = mp;
      reading.memUsedBytes = real;
      reading.memTotalBytes = total;
    }
  }

  const uptime = info?.uptimeSec ?? (a.networkStats ? parseUcUptimeText(a.networkStats.UpTime) : undefined);
  if (uptime !== undefined) reading.uptimeSec = uptime;

  const inCall =
    info?.appState !== undefined && info.appState !== ""
      ? info.appState === "AppStateCall"
      : a.callStatus !== undefined
        ? a.callStatus.length > 0
        : a.pollForStatus?.State === "InCall"
          ? true
          : undefined;
  if (inCall !== undefined) reading.inCall = inCall;

  const network: NetworkRates = {};
  let sample: CounterSample | undefined = prev?.counters;
  if (a.networkStats) {
    sample = {
      atMs: input.nowMs,
      uptimeSec: parseUcUptimeText(a.networkStats.UpTime) ?? uptime,
      values: { rx: num(a.networkStats.RxPackets), tx: num(a.networkStats.TxPackets) },
    };
    const r = counterRates(prev?.counters, sample, { kind: "counter32", maxPerSec: MAX_PPS });
    if (r.rx !== undefined) network.rxPacketsPerSec = r.rx;
    if (r.tx !== undefined) network.txPacketsPerSec = r.tx;
  }
  const loss = packetLossOf(a.sessionStats);
  if (loss !== undefined) network.packetLossPct = loss;
  else if (inCall === false) network.packetLossPct = undefined;
  if (a.networkInfo) {
    const speed = Number.parseInt(a.networkInfo.LANSpeed, 10);
    if (Number.isFinite(speed) && speed >= 0) network.linkSpeedMbps = speed;
  }
  for (const k of Object.keys(network) as (keyof NetworkRates)[])
    if (network[k] === undefined) delete network[k];
  reading.network = network;

  return {
    reading,
    next: {
      counters: sample,
      identity: info ? identity : prev?.identity,
      firmware: info ? firmware : prev?.firmware,
      peripherals: known,
    },
  };
}
