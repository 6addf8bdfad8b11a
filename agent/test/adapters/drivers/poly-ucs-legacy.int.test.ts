import { createServer, type Server } from "node:https";
import { generate } from "selfsigned";
import { afterAll, beforeAll, expect, it } from "vitest";
import { PolyUcsDriver } from "../../../src/adapters/drivers/poly-ucs.js";
import { UndiciHttpsClient } from "../../../src/adapters/http/https-client.js";

// A phone on old firmware (5.7): no /api/v2 at all, the legacy v1 device/info shape.
let server: Server;
let port = 0;
const seen: string[] = [];
beforeAll(async () => {
  const pems = await generate([{ name: "commonName", value: "Polycom VVX 300" }], {
    keyType: "ec",
    algorithm: "sha256",
  });
  server = createServer({ key: pems.private, cert: pems.cert }, (req, res) => {
    seen.push(req.url ?? "");
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Basic ${Buffer.from("Polycom:pw").toString("base64")}`)
      return send(401, {});
    switch (req.url) {
      case "/api/v1/mgmt/device/info":
        return send(200, {
          Status: "2000",
          data: {
            ModelNumber: "VVX 300",
            FirmwareRelease: "5.7.1.1234",
            UpTimeSinceLastReboot: "2 Day 01:02:03",
            IPV4Address: "127.0.0.1",
            MACAddress: "0004f2aabbcc",
            DeviceType: "hardwareEndpoint",
            DeviceVendor: "Polycom",
          },
        });
      case "/api/v1/mgmt/lineInfo":
        return send(200, {
          Status: "2000",
          data: [{ LineNumber: "1", RegistrationStatus: "registered", SIPAddress: "100@pbx" }],
        });
      default:
        return send(404, { Status: "4004" });
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

it("falls back to /api/v1 on 404 for old firmware and remembers it", async () => {
  const http = new UndiciHttpsClient();
  const driver = new PolyUcsDriver({ http });
  const target = {
    deviceId: "0004f2aabbcc",
    address: "127.0.0.1",
    httpsPort: port,
    snmpPort: 161,
    credentials: [{ name: "p", type: "http" as const, user: "Polycom", password: "pw" }],
    tags: [],
  };
  try {
    const r = await driver.poll(target, { signal: AbortSignal.timeout(5000) });
    expect(r.reachable).toBe(true);
    expect(r.identity).toMatchObject({ model: "VVX 300", mac: "0004f2aabbcc", serial: "0004F2AABBCC" });
    expect(r.firmware).toEqual([{ component: "application", version: "5.7.1.1234" }]);
    expect(r.uptimeSec).toBe(2 * 86400 + 3723);
    expect(r.lines).toEqual([{ line: 1, address: "100@pbx", registered: true, state: "registered" }]);
    // stats / network stats / pollForStatus are missing on this fake: reported as HTTP 404 errors.
    expect(r.errors.every((e) => e.code === "POLYFLEET_ERR_DEVICE_HTTP")).toBe(true);
    seen.length = 0;
    await driver.poll(target, { signal: AbortSignal.timeout(5000) });
    expect(seen).toContain("/api/v1/mgmt/device/info");
    expect(seen).not.toContain("/api/v2/mgmt/device/info");
    expect(seen).not.toContain("/api/v2/mgmt/lineInfo");
  } finally {
    await driver.close();
    await http.close();
  }
});
