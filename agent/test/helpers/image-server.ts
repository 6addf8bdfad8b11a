import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** How the stand-in collector misbehaves for one image. */
export type ImageMode =
  /** Serves the bytes, honours Range. */
  | "normal"
  /** Cuts the connection after half of the first full response; later requests (Range) are served. */
  | "cutOnce"
  /** Like cutOnce, but ignores Range (always 200 with the whole image). */
  | "cutOnceIgnoreRange"
  /** Sends these bytes plus 1,000 more, without a Content-Length (chunked). */
  | "oversizeChunked"
  /** Declares and sends 1,000 bytes more than the catalog says. */
  | "oversizeDeclared"
  /** Always 500. */
  | "error500"
  /** Sends half of the image, then nothing (the connection stays open). */
  | "stall";

export interface ServedImage {
  bytes: Buffer;
  sha256: string;
  mode: ImageMode;
}

export interface ImageRequest {
  path: string;
  range: string | undefined;
  status: number;
}

/**
 * A small HTTP server standing in for the collector's image endpoint (`/images/<name>`), with per-image
 * faults, recording every request (path, Range, status).
 */
export class TestImageServer {
  private server: Server | undefined;
  private readonly images = new Map<string, ServedImage>();
  readonly requests: ImageRequest[] = [];
  private readonly cut = new Set<string>();
  base = "";

  static sha256(bytes: Buffer): string {
    return createHash("sha256").update(bytes).digest("hex");
  }

  /** Serves `bytes` at `/images/<name>`; returns its URL. */
  add(name: string, bytes: Buffer, mode: ImageMode = "normal"): string {
    this.images.set(name, { bytes, sha256: TestImageServer.sha256(bytes), mode });
    return `${this.base}/images/${name}`;
  }

  /** Requests for one image name. */
  requestsFor(name: string): ImageRequest[] {
    return this.requests.filter((r) => r.path === `/images/${name}`);
  }

  async start(): Promise<string> {
    const server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    this.server = server;
    this.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.base;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const range = req.headers.range;
    const name = path.startsWith("/images/") ? path.slice("/images/".length) : "";
    const img = this.images.get(name);
    const record = (status: number): void => {
      this.requests.push({ path, range, status });
    };
    if (!img) {
      record(404);
      res.writeHead(404).end();
      return;
    }
    const { bytes, mode } = img;
    if (mode === "error500") {
      record(500);
      res.writeHead(500).end();
      return;
    }
    if (mode === "oversizeChunked") {
      record(200);
      res.writeHead(200, { "content-type": "application/octet-stream" });
      res.write(bytes);
      res.end(Buffer.alloc(1000, 1));
      return;
    }
    if (mode === "oversizeDeclared") {
      record(200);
      const body = Buffer.concat([bytes, Buffer.alloc(1000, 1)]);
      res.writeHead(200, { "content-length": String(body.length) }).end(body);
      return;
    }
    const honourRange = mode !== "cutOnceIgnoreRange";
    const m = honourRange && range ? /^bytes=(\d+)-$/.exec(range) : null;
    const start = m ? Number(m[1]) : 0;
    if (start >= bytes.length) {
      record(416);
      res.writeHead(416, { "content-range": `bytes */${bytes.length}` }).end();
      return;
    }
    const body = bytes.subarray(start);
    const status = m ? 206 : 200;
    record(status);
    res.writeHead(status, {
      "content-type": "application/octet-stream",
      "content-length": String(body.length),
      ...(m ? { "content-range": `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : {}),
    });
    if (mode === "stall") {
      res.write(body.subarray(0, Math.floor(body.length / 2)));
      return;
    }
    if ((mode === "cutOnce" || mode === "cutOnceIgnoreRange") && !this.cut.has(name)) {
      this.cut.add(name);
      const half = Math.floor(body.length / 2);
      res.write(body.subarray(0, half), () => {
        // Let the first half reach the client before the connection drops.
        setTimeout(() => res.socket?.destroy(), 20);
      });
      return;
    }
    res.end(body);
  }
}
