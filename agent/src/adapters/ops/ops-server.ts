import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { PromRegistry } from "../../core/prom-registry.js";

export interface HealthSource {
  /** A JSON-able health summary; `ok: false` answers 503. */
  health(): { ok: boolean } & Record<string, unknown>;
}

/**
 * The agent's local operations endpoint: `GET /healthz` (JSON, 200 or 503) and `GET /metrics` (Prometheus
 * text). Binds to `http.host` (127.0.0.1 by default).
 */
export class OpsServer {
  private server: Server | undefined;

  constructor(
    private readonly registry: PromRegistry,
    private readonly source: HealthSource,
    private readonly host: string,
    private readonly port: number,
  ) {}

  async start(): Promise<string> {
    const server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { allow: "GET, HEAD" }).end();
        return;
      }
      if (path === "/metrics") {
        const body = this.registry.render();
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(body);
        return;
      }
      if (path === "/healthz") {
        let h: { ok: boolean } & Record<string, unknown>;
        try {
          h = this.source.health();
        } catch (err) {
          h = { ok: false, error: err instanceof Error ? err.message : String(err) };
        }
        res.writeHead(h.ok ? 200 : 503, { "content-type": "application/json" }).end(JSON.stringify(h));
        return;
      }
      res.writeHead(404, { "content-type": "application/json" }).end('{"error":"not found"}');
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, this.host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    return `http://${this.host}:${port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
