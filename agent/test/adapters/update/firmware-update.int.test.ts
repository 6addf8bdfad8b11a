import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createFleet, DEFAULT_FLEET, DEFAULT_TIMING, makeSimImage } from "@polyfleet/scripts";
import { isPolyfleetError, UpdateProgress } from "@polyfleet/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ImageMode, TestImageServer } from "../../helpers/image-server.js";
import {
  randomPort,
  randomSubnet,
  type SimDevice,
  type SimHandle,
  sleep,
  startSim,
} from "../../helpers/sim.js";
import {
  knowDevice,
  type Progress,
  startUpdateStack,
  type UpdateStack,
  waitForEnd,
  waitUntil,
} from "./update-harness.js";

interface DeviceView {
  firmware: string;
  build?: string;
  up: boolean;
  config: Record<string, string>;
}

const ORDER = [
  "accepted",
  "downloading",
  "staged",
  "installing",
  "rebooting",
  "verifying",
  "succeeded",
  "failed",
];

/** Phases only move forward, and every event matches the shared contract. */
function assertWellFormed(events: Progress[]): void {
  let last = -1;
  for (const e of events) {
    const idx = ORDER.indexOf(e.phase);
    if (e.phase !== "downloading" || last !== idx) expect(idx).toBeGreaterThan(last);
    last = idx;
    const full = { ...e, v: 1, agentId: "agent-1", siteId: "site-1", seq: 1, ts: Date.now() };
    expect(UpdateProgress.safeParse(full).success).toBe(true);
  }
}

describe("firmware updates against the simulator", () => {
  let sim: SimHandle;
  let images: TestImageServer;
  let dir: string;
  let stack: UpdateStack;
  const used = new Set<string>();
  let seq = 0;

  beforeAll(async () => {
    sim = await startSim([
      "--devices",
      "40",
      "--models",
      "VVX 350,StudioX30",
      "--reboot-ms",
      "300",
      "--seed",
      "51",
    ]);
    images = new TestImageServer();
    await images.start();
    dir = await mkdtemp(join(tmpdir(), "polyfleet-updates-"));
    stack = await startUpdateStack(dir);
  });
  afterAll(async () => {
    await stack?.stop();
    await images?.stop();
    await sim?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function fresh(family: "uc" | "videoos"): SimDevice {
    const d = sim.manifest.devices.find((x) => x.family === family && !used.has(x.id));
    if (!d) throw new Error(`ran out of simulated ${family} devices`);
    used.add(d.id);
    knowDevice(stack, d);
    return d;
  }
  async function view(d: SimDevice): Promise<DeviceView> {
    return (await sim.control("GET", `/devices/${d.id}`)) as DeviceView;
  }
  async function fault(d: SimDevice, add: string[], remove: string[] = []): Promise<void> {
    await sim.control("POST", `/devices/${d.id}/faults`, { add, remove });
  }

  /** An image for the device's model, served in `mode`; returns the command body. */
  function imageFor(
    d: SimDevice,
    opts: { mode?: ImageMode; bytes?: number; tamper?: boolean; timeoutMs?: number } = {},
  ) {
    seq++;
    const uc = d.family === "uc";
    const version = uc ? `8.1.${seq}.${1000 + seq}` : `4.2.${seq}`;
    const build = uc ? undefined : String(420_000 + seq);
    const bytes = makeSimImage(
      { family: d.family, model: d.model, version, ...(build ? { build } : {}) },
      opts.bytes ?? 8192,
    );
    const sha256 = TestImageServer.sha256(bytes);
    const served = opts.tamper ? Buffer.from(bytes) : bytes;
    if (opts.tamper) served[served.length - 1] = 0x00;
    const fileName = uc ? `3111-48830-001.${seq}.sip.ld` : `polyos-${seq}.pkg`;
    const url = images.add(fileName, served, opts.mode ?? "normal");
    return {
      fileName,
      body: {
        deviceId: d.id,
        rolloutId: "rollout-1",
        targetVersion: uc ? version : `${version}-${build}`,
        image: { url, fileName, length: bytes.length, sha256 },
        timeoutMs: opts.timeoutMs ?? 20_000,
      },
    };
  }

  it("updates a UC phone: downloads, points it, it reboots into the image, config put back", async () => {
    const d = fresh("uc");
    const before = await view(d);
    const { body } = imageFor(d, { bytes: 64 * 1024 });
    const answer = await stack.accept(body, "cmd-uc-happy-1");
    expect(answer).toMatchObject({
      accepted: true,
      deviceId: d.id,
      commandId: "cmd-uc-happy-1",
      phase: "accepted",
    });
    const end = await waitForEnd(stack, "cmd-uc-happy-1");
    expect(end).toMatchObject({
      phase: "succeeded",
      reportedVersion: body.targetVersion,
      rolloutId: "rollout-1",
    });
    const phases = stack.phases("cmd-uc-happy-1");
    expect(phases.filter((p) => p !== "downloading")).toEqual([
      "accepted",
      "staged",
      "installing",
      "rebooting",
      "verifying",
      "succeeded",
    ]);
    expect(phases).toContain("downloading");
    const events = stack.events.filter((e) => e.commandId === "cmd-uc-happy-1");
    assertWellFormed(events);
    expect(events.find((e) => e.phase === "downloading")).toMatchObject({ bytes: 0, totalBytes: 64 * 1024 });
    const after = await view(d);
    expect(after.firmware).toBe(body.targetVersion);
    expect(after.config["device.prov.serverName"]).toBe(before.config["device.prov.serverName"]);
    expect(after.config["device.prov.serverType"]).toBe(before.config["device.prov.serverType"]);
    expect(stack.journal.get("cmd-uc-happy-1")).toMatchObject({ phase: "succeeded", configRestored: true });
    expect(
      stack.metrics.get("polyfleet_agent_provisioning_requests_total", { kind: "cfg", status: "200" }),
    ).toBe(1);
    // The device sees nothing any more: its files are gone from the provisioning server.
    const res = await fetch(`${stack.provisioning.urlFor(d.id)}${d.mac}.cfg`);
    expect(res.status).toBe(404);
  });

  it("updates a Studio X: auto-update pointed at the agent, reboot, package installed, config put back", async () => {
    const d = fresh("videoos");
    const before = await view(d);
    const { body } = imageFor(d);
    await stack.accept(body, "cmd-vos-happy-1");
    const end = await waitForEnd(stack, "cmd-vos-happy-1");
    expect(end).toMatchObject({ phase: "succeeded", reportedVersion: body.targetVersion });
    assertWellFormed(stack.events.filter((e) => e.commandId === "cmd-vos-happy-1"));
    expect(stack.phases("cmd-vos-happy-1").filter((p) => p !== "downloading")).toEqual([
      "accepted",
      "staged",
      "installing",
      "rebooting",
      "verifying",
      "succeeded",
    ]);
    const after = await view(d);
    expect(`${after.firmware}-${after.build}`).toBe(body.targetVersion);
    expect(after.config["upgrade.auto.enable"]).toBe(before.config["upgrade.auto.enable"]);
    expect(after.config["upgrade.auto.server.address"]).toBe(before.config["upgrade.auto.server.address"]);
    expect(after.config["upgrade.auto.timeFrame.enable"]).toBe("true");
  });

  it("refuses a tampered image (IMAGE_MISMATCH) and leaves the device untouched", async () => {
    const d = fresh("uc");
    const before = await view(d);
    const { body } = imageFor(d, { tamper: true });
    await stack.accept(body, "cmd-tampered-1");
    const end = await waitForEnd(stack, "cmd-tampered-1");
    expect(end).toMatchObject({ phase: "failed", code: "POLYFLEET_ERR_IMAGE_MISMATCH" });
    expect(stack.phases("cmd-tampered-1")).not.toContain("installing");
    expect(stack.http.count(d.address, "POST /api/v1/mgmt/config/set")).toBe(0);
    expect(stack.http.count(d.address, "POST /api/v1/mgmt/updateConfiguration")).toBe(0);
    const after = await view(d);
    expect(after.firmware).toBe(before.firmware);
    expect(after.config).toEqual(before.config);
    const files = await readdir(join(dir, "images"));
    expect(files.some((f) => f.startsWith(body.image.sha256))).toBe(false);
  });

  it("stops at the declared length: a server that sends more gives IMAGE_TOO_LARGE", async () => {
    const d = fresh("uc");
    const { body } = imageFor(d, { mode: "oversizeChunked" });
    await stack.accept(body, "cmd-too-large-1");
    const end = await waitForEnd(stack, "cmd-too-large-1");
    expect(end).toMatchObject({ phase: "failed", code: "POLYFLEET_ERR_IMAGE_TOO_LARGE" });
    expect(stack.http.count(d.address, "POST /api/v1/mgmt/config/set")).toBe(0);
    const files = await readdir(join(dir, "images"));
    expect(files.some((f) => f.startsWith(body.image.sha256))).toBe(false);
  });

  it("resumes a download cut midway with a Range request, then succeeds", async () => {
    const d = fresh("uc");
    const { body, fileName } = imageFor(d, { mode: "cutOnce", bytes: 256 * 1024 });
    await stack.accept(body, "cmd-resume-1");
    const end = await waitForEnd(stack, "cmd-resume-1");
    expect(end.phase).toBe("succeeded");
    const reqs = images.requestsFor(fileName);
    expect(reqs[0]).toMatchObject({ status: 200, range: undefined });
    expect(reqs.length).toBe(2);
    expect(reqs[1]?.status).toBe(206);
    const from = Number(/^bytes=(\d+)-$/.exec(reqs[1]?.range ?? "")?.[1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThan(body.image.length);
  });

  it("refuses a device in a call with DEVICE_IN_CALL and starts nothing", async () => {
    const d = fresh("uc");
    await sim.control("POST", `/devices/${d.id}/call`, { active: true });
    try {
      const { body } = imageFor(d);
      const err = await stack.accept(body, "cmd-in-call-1").catch((e: unknown) => e);
      expect(isPolyfleetError(err) && err.code).toBe("POLYFLEET_ERR_DEVICE_IN_CALL");
      expect(stack.journal.get("cmd-in-call-1")).toBeUndefined();
      expect(stack.phases("cmd-in-call-1")).toEqual([]);
      // Once the call is over the same command id may run.
      await sim.control("POST", `/devices/${d.id}/call`, { active: false });
      await expect(stack.accept(body, "cmd-in-call-1")).resolves.toMatchObject({ accepted: true });
      expect((await waitForEnd(stack, "cmd-in-call-1")).phase).toBe("succeeded");
    } finally {
      await sim.control("POST", `/devices/${d.id}/call`, { active: false });
    }
  });

  it("fails a phone that boots the old version with UPDATE_WRONG_VERSION, never succeeded", async () => {
    const d = fresh("uc");
    await fault(d, ["updateBootsOldVersion"]);
    const before = await view(d);
    const { body } = imageFor(d);
    await stack.accept(body, "cmd-old-1");
    const end = await waitForEnd(stack, "cmd-old-1");
    expect(end, stack.phases("cmd-old-1").join(" → ")).toMatchObject({
      phase: "failed",
      code: "POLYFLEET_ERR_UPDATE_WRONG_VERSION",
    });
    expect(end.reportedVersion).toBe(before.firmware);
    expect(stack.phases("cmd-old-1")).not.toContain("succeeded");
    expect((await view(d)).config["device.prov.serverName"]).toBe(before.config["device.prov.serverName"]);
  });

  it("fails a Studio X that boots the old version with UPDATE_WRONG_VERSION and serves the image only once", async () => {
    const d = fresh("videoos");
    await fault(d, ["updateBootsOldVersion"]);
    const { body } = imageFor(d);
    const served = (status: string): number =>
      stack.metrics.get("polyfleet_agent_provisioning_requests_total", { kind: "image", status });
    const [ok0, missing0] = [served("200"), served("404")];
    await stack.accept(body, "cmd-vos-old-1");
    const end = await waitForEnd(stack, "cmd-vos-old-1");
    expect(end).toMatchObject({ phase: "failed", code: "POLYFLEET_ERR_UPDATE_WRONG_VERSION" });
    expect(end.reportedVersion).not.toBe(body.targetVersion);
    expect((await view(d)).config["upgrade.auto.enable"]).toBe("false");
    // The device's boot-time check (within a second of coming back) finds nothing to install.
    await sleep(1500);
    expect(served("200") - ok0).toBe(1);
    expect(served("404") - missing0).toBe(0);
    expect(`${(await view(d)).firmware}`).not.toBe(body.targetVersion.split("-")[0]);
  });

  it("fails a device that never comes back with UPDATE_TIMEOUT and puts its config back once it returns", async () => {
    const d = fresh("uc");
    await fault(d, ["updateNeverReturns"]);
    const before = await view(d);
    const { body } = imageFor(d, { timeoutMs: 3000 });
    await stack.accept(body, "cmd-never-1");
    const end = await waitForEnd(stack, "cmd-never-1");
    expect(end).toMatchObject({ phase: "failed", code: "POLYFLEET_ERR_UPDATE_TIMEOUT" });
    expect(stack.phases("cmd-never-1")).toContain("rebooting");
    expect(stack.phases("cmd-never-1")).not.toContain("succeeded");
    expect(stack.journal.get("cmd-never-1")?.configRestored).toBe(false);
    await fault(d, [], ["updateNeverReturns"]);
    await waitUntil(
      () => stack.journal.get("cmd-never-1")?.configRestored === true,
      10_000,
      "config restore retry",
    );
    expect((await view(d)).config["device.prov.serverName"]).toBe(before.config["device.prov.serverName"]);
  });

  it("runs a repeated command id once: one download, one updateConfiguration, same answer", async () => {
    const d = fresh("uc");
    const { body, fileName } = imageFor(d);
    const [a, b] = await Promise.all([stack.accept(body, "cmd-twice-1"), stack.accept(body, "cmd-twice-1")]);
    expect(a).toEqual(b);
    await waitForEnd(stack, "cmd-twice-1");
    const again = await stack.accept(body, "cmd-twice-1");
    expect(again).toMatchObject({ accepted: true, phase: "succeeded", reportedVersion: body.targetVersion });
    expect(images.requestsFor(fileName)).toHaveLength(1);
    expect(stack.http.count(d.address, "POST /api/v1/mgmt/updateConfiguration")).toBe(1);
    expect(stack.phases("cmd-twice-1").filter((p) => p === "accepted")).toHaveLength(1);
    // Another command for the device while nothing runs is fine; during an update it is refused.
    const second = imageFor(d, { mode: "stall" });
    await stack.accept(second.body, "cmd-twice-2");
    const refused = await stack.accept(imageFor(d).body, "cmd-twice-3").catch((e: unknown) => e);
    expect(isPolyfleetError(refused) && refused.code).toBe("POLYFLEET_ERR_UPDATE_IN_PROGRESS");
  });

  it("answers a device already on the target at once with succeeded", async () => {
    const d = fresh("uc");
    const v = await view(d);
    const { body } = imageFor(d);
    const answer = await stack.accept({ ...body, targetVersion: v.firmware }, "cmd-already-1");
    expect(answer).toMatchObject({ accepted: true, phase: "succeeded", reportedVersion: v.firmware });
    expect(stack.phases("cmd-already-1")).toEqual(["succeeded"]);
  });

  describe("agent restart", () => {
    it("resumes watching a pointed update on the same directory and ends it; one push only", async () => {
      // Own fleet, in this process, so the phone can be put in a call synchronously when it is pointed:
      // it downloads the image and defers its reboot until the call ends, while the agent restarts.
      const fleet = createFleet({
        ...DEFAULT_FLEET,
        devices: 2,
        subnet: randomSubnet(),
        httpsPort: randomPort(),
        snmpPort: null,
        models: ["VVX 350"],
        seed: 77,
        timing: { ...DEFAULT_TIMING, rebootDownMs: 300 },
      });
      await fleet.start();
      const restartDir = await mkdtemp(join(tmpdir(), "polyfleet-updates-restart-"));
      const d = fleet.manifest("http://unused").devices[0] as SimDevice;
      const dev = fleet.find(d.id);
      if (!dev) throw new Error("device missing");
      let first: UpdateStack | undefined = await startUpdateStack(restartDir, {
        devices: [d],
        onEvent: (e) => {
          if (e.phase === "installing") dev.setCall(true);
        },
      });
      let second: UpdateStack | undefined;
      try {
        const { body, fileName } = imageFor(d);
        await first.accept(body, "cmd-restart-1");
        await waitUntil(
          () => first?.journal.get("cmd-restart-1")?.imageServedAt !== undefined,
          15_000,
          "image delivered",
        );
        expect(dev.inCall).toBe(true);
        expect(first.journal.get("cmd-restart-1")?.phase).toBe("installing");
        await first.stop();
        first = undefined;
        second = await startUpdateStack(restartDir, { devices: [d] });
        dev.setCall(false);
        const end = await waitForEnd(second, "cmd-restart-1");
        expect(end).toMatchObject({ phase: "succeeded", reportedVersion: body.targetVersion });
        expect(second.phases("cmd-restart-1")).toEqual(["rebooting", "verifying", "succeeded"]);
        expect(images.requestsFor(fileName)).toHaveLength(1);
        expect(second.http.count(d.address, "POST /api/v1/mgmt/updateConfiguration")).toBe(0);
        expect(dev.firmware.version).toBe(body.targetVersion);
        expect(dev.config.get("device.prov.serverName")).toBe("");
        await expect(second.accept(body, "cmd-restart-1")).resolves.toMatchObject({ phase: "succeeded" });
      } finally {
        await first?.stop();
        await second?.stop();
        await fleet.close();
        await rm(restartDir, { recursive: true, force: true });
      }
    });

    it("fails an update interrupted before the device was pointed with UPDATE_INTERRUPTED", async () => {
      const d = fresh("uc");
      const before = await view(d);
      const { body } = imageFor(d, { mode: "stall", bytes: 64 * 1024 });
      await stack.accept(body, "cmd-restart-2");
      await waitUntil(() => stack.phases("cmd-restart-2").includes("downloading"), 5000, "download start");
      await stack.stop();
      stack = await startUpdateStack(dir, { devices: sim.manifest.devices.filter((x) => used.has(x.id)) });
      const end = await waitForEnd(stack, "cmd-restart-2");
      expect(end).toMatchObject({ phase: "failed", code: "POLYFLEET_ERR_UPDATE_INTERRUPTED" });
      expect(stack.http.count(d.address, "POST /api/v1/mgmt/config/set")).toBe(0);
      expect((await view(d)).config).toEqual(before.config);
      // The device is free again.
      expect(stack.journal.activeFor(d.id)).toBeUndefined();
    });
  });
});
