import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_TIMING, type DeviceSim, type SimTrap } from "../../src/simulator/device.js";
import { makeSimImage } from "../../src/simulator/image.js";
import {
  runUcUpdate,
  selectAppFile,
  ucUpdateInFlight,
  ucUpdateStatus,
  ucUserAgent,
} from "../../src/simulator/uc/provisioning.js";
import { ucApi } from "../../src/simulator/uc/uc-api.js";
import { type FakeClock, fakeClock, makeUcDevice, ucRequest } from "./helpers.js";

interface Served {
  status?: number;
  body: Buffer;
  /** Announce this Content-Length and cut the connection after the body. */
  contentLength?: number;
  /** Never answer. */
  hang?: boolean;
}

const files = new Map<string, Served>();
const requests: { path: string; ua: string | undefined }[] = [];
let server: http.Server;
let base: string;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    requests.push({ path: req.url ?? "", ua: req.headers["user-agent"] });
    const f = files.get(req.url ?? "");
    if (!f) {
      res.writeHead(404).end();
      return;
    }
    if (f.hang) return;
    if (f.contentLength !== undefined) {
      res.writeHead(f.status ?? 200, { "Content-Length": String(f.contentLength) });
      res.write(f.body, () => res.socket?.destroy());
      return;
    }
    res.writeHead(f.status ?? 200, { "Content-Length": String(f.body.length) }).end(f.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  files.clear();
  requests.length = 0;
});

const cfg = (attrs: string): Buffer =>
  Buffer.from(`<?xml version="1.0" standalone="yes"?>\n<APPLICATION ${attrs} CONFIG_FILES="phone1.cfg"/>\n`);

const image = (model: string, version: string, bytes = 64 * 1024): Buffer =>
  makeSimImage(
    { family: "uc", model, version, build: version.split(".")[3], date: "09-Nov-22 14:40" },
    bytes,
  );

function setup(faults: DeviceSim["faults"] extends Set<infer F> ? F[] : never = []): {
  device: DeviceSim;
  clock: FakeClock;
  traps: SimTrap[];
} {
  const clock = fakeClock();
  const device = makeUcDevice({
    model: "VVX 350",
    firmware: { version: "5.9.3.2857", date: "02-Jul-19 06:14" },
    clock,
    faults,
    config: { "device.prov.serverName": base },
  });
  const traps: SimTrap[] = [];
  device.events.on("trap", (t: SimTrap) => traps.push(t));
  return { device, clock, traps };
}

async function trigger(device: DeviceSim): Promise<void> {
  const res = await ucApi.handle(device, ucRequest("POST", "/api/v1/mgmt/updateConfiguration"));
  expect(res.json).toEqual({ Status: "2000" });
  await ucUpdateInFlight(device);
}

async function application(device: DeviceSim): Promise<string> {
  const res = await ucApi.handle(device, ucRequest("GET", "/api/v2/mgmt/device/info"));
  return (res.json as { data: { Firmware: { Application: string } } }).data.Firmware.Application;
}

describe("UC provisioning update flow", () => {
  it("fetches <mac>.cfg, falls back to 000000000000.cfg, downloads a newer image and reboots into it", async () => {
    const { device, clock, traps } = setup();
    files.set("/000000000000.cfg", { body: cfg('APP_FILE_PATH="sip.ld"') });
    files.set("/sip.ld", { body: image("VVX 350", "5.9.8.5760") });
    const generation = device.bootGeneration;
    await trigger(device);

    expect(requests.map((r) => r.path)).toEqual(["/64167f0a1b2c.cfg", "/000000000000.cfg", "/sip.ld"]);
    for (const r of requests)
      expect(r.ua).toBe("FileTransport PolycomVVX-VVX_350-UA/5.9.3.2857 Type/Application");
    expect(ucUpdateStatus(device)).toMatchObject({ state: "rebooting", target: "5.9.8.5760" });
    expect(device.bootGeneration).toBe(generation + 1);
    expect(device.isUp()).toBe(false);
    expect(traps.map((t) => t.trap)).toEqual([67, 68]);

    clock.advance(DEFAULT_TIMING.rebootDownMs + 1000);
    expect(await application(device)).toBe("5.9.8.5760 09-Nov-22 14:40");
    const up = (
      (await ucApi.handle(device, ucRequest("GET", "/api/v2/mgmt/device/info"))).json as {
        data: { UpTime: { Seconds: string; Minutes: string } };
      }
    ).data.UpTime;
    expect(up).toMatchObject({ Minutes: "0", Seconds: "1" });
    expect(ucUpdateStatus(device).state).toBe("updated");
    expect(ucUserAgent(device)).toBe("FileTransport PolycomVVX-VVX_350-UA/5.9.8.5760 Type/Application");
  });

  it("does nothing when the image carries the running version", async () => {
    const { device, traps } = setup();
    files.set("/64167f0a1b2c.cfg", { body: cfg('APP_FILE_PATH="sip.ld"') });
    files.set("/sip.ld", { body: image("VVX 350", "5.9.3.2857") });
    const generation = device.bootGeneration;
    await trigger(device);
    expect(requests.map((r) => r.path)).toEqual(["/64167f0a1b2c.cfg", "/sip.ld"]);
    expect(ucUpdateStatus(device)).toMatchObject({ state: "upToDate", target: "5.9.3.2857" });
    expect(device.bootGeneration).toBe(generation);
    expect(traps).toEqual([]);
  });

  it("honours the per-model and per-part-number overrides of APP_FILE_PATH", async () => {
    const { device, clock } = setup();
    files.set("/64167f0a1b2c.cfg", {
      body: cfg(
        'APP_FILE_PATH="sip.ld" APP_FILE_PATH_VVX311="vvx311.sip.ld" APP_FILE_PATH_VVX350="vvx350.sip.ld"',
      ),
    });
    files.set("/sip.ld", { body: image("VVX 311", "5.9.9.0001") });
    files.set("/vvx311.sip.ld", { body: image("VVX 311", "5.9.9.0001") });
    files.set("/vvx350.sip.ld", { body: image("VVX 350", "5.9.8.5760") });
    await trigger(device);
    expect(requests.map((r) => r.path)).toEqual(["/64167f0a1b2c.cfg", "/vvx350.sip.ld"]);
    clock.advance(DEFAULT_TIMING.rebootDownMs);
    expect(await application(device)).toMatch(/^5\.9\.8\.5760 /);

    expect(
      selectAppFile(
        '<APPLICATION APP_FILE_PATH="sip.ld" APP_FILE_PATH_VVX350="m.ld" APP_FILE_PATH_3111-48830-001="p.ld"/>',
        "VVX 350",
        "3111-48830-001",
      ),
    ).toBe("p.ld");
    expect(selectAppFile('<APPLICATION APP_FILE_PATH="sip.ld"/>', "Trio 8800", "3111-65290-001")).toBe(
      "sip.ld",
    );
    expect(selectAppFile("<nothing/>", "VVX 350", "x")).toBeUndefined();
  });

  it("aborts without a reboot when fewer bytes arrive than Content-Length announced", async () => {
    const { device, traps } = setup();
    const img = image("VVX 350", "5.9.8.5760");
    files.set("/64167f0a1b2c.cfg", { body: cfg('APP_FILE_PATH="sip.ld"') });
    files.set("/sip.ld", { body: img, contentLength: img.length + 1000 });
    const generation = device.bootGeneration;
    await trigger(device);
    expect(ucUpdateStatus(device).state).toBe("failed");
    expect(device.bootGeneration).toBe(generation);
    expect(traps.map((t) => t.trap)).toEqual([67, 69]);
    expect(traps[1]?.kind).toBe("problem");
  });

  it("updateDownloadFails: the download breaks off midway, no reboot", async () => {
    const { device } = setup(["updateDownloadFails"]);
    files.set("/64167f0a1b2c.cfg", { body: cfg('APP_FILE_PATH="sip.ld"') });
    files.set("/sip.ld", { body: image("VVX 350", "5.9.8.5760", 256 * 1024) });
    const generation = device.bootGeneration;
    await trigger(device);
    const status = ucUpdateStatus(device);
    expect(status.state).toBe("failed");
    expect(status.reason).toMatch(/connection lost/);
    expect(device.bootGeneration).toBe(generation);
    expect(await application(device)).toMatch(/^5\.9\.3\.2857 /);
  });

  it("updateBootsOldVersion: the phone reboots but comes back on the old version", async () => {
    const { device, clock } = setup(["updateBootsOldVersion"]);
    files.set("/64167f0a1b2c.cfg", { body: cfg('APP_FILE_PATH="sip.ld"') });
    files.set("/sip.ld", { body: image("VVX 350", "5.9.8.5760") });
    await trigger(device);
    clock.advance(DEFAULT_TIMING.rebootDownMs);
    expect(await application(device)).toMatch(/^5\.9\.3\.2857 /);
    expect(ucUpdateStatus(device)).toMatchObject({
      state: "failed",
      reason: expect.stringMatching(/came back running/),
    });
  });

  it("fails on a missing image, an image for another model and a timeout", async () => {
    const { device } = setup();
    files.set("/64167f0a1b2c.cfg", { body: cfg('APP_FILE_PATH="missing.ld"') });
    await trigger(device);
    expect(ucUpdateStatus(device)).toMatchObject({
      state: "failed",
      reason: expect.stringMatching(/HTTP 404/),
    });

    files.set("/64167f0a1b2c.cfg", { body: cfg('APP_FILE_PATH="sip.ld"') });
    files.set("/sip.ld", { body: image("Trio 8800", "8.0.2.0267") });
    await trigger(device);
    expect(ucUpdateStatus(device)).toMatchObject({
      state: "failed",
      reason: expect.stringMatching(/Trio 8800/),
    });

    files.set("/sip.ld", { body: Buffer.alloc(0), hang: true });
    const status = await runUcUpdate(device, { timeoutMs: 200 });
    expect(status).toMatchObject({ state: "failed", reason: expect.stringMatching(/timed out/) });
  });

  it("a deferred update reboot waits for the call to end", async () => {
    const { device, clock } = setup();
    files.set("/64167f0a1b2c.cfg", { body: cfg('APP_FILE_PATH="sip.ld"') });
    files.set("/sip.ld", { body: image("VVX 350", "5.9.8.5760") });
    device.setCall(true);
    const generation = device.bootGeneration;
    await trigger(device);
    expect(ucUpdateStatus(device)).toMatchObject({
      state: "rebooting",
      reason: "waiting for the call to end",
    });
    expect(device.bootGeneration).toBe(generation);
    device.setCall(false);
    expect(ucUpdateStatus(device).state).toBe("rebooting");
    expect(device.bootGeneration).toBe(generation + 1);
    clock.advance(DEFAULT_TIMING.rebootDownMs);
    expect(ucUpdateStatus(device).state).toBe("updated");
  });

  it("a second updateConfiguration while one runs answers 4001", async () => {
    const { device } = setup();
    files.set("/64167f0a1b2c.cfg", { body: cfg('APP_FILE_PATH="sip.ld"') });
    files.set("/sip.ld", { body: image("VVX 350", "5.9.3.2857") });
    const first = await ucApi.handle(device, ucRequest("POST", "/api/v1/mgmt/updateConfiguration"));
    const second = await ucApi.handle(device, ucRequest("POST", "/api/v1/mgmt/updateConfiguration"));
    expect(first.json).toEqual({ Status: "2000" });
    expect(second.json).toEqual({ Status: "4001" });
    await ucUpdateInFlight(device);
    expect(ucUpdateStatus(device).state).toBe("upToDate");
  });
});
