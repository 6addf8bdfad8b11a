import { EventEmitter } from "node:events";
import type { SimFault } from "@polyfleet/shared";
import type { Family, ModelSpec } from "./catalog.js";
import { createRandom } from "./random.js";

/** Time source, injected so tests can move time without waiting. */
export interface SimClock {
  now(): number;
}

export const SYSTEM_CLOCK: SimClock = { now: () => Date.now() };

export interface SimTiming {
  /** How long a reboot keeps the device away. */
  rebootDownMs: number;
  /** Flapping: the device is up for half of this period and away for the other half. */
  flapPeriodMs: number;
  /** Extra latency of the `slow` fault. */
  slowMs: number;
  /** Up-time between two reboots under the `rebootLoop` fault. */
  rebootLoopUpMs: number;
}

export const DEFAULT_TIMING: SimTiming = {
  rebootDownMs: 5000,
  flapPeriodMs: 20_000,
  slowMs: 3000,
  rebootLoopUpMs: 10_000,
};

export interface FirmwareState {
  version: string;
  build?: string | undefined;
  /** Build date as the device prints it, e.g. `02-Jul-19 06:14`. */
  date: string;
}

export interface SimLine {
  number: number;
  address: string;
  label: string;
  userId: string;
}

export interface SimSnmpCredentials {
  v3: { user: string; authProtocol: "sha" | "sha256"; authKey: string; privKey: string };
  /** v2c community; v2c answers only when `snmp.version2.enable` is true. */
  community: string;
}

/** SNMP notification the device emits: POLYCOM-ENDPOINT-MIB trap number (…13885.101.0.N) and varbind text. */
export interface SimTrap {
  trap: number;
  summary: string;
  kind: "problem" | "resolution" | "info";
}

export interface DeviceInit {
  id: string;
  index: number;
  address: string;
  httpsPort: number;
  snmpPort: number | null;
  spec: ModelSpec;
  serial: string;
  mac: string;
  firmware: FirmwareState;
  admin: { user: string; password: string };
  snmp: SimSnmpCredentials | null;
  restEnabled: boolean;
  seed: number;
}

/** Pairs of fault -> (problem trap, resolution trap) from POLYCOM-ENDPOINT-MIB. */
const FAULT_TRAPS: Partial<Record<SimFault, [number, number, string]>> = {
  cameraDown: [76, 77, "primary camera"],
  sipUnregistered: [72, 73, "SIP registration"],
};

/**
 * The state of one simulated device. Time-driven values (uptime, counters, reboots, pending firmware) are
 * computed from the clock on access, so a fleet of thousands needs no timers.
 */
export class DeviceSim {
  readonly id: string;
  readonly index: number;
  readonly address: string;
  readonly httpsPort: number;
  readonly snmpPort: number | null;
  readonly spec: ModelSpec;
  readonly family: Family;
  readonly serial: string;
  readonly mac: string;
  readonly snmp: SimSnmpCredentials | null;
  admin: { user: string; password: string };
  private current: FirmwareState;
  /** UC: Updater and BootBlock components; they do not change with the application. */
  readonly updaterVersion: string;
  readonly bootBlock: string;
  /** Device configuration parameters (`apps.restapi.enabled`, `device.prov.serverName`, `snmp.*` …). */
  readonly config = new Map<string, string>();
  readonly lines: SimLine[];
  readonly faults = new Set<SimFault>();
  /** Emits "trap" (SimTrap) and "rebooted". */
  readonly events = new EventEmitter();
  inCall = false;
  /** Reboots into a firmware image (update installs), whatever came of them: tests count pushes with it. */
  installs = 0;
  callStartedAt = 0;
  bootedAt: number;
  private downUntil = 0;
  private neverReturns = false;
  private pendingFirmware: FirmwareState | undefined;
  private rebootLoopSince = 0;
  private flappingSince = 0;
  private readonly rates: { rxPps: number; txPps: number; cpuBase: number; memBase: number };
  /** The session cookie generation: a reboot invalidates every VideoOS session and regenerates the cert. */
  bootGeneration = 0;
  readonly random: () => number;
  readonly timing: SimTiming;
  private readonly clock: SimClock;

  constructor(init: DeviceInit, clock: SimClock, timing: SimTiming) {
    this.id = init.id;
    this.index = init.index;
    this.address = init.address;
    this.httpsPort = init.httpsPort;
    this.snmpPort = init.snmpPort;
    this.spec = init.spec;
    this.family = init.spec.family;
    this.serial = init.serial;
    this.mac = init.mac;
    this.admin = { ...init.admin };
    this.current = { ...init.firmware };
    this.snmp = init.snmp;
    this.clock = clock;
    this.timing = timing;
    this.random = createRandom(init.seed);
    const r = this.random;
    this.updaterVersion = init.firmware.version;
    this.bootBlock = `3.0.6.0002 (${init.spec.partNumber.replace(/^\d+-/, "")})`;
    this.rates = { rxPps: 5 + r() * 40, txPps: 4 + r() * 30, cpuBase: 8 + r() * 20, memBase: 40 + r() * 20 };
    // Booted between 1 hour and 20 days ago.
    this.bootedAt = clock.now() - Math.floor((3600 + r() * 20 * 86_400) * 1000);
    const ext = 1000 + init.index;
    this.lines =
      init.spec.family === "uc"
        ? [{ number: 1, address: `${ext}@sip.example.com`, label: String(ext), userId: String(ext) }]
        : [];
    this.config.set("apps.restapi.enabled", init.restEnabled ? "1" : "0");
    this.config.set("device.prov.serverName", "");
    this.config.set("device.prov.serverType", "HTTP");
    if (init.spec.family === "videoos") {
      this.config.set("snmp.enable", init.snmp ? "true" : "false");
      this.config.set("snmp.version2.enable", "false");
      this.config.set("snmp.version3.enable", "true");
      this.config.set("snmp.notification.enabled", "false");
      this.config.set("snmp.trapTarget.1.address", "");
      this.config.set("snmp.trapTarget.1.port", "162");
      this.config.set("upgrade.auto.enable", "false");
      this.config.set("upgrade.auto.server.address", "");
      this.config.set("upgrade.auto.polling.interval", "3600");
      this.config.set("system.name", `${init.spec.model}-${init.serial.slice(-8)}`);
    }
  }

  now(): number {
    return this.clock.now();
  }

  /** The firmware running now: an update pending behind a reboot counts once the device is back. */
  get firmware(): FirmwareState {
    this.settle(this.clock.now());
    return this.current;
  }

  private settle(now: number): void {
    if (this.pendingFirmware && now >= this.downUntil && !this.neverReturns) {
      this.current = this.pendingFirmware;
      this.pendingFirmware = undefined;
    }
  }

  /** Whether the device answers at all right now (reboots, flapping, reboot loop, never-returns). */
  isUp(now = this.clock.now()): boolean {
    this.settle(now);
    if (this.neverReturns) return false;
    if (now < this.downUntil) return false;
    if (this.faults.has("flapping")) {
      const phase = (now - this.flappingSince) % this.timing.flapPeriodMs;
      if (phase >= this.timing.flapPeriodMs / 2) return false;
    }
    if (this.faults.has("rebootLoop")) {
      const cycle = this.timing.rebootDownMs + this.timing.rebootLoopUpMs;
      const phase = (now - this.rebootLoopSince) % cycle;
      if (phase < this.timing.rebootDownMs) return false;
    }
    return true;
  }

  /** Boot time as seen now (a reboot loop reboots on its own). */
  private bootTime(now: number): number {
    if (this.faults.has("rebootLoop")) {
      const cycle = this.timing.rebootDownMs + this.timing.rebootLoopUpMs;
      const start = now - ((now - this.rebootLoopSince) % cycle);
      return start + this.timing.rebootDownMs;
    }
    return this.bootedAt;
  }

  uptimeSec(now = this.clock.now()): number {
    return Math.max(0, (now - this.bootTime(now)) / 1000);
  }

  /**
   * Reboots: the device is away for `rebootDownMs` and comes back with uptime 0. With `firmware`, comes back
   * running it, unless a fault says otherwise.
   */
  reboot(reason: string, firmware?: FirmwareState): void {
    const now = this.clock.now();
    this.settle(now);
    this.downUntil = now + this.timing.rebootDownMs;
    this.bootedAt = this.downUntil;
    this.bootGeneration++;
    this.inCall = false;
    if (firmware) {
      this.installs++;
      if (this.faults.has("updateNeverReturns")) this.neverReturns = true;
      else if (!this.faults.has("updateBootsOldVersion")) this.pendingFirmware = { ...firmware };
    }
    this.events.emit("rebooted", { reason, at: now });
  }

  /** Brings back a device the `updateNeverReturns` fault kept away (control API). */
  revive(): void {
    this.neverReturns = false;
    this.downUntil = 0;
  }

  setFaults(next: Iterable<SimFault>): void {
    const wanted = new Set(next);
    const now = this.clock.now();
    for (const f of [...this.faults]) if (!wanted.has(f)) this.removeFault(f);
    for (const f of wanted) {
      if (this.faults.has(f)) continue;
      this.faults.add(f);
      if (f === "flapping") this.flappingSince = now;
      if (f === "rebootLoop") this.rebootLoopSince = now;
      const trap = FAULT_TRAPS[f];
      if (trap) this.emitTrap({ trap: trap[0], summary: `${trap[2]} down`, kind: "problem" });
    }
  }

  private removeFault(f: SimFault): void {
    this.faults.delete(f);
    if (f === "rebootLoop") this.bootedAt = this.bootTime(this.clock.now());
    if (f === "updateNeverReturns") this.revive();
    const trap = FAULT_TRAPS[f];
    if (trap) this.emitTrap({ trap: trap[1], summary: `${trap[2]} ok`, kind: "resolution" });
  }

  emitTrap(trap: SimTrap): void {
    this.events.emit("trap", trap);
  }

  /** Received and sent packet counters since boot; they reset on reboot like the real ones. */
  packetCounters(now = this.clock.now()): { rx: number; tx: number; rxBytes: number; txBytes: number } {
    const s = this.uptimeSec(now);
    const boost = this.inCall ? 50 : 0;
    const rx = Math.floor(s * (this.rates.rxPps + boost));
    const tx = Math.floor(s * (this.rates.txPps + boost));
    return { rx, tx, rxBytes: rx * 212, txBytes: tx * 198 };
  }

  /** CPU percent, current and average. */
  cpu(now = this.clock.now()): { current: number; average: number } {
    if (this.faults.has("highCpu")) return { current: 97 + (now % 3), average: 95 };
    const wobble = Math.sin(now / 7000 + this.index) * 4;
    const base = this.rates.cpuBase + (this.inCall ? 15 : 0);
    return { current: Math.max(1, Math.round(base + wobble)), average: Math.round(base) };
  }

  /** Memory in bytes. */
  memory(): { total: number; used: number; free: number; cached: number; sreclaim: number } {
    const total = this.family === "uc" ? 512 * 1024 * 1024 : 4096 * 1024 * 1024;
    const pct = this.faults.has("highMemory") ? 96 : this.rates.memBase;
    const used = Math.floor((total * pct) / 100);
    const sreclaim = Math.floor(total * 0.01);
    return {
      total,
      used: used + sreclaim,
      free: total - used - sreclaim,
      cached: Math.floor(total * 0.05),
      sreclaim,
    };
  }

  /** Packet loss percent this device reports on its media streams. */
  packetLossPct(): number {
    return this.faults.has("packetLoss") ? 12 : 0;
  }

  lineRegistered(line: SimLine): boolean {
    return !this.faults.has("sipUnregistered") && line.number > 0;
  }

  restEnabled(): boolean {
    return this.config.get("apps.restapi.enabled") === "1";
  }

  /** Starts or ends a call; ending one emits "callEnded" (a deferred safe reboot waits for it). */
  setCall(active: boolean): void {
    const ended = this.inCall && !active;
    this.inCall = active;
    this.callStartedAt = active ? this.clock.now() : 0;
    if (ended) this.events.emit("callEnded");
  }

  /** Whether an update is on its way in (rebooting into a new image). */
  get updating(): boolean {
    return this.pendingFirmware !== undefined;
  }
}
