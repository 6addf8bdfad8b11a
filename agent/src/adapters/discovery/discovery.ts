import { setMaxListeners } from "node:events";
import type { DeviceIdentity, Logger, PollError } from "@polyfleet/shared";
import { PolyfleetError } from "@polyfleet/shared";
import { type CidrRange, cidrContains, expandRanges, parseCidr } from "../../core/cidr.js";
import {
  type Classification,
  classifyFingerprints,
  classifyHttps,
  type HttpsFingerprint,
  IF_PHYS_ADDRESS_1_OID,
  normalizeMac,
  type SnmpFingerprint,
  SYS_DESCR_OID,
  SYS_OBJECT_ID_OID,
  UC_PROBE_PATH,
  VIDEOOS_PROBE_PATH,
  wantsVideoOsProbe,
} from "../../core/classify.js";
import { progressDue, renderProgressBar } from "../../core/progress.js";
import type { Clock } from "../../ports/clock.js";
import type { ResolvedCredential } from "../../ports/credentials.js";
import type { DeviceDriver, DeviceTarget, DriverName, IdentifyResult } from "../../ports/driver.js";
import type { Metrics } from "../../ports/metrics.js";
import type { TelemetrySink } from "../../ports/sink.js";
import type { SnmpClient, SnmpCredential } from "../../ports/snmp.js";
import { type HttpsProber, NodeHttpsProber } from "./https-prober.js";

export interface DiscoveryOptions {
  /** CIDR ranges (config `discovery.ranges`). */
  ranges: string[];
  httpsPorts: number[];
  snmpPorts: number[];
  /** Addresses probed at once (config `discovery.concurrency`). */
  concurrency: number;
  /** Bound of each probe: one HTTPS GET, one SNMP GET (config `discovery.timeoutMs`). */
  timeoutMs: number;
  /** Resolved discovery credentials (config `discovery.credentials`), in the order drivers try them. */
  credentials: ResolvedCredential[];
  /** Bound of the driver's `identify` (a VideoOS login + one GET). Default 3 × `timeoutMs`. */
  identifyTimeoutMs?: number;
  /** Narrowest prefix allowed (default 16: nothing wider than a /16). */
  minPrefix?: number;
  /** Addresses of all ranges together (default 65,536). */
  maxAddresses?: number;
  /** At most one progress report per this long (the first and the last always). Default 1000. */
  progressIntervalMs?: number;
  /** `auto`: a bar on stderr when it is a terminal, `discovery.progress` events otherwise. Default auto. */
  progress?: "auto" | "events" | "tty" | "none";
}

/** Where the progress bar goes (process.stderr by default). */
export interface ProgressOutput {
  isTTY?: boolean;
  write(chunk: string): unknown;
}

export interface DiscoveryDeps {
  sink: TelemetrySink;
  snmp: SnmpClient;
  drivers: Partial<Record<DriverName, DeviceDriver>>;
  clock: Clock;
  /** Default: NodeHttpsProber. */
  https?: HttpsProber;
  /** Default: process.stderr. */
  progressOut?: ProgressOutput;
  metrics?: Metrics;
  log?: Logger;
  /** Default: `scan-<time base36>-<n>`. */
  newScanId?: () => string;
}

/** A device found by a scan: ready for the scheduler (`{ target, driver }` is a ScheduledDevice). */
export interface DiscoveredDevice {
  deviceId: string;
  address: string;
  driver: DriverName;
  identity: DeviceIdentity;
  via: ("snmp" | "https" | "http")[];
  classification: Classification;
  /** The driver's `identify` succeeded (identity and deviceId from the device itself). */
  identified: boolean;
  identifyError?: PollError;
  /** Not known before this scan (a `device.discovered` event was appended). */
  isNew: boolean;
  target: DeviceTarget;
}

export interface KnownDevice {
  deviceId: string;
  address: string;
}

export interface DiscoveryRunOptions {
  /** Cancels the scan: probes in flight are aborted, no `device.lost` is concluded from a partial scan. */
  signal?: AbortSignal;
  /** Scan these ranges instead of the configured ones (rediscover command). */
  ranges?: string[];
}

export interface DiscoveryResult {
  scanId: string;
  total: number;
  scanned: number;
  found: DiscoveredDevice[];
  lost: KnownDevice[];
  cancelled: boolean;
  durationMs: number;
}

export const DISCOVERY_METRICS = {
  scanned: "polyfleet_agent_discovery_addresses_total",
  found: "polyfleet_agent_discovery_found_total",
  scans: "polyfleet_agent_discovery_scans_total",
} as const;

interface Deadline {
  signal: AbortSignal;
  clear(): void;
}

function isSnmpCredential(c: ResolvedCredential): c is SnmpCredential {
  return c.type === "snmpv2c" || c.type === "snmpv3";
}

/**
 * Scans CIDR ranges for Poly devices and SNMP agents with bounded concurrency: per address one HTTPS GET per
 * port (a second one, `/rest/system`, only when the first answer is not a UC phone) and an SNMP GET of
 * sysObjectID/sysDescr with each SNMP credential, classifies what answered (core/classify.ts), then asks the
 * matching driver's `identify()` for the identity and MAC. Appends `device.discovered` for devices it did not
 * know, `device.lost` for known devices in the scanned ranges that no longer answer, and rate-limited
 * `discovery.progress` events (or a progress bar on a terminal). One scan at a time: `run()` during a scan
 * returns the scan in flight.
 */
export class Discovery {
  private readonly knownById = new Map<string, KnownDevice>();
  private current: Promise<DiscoveryResult> | undefined;
  private scans = 0;

  constructor(
    private readonly deps: DiscoveryDeps,
    private readonly opts: DiscoveryOptions,
  ) {}

  /** Replaces the known set (e.g. with the configured and scheduled devices) used for new/lost decisions. */
  setKnown(devices: readonly KnownDevice[]): void {
    this.knownById.clear();
    for (const d of devices) this.knownById.set(d.deviceId, { deviceId: d.deviceId, address: d.address });
  }

  known(): KnownDevice[] {
    return [...this.knownById.values()].map((d) => ({ ...d }));
  }

  get running(): boolean {
    return this.current !== undefined;
  }

  /**
   * Runs one scan. Rejects (PolyfleetError POLYFLEET_ERR_DISCOVERY_RANGE_TOO_LARGE / _CONFIG_INVALID) before
   * probing anything when a range is invalid or too wide; otherwise resolves, also when cancelled.
   */
  run(opts: DiscoveryRunOptions = {}): Promise<DiscoveryResult> {
    if (this.current) return this.current;
    const p = this.scan(opts).finally(() => {
      this.current = undefined;
    });
    this.current = p;
    return p;
  }

  private async scan(opts: DiscoveryRunOptions): Promise<DiscoveryResult> {
    const { clock, sink } = this.deps;
    const rangeTexts = opts.ranges ?? this.opts.ranges;
    const expandOpts = {
      ...(this.opts.minPrefix === undefined ? {} : { minPrefix: this.opts.minPrefix }),
      ...(this.opts.maxAddresses === undefined ? {} : { maxAddresses: this.opts.maxAddresses }),
    };
    const addresses = expandRanges(rangeTexts, expandOpts);
    const ranges = rangeTexts.map(parseCidr);
    const scanId = this.deps.newScanId?.() ?? `scan-${clock.now().toString(36)}-${++this.scans}`;
    const startedAt = clock.now();
    this.deps.metrics?.inc(DISCOVERY_METRICS.scans);

    // One controller the whole scan hangs off: the caller's abort is forwarded to it.
    const scanCtl = new AbortController();
    setMaxListeners(0, scanCtl.signal);
    const forward = (): void => scanCtl.abort(opts.signal?.reason);
    if (opts.signal?.aborted) forward();
    else opts.signal?.addEventListener("abort", forward, { once: true });

    const found: DiscoveredDevice[] = [];
    const state = { scanned: 0, lastProgressAt: undefined as number | undefined };
    const mode = this.progressMode();
    const report = (final: boolean): void => {
      const now = clock.now();
      if (!progressDue(state.lastProgressAt, now, this.opts.progressIntervalMs ?? 1000, final)) return;
      state.lastProgressAt = now;
      const snap = { scanned: state.scanned, total: addresses.length, found: found.length };
      if (mode === "tty") {
        const bar = renderProgressBar({ ...snap, elapsedMs: now - startedAt });
        this.out().write(`\r${bar}${final ? "\n" : ""}`);
      } else if (mode === "events") {
        this.guard(
          () => sink.appendEvent({ type: "discovery.progress", scanId, ...snap, done: final }),
          "progress",
        );
      }
    };

    report(false);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (!scanCtl.signal.aborted) {
        const i = next++;
        const address = addresses[i];
        if (address === undefined) return;
        const d = await this.scanAddress(address, scanCtl.signal);
        if (scanCtl.signal.aborted && !d) return;
        state.scanned++;
        this.deps.metrics?.inc(DISCOVERY_METRICS.scanned);
        if (d) {
          found.push(d);
          this.announce(d);
        }
        report(false);
      }
    };
    const workers = Math.max(1, Math.min(this.opts.concurrency, addresses.length));
    try {
      await Promise.all(Array.from({ length: workers }, () => worker()));
    } finally {
      opts.signal?.removeEventListener("abort", forward);
    }
    const cancelled = scanCtl.signal.aborted;
    const lost = cancelled ? [] : this.concludeLost(ranges, found, scanId);
    report(true);
    const result: DiscoveryResult = {
      scanId,
      total: addresses.length,
      scanned: state.scanned,
      found,
      lost,
      cancelled,
      durationMs: clock.now() - startedAt,
    };
    this.deps.log?.info(
      {
        scanId,
        total: result.total,
        scanned: result.scanned,
        found: found.length,
        lost: lost.length,
        cancelled,
      },
      "discovery scan finished",
    );
    return result;
  }

  private progressMode(): "tty" | "events" | "none" {
    const p = this.opts.progress ?? "auto";
    if (p === "auto") return this.out().isTTY === true ? "tty" : "events";
    return p;
  }

  private out(): ProgressOutput {
    return this.deps.progressOut ?? process.stderr;
  }

  /** Appends `device.discovered` for a device not known before, and remembers it. */
  private announce(d: DiscoveredDevice): void {
    const before = this.knownById.get(d.deviceId);
    // A device first seen as `ip-<address>` and now identified by MAC is the same device, not a new one.
    const ipKey = `ip-${d.address}`;
    const wasIpOnly = d.deviceId !== ipKey && this.knownById.has(ipKey);
    d.isNew = before === undefined && !wasIpOnly;
    if (wasIpOnly) this.knownById.delete(ipKey);
    this.knownById.set(d.deviceId, { deviceId: d.deviceId, address: d.address });
    this.deps.metrics?.inc(DISCOVERY_METRICS.found, { driver: d.driver });
    if (!d.isNew) return;
    this.guard(
      () =>
        this.deps.sink.appendEvent({
          type: "device.discovered",
          deviceId: d.deviceId,
          identity: d.identity,
          via: d.via.length > 0 ? d.via : ["https"],
        }),
      "discovered",
    );
  }

  /** Known devices inside the scanned ranges that the (complete) scan did not find. */
  private concludeLost(ranges: CidrRange[], found: DiscoveredDevice[], scanId: string): KnownDevice[] {
    const foundIds = new Set(found.map((d) => d.deviceId));
    const lost: KnownDevice[] = [];
    for (const k of this.knownById.values()) {
      if (foundIds.has(k.deviceId)) continue;
      if (!ranges.some((r) => cidrContains(r, k.address))) continue;
      lost.push({ ...k });
    }
    for (const k of lost) {
      this.knownById.delete(k.deviceId);
      this.guard(
        () =>
          this.deps.sink.appendEvent({
            type: "device.lost",
            deviceId: k.deviceId,
            address: k.address,
            missedPolls: 0,
            reason: `not found by discovery scan ${scanId}`,
          }),
        "lost",
      );
    }
    return lost;
  }

  private deadline(ms: number, parents: AbortSignal[]): Deadline {
    const c = new AbortController();
    const onAbort = (): void => c.abort(new PolyfleetError("POLYFLEET_ERR_DEVICE_TIMEOUT", "cancelled"));
    for (const p of parents) {
      if (p.aborted) onAbort();
      else p.addEventListener("abort", onAbort, { once: true });
    }
    const t = this.deps.clock.setTimeout(
      () => c.abort(new PolyfleetError("POLYFLEET_ERR_DEVICE_TIMEOUT", `no answer within ${ms} ms`)),
      ms,
    );
    return {
      signal: c.signal,
      clear: () => {
        this.deps.clock.clearTimeout(t);
        for (const p of parents) p.removeEventListener("abort", onAbort);
      },
    };
  }

  /** Probes one address; undefined when nothing recognisable answered. */
  async scanAddress(address: string, scanSignal: AbortSignal): Promise<DiscoveredDevice | undefined> {
    // Once HTTPS shows a UC phone, SNMP has nothing to add: stop waiting for its timeout.
    const snmpStop = new AbortController();
    const [https, snmp] = await Promise.all([
      this.probeHttps(address, scanSignal, () => snmpStop.abort()),
      this.probeSnmp(address, [scanSignal, snmpStop.signal]),
    ]);
    if (scanSignal.aborted) return undefined;
    const cls = classifyFingerprints({ https, snmp });
    if (!cls) return undefined;
    return await this.identify(address, cls, scanSignal);
  }

  private async probeHttps(
    address: string,
    scanSignal: AbortSignal,
    onUc: () => void,
  ): Promise<HttpsFingerprint[]> {
    const prober = this.deps.https ?? new NodeHttpsProber();
    const perPort = await Promise.all(
      this.opts.httpsPorts.map(async (port) => {
        const out: HttpsFingerprint[] = [];
        const first = await this.probeOnce(prober, address, port, UC_PROBE_PATH, scanSignal);
        if (!first) return out;
        out.push(first);
        if (classifyHttps(first)?.family === "uc") {
          onUc();
          return out;
        }
        if (wantsVideoOsProbe(first) && !scanSignal.aborted) {
          const second = await this.probeOnce(prober, address, port, VIDEOOS_PROBE_PATH, scanSignal);
          if (second) out.push(second);
        }
        return out;
      }),
    );
    return perPort.flat();
  }

  private async probeOnce(
    prober: HttpsProber,
    address: string,
    port: number,
    path: string,
    scanSignal: AbortSignal,
  ): Promise<HttpsFingerprint | undefined> {
    const d = this.deadline(this.opts.timeoutMs, [scanSignal]);
    try {
      const r = await prober.probe(address, port, path, { signal: d.signal });
      return r.ok ? r.fingerprint : undefined;
    } catch (err) {
      this.deps.log?.warn({ err, address, port }, "https probe threw");
      return undefined;
    } finally {
      d.clear();
    }
  }

  private async probeSnmp(address: string, parents: AbortSignal[]): Promise<SnmpFingerprint[]> {
    const creds = this.opts.credentials.filter(isSnmpCredential);
    if (creds.length === 0) return [];
    const perPort = await Promise.all(
      this.opts.snmpPorts.map(async (port): Promise<SnmpFingerprint | undefined> => {
        for (const credential of creds) {
          if (parents.some((p) => p.aborted)) return undefined;
          const d = this.deadline(this.opts.timeoutMs, parents);
          try {
            const r = await this.deps.snmp.get(
              { address, port, credential },
              [SYS_OBJECT_ID_OID, SYS_DESCR_OID, IF_PHYS_ADDRESS_1_OID],
              { signal: d.signal, timeoutMs: this.opts.timeoutMs },
            );
            if (r.ok) {
              const fp: SnmpFingerprint = { port, credentialName: credential.name };
              for (const vb of r.value) {
                const oid = vb.oid.replace(/^\./, "");
                if (vb.value === null) continue;
                if (oid === SYS_OBJECT_ID_OID) fp.sysObjectId = String(vb.value);
                if (oid === SYS_DESCR_OID) fp.sysDescr = String(vb.value);
                if (oid === IF_PHYS_ADDRESS_1_OID) {
                  const mac = normalizeMac(String(vb.value));
                  if (mac !== undefined) fp.mac = mac;
                }
              }
              return fp;
            }
            // Silence means no agent (or a filtered port): other credentials would only wait as long again.
            if (
              r.error.code === "POLYFLEET_ERR_SNMP_TIMEOUT" ||
              r.error.code === "POLYFLEET_ERR_DEVICE_TIMEOUT"
            ) {
              return undefined;
            }
          } catch (err) {
            this.deps.log?.warn({ err, address, port }, "snmp probe threw");
            return undefined;
          } finally {
            d.clear();
          }
        }
        return undefined;
      }),
    );
    return perPort.filter((f): f is SnmpFingerprint => f !== undefined);
  }

  private credentialsFor(cls: Classification): ResolvedCredential[] {
    const all = this.opts.credentials;
    const first = all.filter((c) => c.name === cls.snmpCredentialName);
    return [...first, ...all.filter((c) => c.name !== cls.snmpCredentialName)];
  }

  private async identify(
    address: string,
    cls: Classification,
    scanSignal: AbortSignal,
  ): Promise<DiscoveredDevice> {
    const target: DeviceTarget = {
      deviceId: `ip-${address}`,
      address,
      httpsPort: cls.httpsPort ?? this.opts.httpsPorts[0] ?? 443,
      snmpPort: cls.snmpPort ?? this.opts.snmpPorts[0] ?? 161,
      credentials: this.credentialsFor(cls),
      tags: [],
    };
    const fallback: DeviceIdentity = {
      address,
      family: cls.family,
      ...(cls.modelHint === undefined ? {} : { model: cls.modelHint }),
      ...(cls.mac === undefined ? {} : { mac: cls.mac }),
    };
    const base: DiscoveredDevice = {
      deviceId: cls.mac ?? target.deviceId,
      address,
      driver: cls.driver,
      identity: fallback,
      via: [...cls.via],
      classification: cls,
      identified: false,
      isNew: false,
      target: { ...target, deviceId: cls.mac ?? target.deviceId },
    };
    const driver = this.deps.drivers[cls.driver];
    if (!driver) return base;
    const d = this.deadline(this.opts.identifyTimeoutMs ?? this.opts.timeoutMs * 3, [scanSignal]);
    let res: IdentifyResult;
    try {
      res = await driver.identify(target, { signal: d.signal });
    } catch (err) {
      // Drivers never throw by contract; one that does must not end the scan.
      this.deps.log?.error({ err, address, driver: cls.driver }, "driver identify threw");
      res = {
        ok: false,
        error: { code: "POLYFLEET_ERR_INTERNAL", message: "driver identify failed unexpectedly" },
      };
    } finally {
      d.clear();
      // The driver kept per-device state (session, credential) under the provisional id; the scheduler will
      // poll the device under its final id, so that state would only leak.
      this.forgetQuietly(driver, target.deviceId);
    }
    if (!res.ok) return { ...base, identifyError: res.error };
    // A driver whose identify does not read the MAC still gets the one SNMP showed (ifPhysAddress.1).
    const identity: DeviceIdentity = {
      ...res.identity,
      address: res.identity.address || address,
      ...(res.identity.mac === undefined && cls.mac !== undefined ? { mac: cls.mac } : {}),
    };
    const deviceId = identity.mac ?? target.deviceId;
    const driverName = this.deps.drivers[res.driver] ? res.driver : cls.driver;
    const via = [...new Set([...cls.via, ...res.via])];
    return {
      ...base,
      deviceId,
      driver: driverName,
      identity,
      via,
      identified: true,
      target: { ...target, deviceId },
    };
  }

  private forgetQuietly(driver: DeviceDriver, deviceId: string): void {
    try {
      driver.forget(deviceId);
    } catch (err) {
      this.deps.log?.warn({ err, deviceId }, "driver forget threw");
    }
  }

  private guard(fn: () => unknown, what: string): void {
    try {
      fn();
    } catch (err) {
      this.deps.log?.error({ err }, `discovery: ${what} append failed`);
    }
  }
}
