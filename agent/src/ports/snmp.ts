import type { PollError } from "@polyfleet/shared";
import type { ResolvedCredential } from "./credentials.js";

export type SnmpCredential = Extract<ResolvedCredential, { type: "snmpv2c" | "snmpv3" }>;

export interface SnmpTarget {
  address: string;
  port: number;
  credential: SnmpCredential;
}

/** One variable binding, value decoded: strings for OCTET STRING / OID / IpAddress, numbers or bigint (Counter64). */
export interface Varbind {
  oid: string;
  type: string;
  value: string | number | bigint | null;
}

export type SnmpResult<T> = { ok: true; value: T } | { ok: false; error: PollError };

export interface SnmpRequestOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** A GETBULK answer: one varbind per non-repeater, then one list per repeater OID (in request order). */
export interface SnmpBulkResult {
  nonRepeaters: Varbind[];
  columns: Varbind[][];
}

export interface SnmpWalkOptions extends SnmpRequestOptions {
  /** Stop with POLYFLEET_ERR_SNMP_WALK_LIMIT after this many varbinds. */
  maxVarbinds: number;
  /** Stop with POLYFLEET_ERR_SNMP_WALK_LIMIT after this long. */
  maxMs: number;
}

/**
 * SNMP client port (adapter: net-snmp). Never throws for device behaviour: timeouts, auth failures,
 * malformed answers and endless walks come back as `{ ok: false, error }` and are counted in metrics.
 */
export interface SnmpClient {
  get(target: SnmpTarget, oids: string[], opts?: SnmpRequestOptions): Promise<SnmpResult<Varbind[]>>;
  /**
   * One GETBULK (v2c/v3): GETNEXT of each `nonRepeaters` OID, then up to `maxRepetitions` successors of each
   * `repeaters` OID. Lets a driver read scalars and a table in one round trip.
   */
  getBulk(
    target: SnmpTarget,
    nonRepeaters: string[],
    repeaters: string[],
    maxRepetitions: number,
    opts?: SnmpRequestOptions,
  ): Promise<SnmpResult<SnmpBulkResult>>;
  /** Walks the subtree under `rootOid`; detects non-increasing OIDs (POLYFLEET_ERR_SNMP_WALK_LOOP). */
  walk(target: SnmpTarget, rootOid: string, opts: SnmpWalkOptions): Promise<SnmpResult<Varbind[]>>;
  close(): Promise<void>;
}
