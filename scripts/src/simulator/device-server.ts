import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { Socket } from "node:net";
import type { DeviceSim } from "./device.js";
import { type FamilyApi, MAX_REQUEST_BODY, type SimRequest, type SimResponse } from "./http-types.js";

export interface TlsMaterial {
  key: string;
  cert: string;
}

export interface DeviceServerStats {
  requests: number;
  busyRejections: number;
}

/** Server header each family sends (UC value as a third-party simulator shows; VideoOS plausible). */
const SERVER_HEADER = { uc: "Polycom SoundPoint IP Telephone HTTPd", videoos: "Poly" } as const;

/**
 * The HTTPS listener of one simulated device, on its own loopback address. It applies the transport-level
 * behaviour and faults, then hands the request to the family API:
 * - away (rebooting, flapping, reboot loop, never returned): connections are reset at once;
 * - `noAnswer`: the request is accepted and never answered;
 * - `slow`: answers after `timing.slowMs`; `packetLoss`: some answers take a retransmission's delay;
 * - `http500`: every request gets a 500;
 * - UC phones serve one request at a time: a request while another is in flight gets 403 (status 4001);
 * - `malformedJson` / `truncatedJson`: the JSON answer is corrupted, or cut off mid-body.
 */
export class DeviceHttpsServer {
  readonly stats: DeviceServerStats = { requests: 0, busyRejections: 0 };
  private server: Server | undefined;
  private inFlight = 0;
  private readonly hung = new Set<ServerResponse>();
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly device: DeviceSim,
    private readonly api: FamilyApi,
    private readonly tls: TlsMaterial,
  ) {}

  async start(): Promise<void> {
    const server = createServer(
      {
        key: this.tls.key,
        cert: this.tls.cert,
        keepAlive: true,
        requestTimeout: 60_000,
        headersTimeout: 30_000,
      },
      (req, res) => {
        void this.onRequest(req, res);
      },
    );
    server.keepAliveTimeout = 60_000;
    server.on("connection", (socket: Socket) => {
      if (!this.device.isUp()) {
        socket.destroy();
        return;
      }
      socket.setNoDelay(true);
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
    // A scanner's garbage must never take the process down.
    server.on("tlsClientError", () => {});
    server.on("clientError", (_err, socket) => socket.destroy());
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.device.httpsPort, this.device.address, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.device.events.on("rebooted", this.dropConnections);
  }

  /** A reboot drops every open connection. */
  private readonly dropConnections = (): void => {
    for (const s of this.sockets) s.destroy();
  };

  async stop(): Promise<void> {
    this.device.events.off("rebooted", this.dropConnections);
    for (const res of this.hung) res.destroy();
    this.hung.clear();
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const device = this.device;
    this.stats.requests++;
    res.setHeader("Server", SERVER_HEADER[device.family]);
    if (!device.isUp()) {
      req.socket.destroy();
      return;
    }
    if (device.faults.has("noAnswer")) {
      this.hung.add(res);
      res.once("close", () => this.hung.delete(res));
      req.resume();
      return;
    }
    const serial = device.family === "uc";
    if (serial && this.inFlight > 0) {
      this.stats.busyRejections++;
      req.resume();
      send(res, { status: 403, json: { Status: "4001" } }, false);
      return;
    }
    this.inFlight++;
    try {
      const body = await readBody(req, MAX_REQUEST_BODY);
      if (body === undefined) {
        send(res, { status: 413, body: "Request Entity Too Large" }, false);
        return;
      }
      await delay(this.transportDelay());
      if (!device.isUp() || res.destroyed) {
        req.socket.destroy();
        return;
      }
      if (device.faults.has("http500")) {
        send(res, { status: 500, body: "Internal Server Error" }, false);
        return;
      }
      const url = new URL(req.url ?? "/", "https://device.invalid");
      const simReq: SimRequest = {
        method: req.method ?? "GET",
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body,
        remoteAddress: req.socket.remoteAddress ?? "",
      };
      let answer: SimResponse;
      try {
        answer = await this.api.handle(device, simReq);
      } catch {
        answer = { status: 500, body: "Internal Server Error" };
      }
      this.sendWithFaults(res, answer);
    } finally {
      this.inFlight--;
    }
  }

  private transportDelay(): number {
    const f = this.device.faults;
    let ms = f.has("slow") ? this.device.timing.slowMs : 0;
    if (f.has("packetLoss") && this.device.random() < 0.2) ms += 200 + Math.floor(this.device.random() * 600);
    return ms;
  }

  private sendWithFaults(res: ServerResponse, answer: SimResponse): void {
    const f = this.device.faults;
    if (answer.json !== undefined && f.has("truncatedJson")) {
      const full = Buffer.from(JSON.stringify(answer.json));
      res.writeHead(answer.status, {
        ...answer.headers,
        "Content-Type": "application/json",
        "Content-Length": full.length,
      });
      res.write(full.subarray(0, Math.floor(full.length / 2)));
      // The peer sees the connection end before Content-Length bytes arrived.
      setImmediate(() => res.socket?.destroy());
      return;
    }
    if (answer.json !== undefined && f.has("malformedJson")) {
      const text = JSON.stringify(answer.json);
      send(res, { ...answer, json: undefined, body: `${text.slice(0, -1).replace(/"/g, "'")},}` }, true);
      return;
    }
    send(res, answer, answer.json !== undefined);
  }
}

function send(res: ServerResponse, answer: SimResponse, isJson: boolean): void {
  if (res.destroyed) return;
  const payload = answer.json !== undefined ? JSON.stringify(answer.json) : (answer.body ?? "");
  const buf = typeof payload === "string" ? Buffer.from(payload) : payload;
  const headers: Record<string, string | string[] | number> = {
    ...answer.headers,
    "Content-Length": buf.length,
  };
  if (isJson && !("Content-Type" in headers)) headers["Content-Type"] = "application/json";
  res.writeHead(answer.status, headers);
  res.end(buf);
}

/** Reads the request body up to `limit` bytes; undefined when it is larger. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > limit) {
      req.resume();
      resolve(undefined);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on("data", (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > limit) {
        done = true;
        resolve(undefined);
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      if (!done) resolve(Buffer.concat(chunks));
      done = true;
    });
    req.on("error", () => {
      if (!done) resolve(Buffer.alloc(0));
      done = true;
    });
  });
}

function delay(ms: number): Promise<void> {
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}
