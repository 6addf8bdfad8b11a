import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { ErrorCode, Logger, PollError } from "@polyfleet/shared";
import { feedWalk, nextRepetitions, parseOid, startWalk } from "../../core/snmp-walk.js";
import type { Metrics } from "../../ports/metrics.js";
import type {
  SnmpBulkResult,
  SnmpClient,
  SnmpRequestOptions,
  SnmpResult,
  SnmpTarget,
  SnmpWalkOptions,
  Varbind,
} from "../../ports/snmp.js";
import { type RawSession, type RawVarbind, rawUser, snmp, toVarbind } from "./net-snmp-api.js";
import {
  type RejectReason,
  UdpSocketPool,
  type UdpSocketPoolOptions,
  type VirtualSocket,
} from "./udp-socket-pool.js";

/** Labels of `polyfleet_agent_snmp_errors_total{reason}`. */
export type SnmpErrorReason =
  | "timeout"
  | "auth"
  | "unknown_user"
  | "malformed"
  | "wrong_request_id"
  | "wrong_source"
  | "loop"
  | "limit"
  | "error_status"
  | "unreachable";

export const SNMP_ERRORS_METRIC = "polyfleet_agent_snmp_errors_total";

export interface NetSnmpClientOptions {
  metrics: Metrics;
  log?: Logger;
  /** Per attempt. Default 2000 ms. */
  timeoutMs?: number;
  /** Retransmissions after the first attempt. Default 1. */
  retries?: number;
  /** GETBULK max-repetitions used by walk(). Default 20. */
  maxRepetitions?: number;
  /** Cached sessions (one per target and credential); the least recently used beyond this are closed. Default 20,000. */
  maxSessions?: number;
  /** Shared UDP sockets: targets per socket, requests in flight per socket, SO_RCVBUF. */
  pool?: Omit<UdpSocketPoolOptions, "onReject" | "onSocketError">;
}

interface Entry {
  key: string;
  session: RawSession;
  vs: VirtualSocket;
  endpoint: string;
}

const MAX_OIDS = 128;

interface Failure {
  reason: SnmpErrorReason;
  code: ErrorCode;
  message: string;
  /** Already counted (by the datagrams rejected for this request). */
  counted?: boolean;
}

function errName(err: unknown): string {
  return typeof err === "object" && err !== null && "name" in err
    ? String((err as { name: unknown }).name)
    : "";
}

const RIC = snmp.ResponseInvalidCode;

/**
 * SnmpClient on net-snmp (port: `SnmpClient`). v2c and v3 (SHA-1/SHA-256/SHA-512, AES-128/AES-256).
 *
 * - One net-snmp Session per target and credential, cached and reused (v3 engine discovery happens once).
 * - Sessions do NOT own a socket: they share UDP sockets from a `UdpSocketPool` (256 targets per socket,
 *   SO_RCVBUF 4 MiB, at most 128 requests in flight per socket; further requests wait for a slot), so
 *   10,000 devices need ~40 file descriptors.
 * - Every datagram is screened before net-snmp parses it: wrong source address/port, bad framing, unknown
 *   request id, and unauthenticated v3 responses are dropped and counted; net-snmp's own parse errors arrive
 *   on the session's "error" event (without a listener net-snmp would throw from the socket handler and
 *   crash the process) and are counted as malformed.
 * - Results are values: `{ ok: false, error: { code, message } }`, never exceptions; messages never contain
 *   keys, communities, or net-snmp's digest texts. Every failed request and every rejected datagram is
 *   counted once in `polyfleet_agent_snmp_errors_total{reason}`.
 */
export class NetSnmpClient implements SnmpClient {
  private readonly sessions = new Map<string, Entry>();
  private readonly pool: UdpSocketPool;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly maxRepetitions: number;
  private readonly maxSessions: number;
  private closed = false;

  constructor(private readonly opts: NetSnmpClientOptions) {
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.retries = opts.retries ?? 1;
    this.maxRepetitions = opts.maxRepetitions ?? 20;
    this.maxSessions = opts.maxSessions ?? 20_000;
    this.pool = new UdpSocketPool({
      ...opts.pool,
      onReject: (reason, from) => this.onReject(reason, from),
      onSocketError: (err) => this.opts.log?.warn({ err }, "snmp socket error"),
    });
  }

  get(target: SnmpTarget, oids: string[], opts: SnmpRequestOptions = {}): Promise<SnmpResult<Varbind[]>> {
    const bad = checkOids(oids);
    if (bad) return Promise.resolve({ ok: false, error: bad });
    return this.run(
      target,
      opts,
      (s, cb) => s.get(oids, cb),
      (raw) => (raw as RawVarbind[]).map(toVarbind),
    );
  }

  getBulk(
    target: SnmpTarget,
    nonRepeaters: string[],
    repeaters: string[],
    maxRepetitions: number,
    opts: SnmpRequestOptions = {},
  ): Promise<SnmpResult<SnmpBulkResult>> {
    const bad = checkOids([...nonRepeaters, ...repeaters]);
    if (bad) return Promise.resolve({ ok: false, error: bad });
    const reps = Math.max(1, Math.min(255, Math.floor(maxRepetitions)));
    const n = nonRepeaters.length;
    return this.run(
      target,
      opts,
      (s, cb) => s.getBulk([...nonRepeaters, ...repeaters], n, reps, cb),
      (raw) => {
        const list = raw as (RawVarbind | RawVarbind[])[];
        const out: SnmpBulkResult = { nonRepeaters: [], columns: [] };
        for (let i = 0; i < list.length; i++) {
          const item = list[i];
          if (item === undefined) continue;
          if (i < n) {
            if (!Array.isArray(item)) out.nonRepeaters.push(toVarbind(item));
          } else {
            out.columns.push((Array.isArray(item) ? item : [item]).map(toVarbind));
          }
        }
        return out;
      },
    );
  }

  async walk(target: SnmpTarget, rootOid: string, opts: SnmpWalkOptions): Promise<SnmpResult<Varbind[]>> {
    const startedAt = Date.now();
    const state = startWalk(rootOid, startedAt);
    if (!state) return { ok: false, error: invalid(`not a numeric OID: ${rootOid.slice(0, 64)}`) };
    const limits = { maxVarbinds: Math.max(0, opts.maxVarbinds), maxMs: Math.max(0, opts.maxMs) };
    const deadline = startedAt + limits.maxMs;
    const out: Varbind[] = [];
    const perRequest = opts.timeoutMs ?? this.timeoutMs * (this.retries + 1);
    let next = state.lastText;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return this.walkLimit(target, "time", out.length, limits);
      const r = await this.getBulk(target, [], [next], nextRepetitions(state, limits, this.maxRepetitions), {
        ...(opts.signal ? { signal: opts.signal } : {}),
        timeoutMs: Math.min(perRequest, left),
      });
      if (!r.ok) {
        if (Date.now() >= deadline && r.error.code === "POLYFLEET_ERR_SNMP_TIMEOUT") {
          return this.walkLimit(target, "time", out.length, limits);
        }
        return r;
      }
      const col = r.value.columns[0] ?? [];
      const { accepted, verdict } = feedWalk(
        state,
        col.map((v) => ({ oid: v.oid, endOfView: v.type === "EndOfMibView" })),
        limits,
        Date.now(),
      );
      for (let i = 0; i < accepted; i++) out.push(col[i] as Varbind);
      switch (verdict.kind) {
        case "continue":
          next = verdict.next;
          break;
        case "done":
          return { ok: true, value: out };
        case "limit":
          return this.walkLimit(target, verdict.bound, out.length, limits);
        case "loop":
          this.count("loop");
          return {
            ok: false,
            error: {
              code: "POLYFLEET_ERR_SNMP_WALK_LOOP",
              message: `walk of ${rootOid} went from ${verdict.previous} to ${verdict.oid}: the agent returned a non-increasing OID (after ${out.length} varbinds)`,
              endpoint: endpointOf(target),
            },
          };
        case "malformed":
          this.count("malformed");
          return {
            ok: false,
            error: {
              code: "POLYFLEET_ERR_SNMP_MALFORMED",
              message: "walk answer holds an invalid OID",
              endpoint: endpointOf(target),
            },
          };
      }
    }
  }

  /** Closes the cached sessions of one device (removed, or its credentials changed). */
  forget(address: string, port?: number): void {
    for (const [key, e] of this.sessions) {
      if (
        e.endpoint === `${address}:${port ?? ""}` ||
        (port === undefined && e.endpoint.startsWith(`${address}:`))
      ) {
        this.sessions.delete(key);
        closeQuietly(e.session);
      }
    }
  }

  /** Open UDP sockets and cached sessions (tests, /metrics). */
  stats(): { sockets: number; sessions: number } {
    return { sockets: this.pool.socketCount(), sessions: this.sessions.size };
  }

  close(): Promise<void> {
    this.closed = true;
    for (const e of this.sessions.values()) closeQuietly(e.session);
    this.sessions.clear();
    this.pool.close();
    return Promise.resolve();
  }

  private walkLimit(
    target: SnmpTarget,
    bound: "varbinds" | "time",
    got: number,
    limits: { maxVarbinds: number; maxMs: number },
  ): SnmpResult<Varbind[]> {
    this.count("limit");
    const what = bound === "varbinds" ? `${limits.maxVarbinds} varbinds` : `${limits.maxMs} ms`;
    return {
      ok: false,
      error: {
        code: "POLYFLEET_ERR_SNMP_WALK_LIMIT",
        message: `walk stopped at its bound of ${what} (${got} varbinds read)`,
        endpoint: endpointOf(target),
      },
    };
  }

  private count(reason: SnmpErrorReason): void {
    this.opts.metrics.inc(SNMP_ERRORS_METRIC, { reason });
  }

  private onReject(reason: RejectReason, from: string): void {
    this.count(reason);
    this.opts.log?.debug({ from, reason }, "snmp datagram rejected");
  }

  private async entry(target: SnmpTarget): Promise<Entry> {
    let address = target.address;
    if (isIP(address) === 0) address = (await lookup(address, { family: 4 })).address;
    const c = target.credential;
    const key =
      c.type === "snmpv3"
        ? `${address}:${target.port}/v3/${c.name}/${c.user}/${c.authProtocol}/${c.privProtocol}`
        : `${address}:${target.port}/v2c/${c.name}`;
    const found = this.sessions.get(key);
    if (found) {
      // keep the map in least-recently-used order
      this.sessions.delete(key);
      this.sessions.set(key, found);
      return found;
    }
    const vs = this.pool.attach(address, target.port);
    const options = {
      port: target.port,
      timeout: this.timeoutMs,
      retries: this.retries,
      dgramModule: { createSocket: () => vs },
    };
    const session =
      c.type === "snmpv3"
        ? snmp.createV3Session(address, rawUser(c), { ...options, version: snmp.Version3 })
        : snmp.createSession(address, c.community, { ...options, version: snmp.Version2c });
    vs.hasRequest = (id) => session.reqs?.[id] !== undefined;
    session.on("error", () => {
      // net-snmp could not parse a datagram that passed the framing check.
      vs.markReject("malformed");
      this.count("malformed");
    });
    const e: Entry = { key, session, vs, endpoint: `${address}:${target.port}` };
    this.sessions.set(key, e);
    if (this.sessions.size > this.maxSessions) {
      const oldest = this.sessions.keys().next().value;
      if (oldest !== undefined && oldest !== key) {
        const old = this.sessions.get(oldest);
        this.sessions.delete(oldest);
        if (old) closeQuietly(old.session);
      }
    }
    return e;
  }

  private async run<T>(
    target: SnmpTarget,
    opts: SnmpRequestOptions,
    op: (s: RawSession, cb: (err: unknown, raw?: unknown) => void) => void,
    convert: (raw: unknown) => T,
  ): Promise<SnmpResult<T>> {
    const endpoint = endpointOf(target);
    if (this.closed)
      return {
        ok: false,
        error: { code: "POLYFLEET_ERR_DEVICE_UNREACHABLE", message: "SNMP client closed", endpoint },
      };
    const signal = opts.signal;
    if (signal?.aborted)
      return this.fail(
        { reason: "timeout", code: "POLYFLEET_ERR_SNMP_TIMEOUT", message: "aborted before sending" },
        endpoint,
      );
    let e: Entry;
    try {
      e = await this.entry(target);
    } catch {
      return this.fail(
        {
          reason: "unreachable",
          code: "POLYFLEET_ERR_DEVICE_UNREACHABLE",
          message: `cannot resolve ${target.address}`,
        },
        endpoint,
      );
    }
    if (!(await this.pool.acquire(e.vs, signal))) {
      return this.fail(
        {
          reason: "timeout",
          code: "POLYFLEET_ERR_SNMP_TIMEOUT",
          message: "aborted while waiting for a socket slot",
        },
        endpoint,
      );
    }
    const started = Date.now();
    return new Promise<SnmpResult<T>>((resolve) => {
      let settled = false;
      let released = false;
      let timer: NodeJS.Timeout | undefined;
      const release = (): void => {
        if (!released) {
          released = true;
          this.pool.release(e.vs);
        }
      };
      const finish = (r: SnmpResult<T>): void => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        resolve(r);
      };
      const onAbort = (): void =>
        finish(
          this.fail({ reason: "timeout", code: "POLYFLEET_ERR_SNMP_TIMEOUT", message: "aborted" }, endpoint),
        );
      signal?.addEventListener("abort", onAbort, { once: true });
      if (opts.timeoutMs !== undefined) {
        timer = setTimeout(
          () => finish(this.fail(this.timeoutFailure(e.vs, started, opts.timeoutMs), endpoint)),
          opts.timeoutMs,
        );
      }
      try {
        op(e.session, (err, raw) => {
          release();
          if (settled) return;
          if (err) {
            finish(this.fail(this.classify(err, e.vs, started), endpoint));
            return;
          }
          try {
            finish({ ok: true, value: convert(raw) });
          } catch {
            finish(
              this.fail(
                {
                  reason: "malformed",
                  code: "POLYFLEET_ERR_SNMP_MALFORMED",
                  message: "answer could not be decoded",
                },
                endpoint,
              ),
            );
          }
        });
      } catch (err) {
        release();
        finish(this.fail(this.classify(err, e.vs, started), endpoint));
      }
    });
  }

  private fail<T>(f: Failure, endpoint: string): SnmpResult<T> {
    if (!f.counted) this.count(f.reason);
    return { ok: false, error: { code: f.code, message: f.message, endpoint } satisfies PollError };
  }

  private timeoutFailure(vs: VirtualSocket, started: number, ms?: number): Failure {
    const r = vs.lastReject;
    if (r && r.at >= started) {
      const code: ErrorCode =
        r.reason === "auth" ? "POLYFLEET_ERR_SNMP_AUTH" : "POLYFLEET_ERR_SNMP_MALFORMED";
      return {
        reason: r.reason,
        code,
        message: `no valid answer in time: answers were rejected (${r.reason.replace(/_/g, " ")})`,
        counted: true,
      };
    }
    return {
      reason: "timeout",
      code: "POLYFLEET_ERR_SNMP_TIMEOUT",
      message: `no answer within ${ms ?? this.timeoutMs * (this.retries + 1)} ms`,
    };
  }

  private classify(err: unknown, vs: VirtualSocket, started: number): Failure {
    const name = errName(err);
    const e = err as { message?: unknown; code?: unknown; status?: unknown };
    const msg = typeof e.message === "string" ? e.message : "";
    if (name === "RequestTimedOutError") return this.timeoutFailure(vs, started);
    if (name === "ResponseInvalidError") {
      if (e.code === RIC.EAuthFailure) {
        if (msg === "Unknown User Name") {
          return {
            reason: "unknown_user",
            code: "POLYFLEET_ERR_SNMP_AUTH",
            message: "the device does not know this SNMPv3 user",
          };
        }
        if (msg === "Unknown Engine ID") {
          return {
            reason: "auth",
            code: "POLYFLEET_ERR_SNMP_AUTH",
            message: "SNMPv3 engine ID mismatch (the device rejected our engine ID)",
          };
        }
        if (msg === "Not In Time Window") {
          return {
            reason: "auth",
            code: "POLYFLEET_ERR_SNMP_AUTH",
            message: "SNMPv3 message outside the device's time window",
          };
        }
        if (msg === "Unsupported Security Level") {
          return {
            reason: "auth",
            code: "POLYFLEET_ERR_SNMP_AUTH",
            message: "the device does not support this SNMPv3 security level for the user",
          };
        }
        if (msg === "Decryption Error") {
          return {
            reason: "auth",
            code: "POLYFLEET_ERR_SNMP_AUTH",
            message: "the device could not decrypt the request: wrong privKey or privProtocol",
          };
        }
        return {
          reason: "auth",
          code: "POLYFLEET_ERR_SNMP_AUTH",
          message: "SNMPv3 authentication failed: wrong authKey or authProtocol",
        };
      }
      if (e.code === RIC.ECouldNotDecrypt) {
        return {
          reason: "auth",
          code: "POLYFLEET_ERR_SNMP_AUTH",
          message: "could not decrypt the answer: wrong privKey or privProtocol",
        };
      }
      if (e.code === RIC.ENotInTimeWindow) {
        return {
          reason: "auth",
          code: "POLYFLEET_ERR_SNMP_AUTH",
          message: "answer outside the SNMPv3 time window (replayed or stale)",
        };
      }
      return {
        reason: "malformed",
        code: "POLYFLEET_ERR_SNMP_MALFORMED",
        message: `invalid answer (${String(RIC[String(e.code)] ?? "unknown")})`,
      };
    }
    if (name === "RequestFailedError") {
      const status = typeof e.status === "number" ? e.status : 0;
      if (status === 16)
        return {
          reason: "auth",
          code: "POLYFLEET_ERR_SNMP_AUTH",
          message: "agent answered authorizationError",
        };
      return {
        reason: "error_status",
        code: "POLYFLEET_ERR_SNMP_ERROR_STATUS",
        message: `agent answered ${msg.slice(0, 200)}`,
      };
    }
    if (msg === "Socket forcibly closed" || msg === "socket closed") {
      return { reason: "unreachable", code: "POLYFLEET_ERR_DEVICE_UNREACHABLE", message: "session closed" };
    }
    const sysCode = typeof e.code === "string" ? e.code : undefined;
    if (sysCode)
      return {
        reason: "unreachable",
        code: "POLYFLEET_ERR_DEVICE_UNREACHABLE",
        message: `send failed (${sysCode})`,
      };
    return {
      reason: "malformed",
      code: "POLYFLEET_ERR_SNMP_MALFORMED",
      message: "request failed in the SNMP library",
    };
  }
}

function endpointOf(t: SnmpTarget): string {
  return `snmp://${t.address}:${t.port}`;
}

function invalid(message: string): PollError {
  return { code: "POLYFLEET_ERR_COMMAND_INVALID", message };
}

function checkOids(oids: string[]): PollError | undefined {
  if (oids.length === 0) return invalid("no OID given");
  if (oids.length > MAX_OIDS) return invalid(`too many OIDs in one request (${oids.length} > ${MAX_OIDS})`);
  for (const o of oids) if (!parseOid(o)) return invalid(`not a numeric OID: ${o.slice(0, 64)}`);
  return undefined;
}

function closeQuietly(s: RawSession): void {
  try {
    s.close();
  } catch {
    // already closed
  }
}
