import dgram from "node:dgram";
import type { Logger } from "@polyfleet/shared";
import { SNMP_TRAP_OID, SYS_UPTIME, toTrapEvent, v1TrapOid } from "../../core/trap-map.js";
import type { ResolvedCredential } from "../../ports/credentials.js";
import type { Metrics } from "../../ports/metrics.js";
import type { TelemetrySink } from "../../ports/sink.js";
import { peekSnmp } from "./ber-peek.js";
import { type RawReceiver, type RawVarbind, rawUser, snmp, toVarbind } from "./net-snmp-api.js";

/** Labels of `polyfleet_agent_traps_rejected_total{reason}`. */
export type TrapRejectReason =
  | "malformed"
  | "unknown_user"
  | "unknown_community"
  | "bad_auth"
  | "unauthenticated"
  | "unexpected_pdu"
  | "sink_failed";

export const TRAPS_REJECTED_METRIC = "polyfleet_agent_traps_rejected_total";
export const TRAPS_RECEIVED_METRIC = "polyfleet_agent_traps_received_total";

export interface SnmpTrapReceiverOptions {
  /** Default 0.0.0.0. */
  host?: string;
  /** Default 162 (0 = any free port; see `address()`). */
  port?: number;
  /**
   * The agent's resolved credentials: snmpv2c profiles give the accepted communities, snmpv3 profiles the
   * accepted users (authPriv/authNoPriv as the profile says). http profiles are ignored.
   */
  credentials: ResolvedCredential[];
  sink: TelemetrySink;
  metrics: Metrics;
  log?: Logger;
  /** deviceId of a known device at a source address. */
  lookupDevice?: (address: string) => string | undefined;
  /** Our SNMPv3 engine ID (hex) for informs; random when omitted. */
  engineID?: string;
  /** SO_RCVBUF. Default 4 MiB. */
  recvBufferBytes?: number;
}

interface RawPdu {
  type: number;
  varbinds?: RawVarbind[];
  community?: string;
  user?: string;
  enterprise?: string;
  generic?: number;
  specific?: number;
}

const PDU_TRAP_V1 = 164;
const LOG_FIRST = 20;

function valueText(v: RawVarbind): string {
  const value = toVarbind(v).value;
  if (value === null) return "";
  return typeof value === "string" ? value : String(value);
}

/**
 * SNMP trap receiver on net-snmp's `createReceiver` (v1/v2c communities and v3 users from the agent's
 * credential profiles). Each accepted notification becomes one `trap` event through the TelemetrySink
 * (mapping in core/trap-map.ts). Malformed datagrams, unknown users or communities, bad digests, v3 traps
 * without authentication and unexpected PDUs are rejected and counted in
 * `polyfleet_agent_traps_rejected_total{reason}`; the first few of each are logged (sender address and
 * reason only). Nothing a sender does stops the receiver: net-snmp's message handler runs inside try/catch.
 */
export class SnmpTrapReceiver {
  private receiver: RawReceiver | undefined;
  private socket: dgram.Socket | undefined;
  private readonly communities = new Set<string>();
  private readonly users = new Set<string>();
  private readonly logged = new Map<string, number>();

  constructor(private readonly opts: SnmpTrapReceiverOptions) {}

  /** Binds the socket; rejects when it cannot (port in use, no permission for port 162). */
  async start(): Promise<void> {
    if (this.receiver) return;
    let created: dgram.Socket | undefined;
    const recvBufferSize = this.opts.recvBufferBytes ?? 4 * 1024 * 1024;
    const dgramModule = {
      createSocket: (type: unknown) => {
        created = dgram.createSocket({ type: type === "udp6" ? "udp6" : "udp4", recvBufferSize });
        return created;
      },
    };
    const receiver = snmp.createReceiver(
      {
        port: this.opts.port ?? 162,
        address: this.opts.host ?? "0.0.0.0",
        transport: "udp4",
        dgramModule,
        includeAuthentication: true,
        ...(this.opts.engineID ? { engineID: this.opts.engineID } : {}),
      },
      (err, data) => this.onTrap(err, data),
    );
    const socket = created;
    if (!socket) throw new Error("net-snmp did not create the trap socket");
    const auth = receiver.getAuthorizer();
    for (const c of this.opts.credentials) {
      if (c.type === "snmpv2c" && !this.communities.has(c.community)) {
        this.communities.add(c.community);
        auth.addCommunity(c.community);
      } else if (c.type === "snmpv3") {
        if (this.users.has(c.user)) {
          this.opts.log?.warn(
            { profile: c.name },
            "snmp trap user already defined by another profile; first one kept",
          );
          continue;
        }
        this.users.add(c.user);
        auth.addUser(rawUser(c));
      }
    }
    // Replace net-snmp's message listener by one that contains whatever it throws.
    socket.removeAllListeners("message");
    socket.on("message", (buf: Buffer, rinfo: dgram.RemoteInfo) => {
      try {
        // net-snmp's BER reader ignores bytes after the message and reads into truncated ones: insist on
        // exact framing first.
        if (!peekSnmp(buf)) {
          this.reject("malformed", rinfo.address);
          return;
        }
        receiver.onMsg(socket, buf, rinfo);
      } catch (err) {
        this.reject("malformed", rinfo.address, err);
      }
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        socket.off("listening", onListening);
        reject(err);
      };
      const onListening = (): void => {
        socket.off("error", onError);
        resolve();
      };
      socket.once("error", onError);
      socket.once("listening", onListening);
    }).catch((err: unknown) => {
      try {
        socket.close();
      } catch {
        // not open
      }
      throw err;
    });
    this.receiver = receiver;
    this.socket = socket;
  }

  /** The bound address (after start). */
  address(): { address: string; port: number } {
    if (!this.socket) throw new Error("trap receiver not started");
    const a = this.socket.address();
    return { address: a.address, port: a.port };
  }

  stop(): Promise<void> {
    const r = this.receiver;
    this.receiver = undefined;
    this.socket = undefined;
    if (!r) return Promise.resolve();
    return new Promise((resolve) => {
      try {
        r.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }

  private reject(reason: TrapRejectReason, from: string | undefined, err?: unknown): void {
    this.opts.metrics.inc(TRAPS_REJECTED_METRIC, { reason });
    const n = (this.logged.get(reason) ?? 0) + 1;
    this.logged.set(reason, n);
    if (n <= LOG_FIRST || n % 1000 === 0) {
      // Only the error's class goes to the log: net-snmp's texts may carry digests or community strings.
      const kind = typeof err === "object" && err !== null && "name" in err ? String(err.name) : undefined;
      this.opts.log?.warn({ from, reason, kind, count: n }, "snmp trap rejected");
    }
  }

  private classifyError(err: unknown): TrapRejectReason {
    const e = err as { name?: unknown; message?: unknown; code?: unknown };
    const name = typeof e.name === "string" ? e.name : "";
    const msg = typeof e.message === "string" ? e.message : "";
    if (name === "ProcessingError") return "malformed";
    if (name === "RequestFailedError") {
      if (msg.startsWith("Local user not found")) return "unknown_user";
      if (msg.startsWith("Local community not found")) return "unknown_community";
      if (msg.includes("requires authentication") || msg.includes("requires privacy"))
        return "unauthenticated";
      return "bad_auth";
    }
    if (name === "ResponseInvalidError") return "bad_auth";
    if (name === "RequestInvalidError") return "unexpected_pdu";
    return "malformed";
  }

  private onTrap(err: unknown, data: unknown): void {
    try {
      if (err) {
        const from = (err as { rinfo?: { address?: string } }).rinfo?.address;
        // socket errors (no rinfo, an errno code) are not a sender's doing
        if (!from && typeof (err as { code?: unknown }).code === "string") {
          this.opts.log?.warn({ err }, "snmp trap socket error");
          return;
        }
        this.reject(this.classifyError(err), from, err);
        return;
      }
      const d = data as { pdu?: RawPdu; rinfo?: dgram.RemoteInfo } | undefined;
      const pdu = d?.pdu;
      const source = d?.rinfo?.address ?? "";
      if (!pdu) {
        this.reject("malformed", source);
        return;
      }
      // net-snmp lets a v3 message with an empty user and no authentication through as noAuthNoPriv, and
      // checks communities itself; accept only what our profiles name.
      if (pdu.user !== undefined) {
        if (pdu.user === "" || !this.users.has(pdu.user)) {
          this.reject("unauthenticated", source);
          return;
        }
      } else if (pdu.community === undefined || !this.communities.has(pdu.community)) {
        this.reject("unknown_community", source);
        return;
      }
      const vbs = pdu.varbinds ?? [];
      let trapOid: string | undefined;
      const varbinds: { oid: string; value: string }[] = [];
      if (pdu.type === PDU_TRAP_V1) {
        trapOid = v1TrapOid(
          String(pdu.enterprise ?? ""),
          Number(pdu.generic ?? -1),
          Number(pdu.specific ?? 0),
        );
        for (const v of vbs) varbinds.push({ oid: v.oid, value: valueText(v) });
      } else {
        for (const v of vbs) {
          if (v.oid === SNMP_TRAP_OID) trapOid = valueText(v);
          else if (v.oid !== SYS_UPTIME) varbinds.push({ oid: v.oid, value: valueText(v) });
        }
      }
      const event = trapOid
        ? toTrapEvent({ trapOid, varbinds, source, deviceId: this.opts.lookupDevice?.(source) })
        : undefined;
      if (!event) {
        this.reject("malformed", source);
        return;
      }
      try {
        this.opts.sink.appendEvent(event);
      } catch (e) {
        this.reject("sink_failed", source, e);
        return;
      }
      this.opts.metrics.inc(TRAPS_RECEIVED_METRIC, { kind: event.type === "trap" ? event.kind : "info" });
    } catch (e) {
      this.reject("malformed", undefined, e);
    }
  }
}
