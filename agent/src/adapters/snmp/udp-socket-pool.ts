import dgram from "node:dgram";
import { EventEmitter } from "node:events";
import { PDU_REPORT, peekSnmp } from "./ber-peek.js";

/** Why an incoming datagram was dropped before (or while) net-snmp looked at it. */
export type RejectReason = "wrong_source" | "wrong_request_id" | "malformed" | "auth";

export interface UdpSocketPoolOptions {
  /** Targets (address:port) sharing one UDP socket. Default 256. */
  targetsPerSocket?: number;
  /**
   * Requests in flight per UDP socket; more wait for a slot. Default 128: bursts beyond that overflow the
   * default receive buffer (lead's measurement, issue 3).
   */
  maxInFlightPerSocket?: number;
  /** SO_RCVBUF asked for each socket (the kernel caps it at net.core.rmem_max). Default 4 MiB. */
  recvBufferBytes?: number;
  /** Called for every dropped datagram. */
  onReject?: (reason: RejectReason, from: string) => void;
  /** Called for socket-level errors (never thrown). */
  onSocketError?: (err: Error) => void;
}

interface Shared {
  socket: dgram.Socket;
  /** "address:port" → the virtual sockets of the sessions talking to that endpoint. */
  endpoints: Map<string, Set<VirtualSocket>>;
  size: number;
  inFlight: number;
  waiters: (() => void)[];
  closed: boolean;
}

/** Has the session behind a virtual socket a pending request with this id? (net-snmp's `reqs` map.) */
export type RequestLookup = (id: number) => boolean;

/**
 * What one net-snmp Session sees as its dgram socket (passed through net-snmp's `dgramModule` option). It
 * sends through a shared UDP socket and receives only datagrams the pool routed to it: from its target's
 * exact address and port, well framed, and answering one of its pending requests.
 */
export class VirtualSocket extends EventEmitter {
  /** Set by the client once net-snmp has built the session. */
  hasRequest: RequestLookup | undefined;
  /** The last datagram rejected for this session (so a timeout can say "malformed answers" instead). */
  lastReject: { reason: RejectReason; at: number } | undefined;
  private open = true;

  constructor(
    private readonly pool: UdpSocketPool,
    readonly shared: Shared,
    readonly endpoint: string,
  ) {
    super();
  }

  send(
    buf: Buffer,
    offset: number,
    length: number,
    port: number,
    address: string,
    cb?: (err: Error | null, bytes?: number) => void,
  ): void {
    if (!this.open || this.shared.closed) {
      cb?.(new Error("socket closed"));
      return;
    }
    this.shared.socket.send(buf, offset, length, port, address, (err, bytes) => cb?.(err, bytes));
  }

  close(cb?: () => void): void {
    if (!this.open) return;
    this.open = false;
    this.pool.detach(this);
    // net-snmp cancels its pending requests on "close"; emit it asynchronously, as dgram does.
    setImmediate(() => {
      this.emit("close");
      cb?.();
    });
  }

  markReject(reason: RejectReason): void {
    this.lastReject = { reason, at: Date.now() };
  }

  // net-snmp refs the socket while requests are pending; its timers keep the loop alive already.
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
  bind(): this {
    return this;
  }
  address(): dgram.RemoteInfo | { address: string; family: string; port: number } {
    return this.shared.socket.address();
  }
}

/**
 * UDP sockets shared by many SNMP sessions. A datagram is delivered to a session only when it comes from the
 * session's target address:port (else `wrong_source`), is a well-framed SNMP message (else `malformed`),
 * carries a request id the session is waiting for (else `wrong_request_id`), and — for v3 — is authenticated
 * unless it is a Report (else `auth`). Each socket bounds its requests in flight.
 */
export class UdpSocketPool {
  private readonly sockets: Shared[] = [];
  private readonly targetsPerSocket: number;
  private readonly maxInFlight: number;
  private readonly recvBufferBytes: number;

  constructor(private readonly opts: UdpSocketPoolOptions = {}) {
    this.targetsPerSocket = opts.targetsPerSocket ?? 256;
    this.maxInFlight = opts.maxInFlightPerSocket ?? 128;
    this.recvBufferBytes = opts.recvBufferBytes ?? 4 * 1024 * 1024;
  }

  /** Number of UDP sockets open (tests, metrics). */
  socketCount(): number {
    return this.sockets.length;
  }

  /** A virtual socket for a session to `address:port`. */
  attach(address: string, port: number): VirtualSocket {
    let shared = this.sockets.find((s) => s.size < this.targetsPerSocket);
    if (!shared) {
      shared = this.open();
      this.sockets.push(shared);
    }
    const endpoint = `${address}:${port}`;
    const vs = new VirtualSocket(this, shared, endpoint);
    let set = shared.endpoints.get(endpoint);
    if (!set) {
      set = new Set();
      shared.endpoints.set(endpoint, set);
    }
    set.add(vs);
    shared.size++;
    return vs;
  }

  /** Waits for a request slot on the virtual socket's UDP socket; resolves false when `signal` aborts first. */
  acquire(vs: VirtualSocket, signal?: AbortSignal): Promise<boolean> {
    const s = vs.shared;
    if (s.inFlight < this.maxInFlight) {
      s.inFlight++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const grant = (): void => {
        signal?.removeEventListener("abort", onAbort);
        s.inFlight++;
        resolve(true);
      };
      const onAbort = (): void => {
        const i = s.waiters.indexOf(grant);
        if (i >= 0) s.waiters.splice(i, 1);
        resolve(false);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      s.waiters.push(grant);
    });
  }

  release(vs: VirtualSocket): void {
    const s = vs.shared;
    s.inFlight--;
    const next = s.waiters.shift();
    if (next) next();
  }

  /** Removes a virtual socket (its session closed); closes the UDP socket when no session uses it. */
  detach(vs: VirtualSocket): void {
    const s = vs.shared;
    const set = s.endpoints.get(vs.endpoint);
    if (set?.delete(vs)) {
      s.size--;
      if (set.size === 0) s.endpoints.delete(vs.endpoint);
    }
    if (s.size === 0 && !s.closed && s.inFlight === 0) {
      s.closed = true;
      const i = this.sockets.indexOf(s);
      if (i >= 0) this.sockets.splice(i, 1);
      try {
        s.socket.close();
      } catch {
        // already closed
      }
    }
  }

  close(): void {
    for (const s of this.sockets.splice(0)) {
      s.closed = true;
      try {
        s.socket.close();
      } catch {
        // already closed
      }
    }
  }

  private open(): Shared {
    const socket = dgram.createSocket({ type: "udp4", recvBufferSize: this.recvBufferBytes });
    const shared: Shared = { socket, endpoints: new Map(), size: 0, inFlight: 0, waiters: [], closed: false };
    socket.on("error", (err) => this.opts.onSocketError?.(err));
    socket.on("message", (buf: Buffer, rinfo: dgram.RemoteInfo) => this.dispatch(shared, buf, rinfo));
    socket.bind(0);
    socket.unref();
    return shared;
  }

  private reject(reason: RejectReason, rinfo: dgram.RemoteInfo, vs?: VirtualSocket): void {
    vs?.markReject(reason);
    try {
      this.opts.onReject?.(reason, `${rinfo.address}:${rinfo.port}`);
    } catch {
      // a failing observer must not break dispatch
    }
  }

  private dispatch(shared: Shared, buf: Buffer, rinfo: dgram.RemoteInfo): void {
    const set = shared.endpoints.get(`${rinfo.address}:${rinfo.port}`);
    if (!set) {
      this.reject("wrong_source", rinfo);
      return;
    }
    const peek = peekSnmp(buf);
    if (!peek) {
      for (const vs of set) vs.markReject("malformed");
      this.reject("malformed", rinfo);
      return;
    }
    let target: VirtualSocket | undefined;
    for (const vs of set) {
      if (vs.hasRequest?.(peek.reqId)) {
        target = vs;
        break;
      }
    }
    if (!target) {
      this.reject("wrong_request_id", rinfo);
      return;
    }
    // net-snmp accepts a v3 answer without the auth flag (it checks digests only when the flag is set):
    // an unauthenticated Response to an authPriv request is refused here. Reports stay (discovery, usmStats).
    if (peek.version === 3 && (peek.flags & 0x01) === 0 && peek.pduTag !== PDU_REPORT) {
      this.reject("auth", rinfo, target);
      return;
    }
    try {
      target.emit("message", buf, rinfo);
    } catch {
      this.reject("malformed", rinfo, target);
    }
  }
}
