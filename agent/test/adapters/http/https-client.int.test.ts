import { X509Certificate } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import { createServer as createTcpServer, type Server as TcpServer } from "node:net";
import { freeTcpPort } from "@polyfleet/scripts/testing";
import { generate } from "selfsigned";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BAD_RESPONSES_METRIC,
  type HttpsRequest,
  MAX_DEVICE_BODY_BYTES,
  UndiciHttpsClient,
} from "../../../src/adapters/http/https-client.js";
import { PromRegistry } from "../../../src/core/prom-registry.js";

/** A hostile device: every path is one way of answering badly. */
function hostile(req: IncomingMessage, res: ServerResponse, state: { dropped: number }): void {
  const path = req.url ?? "/";
  const json = (status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  };
  switch (path) {
    case "/ok":
      json(200, { Status: "2000", data: { hello: "world" } });
      return;
    case "/empty":
      res.writeHead(204);
      res.end();
      return;
    case "/big-declared":
      res.writeHead(200, { "content-type": "application/json", "content-length": 6 * 1024 * 1024 });
      res.write("[");
      res.once("close", () => state.dropped++);
      return;
    case "/big-chunked": {
      // No Content-Length: the cap must be enforced while reading.
      res.writeHead(200, { "content-type": "application/json" });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      let sent = 0;
      res.once("close", () => {
        if (sent < 8 * 1024 * 1024) state.dropped++;
      });
      const pump = (): void => {
        while (sent < 8 * 1024 * 1024 && !res.destroyed) {
          sent += chunk.length;
          if (!res.write(chunk)) {
            res.once("drain", pump);
            return;
          }
        }
        if (!res.destroyed) res.end();
      };
      pump();
      return;
    }
    case "/trickle": {
      res.writeHead(200, { "content-type": "application/json" });
      res.write("[");
      const t = setInterval(() => res.write("1,"), 50);
      res.once("close", () => {
        clearInterval(t);
        state.dropped++;
      });
      return;
    }
    case "/silent":
      req.resume();
      return;
    case "/invalid-json":
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{'Status':'2000',}");
      return;
    case "/html":
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<html><body>not an API</body></html>");
      return;
    case "/truncated":
      res.writeHead(200, { "content-type": "application/json", "content-length": 100 });
      res.write('{"Status":"2000","da');
      setImmediate(() => res.socket?.destroy());
      return;
    case "/401":
      res.writeHead(401, { "www-authenticate": 'Basic realm="API Authentication"' });
      res.end("<html>401</html>");
      return;
    case "/403-busy":
      json(403, { Status: "4001" });
      return;
    case "/403":
      json(403, { success: false, errorCode: "SESSION_EXPIRED" });
      return;
    case "/500":
      res.writeHead(500);
      res.end("Internal Server Error");
      return;
    case "/echo":
      json(200, { method: req.method, headers: req.headers });
      return;
    default:
      json(404, { Status: "4004" });
      return;
  }
}

describe("UndiciHttpsClient against a hostile HTTPS device", () => {
  let server: Server;
  let good: Server;
  let resetter: TcpServer;
  let port = 0;
  let goodPort = 0;
  let resetPort = 0;
  let refusedPort = 0;
  let fingerprint = "";
  const connections = { hostile: 0, good: 0 };
  const state = { dropped: 0 };
  const metrics = new PromRegistry();
  const client = new UndiciHttpsClient({ metrics, timeoutMs: 600 });

  beforeAll(async () => {
    const pems = await generate([{ name: "commonName", value: "Polycom hostile" }], {
      keyType: "ec",
      algorithm: "sha256",
    });
    fingerprint = new X509Certificate(pems.cert).fingerprint256;
    server = createServer({ key: pems.private, cert: pems.cert, keepAlive: true }, (req, res) =>
      hostile(req, res, state),
    );
    server.on("secureConnection", () => connections.hostile++);
    good = createServer({ key: pems.private, cert: pems.cert, keepAlive: true }, (req, res) =>
      hostile(req, res, state),
    );
    good.on("secureConnection", () => connections.good++);
    resetter = createTcpServer((s) => s.resetAndDestroy());
    await Promise.all([
      new Promise<void>((r) => server.listen(0, "127.0.0.1", r)),
      new Promise<void>((r) => good.listen(0, "127.0.0.1", r)),
      new Promise<void>((r) => resetter.listen(0, "127.0.0.1", r)),
    ]);
    port = (server.address() as { port: number }).port;
    goodPort = (good.address() as { port: number }).port;
    resetPort = (resetter.address() as { port: number }).port;
    refusedPort = await freeTcpPort();
  });
  afterAll(async () => {
    await client.close();
    server.closeAllConnections();
    good.closeAllConnections();
    await Promise.all([
      new Promise((r) => server.close(r)),
      new Promise((r) => good.close(r)),
      new Promise((r) => resetter.close(r)),
    ]);
  });

  const get = (path: string, extra: Partial<HttpsRequest> = {}) =>
    client.request({ address: "127.0.0.1", port, method: "GET", path, ...extra });

  it("parses a JSON answer, reuses one keep-alive connection and records the certificate fingerprint", async () => {
    const before = connections.good;
    for (let i = 0; i < 10; i++) {
      const r = await client.request({ address: "127.0.0.1", port: goodPort, method: "GET", path: "/ok" });
      expect(r).toMatchObject({ ok: true, status: 200, json: { Status: "2000", data: { hello: "world" } } });
    }
    expect(connections.good - before).toBe(1);
    expect(client.peerFingerprint("127.0.0.1", goodPort)).toBe(fingerprint);
  });

  it("sends JSON bodies and headers, and an empty 204 is ok", async () => {
    const r = await get("/echo", {
      method: "POST",
      body: { a: 1 },
      headers: { authorization: "Basic eA==" },
    });
    expect(r.ok && (r.json as { headers: Record<string, string> }).headers["content-type"]).toBe(
      "application/json",
    );
    expect(await get("/empty")).toMatchObject({ ok: true, status: 204, json: undefined });
  });

  it("refuses a body over 5 MB (declared or streamed), drops the connection and counts it", async () => {
    expect(MAX_DEVICE_BODY_BYTES).toBe(5 * 1024 * 1024);
    for (const path of ["/big-declared", "/big-chunked"]) {
      const dropped = state.dropped;
      const r = await get(path, { timeoutMs: 10_000 });
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toMatchObject({ code: "POLYFLEET_ERR_DEVICE_TOO_LARGE", endpoint: path });
      await waitUntil(() => state.dropped > dropped);
    }
    expect(metrics.get(BAD_RESPONSES_METRIC, { reason: "too_large" })).toBe(2);
  });

  it("cuts a trickling body at the deadline and counts it as slow", async () => {
    const dropped = state.dropped;
    const t0 = Date.now();
    const r = await get("/trickle");
    // Bounded by the 600 ms request timeout (the overall deadline is checked on every chunk).
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe("POLYFLEET_ERR_DEVICE_TIMEOUT");
    expect(metrics.get(BAD_RESPONSES_METRIC, { reason: "slow" })).toBe(1);
    await waitUntil(() => state.dropped > dropped);
  });

  it("times out a device that never answers, and honours the caller's abort", async () => {
    const r = await get("/silent");
    expect(!r.ok && r.error.code).toBe("POLYFLEET_ERR_DEVICE_TIMEOUT");
    const ac = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ac.abort(), 100);
    const r2 = await get("/silent", { timeoutMs: 30_000, signal: ac.signal });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(!r2.ok && r2.error.code).toBe("POLYFLEET_ERR_DEVICE_TIMEOUT");
    expect(!r2.ok && r2.error.message).toContain("aborted");
  });

  it("rejects invalid JSON, HTML where JSON was expected, and a truncated body, each counted", async () => {
    for (const path of ["/invalid-json", "/html", "/truncated"]) {
      const r = await get(path);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toMatchObject({ code: "POLYFLEET_ERR_DEVICE_BAD_RESPONSE", endpoint: path });
    }
    expect(metrics.get(BAD_RESPONSES_METRIC, { reason: "invalid_json" })).toBe(2);
    expect(metrics.get(BAD_RESPONSES_METRIC, { reason: "truncated" })).toBe(1);
  });

  it("maps HTTP errors: 401 auth, 403 4001 busy, other 403 auth, 5xx http, 404 with status", async () => {
    expect(await get("/401")).toMatchObject({
      ok: false,
      status: 401,
      error: { code: "POLYFLEET_ERR_DEVICE_AUTH" },
    });
    expect(await get("/403-busy")).toMatchObject({
      ok: false,
      status: 403,
      error: { code: "POLYFLEET_ERR_DEVICE_BUSY" },
    });
    expect(await get("/403")).toMatchObject({
      ok: false,
      status: 403,
      error: { code: "POLYFLEET_ERR_DEVICE_AUTH" },
    });
    expect(await get("/500")).toMatchObject({
      ok: false,
      status: 500,
      error: { code: "POLYFLEET_ERR_DEVICE_HTTP" },
    });
    expect(await get("/nope")).toMatchObject({
      ok: false,
      status: 404,
      json: { Status: "4004" },
      error: { code: "POLYFLEET_ERR_DEVICE_HTTP" },
    });
  });

  it("maps connection refused and reset to unreachable", async () => {
    const refused = await client.request({
      address: "127.0.0.1",
      port: refusedPort,
      method: "GET",
      path: "/x",
    });
    expect(refused).toMatchObject({ ok: false, error: { code: "POLYFLEET_ERR_DEVICE_UNREACHABLE" } });
    if (!refused.ok) expect(refused.error.message).toContain("ECONNREFUSED");
    const reset = await client.request({ address: "127.0.0.1", port: resetPort, method: "GET", path: "/x" });
    expect(reset).toMatchObject({ ok: false, error: { code: "POLYFLEET_ERR_DEVICE_UNREACHABLE" } });
  });

  it("keeps serving other devices while one is hostile", async () => {
    const hostileCalls = Promise.all([get("/trickle"), get("/silent"), get("/big-chunked")]);
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) {
      const r = await client.request({ address: "127.0.0.1", port: goodPort, method: "GET", path: "/ok" });
      expect(r.ok).toBe(true);
    }
    expect(Date.now() - t0).toBeLessThan(600);
    const bad = await hostileCalls;
    expect(bad.every((r) => !r.ok)).toBe(true);
    // And the hostile device itself answers again afterwards.
    expect((await get("/ok")).ok).toBe(true);
  });

  it("never throws on any path, method or header combination", async () => {
    const paths = ["/ok", "/500", "/truncated", "/html", "/401", "/%00", "/?a=1"];
    const results = await Promise.all(paths.map((p) => get(p)));
    expect(results).toHaveLength(paths.length);
  });
});

async function waitUntil(check: () => boolean, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}
