import { request } from "node:https";
import { afterEach, describe, expect, it } from "vitest";
import { MODELS } from "../../src/simulator/catalog.js";
import { DEFAULT_TIMING, DeviceSim } from "../../src/simulator/device.js";
import { DeviceHttpsServer } from "../../src/simulator/device-server.js";
import type { FamilyApi } from "../../src/simulator/http-types.js";
import { CertificateStore } from "../../src/simulator/tls.js";

const certs = new CertificateStore();
const running: DeviceHttpsServer[] = [];
let nextHost = 1 + Math.floor(Math.random() * 200);

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

/** A family API that answers `{"ok":true}` after `holdMs`. */
function echoApi(holdMs = 0): FamilyApi {
  return {
    handle: async (_d, req) => {
      if (holdMs) await new Promise((r) => setTimeout(r, holdMs));
      return { status: 200, json: { ok: true, path: req.path, bytes: req.body.length } };
    },
  };
}

async function start(model: string, api: FamilyApi, timing = DEFAULT_TIMING) {
  const spec = MODELS.find((m) => m.model === model);
  if (!spec) throw new Error(model);
  const address = `127.0.77.${nextHost++}`;
  const device = new DeviceSim(
    {
      id: `dev${nextHost}`,
      index: nextHost,
      address,
      httpsPort: 18443,
      snmpPort: null,
      spec,
      serial: "S",
      mac: "64167f000001",
      firmware: { version: "5.9.3.2857", date: "d" },
      admin: { user: "Polycom", password: "pw" },
      snmp: null,
      restEnabled: true,
      seed: 1,
    },
    { now: () => Date.now() },
    timing,
  );
  const server = new DeviceHttpsServer(device, api, await certs.forModel(model));
  await server.start();
  running.push(server);
  return { device, server };
}

interface Answer {
  status: number;
  body: string;
  error?: string;
}

function get(device: DeviceSim, path = "/x", timeoutMs = 3000, body?: string): Promise<Answer> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: device.address,
        port: device.httpsPort,
        path,
        method: body ? "POST" : "GET",
        rejectUnauthorized: false,
        timeout: timeoutMs,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on("error", (e) =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), error: e.message }),
        );
      },
    );
    req.on("timeout", () => {
      req.destroy(new Error("timeout"));
    });
    req.on("error", (e) => resolve({ status: 0, body: "", error: e.message }));
    req.end(body);
  });
}

describe("DeviceHttpsServer", () => {
  it("serves the family API over TLS on the device's own address", async () => {
    const { device } = await start("VVX 350", echoApi());
    const a = await get(device, "/api/v1/mgmt/device/info?x=1");
    expect(a.status).toBe(200);
    expect(JSON.parse(a.body)).toEqual({ ok: true, path: "/api/v1/mgmt/device/info", bytes: 0 });
  });

  it("a UC phone answers a concurrent request with 403 (one request at a time)", async () => {
    const { device, server } = await start("VVX 350", echoApi(300));
    const [a, b] = await Promise.all([
      get(device),
      new Promise<Answer>((r) => setTimeout(() => void get(device).then(r), 100)),
    ]);
    expect(a.status).toBe(200);
    expect(b.status).toBe(403);
    expect(JSON.parse(b.body)).toEqual({ Status: "4001" });
    expect(server.stats.busyRejections).toBe(1);
  });

  it("a VideoOS device serves concurrent requests", async () => {
    const { device } = await start("StudioX30", echoApi(200));
    const answers = await Promise.all([get(device), get(device), get(device)]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
  });

  it("noAnswer: the request hangs until the client gives up", async () => {
    const { device } = await start("VVX 350", echoApi());
    device.setFaults(["noAnswer"]);
    const a = await get(device, "/x", 500);
    expect(a.status).toBe(0);
    expect(a.error).toMatch(/timeout/);
  });

  it("http500, malformed and truncated JSON faults", async () => {
    const { device } = await start("StudioX30", echoApi());
    device.setFaults(["http500"]);
    expect((await get(device)).status).toBe(500);
    device.setFaults(["malformedJson"]);
    const m = await get(device);
    expect(m.status).toBe(200);
    expect(() => JSON.parse(m.body)).toThrow();
    device.setFaults(["truncatedJson"]);
    const t = await get(device);
    expect(t.error ?? "aborted").toMatch(/aborted|socket hang up|ECONNRESET/);
    expect(() => JSON.parse(t.body)).toThrow();
  });

  it("a rebooting device drops connections until it is back", async () => {
    const { device } = await start("StudioX30", echoApi(), { ...DEFAULT_TIMING, rebootDownMs: 400 });
    device.reboot("test");
    const down = await get(device);
    expect(down.status).toBe(0);
    await new Promise((r) => setTimeout(r, 450));
    expect((await get(device)).status).toBe(200);
  });

  it("refuses a body over 10 MB with 413 and keeps serving", async () => {
    const { device } = await start("StudioX30", echoApi());
    const big = await get(device, "/x", 10_000, "x".repeat(10 * 1024 * 1024 + 1));
    expect([413, 0]).toContain(big.status);
    expect((await get(device)).status).toBe(200);
  });

  it("survives garbage that is not TLS", async () => {
    const { device } = await start("VVX 350", echoApi());
    const { connect } = await import("node:net");
    await new Promise<void>((resolve) => {
      const s = connect(device.httpsPort, device.address, () =>
        s.end("GET / HTTP/1.1\r\n\r\n\x00\xff garbage"),
      );
      s.on("close", () => resolve());
      s.on("error", () => resolve());
    });
    expect((await get(device)).status).toBe(200);
  });
});
