import { rename, writeFile } from "node:fs/promises";
import type { SimFault, SimManifest } from "@polyfleet/shared";
import { SimFault as SimFaultSchema } from "@polyfleet/shared";
import { hostAddresses } from "./addresses.js";
import { type Family, MODELS, type ModelSpec } from "./catalog.js";
import { DEFAULT_TIMING, DeviceSim, type SimClock, type SimTiming, SYSTEM_CLOCK } from "./device.js";
import { DeviceHttpsServer } from "./device-server.js";
import type { FamilyApi } from "./http-types.js";
import { createRandom, hex, pick } from "./random.js";
import { CertificateStore } from "./tls.js";
import { ucApi } from "./uc/uc-api.js";
import { startAutoUpdate } from "./videoos/auto-update.js";
import { startDeviceSnmp } from "./videoos/snmp-agent.js";
import { videoosApi } from "./videoos/videoos-api.js";

/** Faults that only make sense on some families. */
const FAULT_FAMILIES: Partial<Record<SimFault, Family[]>> = {
  cameraDown: ["videoos"],
  microphoneDown: ["videoos"],
};

/** `--fault` selector: how many devices get a fault at start. */
export interface FaultSpec {
  fault: SimFault;
  /** A count, a percentage of the eligible devices, or explicit addresses / ids. */
  count?: number;
  percent?: number;
  targets?: string[];
}

/** Parses `noAnswer`, `noAnswer=10%`, `slow=3`, `cameraDown@127.0.10.5,127.0.10.9`. */
export function parseFaultSpec(text: string): FaultSpec {
  const m = /^([A-Za-z0-9]+)(?:=(\d+(?:\.\d+)?)(%?)|@(.+))?$/.exec(text.trim());
  const parsed = m ? SimFaultSchema.safeParse(m[1]) : undefined;
  if (!m || !parsed?.success) {
    throw new Error(
      `bad --fault ${JSON.stringify(text)}: expected <fault>[=<count>|=<percent>%|@<address>,...] with fault one of ${SimFaultSchema.options.join(", ")}`,
    );
  }
  const fault = parsed.data;
  if (m[4] !== undefined) return { fault, targets: m[4].split(",").map((s) => s.trim()) };
  if (m[2] === undefined) return { fault, count: 1 };
  const n = Number(m[2]);
  return m[3] === "%" ? { fault, percent: n } : { fault, count: Math.floor(n) };
}

export interface FleetOptions {
  devices: number;
  subnet: string;
  httpsPort: number;
  /** UDP port of the SNMP agents of VideoOS devices; null disables SNMP. */
  snmpPort: number | null;
  seed: number;
  faults: FaultSpec[];
  timing: SimTiming;
  /** Also answer SNMPv2c (the real device default is v3 only). */
  snmpV2c: boolean;
  snmpAuth: "sha" | "sha256";
  /** host:port where devices send SNMP traps. */
  trapTarget?: { host: string; port: number } | undefined;
  /** Percent of UC phones whose REST API is disabled (the factory default). */
  restDisabledPct: number;
  /** Restrict to these families/models (default: the real mix). */
  models?: string[] | undefined;
  clock?: SimClock;
}

export const DEFAULT_FLEET: FleetOptions = {
  devices: 20,
  subnet: "127.0.10.0/24",
  httpsPort: 8443,
  snmpPort: 1161,
  seed: 1,
  faults: [],
  timing: DEFAULT_TIMING,
  snmpV2c: false,
  snmpAuth: "sha256",
  restDisabledPct: 0,
};

interface Closeable {
  close(): Promise<void> | void;
}

/** A running simulated fleet. */
export class Fleet {
  readonly devices: DeviceSim[];
  readonly servers = new Map<string, DeviceHttpsServer>();
  private readonly closeables: Closeable[] = [];
  private readonly byKey = new Map<string, DeviceSim>();

  constructor(
    readonly options: FleetOptions,
    devices: DeviceSim[],
  ) {
    this.devices = devices;
    for (const d of devices) {
      this.byKey.set(d.id, d);
      this.byKey.set(d.address, d);
      this.byKey.set(d.serial, d);
    }
  }

  /** Finds a device by id (MAC), address or serial. */
  find(key: string): DeviceSim | undefined {
    return this.byKey.get(key);
  }

  /** Starts every device's HTTPS server, and SNMP agent where it has one. Resolves once all listen. */
  async start(): Promise<void> {
    const certs = new CertificateStore();
    const apis: Record<Family, FamilyApi> = { uc: ucApi, videoos: videoosApi };
    const queue = [...this.devices];
    const worker = async (): Promise<void> => {
      for (let d = queue.shift(); d; d = queue.shift()) {
        const server = new DeviceHttpsServer(d, apis[d.family], await certs.forModel(d.spec.model));
        await server.start();
        this.servers.set(d.id, server);
        this.closeables.push({ close: () => server.stop() });
        if (d.family === "videoos") {
          if (d.snmpPort !== null && d.snmp) this.closeables.push(await startDeviceSnmp(d));
          const updater = startAutoUpdate(d);
          this.closeables.push({ close: () => updater.stop() });
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: 32 }, worker));
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    const all = this.closeables.splice(0);
    await Promise.allSettled(all.map((c) => c.close()));
  }

  manifest(control: string): SimManifest {
    return {
      v: 1,
      startedAt: Date.now(),
      pid: process.pid,
      subnet: this.options.subnet,
      control,
      devices: this.devices.map((d) => ({
        id: d.id,
        address: d.address,
        httpsPort: d.httpsPort,
        snmpPort: d.snmp ? d.snmpPort : null,
        family: d.family,
        model: d.spec.model,
        partNumber: d.spec.partNumber,
        serial: d.serial,
        mac: d.mac,
        firmware: d.firmware.version,
        ...(d.firmware.build ? { build: d.firmware.build } : {}),
        admin: { ...d.admin },
        snmp: d.snmp
          ? {
              version: "3" as const,
              user: d.snmp.v3.user,
              authProtocol: d.snmp.v3.authProtocol,
              authKey: d.snmp.v3.authKey,
              privProtocol: "aes" as const,
              privKey: d.snmp.v3.privKey,
              ...(d.config.get("snmp.version2.enable") === "true" ? { community: d.snmp.community } : {}),
            }
          : null,
        restEnabled: d.restEnabled(),
        faults: [...d.faults],
      })),
    };
  }

  /** Writes the manifest atomically (tmp file + rename), so a reader never sees half of it. */
  async writeManifest(file: string, control: string): Promise<void> {
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(this.manifest(control), null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, file);
  }
}

/** Builds the devices of a fleet (no I/O): identities, credentials, initial faults. Deterministic per seed. */
export function createFleet(opts: FleetOptions): Fleet {
  const clock = opts.clock ?? SYSTEM_CLOCK;
  const rand = createRandom(opts.seed);
  const addresses = hostAddresses(opts.subnet, opts.devices);
  const specs = opts.models?.length
    ? MODELS.filter((m) => opts.models?.includes(m.model) || opts.models?.includes(m.family))
    : MODELS;
  if (specs.length === 0) throw new Error(`no simulated model matches ${opts.models?.join(",")}`);
  const totalWeight = specs.reduce((s, m) => s + m.weight, 0);
  const secret = hex(createRandom(opts.seed * 7919 + 1), 12);
  const usedMacs = new Set<string>();
  const devices: DeviceSim[] = addresses.map((address, index) => {
    const spec = weightedPick(rand, specs, totalWeight);
    let mac: string;
    do mac = pick(rand, spec.ouis) + hex(rand, 6);
    while (usedMacs.has(mac));
    usedMacs.add(mac);
    const fw = pick(rand, spec.firmware);
    const video = spec.family === "videoos";
    const yyww = `${20 + Math.floor(rand() * 5)}${String(1 + Math.floor(rand() * 52)).padStart(2, "0")}`;
    const serial = video ? `8L${yyww}${mac.slice(6).toUpperCase()}FC` : mac.toUpperCase();
    return new DeviceSim(
      {
        id: mac,
        index,
        address,
        httpsPort: opts.httpsPort,
        snmpPort: video ? opts.snmpPort : null,
        spec,
        serial,
        mac,
        firmware: { version: fw.version, build: fw.build, date: fw.date },
        admin: { user: video ? "admin" : "Polycom", password: `Sim-${secret.slice(0, 8)}` },
        snmp:
          video && opts.snmpPort !== null
            ? {
                v3: {
                  user: "polyfleet",
                  authProtocol: opts.snmpAuth,
                  authKey: `auth-${secret}`,
                  privKey: `priv-${secret}`,
                },
                community: `sim-${secret.slice(0, 6)}`,
              }
            : null,
        restEnabled: video || rand() * 100 >= opts.restDisabledPct,
        seed: opts.seed * 100_003 + index,
      },
      clock,
      opts.timing,
    );
  });
  for (const d of devices) {
    if (d.family !== "videoos" || !d.snmp) continue;
    d.config.set("snmp.version2.enable", opts.snmpV2c ? "true" : "false");
    if (opts.trapTarget) {
      d.config.set("snmp.notification.enabled", "true");
      d.config.set("snmp.trapTarget.1.address", opts.trapTarget.host);
      d.config.set("snmp.trapTarget.1.port", String(opts.trapTarget.port));
    }
  }
  const fleet = new Fleet(opts, devices);
  for (const spec of opts.faults) applyFaultSpec(fleet, spec, rand);
  return fleet;
}

function weightedPick(rand: () => number, specs: ModelSpec[], total: number): ModelSpec {
  let r = rand() * total;
  for (const s of specs) {
    r -= s.weight;
    if (r < 0) return s;
  }
  return specs[specs.length - 1] as ModelSpec;
}

/** Applies one `--fault` selector. Throws when it names an unknown device. */
export function applyFaultSpec(fleet: Fleet, spec: FaultSpec, rand: () => number): DeviceSim[] {
  let chosen: DeviceSim[];
  if (spec.targets) {
    chosen = spec.targets.map((t) => {
      const d = fleet.find(t);
      if (!d)
        throw new Error(`--fault ${spec.fault}@${t}: no simulated device has that address, id or serial`);
      return d;
    });
  } else {
    const families = FAULT_FAMILIES[spec.fault];
    const eligible = fleet.devices.filter((d) => !families || families.includes(d.family));
    const shuffled = eligible
      .map((d) => ({ d, k: rand() }))
      .sort((a, b) => a.k - b.k)
      .map((x) => x.d);
    const n =
      spec.percent !== undefined ? Math.round((eligible.length * spec.percent) / 100) : (spec.count ?? 1);
    chosen = shuffled.slice(0, Math.min(n, eligible.length));
  }
  for (const d of chosen) d.setFaults([...d.faults, spec.fault]);
  return chosen;
}
