import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_TIMING, type DeviceSim } from "../../src/simulator/device.js";
import type { SimResponse } from "../../src/simulator/http-types.js";
import { ucUpdateStatus } from "../../src/simulator/uc/provisioning.js";
import { MAX_CONFIG_PARAMS, ucApi } from "../../src/simulator/uc/uc-api.js";
import {
  basicAuth,
  fakeClock,
  makeUcDevice,
  TEST_PASSWORD,
  type UcRequestOptions,
  ucRequest,
} from "./helpers.js";

// biome-ignore lint/suspicious/noExplicitAny: tests walk the JSON shapes the simulator returns
type Json = any;

async function call(
  device: DeviceSim,
  method: string,
  path: string,
  opts: UcRequestOptions = {},
): Promise<SimResponse & { json: Json }> {
  const res = await ucApi.handle(device, ucRequest(method, path, opts));
  return res as SimResponse & { json: Json };
}

/** Every scalar in the tree is a string (UC REST answers never carry JSON numbers/booleans). */
function allScalarsAreStrings(v: unknown): boolean {
  if (Array.isArray(v)) return v.every(allScalarsAreStrings);
  if (v !== null && typeof v === "object") return Object.values(v).every(allScalarsAreStrings);
  return typeof v === "string";
}

describe("UC REST: authentication and enablement", () => {
  it("answers 401 with a Basic challenge without or with wrong credentials", async () => {
    const d = makeUcDevice();
    for (const auth of [
      null,
      basicAuth("Polycom", "wrong"),
      basicAuth("polycom", TEST_PASSWORD),
      basicAuth("admin", TEST_PASSWORD),
      "Bearer abc",
      "Basic !!!not-base64",
    ]) {
      const res = await call(d, "GET", "/api/v2/mgmt/device/info", { auth });
      expect(res.status).toBe(401);
      expect(res.headers?.["WWW-Authenticate"]).toBe('Basic realm="API Authentication"');
    }
    const good = await call(d, "GET", "/api/v2/mgmt/device/info");
    expect(good.status).toBe(200);
    expect(good.json.Status).toBe("2000");
  });

  it("wrongCredentials: the manifest password no longer works", async () => {
    const d = makeUcDevice({ faults: ["wrongCredentials"] });
    expect((await call(d, "GET", "/api/v2/mgmt/device/info")).status).toBe(401);
    d.setFaults([]);
    expect((await call(d, "GET", "/api/v2/mgmt/device/info")).status).toBe(200);
  });

  it("answers a plain 404 on every API path while REST is disabled, and config can switch it", async () => {
    const d = makeUcDevice({ restEnabled: false });
    const res = await call(d, "GET", "/api/v2/mgmt/device/info");
    expect(res.status).toBe(404);
    expect(res.json).toBeUndefined();
    d.config.set("apps.restapi.enabled", "1");
    expect((await call(d, "GET", "/api/v2/mgmt/device/info")).status).toBe(200);
    const off = await call(d, "POST", "/api/v1/mgmt/config/set", {
      body: { data: { "apps.restapi.enabled": "0" } },
    });
    expect(off.json).toEqual({ Status: "2000" });
    expect(d.restEnabled()).toBe(false);
    expect((await call(d, "GET", "/api/v1/mgmt/device/stats")).status).toBe(404);
  });
});

describe("UC REST: device info", () => {
  it("v2 has the current shape, all strings", async () => {
    const d = makeUcDevice({
      model: "VVX 350",
      firmware: { version: "5.9.3.2857", date: "02-Jul-19 06:14" },
    });
    const res = await call(d, "GET", "/api/v2/mgmt/device/info");
    expect(res.status).toBe(200);
    expect(allScalarsAreStrings(res.json)).toBe(true);
    const data = res.json.data;
    expect(data).toMatchObject({
      ModelNumber: "VVX 350",
      DeviceType: "HardwareEndpoint",
      DeviceVendor: "Polycom",
      MACAddress: "64167f0a1b2c",
      Firmware: {
        Application: "5.9.3.2857 02-Jul-19 06:14",
        Updater: "5.9.3.2857",
        BootBlock: "3.0.6.0002 (48830-001)",
      },
      IPAddress: "127.0.10.5",
      IPStack: "IPv4 Only",
      AppState: "AppStateMenu",
      ReadyToUse: "True",
      CanApplyShutdownRequest: "True",
      AttachedHardware: { EM: [] },
    });
    expect(Object.keys(data.UpTime)).toEqual(["Days", "Hours", "Minutes", "Seconds"]);
    // What Posh-UCS extracts from Application.
    expect(/(\d+\.){3}\d{4,}[A-Z]?/.exec(data.Firmware.Application)?.[0]).toBe("5.9.3.2857");
    d.setCall(true);
    const inCall = (await call(d, "GET", "/api/v2/mgmt/device/info")).json.data;
    expect(inCall.AppState).toBe("AppStateCall");
    expect(inCall.CanApplyShutdownRequest).toBe("False");
  });

  it("Trio has no expansion-module list", async () => {
    const d = makeUcDevice({ model: "Trio 8800" });
    const data = (await call(d, "GET", "/api/v2/mgmt/device/info")).json.data;
    expect(data.ModelNumber).toBe("Trio 8800");
    expect(data.AttachedHardware).toEqual({});
  });

  it("v1 answers the legacy shape on old firmware and the object shape on newer", async () => {
    const old = makeUcDevice({ firmware: { version: "5.6.0.18519", date: "15-Nov-17 23:08" } });
    const legacy = (await call(old, "GET", "/api/v1/mgmt/device/info")).json;
    expect(legacy.Status).toBe("2000");
    expect(allScalarsAreStrings(legacy)).toBe(true);
    expect(legacy.data).toMatchObject({
      ModelNumber: "VVX 350",
      FirmwareRelease: "5.6.0.18519",
      IPV4Address: "127.0.10.5",
      MACAddress: "64167f0a1b2c",
      DeviceType: "hardwareEndpoint",
      DeviceVendor: "Polycom",
    });
    expect(legacy.data.UpTimeSinceLastReboot).toMatch(/^\d+ Day \d\d:\d\d:\d\d$/);
    const fresh = makeUcDevice({ firmware: { version: "5.9.7.4477" } });
    const current = (await call(fresh, "GET", "/api/v1/mgmt/device/info")).json.data;
    expect(current.FirmwareRelease).toBeUndefined();
    expect(current.Firmware.Application).toMatch(/^5\.9\.7\.4477 /);
  });

  it("uptime follows the clock and restarts after a reboot", async () => {
    const clock = fakeClock();
    const d = makeUcDevice({ clock });
    const upSec = async (): Promise<number> => {
      const u = (await call(d, "GET", "/api/v2/mgmt/device/info")).json.data.UpTime;
      return Number(u.Days) * 86_400 + Number(u.Hours) * 3600 + Number(u.Minutes) * 60 + Number(u.Seconds);
    };
    const before = await upSec();
    expect(before).toBeGreaterThan(3600);
    clock.advance(3_661_000);
    expect(await upSec()).toBe(before + 3661);
    const rx0 = Number((await call(d, "GET", "/api/v1/mgmt/network/stats")).json.data.RxPackets);
    expect(rx0).toBeGreaterThan(0);

    expect((await call(d, "POST", "/api/v1/mgmt/safeReboot")).json).toEqual({ Status: "2000" });
    expect(d.isUp()).toBe(false);
    clock.advance(DEFAULT_TIMING.rebootDownMs + 7000);
    expect(await upSec()).toBe(7);
    const stats = (await call(d, "GET", "/api/v1/mgmt/network/stats")).json.data;
    expect(stats.UpTime).toBe("0 day 0:00:07");
    expect(Number(stats.RxPackets)).toBeLessThan(rx0);
    clock.advance(86_400_000 + 3_723_000);
    expect((await call(d, "GET", "/api/v1/mgmt/network/stats")).json.data.UpTime).toBe("1 day 1:02:10");
  });
});

describe("UC REST: stats, network, lines, status", () => {
  it("device/stats reports CPU and memory as strings, and the high load faults", async () => {
    const d = makeUcDevice();
    const res = (await call(d, "GET", "/api/v1/mgmt/device/stats")).json;
    expect(allScalarsAreStrings(res)).toBe(true);
    expect(Number(res.data.CPU.Current)).toBeLessThan(60);
    const m = res.data.Memory;
    expect(Number(m.Total)).toBe(512 * 1024 * 1024);
    expect(Number(m.Used) + Number(m.Free)).toBe(Number(m.Total));
    for (const k of ["Cached", "SReclaim", "ComAS"]) expect(m[k]).toMatch(/^\d+$/);
    expect(Object.keys(m.polyapp)).toEqual(["arena", "hblkhd", "uordblks", "fordblks"]);

    d.setFaults(["highCpu", "highMemory"]);
    const hot = (await call(d, "GET", "/api/v1/mgmt/device/stats")).json.data;
    expect(Number(hot.CPU.Current)).toBeGreaterThanOrEqual(97);
    expect(Number(hot.Memory.Used) / Number(hot.Memory.Total)).toBeGreaterThan(0.9);
    const poll = (await call(d, "GET", "/api/v1/mgmt/pollForStatus")).json.data;
    expect(poll.State).toMatch(/error/i);
    expect(poll.StateData).toMatch(/CPU/);
    expect(poll.StateData).toMatch(/Memory/);
  });

  it("network/info has every documented field and the provisioning server", async () => {
    const d = makeUcDevice({ config: { "device.prov.serverName": "http://prov.example.com/ucs/" } });
    const res = (await call(d, "GET", "/api/v1/mgmt/network/info")).json;
    expect(allScalarsAreStrings(res)).toBe(true);
    for (const k of [
      "IPV4Address",
      "SubnetMask",
      "DefaultGateway",
      "DHCP",
      "DHCPServer",
      "DNSServer",
      "AlternateDNSServer",
      "DNSDomain",
      "SNTPAddress",
      "VLANID",
      "VLANIDOption",
      "VLANDiscoveryMode",
      "LANSpeed",
      "LANPortStatus",
      "LLDP",
      "CDPCompatibility",
      "ProvServerAddress",
      "ProvServerType",
      "ProvServerUser",
      "UpgradeServer",
      "ZTPStatus",
      "DHCPBootServerOption",
      "DHCPBootServerOptionType",
      "DHCPBootServerUseOption",
      "DHCPOption60Format",
      "IPV6Address",
    ]) {
      expect(res.data, k).toHaveProperty(k);
    }
    expect(res.data.ProvServerAddress).toBe("http://prov.example.com/ucs/");
    expect(res.data.ProvServerType).toBe("HTTP");
    expect(res.data.DefaultGateway).toBe("127.0.10.1");
  });

  it("lineInfo v1/v2 and pollForStatus follow sipUnregistered", async () => {
    const d = makeUcDevice({ index: 7 });
    const v1 = (await call(d, "GET", "/api/v1/mgmt/lineInfo")).json;
    expect(v1.data).toEqual([
      {
        LineNumber: "1",
        RegistrationStatus: "registered",
        LineType: "private",
        SIPAddress: "1007@sip.example.com",
        Protocol: "SIP",
        Label: "1007",
        UserID: "1007",
        ProxyAddress: "sip.example.com",
        Port: "5060",
      },
    ]);
    const v2 = (await call(d, "GET", "/api/v2/mgmt/lineInfo")).json;
    expect(allScalarsAreStrings(v2)).toBe(true);
    expect(v2.data[0]).toMatchObject({ Username: "1007", Label: "1007", RegistrationStatus: "registered" });
    expect(v2.data[0].CallServers).toHaveLength(1);
    expect((await call(d, "GET", "/api/v1/mgmt/pollForStatus")).json.data).toEqual({
      State: "Ready",
      StateData: "",
    });

    d.setFaults(["sipUnregistered"]);
    expect((await call(d, "GET", "/api/v1/mgmt/lineInfo")).json.data[0].RegistrationStatus).toBe(
      "unregistered",
    );
    expect((await call(d, "GET", "/api/v2/mgmt/lineInfo")).json.data[0].RegistrationStatus).toBe(
      "unregistered",
    );
    const poll = (await call(d, "GET", "/api/v1/mgmt/pollForStatus")).json.data;
    expect(poll.State).toBe("Error");
    expect(poll.StateData).toMatch(/not registered/);
  });

  it("runningConfig has the documented sections", async () => {
    const d = makeUcDevice({ config: { "device.prov.serverName": "http://prov/" } });
    const res = (await call(d, "GET", "/api/v1/mgmt/device/runningConfig")).json;
    expect(allScalarsAreStrings(res)).toBe(true);
    expect(Object.keys(res.data)).toEqual([
      "Network",
      "DHCP",
      "Provisioning",
      "DNS",
      "SNTP",
      "Syslog",
      "TR069",
    ]);
    expect(res.data.Provisioning).toMatchObject({
      Server: "http://prov/",
      ServerType: "HTTP",
      User: "PlcmSpIp",
    });
    expect(Object.keys(res.data.TR069)).toContain("UpgradeManagement");
  });

  it("transferType/get and mrpair/info (Trio only)", async () => {
    const vvx = makeUcDevice();
    expect((await call(vvx, "GET", "/api/v1/mgmt/transferType/get")).json).toEqual({
      Status: "2000",
      data: { Type: "Consultative" },
    });
    const notTrio = await call(vvx, "GET", "/api/v1/mgmt/mrpair/info");
    expect(notTrio.status).toBe(404);
    expect(notTrio.json).toEqual({ Status: "4004" });
    const trio = makeUcDevice({ model: "Trio 8800", index: 0 });
    const paired = (await call(trio, "GET", "/api/v1/mgmt/mrpair/info")).json;
    expect(paired.Status).toBe("2000");
    const types = paired.data.ConnectedDeviceList[0].ComponentList.map((c: Json) => c.componentType);
    expect(types).toContain("cameraSrc");
    trio.setFaults(["cameraDown"]);
    const noCam = (await call(trio, "GET", "/api/v1/mgmt/mrpair/info")).json;
    expect(noCam.data.ConnectedDeviceList[0].ComponentList.map((c: Json) => c.componentType)).not.toContain(
      "cameraSrc",
    );
  });
});

describe("UC REST: config get/set", () => {
  it("sets and reads back parameters with their source", async () => {
    const d = makeUcDevice();
    const set = await call(d, "POST", "/api/v1/mgmt/config/set", {
      body: { data: { "prov.polling.enabled": "1", "prov.polling.period": 3600 } },
    });
    expect(set.status).toBe(200);
    expect(set.json).toEqual({ Status: "2000" });
    expect(d.config.get("prov.polling.period")).toBe("3600");
    const get = await call(d, "POST", "/api/v1/mgmt/config/get", {
      body: {
        data: ["prov.polling.enabled", "prov.polling.period", "prov.polling.mode", "apps.restapi.enabled"],
      },
    });
    expect(get.json).toEqual({
      Status: "2000",
      data: {
        "prov.polling.enabled": { Value: "1", Source: "web" },
        "prov.polling.period": { Value: "3600", Source: "web" },
        "prov.polling.mode": { Value: "abs", Source: "default" },
        "apps.restapi.enabled": { Value: "1", Source: "configFiles" },
      },
    });
  });

  it("refuses bad input with the documented codes", async () => {
    const d = makeUcDevice();
    const many = Array.from({ length: MAX_CONFIG_PARAMS + 1 }, (_, i) => `prov.p${i}`);
    const big = await call(d, "POST", "/api/v1/mgmt/config/get", { body: { data: many } });
    expect(big.json).toEqual({ Status: "4009" });
    const ok20 = await call(d, "POST", "/api/v1/mgmt/config/get", { body: { data: many.slice(0, 20) } });
    expect(ok20.json.Status).toBe("2000");
    for (const body of ["{not json", JSON.stringify({ nodata: 1 }), JSON.stringify([1]), ""]) {
      const res = await call(d, "POST", "/api/v1/mgmt/config/set", { body: Buffer.from(body) });
      expect(res.status).toBe(400);
      expect(res.json).toEqual({ Status: "4000" });
    }
    const wrongMethod = await call(d, "GET", "/api/v1/mgmt/config/get");
    expect(wrongMethod.status).toBe(400);
    expect(wrongMethod.json).toEqual({ Status: "4000" });
    const pw = await call(d, "POST", "/api/v1/mgmt/config/set", {
      body: { data: { "device.auth.localAdminPassword": "1234" } },
    });
    expect(pw.json).toEqual({ Status: "4003" });
    const nested = await call(d, "POST", "/api/v1/mgmt/config/set", { body: { data: { "a.b": { x: 1 } } } });
    expect(nested.json).toEqual({ Status: "4000" });
    const unknown = await call(d, "GET", "/api/v1/mgmt/nothing");
    expect(unknown.status).toBe(404);
    expect(unknown.json).toEqual({ Status: "4004" });
  });

  it("updateConfiguration without a provisioning server answers 4006", async () => {
    const d = makeUcDevice();
    const res = await call(d, "POST", "/api/v1/mgmt/updateConfiguration");
    expect(res.json).toEqual({ Status: "4006" });
    expect(ucUpdateStatus(d).state).toBe("idle");
  });
});

describe("UC REST: calls and safe reboot", () => {
  it("callStatus v1/v2 and media stats while idle and in a call with packet loss", async () => {
    const clock = fakeClock();
    const d = makeUcDevice({ clock });
    const idle = await call(d, "GET", "/api/v1/webCallControl/callStatus");
    expect(idle.status).toBe(404);
    expect(idle.json).toEqual({ Status: "4007" });
    expect((await call(d, "GET", "/api/v2/webCallControl/callStatus")).json).toEqual({
      Status: "2000",
      data: [],
    });
    expect((await call(d, "GET", "/api/v1/mgmt/media/sessionStats")).json).toEqual({
      Status: "2000",
      data: [],
    });

    d.setFaults(["packetLoss"]);
    const dial = await call(d, "POST", "/api/v1/callctrl/dial", {
      body: { data: { Dest: "2001", Line: "1", Type: "SIP" } },
    });
    expect(dial.json).toEqual({ Status: "2000" });
    clock.advance(60_000);
    const v1 = (await call(d, "GET", "/api/v1/webCallControl/callStatus")).json;
    expect(allScalarsAreStrings(v1)).toBe(true);
    expect(v1.data).toMatchObject({
      Type: "Outgoing",
      CallState: "Connected",
      RemotePartyNumber: "2001",
      DurationSeconds: "60",
    });
    expect(v1.data.CallHandle).toMatch(/^0x[0-9a-f]{8}$/);
    const v2 = (await call(d, "GET", "/api/v2/webCallControl/callStatus")).json.data;
    expect(v2).toHaveLength(1);
    expect(v2[0]).toMatchObject({
      CallState: "Connected",
      UIAppearanceIndex: "1*",
      CallHandle: v1.data.CallHandle,
    });
    const stats = (await call(d, "GET", "/api/v1/mgmt/media/sessionStats")).json;
    expect(allScalarsAreStrings(stats)).toBe(true);
    const stream = stats.data[0].Streams[0];
    expect(stream.Category).toBe("0:Voice");
    expect(Number(stream.PacketsLost) / Number(stream.PacketsExpected)).toBeCloseTo(0.12, 2);

    const badRef = await call(d, "POST", "/api/v1/callctrl/endCall", { body: { data: { Ref: "0x0" } } });
    expect(badRef.json).toEqual({ Status: "4007" });
    const noLine = await call(d, "POST", "/api/v1/callctrl/dial", {
      body: { data: { Dest: "1", Line: "9" } },
    });
    expect(noLine.json).toEqual({ Status: "4005" });
    const end = await call(d, "POST", "/api/v1/callctrl/endCall", {
      body: { data: { Ref: v1.data.CallHandle } },
    });
    expect(end.json).toEqual({ Status: "2000" });
    expect(d.inCall).toBe(false);
  });

  it("safeReboot waits for the call to end", async () => {
    const clock = fakeClock();
    const d = makeUcDevice({ clock });
    d.setCall(true);
    const generation = d.bootGeneration;
    expect((await call(d, "POST", "/api/v1/mgmt/safeReboot")).json).toEqual({ Status: "2000" });
    expect(d.bootGeneration).toBe(generation);
    expect((await call(d, "GET", "/api/v2/mgmt/device/info")).json.data.IntendToShutdown).toBe("True");
    d.setCall(false);
    // The next request is answered, then the phone goes down.
    expect((await call(d, "GET", "/api/v1/mgmt/pollForStatus")).status).toBe(200);
    expect(d.bootGeneration).toBe(generation + 1);
    expect(d.isUp()).toBe(false);
    clock.advance(DEFAULT_TIMING.rebootDownMs);
    expect((await call(d, "GET", "/api/v2/mgmt/device/info")).json.data.IntendToShutdown).toBe("False");
  });

  it("safeRestart restarts an idle phone", async () => {
    const d = makeUcDevice();
    const generation = d.bootGeneration;
    expect((await call(d, "POST", "/api/v1/mgmt/safeRestart")).json).toEqual({ Status: "2000" });
    expect(d.bootGeneration).toBe(generation + 1);
  });
});

describe("UC REST: fuzz", () => {
  const paths = [
    "/api/v1/mgmt/device/info",
    "/api/v2/mgmt/device/info",
    "/api/v1/mgmt/config/get",
    "/api/v1/mgmt/config/set",
    "/api/v1/mgmt/updateConfiguration",
    "/api/v1/mgmt/safeReboot",
    "/api/v1/callctrl/dial",
    "/api/v1/callctrl/endCall",
    "/api/v1/webCallControl/callStatus",
    "/api/v1/mgmt/media/sessionStats",
    "/",
    "",
  ];
  const authArb = fc.oneof(
    fc.constant(basicAuth("Polycom", TEST_PASSWORD)),
    fc.string().map((s) => `Basic ${s}`),
    fc.string({ maxLength: 2000 }),
    fc.uint8Array({ maxLength: 64 }).map((b) => `Basic ${Buffer.from(b).toString("base64")}`),
    fc.constant(undefined),
  );
  const bodyArb = fc.oneof(
    fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)),
    fc.json().map((s) => Buffer.from(s)),
    fc.jsonValue().map((v) => Buffer.from(JSON.stringify({ data: v }) ?? "")),
    fc
      .dictionary(
        fc.string({ maxLength: 40 }),
        fc.oneof(fc.string({ maxLength: 3000 }), fc.integer(), fc.boolean()),
      )
      .map((d) => Buffer.from(JSON.stringify({ data: d }))),
    fc.array(fc.string(), { maxLength: 30 }).map((a) => Buffer.from(JSON.stringify({ data: a }))),
    fc.constant(Buffer.alloc(70_000, 0x7b)),
  );

  it("never throws and always answers 200-599", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.constantFrom("GET", "POST", "PUT", "DELETE", "HEAD"), fc.string({ maxLength: 10 })),
        fc.oneof(fc.constantFrom(...paths), fc.string({ maxLength: 200 }), fc.webPath()),
        authArb,
        bodyArb,
        fc.boolean(),
        fc.subarray(["wrongCredentials", "sipUnregistered", "highCpu", "packetLoss"] as const),
        async (method, path, auth, body, inCall, faults) => {
          const d = makeUcDevice({ faults: [...faults] });
          if (inCall) d.setCall(true);
          const req = ucRequest(method, path, { body });
          req.headers = auth === undefined ? {} : { authorization: auth };
          const res = await ucApi.handle(d, req);
          expect(res.status).toBeGreaterThanOrEqual(200);
          expect(res.status).toBeLessThanOrEqual(599);
          if (res.json !== undefined) expect(typeof (res.json as { Status: unknown }).Status).toBe("string");
        },
      ),
      { numRuns: 400 },
    );
  });
});
