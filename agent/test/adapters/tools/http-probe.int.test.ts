import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runSimulator } from "@polyfleet/scripts";
import { freeTcpPort } from "@polyfleet/scripts/testing";
import { SimManifest } from "@polyfleet/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHttpProbeHandler, type ProbeCertificate } from "../../../src/adapters/tools/http-probe.js";

const ctx = () => ({ commandId: "cmd-http-0001", signal: new AbortController().signal });
const dir = mkdtempSync(join(tmpdir(), "polyfleet-http-probe-"));

/** A self-signed certificate made by openssl, valid for `days`, for localhost only (not 127.0.0.1). */
function selfSigned(days: number): { key: string; cert: string } {
  const key = join(dir, `key-${days}.pem`);
  const cert = join(dir, `cert-${days}.pem`);
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      String(days),
      "-subj",
      "/CN=localhost/O=Polyfleet Test",
      "-addext",
      "subjectAltName=DNS:localhost",
    ],
    { stdio: "ignore" },
  );
  return { key: readFileSync(key, "utf8"), cert: readFileSync(cert, "utf8") };
}

const seen: IncomingMessage[] = [];
const big = Buffer.alloc(3 << 20, 0x61);
function app(req: IncomingMessage, res: import("node:http").ServerResponse): void {
  seen.push(req);
  if (req.url === "/hang") return; // never answers
  if (req.url === "/big") {
    res.writeHead(200, { "content-type": "application/octet-stream" });
    res.end(big);
    return;
  }
  res.writeHead(req.url === "/missing" ? 404 : 200, {
    "content-type": "text/plain; charset=utf-8",
    server: "tiny-test",
    "set-cookie": "session=abc123",
  });
  res.end("hello polyfleet");
}

let tls: { key: string; cert: string };
let httpsServer: Server;
let httpServer: Server;
let httpsPort = 0;
let httpPort = 0;

async function listen(s: Server): Promise<number> {
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const a = s.address();
  return typeof a === "object" && a ? a.port : 0;
}

beforeAll(async () => {
  tls = selfSigned(30);
  httpsServer = createHttpsServer({ key: tls.key, cert: tls.cert }, app);
  httpServer = createHttpServer(app);
  httpsPort = await listen(httpsServer);
  httpPort = await listen(httpServer);
});
afterAll(async () => {
  httpsServer.closeAllConnections();
  httpServer.closeAllConnections();
  await new Promise((r) => httpsServer.close(r));
  await new Promise((r) => httpServer.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const probe = (url: string, insecure = true, timeoutMs = 5000, opts = {}) =>
  createHttpProbeHandler(opts)({ type: "httpProbe", url, insecure, timeoutMs }, ctx());

describe("httpProbe against a local HTTPS server with a self-signed certificate", () => {
  it("reports status, headers, body size and the certificate's details", async () => {
    const r = await probe(`https://localhost:${httpsPort}/`);
    const x = new X509Certificate(tls.cert);
    expect(r).toMatchObject({
      ok: true,
      status: 200,
      headers: { server: "tiny-test", "content-type": "text/plain; charset=utf-8" },
      bodyBytes: Buffer.byteLength("hello polyfleet"),
      bodyTruncated: false,
      error: null,
    });
    expect(r.latencyMs as number).toBeGreaterThanOrEqual(0);
    // Only the header subset: no cookies in a result.
    expect(JSON.stringify(r)).not.toContain("abc123");
    const cert = r.certificate as ProbeCertificate;
    expect(cert).toMatchObject({
      subject: expect.stringContaining("CN=localhost"),
      issuer: expect.stringContaining("CN=localhost"),
      subjectAltNames: ["DNS:localhost"],
      fingerprint256: x.fingerprint256,
      serialNumber: x.serialNumber,
      selfSigned: true,
      validated: false,
      authorizationError: "DEPTH_ZERO_SELF_SIGNED_CERT",
      expired: false,
    });
    expect([29, 30]).toContain(cert.daysToExpiry);
    expect(Date.parse(cert.validTo) - Date.parse(cert.validFrom)).toBe(30 * 86_400_000);
  });

  it("with insecure: false refuses the unvalidated certificate before the request, but still reports it", async () => {
    const before = seen.length;
    const r = await probe(`https://localhost:${httpsPort}/`, false);
    expect(r).toMatchObject({
      ok: false,
      status: null,
      error: { code: "DEPTH_ZERO_SELF_SIGNED_CERT" },
      certificate: { selfSigned: true, validated: false },
    });
    expect(seen.length).toBe(before);
  });

  it("validates against a given CA and checks the host name", async () => {
    const good = await probe(`https://localhost:${httpsPort}/`, false, 5000, { ca: tls.cert });
    expect(good).toMatchObject({
      ok: true,
      status: 200,
      certificate: { validated: true, authorizationError: null },
    });
    const wrongName = await probe(`https://127.0.0.1:${httpsPort}/`, false, 5000, { ca: tls.cert });
    expect(wrongName).toMatchObject({ ok: false, error: { code: "ERR_TLS_CERT_ALTNAME_INVALID" } });
  });

  it("computes days to expiry from the injected clock", async () => {
    const later = Date.now() + 40 * 86_400_000;
    const r = await probe(`https://localhost:${httpsPort}/`, true, 5000, { now: () => later });
    expect(r.certificate).toMatchObject({ expired: true });
    expect([-11, -10]).toContain((r.certificate as ProbeCertificate).daysToExpiry);
  });

  it("caps the body it reads", async () => {
    const r = await probe(`https://localhost:${httpsPort}/big`, true, 5000, { maxBodyBytes: 64 * 1024 });
    expect(r).toMatchObject({ ok: true, status: 200, bodyBytes: 64 * 1024, bodyTruncated: true });
  });

  it("reports a server that never answers as ETIMEDOUT at the time limit", async () => {
    const r = await probe(`https://localhost:${httpsPort}/hang`, true, 300);
    expect(r).toMatchObject({ ok: false, error: { code: "ETIMEDOUT" } });
    // The TLS handshake happened, so the certificate is known.
    expect(r.certificate).toMatchObject({ selfSigned: true });
  });

  it("neither sends nor echoes credentials in the URL", async () => {
    const before = seen.length;
    const r = await probe(`https://admin:hunter2@localhost:${httpsPort}/missing`);
    expect(r).toMatchObject({ ok: true, status: 404, url: `https://localhost:${httpsPort}/missing` });
    expect(JSON.stringify(r)).not.toContain("hunter2");
    expect(seen[before]?.headers.authorization).toBeUndefined();
  });
});

describe("httpProbe over plain HTTP and to closed ports", () => {
  it("probes plain HTTP without a certificate", async () => {
    const r = await probe(`http://127.0.0.1:${httpPort}/`);
    expect(r).toMatchObject({ ok: true, status: 200, certificate: null, headers: { server: "tiny-test" } });
  });

  it("reports a refused connection as a value", async () => {
    const port = await freeTcpPort();
    const r = await probe(`https://127.0.0.1:${port}/`);
    expect(r).toMatchObject({ ok: false, status: null, certificate: null, error: { code: "ECONNREFUSED" } });
  });
});

describe("httpProbe against the simulator's devices", () => {
  let stop: (() => Promise<void>) | undefined;
  let manifest: SimManifest;

  beforeAll(async () => {
    const file = join(dir, "manifest.json");
    const subnet = `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.0/24`;
    const sim = await runSimulator(
      [
        "--devices",
        "2",
        "--models",
        "VVX 350,StudioX50",
        "--subnet",
        subnet,
        "--https-port",
        String(await freeTcpPort()),
        "--snmp-port",
        String(20_000 + Math.floor(Math.random() * 10_000)),
        "--log-level",
        "silent",
        "--manifest",
        file,
      ],
      () => {},
    );
    if (!sim) throw new Error("simulator did not start");
    stop = () => sim.stop();
    manifest = SimManifest.parse(JSON.parse(readFileSync(file, "utf8")));
  });
  afterAll(async () => {
    await stop?.();
  });

  it("reports each device's self-signed certificate and an HTTP answer", async () => {
    expect(manifest.devices.length).toBe(2);
    for (const d of manifest.devices) {
      const r = await probe(`https://${d.address}:${d.httpsPort}/`);
      expect(r.ok, JSON.stringify(r.error)).toBe(true);
      expect(typeof r.status).toBe("number");
      const cert = r.certificate as ProbeCertificate;
      expect(cert.subject).toContain(`CN=Polycom ${d.model}`);
      expect(cert.selfSigned).toBe(true);
      expect(cert.validated).toBe(false);
      expect(cert.daysToExpiry).toBeGreaterThan(3000);
      expect(cert.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
      const strict = await probe(`https://${d.address}:${d.httpsPort}/`, false);
      expect(strict).toMatchObject({ ok: false, certificate: { selfSigned: true } });
    }
  });
});
