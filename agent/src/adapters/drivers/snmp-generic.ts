import type { DeviceIdentity, HealthItem, HealthState, NetworkRates, PollError } from "@polyfleet/shared";
import { compareOids, inSubtree, parseOid } from "../../core/snmp-walk.js";
import { type Clock, SYSTEM_CLOCK } from "../../ports/clock.js";
import type {
  ActionResult,
  DeviceDriver,
  DeviceTarget,
  IdentifyResult,
  PollOptions,
  ReadingBody,
} from "../../ports/driver.js";
import type { SnmpClient, SnmpCredential, SnmpTarget, Varbind } from "../../ports/snmp.js";

// SNMPv2-MIB system group and IF-MIB (RFC 3418, RFC 2863).
const SYS = "1.3.6.1.2.1.1";
const SYS_DESCR = `${SYS}.1`;
const SYS_OBJECT_ID = `${SYS}.2`;
const SYS_UPTIME = `${SYS}.3`;
const SYS_NAME = `${SYS}.5`;
const IF_NUMBER = "1.3.6.1.2.1.2.1";
const IF_ENTRY = "1.3.6.1.2.1.2.2.1";
/** GETNEXT of these gives the `.0` instances (GETBULK non-repeaters). */
const SCALARS = [SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, SYS_NAME, IF_NUMBER] as const;
/** ifTable columns read on each poll, in this order. */
const COLUMNS = {
  descr: 2,
  type: 3,
  operStatus: 8,
  inOctets: 10,
  inUcastPkts: 11,
  outOctets: 16,
  outUcastPkts: 17,
} as const;
type Column = keyof typeof COLUMNS;
const COLUMN_NAMES = Object.keys(COLUMNS) as Column[];
const COLUMN_OIDS = COLUMN_NAMES.map((c) => `${IF_ENTRY}.${COLUMNS[c]}`);
const SOFTWARE_LOOPBACK = 24;
const U32 = 2 ** 32;

/** Enterprise numbers (1.3.6.1.4.1.N) shown as the vendor. */
const VENDORS: Record<number, string> = {
  9: "Cisco",
  11: "HP",
  2636: "Juniper",
  8072: "Net-SNMP",
  13885: "Poly",
  14988: "MikroTik",
  25506: "H3C",
  311: "Microsoft",
};

export interface InterfaceRow {
  ifIndex: number;
  descr?: string;
  type?: number;
  operStatus?: number;
  inOctets?: number;
  inUcastPkts?: number;
  outOctets?: number;
  outUcastPkts?: number;
}

/** What the driver keeps per device between polls (counters for rates). */
export interface CounterSample {
  /** Wall clock of the poll (ms). */
  at: number;
  /** sysUpTime in hundredths of a second, if the device gave it. */
  uptimeTicks: number | undefined;
  /** ifIndex → counters. */
  counters: Map<
    number,
    { inOctets?: number; inUcastPkts?: number; outOctets?: number; outUcastPkts?: number }
  >;
}

/**
 * Counter32 delta: a current value below the previous one is one wrap (2^32) when no reboot happened. Returns
 * undefined when either value is missing.
 */
export function counter32Delta(prev: number | undefined, cur: number | undefined): number | undefined {
  if (prev === undefined || cur === undefined) return undefined;
  const d = cur - prev;
  return d >= 0 ? d : d + U32;
}

/**
 * Network rates from two samples (pure). No rates on the first poll, after a reboot (sysUpTime went
 * backwards: counters were reset), or when no time passed. Elapsed time is taken from sysUpTime when both
 * samples have it (device time, unaffected by our poll latency), else from the wall clock. Software loopback
 * interfaces are left out; an interface seen in only one sample is skipped; Counter32 wraps are undone.
 */
export function computeRates(
  prev: CounterSample | undefined,
  cur: CounterSample,
  types: ReadonlyMap<number, number | undefined>,
): Pick<NetworkRates, "rxBytesPerSec" | "txBytesPerSec" | "rxPacketsPerSec" | "txPacketsPerSec"> {
  if (!prev) return {};
  if (prev.uptimeTicks !== undefined && cur.uptimeTicks !== undefined && cur.uptimeTicks < prev.uptimeTicks) {
    return {}; // rebooted: counters restarted from zero
  }
  let seconds: number;
  if (prev.uptimeTicks !== undefined && cur.uptimeTicks !== undefined && cur.uptimeTicks > prev.uptimeTicks) {
    seconds = (cur.uptimeTicks - prev.uptimeTicks) / 100;
  } else {
    seconds = (cur.at - prev.at) / 1000;
  }
  if (!(seconds > 0)) return {};
  const sums = { inOctets: 0, outOctets: 0, inUcastPkts: 0, outUcastPkts: 0 };
  const seen = { inOctets: false, outOctets: false, inUcastPkts: false, outUcastPkts: false };
  for (const [ifIndex, c] of cur.counters) {
    if (types.get(ifIndex) === SOFTWARE_LOOPBACK) continue;
    const p = prev.counters.get(ifIndex);
    if (!p) continue;
    for (const k of ["inOctets", "outOctets", "inUcastPkts", "outUcastPkts"] as const) {
      const d = counter32Delta(p[k], c[k]);
      if (d !== undefined) {
        sums[k] += d;
        seen[k] = true;
      }
    }
  }
  const out: Pick<NetworkRates, "rxBytesPerSec" | "txBytesPerSec" | "rxPacketsPerSec" | "txPacketsPerSec"> =
    {};
  if (seen.inOctets) out.rxBytesPerSec = sums.inOctets / seconds;
  if (seen.outOctets) out.txBytesPerSec = sums.outOctets / seconds;
  if (seen.inUcastPkts) out.rxPacketsPerSec = sums.inUcastPkts / seconds;
  if (seen.outUcastPkts) out.txPacketsPerSec = sums.outUcastPkts / seconds;
  return out;
}

/** IF-MIB ifOperStatus → health state. */
export function operStatusState(s: number | undefined): HealthState {
  switch (s) {
    case 1:
      return "up";
    case 2:
    case 7: // lowerLayerDown
      return "down";
    case 5: // dormant
    case 6: // notPresent
      return "off";
    default:
      return "unknown";
  }
}

/** Vendor and model from sysObjectID and sysDescr. */
export function describeDevice(
  sysDescr: string | undefined,
  sysObjectId: string | undefined,
): { vendor?: string; model?: string } {
  const out: { vendor?: string; model?: string } = {};
  const arcs = sysObjectId ? parseOid(sysObjectId) : undefined;
  if (arcs && arcs.length > 6 && arcs.slice(0, 6).join(".") === "1.3.6.1.4.1") {
    const n = arcs[6] as number;
    out.vendor = VENDORS[n] ?? `enterprise ${n}`;
  }
  const descr = sysDescr?.split(/\r?\n/)[0]?.trim();
  if (descr) {
    // Poly VideoOS: "Videoconferencing Device, Poly StudioX30, VideoOS 3.12.0-366027"
    const poly = /\bPoly(?:com)? ([A-Za-z0-9][\w -]*?)(?:,|$)/.exec(descr);
    out.model = (poly ? `Poly ${poly[1]}` : descr).slice(0, 128);
  } else if (sysObjectId) {
    out.model = sysObjectId.slice(0, 128);
  }
  return out;
}

export interface SnmpGenericDriverOptions {
  client: SnmpClient;
  clock?: Clock;
  /** Interfaces read per poll at most. Default 64. */
  maxInterfaces?: number;
  /** Interface rows asked per GETBULK (keeps answers under ~1,400 bytes). Default 16. */
  rowsPerRequest?: number;
  /** Per-request timeout; the poll's signal still bounds the whole poll. Default: the client's. */
  timeoutMs?: number;
}

interface DeviceState {
  /** Index into target.credentials of the credential that worked last. */
  credential: number;
  sample: CounterSample | undefined;
  ifNumber: number | undefined;
}

function str(v: Varbind | undefined): string | undefined {
  if (!v || v.value === null) return undefined;
  return typeof v.value === "string" ? v.value : String(v.value);
}
function numOf(v: Varbind | undefined): number | undefined {
  if (!v || v.value === null) return undefined;
  const n = typeof v.value === "bigint" ? Number(v.value) : Number(v.value);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * Driver for any SNMP device (port: `DeviceDriver`, name `snmp-generic`): SNMPv2-MIB system group and IF-MIB.
 *
 * A poll is normally ONE round trip: a GETBULK whose non-repeaters are the system scalars and ifNumber and
 * whose repeaters are seven ifTable columns (max-repetitions = the device's ifNumber from the previous poll,
 * capped). Devices with more interfaces get follow-up GETBULKs of the table only, up to `maxInterfaces`.
 * Per-device state: the credential that worked, the last counter sample (for rates), ifNumber.
 */
export class SnmpGenericDriver implements DeviceDriver {
  readonly name = "snmp-generic" as const;
  private readonly states = new Map<string, DeviceState>();
  private readonly clock: Clock;
  private readonly maxInterfaces: number;
  private readonly rowsPerRequest: number;

  constructor(private readonly opts: SnmpGenericDriverOptions) {
    this.clock = opts.clock ?? SYSTEM_CLOCK;
    this.maxInterfaces = opts.maxInterfaces ?? 64;
    this.rowsPerRequest = opts.rowsPerRequest ?? 16;
  }

  async identify(target: DeviceTarget, opts: PollOptions): Promise<IdentifyResult> {
    const oids = [`${SYS_DESCR}.0`, `${SYS_OBJECT_ID}.0`, `${SYS_UPTIME}.0`, `${SYS_NAME}.0`];
    const r = await this.withCredentials(target, opts, (t) =>
      this.opts.client.get(t, oids, this.reqOpts(opts)),
    );
    if (!r.ok) return { ok: false, error: r.error };
    const [descr, objectId, , name] = r.value;
    return {
      ok: true,
      identity: this.identity(target, str(descr), str(objectId), str(name)),
      driver: this.name,
      via: ["snmp"],
    };
  }

  async poll(target: DeviceTarget, opts: PollOptions): Promise<ReadingBody> {
    const started = this.clock.now();
    const state = this.state(target.deviceId);
    const errors: PollError[] = [];
    const reps = Math.max(1, Math.min(this.rowsPerRequest, state.ifNumber ?? 8, this.maxInterfaces));
    const first = await this.withCredentials(target, opts, (t) =>
      this.opts.client.getBulk(t, [...SCALARS], COLUMN_OIDS, reps, this.reqOpts(opts)),
    );
    if (!first.ok) {
      return this.reading(target, started, { reachable: false, errors: [first.error] });
    }
    const snmpTarget = first.target;
    const scalars = new Map<string, Varbind>();
    for (const v of first.value.nonRepeaters) scalars.set(v.oid, v);
    const sysDescr = str(scalars.get(`${SYS_DESCR}.0`));
    const sysObjectId = str(scalars.get(`${SYS_OBJECT_ID}.0`));
    const uptimeTicks = numOf(scalars.get(`${SYS_UPTIME}.0`));
    const sysName = str(scalars.get(`${SYS_NAME}.0`));
    const ifNumber = numOf(scalars.get(`${IF_NUMBER}.0`));
    if (ifNumber !== undefined) state.ifNumber = Math.max(0, Math.min(ifNumber, this.maxInterfaces));

    // Table rows: follow the columns until they leave ifEntry, or maxInterfaces / ifNumber is reached.
    const rows = new Map<number, InterfaceRow>();
    let columns = first.value.columns;
    const last: (number[] | undefined)[] = COLUMN_NAMES.map(() => undefined);
    const active = COLUMN_NAMES.map(() => true);
    for (let round = 0; ; round++) {
      const loop = this.absorb(columns, rows, last, active);
      if (loop) {
        errors.push({
          code: "POLYFLEET_ERR_SNMP_WALK_LOOP",
          message: loop,
          endpoint: `snmp://${target.address}:${target.snmpPort}`,
        });
        break;
      }
      const want = Math.min(state.ifNumber ?? this.maxInterfaces, this.maxInterfaces);
      if (
        !active.some(Boolean) ||
        rows.size >= want ||
        round >= Math.ceil(this.maxInterfaces / this.rowsPerRequest)
      )
        break;
      const from = COLUMN_NAMES.map((c, i) => {
        const l = last[i];
        return l ? l.join(".") : `${IF_ENTRY}.${COLUMNS[c]}`;
      });
      const more = await this.opts.client.getBulk(
        snmpTarget,
        [],
        from,
        this.rowsPerRequest,
        this.reqOpts(opts),
      );
      if (!more.ok) {
        errors.push(more.error);
        break;
      }
      columns = more.value.columns;
    }

    const interfaces = [...rows.values()].sort((a, b) => a.ifIndex - b.ifIndex).slice(0, this.maxInterfaces);
    const sample: CounterSample = { at: this.clock.now(), uptimeTicks, counters: new Map() };
    const types = new Map<number, number | undefined>();
    const health: HealthItem[] = [];
    for (const r of interfaces) {
      types.set(r.ifIndex, r.type);
      sample.counters.set(r.ifIndex, {
        ...(r.inOctets !== undefined ? { inOctets: r.inOctets } : {}),
        ...(r.outOctets !== undefined ? { outOctets: r.outOctets } : {}),
        ...(r.inUcastPkts !== undefined ? { inUcastPkts: r.inUcastPkts } : {}),
        ...(r.outUcastPkts !== undefined ? { outUcastPkts: r.outUcastPkts } : {}),
      });
      health.push({
        name: `if:${(r.descr ?? String(r.ifIndex)).slice(0, 64)}`,
        state: operStatusState(r.operStatus),
        detail: `ifIndex ${r.ifIndex}`,
      });
    }
    const network = computeRates(state.sample, sample, types);
    state.sample = sample;
    return this.reading(target, started, {
      reachable: true,
      errors,
      identity: this.identity(target, sysDescr, sysObjectId, sysName),
      health,
      network,
      ...(uptimeTicks !== undefined ? { uptimeSec: uptimeTicks / 100 } : {}),
    });
  }

  reboot(_target: DeviceTarget, _opts: PollOptions): Promise<ActionResult> {
    return Promise.resolve({
      ok: false,
      error: {
        code: "POLYFLEET_ERR_DEVICE_ACTION_UNSUPPORTED",
        message: "snmp-generic cannot reboot a device: SNMP has no standard reboot",
      },
    });
  }

  forget(deviceId: string): void {
    this.states.delete(deviceId);
  }

  close(): Promise<void> {
    this.states.clear();
    return Promise.resolve();
  }

  /** Adds one GETBULK's columns to the rows; returns a loop description when a column does not increase. */
  private absorb(
    columns: Varbind[][],
    rows: Map<number, InterfaceRow>,
    last: (number[] | undefined)[],
    active: boolean[],
  ): string | undefined {
    for (let ci = 0; ci < COLUMN_NAMES.length; ci++) {
      if (!active[ci]) continue;
      const name = COLUMN_NAMES[ci] as Column;
      const root = parseOid(`${IF_ENTRY}.${COLUMNS[name]}`) as number[];
      for (const v of columns[ci] ?? []) {
        const arcs = parseOid(v.oid);
        if (!arcs || v.type === "EndOfMibView" || !inSubtree(root, arcs)) {
          active[ci] = false;
          break;
        }
        const prev = last[ci];
        if (prev && compareOids(arcs, prev) <= 0)
          return `ifTable column ${name} went from ${prev.join(".")} to ${v.oid}`;
        last[ci] = arcs;
        if (arcs.length !== root.length + 1) continue; // ifIndex is a single arc
        const ifIndex = arcs[root.length] as number;
        let row = rows.get(ifIndex);
        if (!row) {
          if (rows.size >= this.maxInterfaces) {
            active[ci] = false;
            break;
          }
          row = { ifIndex };
          rows.set(ifIndex, row);
        }
        if (name === "descr") {
          const s = str(v);
          if (s !== undefined) row.descr = s;
        } else {
          const n = numOf(v);
          if (n !== undefined) row[name] = n;
        }
      }
    }
    return undefined;
  }

  private reqOpts(opts: PollOptions): { signal: AbortSignal; timeoutMs?: number } {
    return this.opts.timeoutMs !== undefined
      ? { signal: opts.signal, timeoutMs: this.opts.timeoutMs }
      : { signal: opts.signal };
  }

  private state(deviceId: string): DeviceState {
    let s = this.states.get(deviceId);
    if (!s) {
      s = { credential: 0, sample: undefined, ifNumber: undefined };
      this.states.set(deviceId, s);
    }
    return s;
  }

  /**
   * Runs `fn` with the device's SNMP credentials: the one that worked last first, then the others in order
   * when the failure may be the credential's (auth, timeout: a v2c agent does not answer a wrong community).
   */
  private async withCredentials<T>(
    target: DeviceTarget,
    opts: PollOptions,
    fn: (t: SnmpTarget) => Promise<{ ok: true; value: T } | { ok: false; error: PollError }>,
  ): Promise<{ ok: true; value: T; target: SnmpTarget } | { ok: false; error: PollError }> {
    const creds = target.credentials.filter(
      (c): c is SnmpCredential => c.type === "snmpv2c" || c.type === "snmpv3",
    );
    if (creds.length === 0) {
      return {
        ok: false,
        error: { code: "POLYFLEET_ERR_DEVICE_AUTH", message: "no SNMP credential profile for this device" },
      };
    }
    const state = this.state(target.deviceId);
    const start = state.credential < creds.length ? state.credential : 0;
    let lastError: PollError | undefined;
    for (let i = 0; i < creds.length; i++) {
      const idx = (start + i) % creds.length;
      const t: SnmpTarget = {
        address: target.address,
        port: target.snmpPort,
        credential: creds[idx] as SnmpCredential,
      };
      const r = await fn(t);
      if (r.ok) {
        state.credential = idx;
        return { ok: true, value: r.value, target: t };
      }
      lastError = r.error;
      if (opts.signal.aborted) break;
      if (r.error.code !== "POLYFLEET_ERR_SNMP_AUTH" && r.error.code !== "POLYFLEET_ERR_SNMP_TIMEOUT") break;
    }
    return {
      ok: false,
      error: lastError ?? { code: "POLYFLEET_ERR_DEVICE_UNREACHABLE", message: "no answer" },
    };
  }

  private identity(
    target: DeviceTarget,
    sysDescr: string | undefined,
    sysObjectId: string | undefined,
    sysName: string | undefined,
  ): DeviceIdentity {
    const d = describeDevice(sysDescr, sysObjectId);
    return {
      address: target.address,
      family: "snmp",
      ...(d.vendor ? { vendor: d.vendor } : {}),
      ...(d.model ? { model: d.model } : {}),
      ...(sysName ? { systemName: sysName.slice(0, 255) } : {}),
    };
  }

  private reading(
    target: DeviceTarget,
    started: number,
    part: Partial<ReadingBody> & { reachable: boolean; errors: PollError[] },
  ): ReadingBody {
    return {
      deviceId: target.deviceId,
      driver: this.name,
      pollLatencyMs: Math.max(0, this.clock.now() - started),
      identity: { address: target.address, family: "snmp" },
      firmware: [],
      health: [],
      peripherals: [],
      lines: [],
      network: {},
      ...part,
    };
  }
}
