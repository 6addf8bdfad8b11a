// Must show (issue 5), end to end with the simulator, real Mosquitto, the built collector and agent:
// - 1,000 devices rolled out in 4 waves all end at the target version and compliance turns fully current,
//   with the collector SIGKILLed mid-rollout and restarted: the rollout completes, no device updated twice;
// - 20 % of wave 2 failing with a 5 % error threshold halts the rollout before wave 3, nothing starts after
//   the trip beyond the concurrency limit, and no device outside the started waves gets a command;
// - a device back on the old version or not back at all is failed (never succeeded), a closed maintenance
//   window starts no device, a device in a call is deferred and updated once the call ends.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type MosquittoHandle,
  type SignedCatalogFiles,
  simBaselineReleases,
  startMosquitto,
  writeSignedCatalog,
} from "@polyfleet/scripts/testing";
import type {
  AuditEntry,
  DeviceRecord,
  MaintenanceWindow,
  Rollout,
  RolloutCreateInput,
  RolloutDevice,
} from "@polyfleet/shared";
import { afterAll, describe, expect, it } from "vitest";
import {
  AgentProcess,
  assertBuilt,
  Cleanup,
  CollectorProcess,
  type Fleet,
  sleep,
  startFleet,
  waitForValue,
} from "./harness.js";

interface SimDeviceView {
  id: string;
  address: string;
  family: string;
  model: string;
  firmware: string;
  build?: string;
  installs: number;
  inCall: boolean;
}

interface Stack {
  collector: CollectorProcess;
  fleet: Fleet;
  agent: AgentProcess;
  catalog: SignedCatalogFiles;
  /** deviceId (collector) → simulator address. */
  addressOf: Map<string, string>;
  simDevices(): Promise<SimDeviceView[]>;
}

/** Mosquitto, a signed catalog, the collector, the simulated fleet and its agent; everything cleaned up. */
async function startStack(
  cleanup: Cleanup,
  o: { devices: number; simArgs?: string[]; pollIntervalSec?: number },
): Promise<Stack> {
  assertBuilt();
  const mosquitto: MosquittoHandle = await startMosquitto();
  cleanup.add("mosquitto", () => mosquitto.stop());
  const dir = await mkdtemp(join(tmpdir(), "polyfleet-e2e-rollout-"));
  cleanup.add("dir", () => rm(dir, { recursive: true, force: true }));
  const catalog = writeSignedCatalog(join(dir, "firmware"), {
    releases: simBaselineReleases().map((r) => ({ ...r, bytes: 8192 })),
  });
  const collector = new CollectorProcess({
    dir,
    brokerUrl: mosquitto.url,
    firmware: {
      rootFile: catalog.rootFile,
      catalogFile: catalog.catalogFile,
      imagesDir: catalog.imagesDir,
      tickMs: 200,
    },
  });
  await collector.start();
  cleanup.add("collector", () => collector.stop());
  const fleet = await startFleet({
    devices: o.devices,
    brokerUrl: mosquitto.url,
    pollIntervalSec: o.pollIntervalSec ?? 5,
    polling: { jitterPct: 0, timeoutMs: 3000, missesBeforeUnreachable: 2 },
    provisioning: { watchIntervalMs: 250 },
    // Reboots take minutes on real devices; 2.5 s here, still well above the 1 s resolution of the uptime
    // the agent tells one boot from the next by.
    simArgs: ["--reboot-ms", "2500", ...(o.simArgs ?? [])],
  });
  cleanup.add("simulator", () => fleet.stop());
  const agent = new AgentProcess(fleet.configFile, fleet.httpPort);
  await agent.start();
  cleanup.add("agent", () => agent.stop());
  const addresses = new Set(fleet.manifest.devices.map((d) => d.address));
  const devices = await waitForValue(
    async () => {
      const page = await collector.get<{ items: DeviceRecord[] }>("/api/v1/devices?limit=1000");
      const mine = page.items.filter((d) => addresses.has(d.address) && d.reachable && d.softwareVersion);
      return mine.length === o.devices ? mine : undefined;
    },
    120_000,
    `the collector listing all ${o.devices} simulated devices`,
    1000,
  ).catch((err: unknown) => {
    throw new Error(`${String(err)}\nagent:\n${agent.output()}\ncollector:\n${collector.output()}`);
  });
  return {
    collector,
    fleet,
    agent,
    catalog,
    addressOf: new Map(devices.map((d) => [d.deviceId, d.address])),
    async simDevices() {
      return ((await fleet.control("GET", "/devices")) as { devices: SimDeviceView[] }).devices;
    },
  };
}

/** The catalog's target version string of a simulated device's model (VideoOS `version-build`). */
function targetOf(catalog: SignedCatalogFiles, model: string): { version: string; build?: string } {
  const r = catalog.releases.find((x) => x.model === model);
  if (!r) throw new Error(`no release for ${model}`);
  return { version: r.version, ...(r.build ? { build: r.build } : {}) };
}

async function waitRollout(
  s: Stack,
  id: string,
  done: (r: Rollout) => boolean,
  timeoutMs: number,
  what: string,
): Promise<Rollout> {
  return await waitForValue(
    async () => {
      const r = await s.collector.get<Rollout>(`/api/v1/rollouts/${id}`).catch(() => undefined);
      return r && done(r) ? r : undefined;
    },
    timeoutMs,
    what,
    500,
  ).catch(async (err: unknown) => {
    const r = await s.collector.get<Rollout>(`/api/v1/rollouts/${id}`).catch(() => undefined);
    throw new Error(
      `${String(err)}\nrollout: ${JSON.stringify(r?.counts)} ${r?.state} ${r?.stateReason ?? ""}\nagent:\n${s.agent.output(20)}\ncollector:\n${s.collector.output(20)}`,
    );
  });
}

const FAST: Partial<RolloutCreateInput> = {
  deviceTimeoutMs: 120_000,
  retries: { download: 0, install: 0, reboot: 0, verify: 0, timeout: 0, agent: 0, refused: 0 },
  inCallRetryMs: 1000,
};

describe("rollout e2e: 1,000 devices in 4 waves, collector SIGKILLed mid-rollout", () => {
  const cleanup = new Cleanup();
  afterAll(async () => {
    await cleanup.run();
  });

  it("ends every device on the target version exactly once, compliance fully current, audit verifies", async () => {
    // A /22 of loopback addresses (a /24 holds 254 devices).
    const subnet = `127.${10 + Math.floor(Math.random() * 200)}.${4 * Math.floor(Math.random() * 60)}.0/22`;
    const s = await startStack(cleanup, {
      devices: 1000,
      pollIntervalSec: 10,
      simArgs: ["--subnet", subnet],
    });
    const before = await s.collector.get<{ counts: Record<string, number> }>("/api/v1/firmware/compliance");
    expect(before.counts.current).toBe(0);
    expect(before.counts.behind).toBe(1000);

    const spec: RolloutCreateInput = {
      name: "baseline for everything",
      reason: "e2e: quarterly firmware baseline",
      target: { kind: "baseline" },
      waves: [{ percent: 1 }, { percent: 10 }, { percent: 50 }, { percent: 100 }],
      concurrencyPerSite: 100,
      // Longer than a poll interval: the gate judges the devices on fresh polls.
      healthGate: { soakMs: 12_000, requireTargetVersion: true, noNewCriticalAlerts: true },
      errorThresholdPct: 5,
      ...FAST,
    };
    const preview = await s.collector.post<{ waves: { devices: unknown[] }[] }>(
      "/api/v1/rollouts/preview",
      spec,
    );
    expect(preview.waves.map((w) => w.devices.length)).toEqual([10, 90, 400, 500]);
    const created = await s.collector.post<Rollout>("/api/v1/rollouts", spec);
    expect(created.state).toBe("pending");
    await s.collector.post(`/api/v1/rollouts/${created.id}/start`, { reason: "e2e: go" });

    // Kill the collector while wave 3 (400 devices) is under way, then start it again on the same state.
    await waitRollout(
      s,
      created.id,
      (r) => r.currentWave === 2 && (r.counts.succeeded ?? 0) >= 150,
      300_000,
      "wave 3 under way",
    );
    await s.collector.kill();
    await sleep(3000);
    await s.collector.start();

    const done = await waitRollout(
      s,
      created.id,
      (r) => r.state !== "running",
      400_000,
      "the rollout to end",
    );
    const devices = await s.collector.get<RolloutDevice[]>(`/api/v1/rollouts/${created.id}/devices`);
    const notDone = devices
      .filter((d) => d.state !== "succeeded")
      .map((d) => `${d.deviceId} ${d.model} ${d.state} ${d.failureClass ?? ""} ${d.reason ?? ""}`);
    expect(notDone, notDone.join("\n")).toEqual([]);
    expect(done.state, done.stateReason).toBe("completed");
    expect(done.counts.succeeded).toBe(1000);
    expect(done.waves.map((w) => w.state)).toEqual(["passed", "passed", "passed", "passed"]);

    expect(devices).toHaveLength(1000);
    for (const d of devices) {
      expect(d.state, `${d.deviceId}: ${d.reason ?? ""}`).toBe("succeeded");
      expect(d.attempts, `${d.deviceId} dispatched more than once`).toBe(1);
    }
    // On the devices themselves: every one runs its model's target and installed exactly one image.
    for (const sim of await s.simDevices()) {
      const t = targetOf(s.catalog, sim.model);
      expect(sim.firmware, `${sim.address} ${sim.model}`).toBe(t.version);
      if (t.build) expect(sim.build).toBe(t.build);
      expect(sim.installs, `${sim.address} installed ${sim.installs} images`).toBe(1);
    }
    const after = await waitForValue(
      async () => {
        const c = await s.collector.get<{ counts: Record<string, number> }>("/api/v1/firmware/compliance");
        return c.counts.current === 1000 ? c : undefined;
      },
      60_000,
      "compliance fully current",
      1000,
    );
    expect(after.counts).toMatchObject({ current: 1000, behind: 0, ahead: 0, unknown: 0 });
    const verify = await s.collector.get<{ ok: boolean }>("/api/v1/audit/verify");
    expect(verify.ok).toBe(true);
    for (const action of [
      "rollout.create",
      "rollout.start",
      "rollout.completed",
      "rollout.device.dispatched",
    ]) {
      const entries = await s.collector.get<AuditEntry[]>(
        `/api/v1/audit?target=${encodeURIComponent(`rollout:${created.id}`)}&action=${action}&limit=5`,
      );
      expect(entries.length, action).toBeGreaterThan(0);
    }
  }, 600_000);
});

describe("rollout e2e: 20 % of wave 2 failing trips a 5 % error threshold", () => {
  const cleanup = new Cleanup();
  afterAll(async () => {
    await cleanup.run();
  });

  it("halts before wave 3; nothing starts after the trip beyond the concurrency; later waves get no command", async () => {
    const s = await startStack(cleanup, { devices: 200 });
    const concurrency = 5;
    const created = await s.collector.post<Rollout>("/api/v1/rollouts", {
      name: "threshold",
      reason: "e2e: error threshold",
      target: { kind: "baseline" },
      waves: [{ percent: 1 }, { percent: 10 }, { percent: 50 }, { percent: 100 }],
      concurrencyPerSite: concurrency,
      healthGate: { soakMs: 500 },
      errorThresholdPct: 5,
      ...FAST,
      // A phone whose image download breaks just stays on its version (nothing reports the failure):
      // the agent fails it at this deadline.
      deviceTimeoutMs: 15_000,
    } satisfies RolloutCreateInput);
    const wave2 = await s.collector.get<RolloutDevice[]>(`/api/v1/rollouts/${created.id}/devices?wave=1`);
    expect(wave2.length).toBe(18);
    const failing = wave2.filter((_d, i) => i % 5 === 0); // 20 %
    expect(failing.length).toBe(4);
    for (const d of failing)
      await s.fleet.control("POST", `/devices/${s.addressOf.get(d.deviceId)}/faults`, {
        add: ["updateDownloadFails"],
      });
    await s.collector.post(`/api/v1/rollouts/${created.id}/start`, { reason: "e2e: go" });
    const halted = await waitRollout(s, created.id, (r) => r.state === "halted", 240_000, "the halt");
    // Let the devices still in flight finish: they are tracked, not interrupted.
    await waitRollout(
      s,
      created.id,
      (r) => ["downloading", "installing", "rebooting", "verifying"].every((k) => (r.counts[k] ?? 0) === 0),
      120_000,
      "in-flight devices to finish",
    );
    expect(halted.waves[1]?.state).toBe("failed");
    expect(halted.waves.slice(2).map((w) => w.state)).toEqual(["pending", "pending"]);
    expect(halted.stateReason ?? "").toMatch(/%/);

    const devices = await s.collector.get<RolloutDevice[]>(`/api/v1/rollouts/${created.id}/devices`);
    const later = devices.filter((d) => d.wave >= 2);
    expect(later.length).toBe(180);
    for (const d of later) {
      expect(d.attempts, `${d.deviceId} of wave ${d.wave + 1} got a command`).toBe(0);
      expect(d.state).toBe("queued");
    }
    const laterAddresses = new Set(later.map((d) => s.addressOf.get(d.deviceId)));
    for (const sim of await s.simDevices()) {
      if (laterAddresses.has(sim.address)) expect(sim.installs, sim.address).toBe(0);
    }
    // Starts after the trip: the audit says when it halted; dispatch times say when each device started.
    const audit = await s.collector.get<AuditEntry[]>(
      `/api/v1/audit?target=${encodeURIComponent(`rollout:${created.id}`)}&action=rollout.halted&limit=5`,
    );
    const haltedAt = audit[0]?.ts;
    expect(haltedAt).toBeDefined();
    const startedAfter = devices.filter((d) => (d.dispatchedAt ?? 0) > (haltedAt ?? 0));
    expect(startedAfter.length).toBeLessThanOrEqual(concurrency);
    const failed = devices.filter((d) => d.state === "failed");
    expect(failed.length).toBeGreaterThanOrEqual(1);
    for (const d of failed) expect(failing.map((f) => f.deviceId)).toContain(d.deviceId);
  }, 300_000);
});

describe("rollout e2e: old version, no return, closed window, device in a call", () => {
  const cleanup = new Cleanup();
  afterAll(async () => {
    await cleanup.run();
  });

  it("fails the old-version and never-back devices, starts nothing in a closed window, defers the call", async () => {
    const s = await startStack(cleanup, { devices: 8, simArgs: ["--models", "VVX 350,Trio 8800,StudioX30"] });
    const ids = [...s.addressOf.keys()];
    const sims = await s.simDevices();
    const byAddress = new Map(sims.map((d) => [d.address, d]));
    const uc = ids.filter((id) => byAddress.get(s.addressOf.get(id) ?? "")?.family === "uc");
    const [oldVersion, neverBack, inCall] = uc;
    if (!oldVersion || !neverBack || !inCall) throw new Error("need three phones");

    // A window that opens in an hour: a rollout bound to it starts nobody.
    const now = Date.now();
    const window = await s.collector.post<MaintenanceWindow>("/api/v1/maintenance-windows", {
      name: "tonight",
      schedule: { type: "once", start: now + 3_600_000, end: now + 7_200_000 },
    });
    const gated = await s.collector.post<Rollout>("/api/v1/rollouts", {
      name: "gated",
      reason: "e2e: window",
      target: { kind: "baseline" },
      waves: [{ percent: 100 }],
      windowIds: [window.id],
      ...FAST,
    } satisfies RolloutCreateInput);
    await s.collector.post(`/api/v1/rollouts/${gated.id}/start`, { reason: "e2e: go" });
    const waiting = await waitRollout(
      s,
      gated.id,
      (r) => (r.counts.waitingWindow ?? 0) === 8,
      30_000,
      "every device waiting for its window",
    );
    expect(waiting.counts.downloading ?? 0).toBe(0);
    await sleep(2000); // ten engine steps
    const still = await s.collector.get<RolloutDevice[]>(`/api/v1/rollouts/${gated.id}/devices`);
    for (const d of still) {
      expect(d.state).toBe("waitingWindow");
      expect(d.attempts).toBe(0);
    }
    for (const sim of await s.simDevices()) expect(sim.installs).toBe(0);
    await s.collector.post(`/api/v1/rollouts/${gated.id}/cancel`, { reason: "e2e: done with the window" });

    const addr = (id: string): string => s.addressOf.get(id) ?? "";
    await s.fleet.control("POST", `/devices/${addr(oldVersion)}/faults`, { add: ["updateBootsOldVersion"] });
    await s.fleet.control("POST", `/devices/${addr(neverBack)}/faults`, { add: ["updateNeverReturns"] });
    await s.fleet.control("POST", `/devices/${addr(inCall)}/call`, { active: true });
    // The collector learns of the call from the next poll.
    await waitForValue(
      async () =>
        (await s.collector.get<DeviceRecord>(`/api/v1/devices/${inCall}`)).inCall ? true : undefined,
      30_000,
      "the call in the inventory",
      500,
    );
    const r = await s.collector.post<Rollout>("/api/v1/rollouts", {
      name: "edge cases",
      reason: "e2e: failures and a call",
      target: { kind: "baseline" },
      waves: [{ percent: 100 }],
      concurrencyPerSite: 8,
      errorThresholdPct: 100,
      healthGate: { soakMs: 0 },
      ...FAST,
      deviceTimeoutMs: 15_000,
    } satisfies RolloutCreateInput);
    await s.collector.post(`/api/v1/rollouts/${r.id}/start`, { reason: "e2e: go" });
    const deferredSeen = await waitForValue(
      async () => {
        const list = await s.collector.get<RolloutDevice[]>(`/api/v1/rollouts/${r.id}/devices`);
        return list.find((d) => d.deviceId === inCall && d.state === "deferred");
      },
      30_000,
      "the phone in a call deferred",
      250,
    );
    expect(deferredSeen.attempts).toBe(0);
    expect(byAddress.get(addr(inCall))?.installs ?? 0).toBe(0);
    await s.fleet.control("POST", `/devices/${addr(inCall)}/call`, { active: false });

    const done = await waitRollout(
      s,
      r.id,
      (x) => x.state !== "running" || (x.counts.succeeded ?? 0) + (x.counts.failed ?? 0) === 8,
      180_000,
      "every device to end",
    );
    const devices = await s.collector.get<RolloutDevice[]>(`/api/v1/rollouts/${r.id}/devices`);
    const by = new Map(devices.map((d) => [d.deviceId, d]));
    expect(by.get(oldVersion)?.state).toBe("failed");
    expect(by.get(oldVersion)?.failureClass, by.get(oldVersion)?.reason).toBe("verify");
    expect(by.get(neverBack)?.state).toBe("failed");
    expect(["timeout", "verify"]).toContain(by.get(neverBack)?.failureClass);
    expect(by.get(inCall)?.state).toBe("succeeded");
    for (const d of devices)
      if (d.deviceId !== oldVersion && d.deviceId !== neverBack)
        expect(d.state, `${d.deviceId}: ${d.reason ?? ""}`).toBe("succeeded");
    expect(done.counts.failed).toBe(2);
    const simNow = new Map((await s.simDevices()).map((d) => [d.address, d]));
    const oldSim = simNow.get(addr(oldVersion));
    expect(oldSim?.firmware).not.toBe(targetOf(s.catalog, oldSim?.model ?? "").version);
  }, 240_000);
});
