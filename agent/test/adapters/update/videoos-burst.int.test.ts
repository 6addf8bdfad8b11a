import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeSimImage } from "@polyfleet/scripts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestImageServer } from "../../helpers/image-server.js";
import { type SimDevice, type SimHandle, startSim } from "../../helpers/sim.js";
import { knowDevice, startUpdateStack, type UpdateStack, waitForEnd } from "./update-harness.js";

// A burst of VideoOS updates at once, with reboots long enough for the agent's watch to see them: each
// device must end on the target version, installing it exactly once (regression: a check the device started
// when auto-update was enabled could take the image while the device was going down for the trigger
// reboot; the agent then refused the boot-time fetch and reported the trigger boot as the wrong version).
const DEVICES = Number(process.env.PF_BURST ?? 40);

describe("a burst of VideoOS updates", () => {
  let sim: SimHandle;
  let images: TestImageServer;
  let dir: string;
  let stack: UpdateStack;

  beforeAll(async () => {
    sim = await startSim([
      "--devices",
      String(DEVICES),
      "--models",
      "StudioX30,StudioX50,StudioX70,G7500",
      "--reboot-ms",
      "2500",
      "--seed",
      "73",
    ]);
    images = new TestImageServer();
    await images.start();
    dir = await mkdtemp(join(tmpdir(), "polyfleet-videoos-burst-"));
    stack = await startUpdateStack(dir, { watchIntervalMs: 250 });
  });
  afterAll(async () => {
    await stack?.stop();
    await images?.stop();
    await sim?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(`updates ${DEVICES} devices at once, each into the image exactly once`, async () => {
    const devices = sim.manifest.devices.filter((d) => d.family === "videoos");
    expect(devices.length).toBe(DEVICES);
    const byModel = new Map<string, { url: string; fileName: string; length: number; sha256: string }>();
    const target = { version: "4.3.0", build: "430007" };
    for (const d of devices) {
      if (byModel.has(d.model)) continue;
      const bytes = makeSimImage({ family: "videoos", model: d.model, ...target }, 256 * 1024);
      const fileName = `polyos-${d.model.replace(/\W/g, "")}.pkg`;
      const url = images.add(fileName, bytes, "normal");
      byModel.set(d.model, { url, fileName, length: bytes.length, sha256: TestImageServer.sha256(bytes) });
    }
    const commands = devices.map((d: SimDevice, i) => {
      knowDevice(stack, d);
      const image = byModel.get(d.model);
      if (!image) throw new Error(`no image for ${d.model}`);
      return {
        commandId: `cmd-burst-${i}`,
        body: {
          deviceId: d.id,
          targetVersion: `${target.version}-${target.build}`,
          image,
          timeoutMs: 60_000,
        },
      };
    });
    const answers = await Promise.all(commands.map((c) => stack.accept(c.body, c.commandId)));
    for (const a of answers) expect(a).toMatchObject({ accepted: true });
    const ends = await Promise.all(commands.map((c) => waitForEnd(stack, c.commandId, 90_000)));
    const failed = ends.filter((e) => e.phase !== "succeeded").map((e) => `${e.deviceId}: ${e.reason}`);
    expect(failed).toEqual([]);
    for (const d of devices) {
      const v = (await sim.control("GET", `/devices/${d.id}`)) as {
        firmware: string;
        build?: string;
        installs: number;
      };
      expect({ id: d.id, firmware: v.firmware, build: v.build, installs: v.installs }).toEqual({
        id: d.id,
        firmware: target.version,
        build: target.build,
        installs: 1,
      });
    }
  }, 120_000);
});
