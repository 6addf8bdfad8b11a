import { createReadStream } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { networkInterfaces } from "node:os";
import { pipeline } from "node:stream";
import {
  deviceBasePath,
  imageRelativePath,
  type ProvisioningRoute,
  parseProvisioningPath,
  ucMasterConfig,
  videoOsManifest,
} from "../../core/update-provisioning.js";
import type { Clock } from "../../ports/clock.js";
import type { Metrics } from "../../ports/metrics.js";
import type { Provisioning, ProvisioningEntry } from "../../ports/update.js";

export const PROVISIONING_REQUESTS_TOTAL = "polyfleet_agent_provisioning_requests_total";

/** The logger subset the server uses. */
export interface ProvisioningLogger {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}

/** Where image files come from: verified images by sha256 only. */
export interface ImageFiles {
  pathOf(sha256: string): string | undefined;
  touch(sha256: string): void;
}

export interface ProvisioningServerOptions {
  host: string;
  port: number;
  /** The URL devices use (default `http://<host>:<port>`, with a LAN address for a wildcard host). */
  advertisedUrl?: string | undefined;
  images: ImageFiles;
  clock: Clock;
  metrics?: Metrics | undefined;
  log: ProvisioningLogger;
}

type Kind = "cfg" | "manifest" | "image" | "other";

/** First non-internal IPv4 address of this host, for a server bound to a wildcard address. */
function lanAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return undefined;
}

function hostForUrl(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

function sameModel(a: string, b: string): boolean {
  const norm = (s: string): string => s.replace(/[\s_-]/g, "").toLowerCase();
  return norm(a) === norm(b);
}

/**
 * The site provisioning server (port: `Provisioning`), plain HTTP on `provisioning.host:port`: GET and HEAD
 * only, and only the files of devices being updated, each under its own `/d/<deviceId>/` (see
 * core/update-provisioning.ts). Images are streamed from the cache by sha256 with Content-Length; the
 * first complete transfer to a device is reported (`onDelivered`) and later image requests of that
 * update get 404, so a device that comes back on the old version does not install again.
 */
export class ProvisioningServer implements Provisioning {
  private readonly o: ProvisioningServerOptions;
  private readonly entries = new Map<string, ProvisioningEntry>();
  private server: Server | undefined;
  private base: string | undefined;

  constructor(opts: ProvisioningServerOptions) {
    this.o = opts;
  }

  get available(): boolean {
    return this.base !== undefined;
  }

  /** The advertised base URL, once listening. */
  get url(): string | undefined {
    return this.base;
  }

  urlFor(deviceId: string): string {
    return `${this.base ?? ""}${deviceBasePath(deviceId)}`;
  }

  publish(entry: ProvisioningEntry): void {
    this.entries.set(entry.deviceId, entry);
  }

  withdraw(deviceId: string): void {
    this.entries.delete(deviceId);
  }

  /** Devices offered an update now. */
  get offered(): number {
    return this.entries.size;
  }

  async start(): Promise<string> {
    const server = createServer((req, res) => {
      try {
        this.handle(req, res);
      } catch (err) {
        this.o.log.warn({ err }, "provisioning request failed");
        if (!res.headersSent) res.writeHead(500).end();
        else res.destroy();
      }
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 60_000;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.o.port, this.o.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", (err) => this.o.log.warn({ err }, "provisioning server error"));
    this.server = server;
    const { port } = server.address() as AddressInfo;
    const wildcard = this.o.host === "0.0.0.0" || this.o.host === "::" || this.o.host === "";
    const host = wildcard ? (lanAddress() ?? "127.0.0.1") : this.o.host;
    this.base = (this.o.advertisedUrl ?? `http://${hostForUrl(host)}:${port}`).replace(/\/+$/, "");
    if (wildcard && !this.o.advertisedUrl) {
      this.o.log.warn(
        { advertised: this.base },
        "provisioning.advertisedUrl is not set: devices are told a guessed address of this host",
      );
    }
    return this.base;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.base = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private count(kind: Kind, status: number): void {
    this.o.metrics?.inc(PROVISIONING_REQUESTS_TOTAL, { kind, status: String(status) });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const method = req.method ?? "GET";
    if (method !== "GET" && method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-length": "0" }).end();
      this.count("other", 405);
      return;
    }
    const route = parseProvisioningPath(req.url ?? "");
    const entry = route ? this.entries.get(route.deviceId) : undefined;
    if (!route || !entry) {
      this.notFound(res, route ? kindOf(route) : "other");
      return;
    }
    const head = method === "HEAD";
    switch (route.kind) {
      case "ucConfig":
        this.serveUcConfig(res, head, entry, route.file);
        return;
      case "videoosManifest":
        this.serveManifest(res, head, entry, route.model);
        return;
      case "image":
        this.serveImage(res, head, entry, route.sha256, route.fileName);
        return;
    }
  }

  private serveUcConfig(res: ServerResponse, head: boolean, entry: ProvisioningEntry, file: string): void {
    if (entry.family !== "uc") {
      this.notFound(res, "cfg");
      return;
    }
    const body = ucMasterConfig(
      entry.offer === "target" ? imageRelativePath(entry.image.sha256, entry.image.fileName) : undefined,
    );
    this.send(res, head, "application/xml; charset=utf-8", body, "cfg");
    this.o.log.debug({ deviceId: entry.deviceId, file }, "master config served");
  }

  private serveManifest(res: ServerResponse, head: boolean, entry: ProvisioningEntry, model: string): void {
    if (entry.family !== "videoos" || (entry.model !== undefined && !sameModel(entry.model, model))) {
      this.notFound(res, "manifest");
      return;
    }
    const offer = entry.offer === "current" && entry.current ? entry.current : entry.target;
    const body = videoOsManifest({
      version: offer.version,
      build: offer.build,
      file: imageRelativePath(entry.image.sha256, entry.image.fileName),
      size: entry.image.length,
    });
    this.send(res, head, "application/json", body, "manifest");
    this.o.log.debug({ deviceId: entry.deviceId, offer: entry.offer }, "package manifest served");
  }

  private serveImage(
    res: ServerResponse,
    head: boolean,
    entry: ProvisioningEntry,
    sha256: string,
    fileName: string,
  ): void {
    const path =
      sha256 === entry.image.sha256 && fileName === entry.image.fileName && !entry.delivered
        ? this.o.images.pathOf(sha256)
        : undefined;
    if (!path) {
      this.notFound(res, "image");
      return;
    }
    this.sendImage(res, head, entry, path);
  }

  private sendImage(res: ServerResponse, head: boolean, entry: ProvisioningEntry, path: string): void {
    res.writeHead(200, {
      "content-type": "application/octet-stream",
      "content-length": String(entry.image.length),
      "cache-control": "no-store",
    });
    this.count("image", 200);
    if (head) {
      res.end();
      return;
    }
    this.o.images.touch(entry.image.sha256);
    const started = this.o.clock.now();
    const file = createReadStream(path);
    let passed = 0;
    file.on("data", (chunk) => {
      passed += chunk.length;
    });
    pipeline(file, res, (err) => {
      // A device that has read the whole body (Content-Length) closes its connection, often before this side
      // has seen the file's end or the last write complete: what counts is that every byte of the image was
      // handed to the connection. (One that drops it with the tail still in socket buffers is then taken as
      // served; it does not reboot, and the watch reports that instead.)
      const complete = !err || passed === entry.image.length;
      if (!complete) {
        this.o.log.debug(
          { deviceId: entry.deviceId, sent: passed, err: err?.message },
          "image transfer ended early",
        );
        return;
      }
      if (entry.delivered) return;
      entry.delivered = true;
      const at = this.o.clock.now();
      this.o.log.info({ deviceId: entry.deviceId, ms: at - started }, "image delivered");
      entry.onDelivered?.(at);
    });
  }

  private send(res: ServerResponse, head: boolean, type: string, body: string, kind: Kind): void {
    const buf = Buffer.from(body, "utf8");
    res.writeHead(200, {
      "content-type": type,
      "content-length": String(buf.length),
      "cache-control": "no-store",
    });
    this.count(kind, 200);
    res.end(head ? undefined : buf);
  }

  private notFound(res: ServerResponse, kind: Kind): void {
    res.writeHead(404, { "content-type": "text/plain", "content-length": "9" }).end("not found");
    this.count(kind, 404);
  }
}

function kindOf(route: ProvisioningRoute): Kind {
  return route.kind === "ucConfig" ? "cfg" : route.kind === "videoosManifest" ? "manifest" : "image";
}
