import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { SimTrap } from "../../src/simulator/device.js";
import { makeSimImage } from "../../src/simulator/image.js";
import {
  checkForUpdate,
  startAutoUpdate,
  videoosUpdateStatus,
} from "../../src/simulator/videoos/auto-update.js";
import { makeVideoosDevice, manualClock } from "./videoos-helpers.js";

interface Served {
  manifest: unknown;
  image: Buffer;
  /** Send fewer bytes than Content-Length says. */
  truncate?: boolean;
  /** Lie in Content-Length (bigger than the body) — but send the whole body. */
  contentLength?: number;
}

let served: Served;
let server: http.Server;
let base = "";
const hits: string[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    hits.push(req.url ?? "");
    if (req.url === "/polyos/StudioX30/package.json") {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(served.manifest));
      return;
    }
    if (req.url === "/images/studiox30-4.1.0.pkg") {
      if (served.truncate) {
        res.writeHead(200, { "content-length": String(served.image.length) });
        res.write(served.image.subarray(0, 100));
        setTimeout(() => res.destroy(), 20);
        return;
      }
      res.writeHead(200, { "content-length": String(served.contentLength ?? served.image.length) });
      res.end(served.image);
      return;
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

const IMAGE = makeSimImage(
  { family: "videoos", model: "StudioX30", version: "4.1.0", build: "401117", date: "2023-09-15" },
  20_000,
);

beforeEach(() => {
  hits.length = 0;
  served = {
    manifest: { version: "4.1.0", build: "401117", file: "images/studiox30-4.1.0.pkg", size: IMAGE.length },
    image: IMAGE,
  };
});

function setup() {
  const clock = manualClock();
  const device = makeVideoosDevice({ clock });
  device.config.set("upgrade.auto.enable", "true");
  device.config.set("upgrade.auto.server.address", base);
  const traps: SimTrap[] = [];
  device.events.on("trap", (t: SimTrap) => traps.push(t));
  return { clock, device, traps };
}

describe("VideoOS auto-update", () => {
  it("downloads a newer package, reboots into it and sends traps 67 and 68", async () => {
    const { clock, device, traps } = setup();
    const result = await checkForUpdate(device);
    expect(result).toMatchObject({ outcome: "updated", offered: { version: "4.1.0", build: "401117" } });
    expect(hits).toEqual(["/polyos/StudioX30/package.json", "/images/studiox30-4.1.0.pkg"]);
    expect(traps.map((t) => t.trap)).toEqual([67, 68]);
    expect(device.isUp()).toBe(false);
    expect(videoosUpdateStatus(device).state).toBe("rebooting");
    clock.advance(6000);
    expect(device.isUp()).toBe(true);
    expect(device.firmware).toEqual({ version: "4.1.0", build: "401117", date: "2023-09-15" });
    expect(device.uptimeSec()).toBeLessThan(2);
    expect(videoosUpdateStatus(device)).toMatchObject({ state: "idle", lastUpdateFailed: false });
    // Next check: same version -> nothing.
    expect((await checkForUpdate(device)).outcome).toBe("upToDate");
  });

  it("same version and build: nothing happens", async () => {
    const { device, traps } = setup();
    served.manifest = {
      version: "3.12.0",
      build: "366027",
      file: "images/studiox30-4.1.0.pkg",
      size: IMAGE.length,
    };
    expect((await checkForUpdate(device)).outcome).toBe("upToDate");
    expect(hits).toEqual(["/polyos/StudioX30/package.json"]);
    expect(traps).toEqual([]);
    expect(device.isUp()).toBe(true);
  });

  it("disabled or no server: no request at all", async () => {
    const { device } = setup();
    device.config.set("upgrade.auto.enable", "false");
    expect((await checkForUpdate(device)).outcome).toBe("disabled");
    device.config.set("upgrade.auto.enable", "true");
    device.config.set("upgrade.auto.server.address", "");
    expect((await checkForUpdate(device)).outcome).toBe("noServer");
    expect(hits).toEqual([]);
  });

  it("size in package.json differs from the file: fails, no reboot, trap 69", async () => {
    const { device, traps } = setup();
    served.manifest = {
      version: "4.1.0",
      build: "401117",
      file: "images/studiox30-4.1.0.pkg",
      size: IMAGE.length + 1,
    };
    const r = await checkForUpdate(device);
    expect(r.outcome).toBe("failed");
    expect(traps.map((t) => t.trap)).toEqual([67, 69]);
    expect(device.isUp()).toBe(true);
    expect(device.firmware.version).toBe("3.12.0");
    expect(videoosUpdateStatus(device).lastUpdateFailed).toBe(true);
  });

  it("truncated download: fails, no reboot", async () => {
    const { device, traps } = setup();
    served.truncate = true;
    const r = await checkForUpdate(device);
    expect(r.outcome).toBe("failed");
    expect(traps.map((t) => t.trap)).toEqual([67, 69]);
    expect(device.isUp()).toBe(true);
  });

  it("updateDownloadFails aborts the download: no reboot, trap 69", async () => {
    const { device, traps } = setup();
    device.setFaults(["updateDownloadFails"]);
    const r = await checkForUpdate(device);
    expect(r).toMatchObject({ outcome: "failed" });
    expect(traps.map((t) => t.trap)).toEqual([67, 69]);
    expect(device.isUp()).toBe(true);
    expect(device.firmware.version).toBe("3.12.0");
  });

  it("an image for another version is refused", async () => {
    const { device, traps } = setup();
    served.image = makeSimImage(
      { family: "videoos", model: "StudioX30", version: "4.0.0", build: "400001" },
      IMAGE.length,
    );
    expect((await checkForUpdate(device)).outcome).toBe("failed");
    expect(traps.map((t) => t.trap)).toEqual([67, 69]);
  });

  it("server unreachable: trap 93, then 94 when it is back", async () => {
    const { device, traps } = setup();
    device.config.set("upgrade.auto.server.address", "http://127.0.0.1:1");
    expect((await checkForUpdate(device)).outcome).toBe("serverError");
    expect(videoosUpdateStatus(device).serverDown).toBe(true);
    device.config.set("upgrade.auto.server.address", base);
    served.manifest = { version: "3.12.0", build: "366027", file: "x", size: 1 };
    expect((await checkForUpdate(device)).outcome).toBe("upToDate");
    expect(traps.map((t) => t.trap)).toEqual([93, 94]);
  });

  it("startAutoUpdate checks at start, after a reboot, and at the polling interval", async () => {
    const { clock, device } = setup();
    served.manifest = { version: "3.12.0", build: "366027", file: "x", size: 1 };
    device.config.set("upgrade.auto.polling.interval", "600");
    const loop = startAutoUpdate(device, { intervalMs: 10 });
    try {
      await expect.poll(() => hits.length).toBe(1);
      await new Promise((r) => setTimeout(r, 60));
      expect(hits.length).toBe(1); // not due yet
      clock.advance(600_000);
      await expect.poll(() => hits.length).toBe(2);
      device.reboot("test");
      await new Promise((r) => setTimeout(r, 60));
      expect(hits.length).toBe(2); // still down
      clock.advance(6000);
      await expect.poll(() => hits.length).toBe(3);
    } finally {
      loop.stop();
    }
  });
});
