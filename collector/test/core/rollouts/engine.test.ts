import { type Alert, CommandId, PolyfleetError, Rollout, RolloutDevice } from "@polyfleet/shared";
import { describe, expect, it } from "vitest";
import {
  commandIdFor,
  RECONCILE_GRACE_MS,
  ROLLOUT_SYSTEM_ACTOR,
  RolloutEngine,
  TIMEOUT_GRACE_MS,
} from "../../../src/core/rollouts/index.js";
import { type Behaviour, fleet, release, Sim, sameVersion, spec, T0 } from "./harness.js";

const MIN = 60_000;
const GATE = { soakMs: 5 * MIN, requireTargetVersion: true, noNewCriticalAlerts: true };

function expectState(fn: () => unknown, code: string, text?: RegExp): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PolyfleetError);
    expect((err as PolyfleetError).code).toBe(code);
    if (text) expect((err as PolyfleetError).message).toMatch(text);
    return;
  }
  throw new Error("expected a PolyfleetError");
}

function alert(deviceId: string, startsAt: number, severity: Alert["severity"] = "critical"): Alert {
  return {
    v: 1,
    id: `a-${deviceId}-${startsAt}`,
    fingerprint: `f-${deviceId}`,
    rule: "status-item-down",
    severity,
    state: "firing",
    summary: "down",
    siteId: "site0",
    agentId: "agent-site0",
    deviceId,
    labels: { deviceId },
    startsAt,
    updatedAt: startsAt,
    flapping: false,
    escalationLevel: 0,
    silenced: false,
  };
}

describe("RolloutEngine: whole rollouts", () => {
  it("rolls 1,000 devices out in 4 waves to completed, each device updated once", () => {
    const sim = new Sim(fleet(1000, { sites: 10 }), { tickMs: 5000 });
    const id = sim.create({ concurrencyPerSite: 5, healthGate: { ...GATE, soakMs: 10 * MIN } });
    expect(sim.engine.get(id)).toMatchObject({ state: "pending", catalogVersion: 7, createdBy: "alice" });
    expect(sim.engine.get(id)?.waves.map((w) => w.size)).toEqual([10, 90, 400, 500]);
    sim.act(id, "start");
    sim.runToEnd();
    const r = sim.engine.get(id);
    expect(r?.state).toBe("completed");
    expect(r?.counts.succeeded).toBe(1000);
    expect(r?.waves.map((w) => w.state)).toEqual(["passed", "passed", "passed", "passed"]);
    expect([...sim.devices.values()].every((d) => d.version === "2.0.0")).toBe(true);
    expect([...sim.dispatchCount().values()].every((n) => n === 1)).toBe(true);
    expect(sim.dispatches).toHaveLength(1000);
    const rolloutEvents = sim.events(id).filter((t) => !t.event.startsWith("device."));
    expect(rolloutEvents.map((t) => `${t.event}${t.wave === undefined ? "" : `:${t.wave}`}`)).toEqual([
      "created",
      "started",
      "wave.started:0",
      "wave.soaking:0",
      "wave.passed:0",
      "wave.started:1",
      "wave.soaking:1",
      "wave.passed:1",
      "wave.started:2",
      "wave.soaking:2",
      "wave.passed:2",
      "wave.started:3",
      "wave.soaking:3",
      "wave.passed:3",
      "completed",
    ]);
    expect(rolloutEvents.at(-1)).toMatchObject({
      actor: ROLLOUT_SYSTEM_ACTOR,
      reason: "1000 succeeded, 0 failed, 0 skipped",
    });
    // The soak held each next wave back for 10 minutes.
    const w = r?.waves ?? [];
    for (let i = 1; i < 4; i++)
      expect(w[i]?.startedAt).toBeGreaterThanOrEqual((w[i - 1]?.finishedAt ?? 0) + 10 * MIN);
    // The stored copy (what the service persisted) matches the engine.
    expect(sim.storedRollouts.get(id)?.state).toBe("completed");
    expect([...sim.storedDevices.values()].every((d) => d.state === "succeeded" && d.attempts === 1)).toBe(
      true,
    );
    expect(() => Rollout.parse(sim.storedRollouts.get(id))).not.toThrow();
    for (const d of sim.storedDevices.values()) RolloutDevice.parse(d);
    for (const d of sim.dispatches) CommandId.parse(d.commandId);
  });

  it("halts before wave 3 when 20% of wave 2 fails over a 5% threshold, starting nothing after the trip", () => {
    const sim0 = new Sim(fleet(1000, { sites: 10 }));
    const planned = sim0.preview({}).preview;
    const wave2 = planned.waves[1]?.devices.map((d) => d.deviceId) ?? [];
    const failing = new Set(wave2.filter((_, i) => i % 5 === 0));
    expect(failing.size).toBe(18);
    const sim = new Sim(fleet(1000, { sites: 10 }), {
      tickMs: 5000,
      behaviour: (deviceId): Behaviour =>
        failing.has(deviceId) ? { kind: "fail", code: "POLYFLEET_ERR_UPDATE_FAILED" } : { kind: "ok" },
    });
    const id = sim.create({ concurrencyPerSite: 5, errorThresholdPct: 5, healthGate: GATE });
    sim.act(id, "start");
    sim.runToEnd();
    const r = sim.engine.get(id);
    expect(r?.state).toBe("halted");
    expect(r?.stateReason).toMatch(/^error threshold exceeded: failures \d+\/\d+ = [\d.]+% > 5%$/);
    expect(r?.waves.map((w) => w.state)).toEqual(["passed", "failed", "pending", "pending"]);
    expect(r?.currentWave).toBe(1);
    // No device outside the started waves received any command.
    const waveOf = new Map(sim.engine.devices(id).map((d) => [d.deviceId, d.wave]));
    expect(sim.dispatches.every((d) => (waveOf.get(d.deviceId) ?? 9) <= 1)).toBe(true);
    // Nothing was dispatched after the trip (at most the concurrency limit is allowed).
    const haltAt = sim.transitions.findIndex((t) => t.event === "halted");
    const after = sim.transitions.slice(haltAt).filter((t) => t.event === "device.dispatched");
    expect(after.length).toBeLessThanOrEqual(5);
    expect(after).toHaveLength(0);
    // The devices in flight at the trip were tracked to their end.
    expect((r?.counts.downloading ?? 0) + (r?.counts.installing ?? 0) + (r?.counts.rebooting ?? 0)).toBe(0);
    expect(r?.counts.queued).toBeGreaterThan(900 - 90);
    // The failed devices used their install retry (1) before failing for good.
    const failed = sim.engine.devices(id).filter((d) => d.state === "failed");
    expect(failed.length).toBeGreaterThan(0);
    for (const d of failed) {
      expect(failing.has(d.deviceId)).toBe(true);
      expect(d).toMatchObject({ attempts: 2, failureClass: "install", failures: { install: 2 } });
    }
    expect(sim.events(id, "wave.failed")).toHaveLength(1);
  });

  it("resumes after a collector restart without dispatching any device twice", () => {
    const sim = new Sim(fleet(60, { sites: 3 }), { tickMs: 2000, readingEveryMs: MIN });
    const id = sim.create({
      concurrencyPerSite: 4,
      waves: [{ percent: 10 }, { percent: 100 }],
      healthGate: { ...GATE, soakMs: MIN },
    });
    sim.act(id, "start");
    // Run until updates are out in the second wave, then die with events applied but not stored.
    sim.run(
      T0 + 24 * 3_600_000,
      () => (sim.engine.get(id)?.currentWave ?? 0) === 1 && (sim.engine.get(id)?.counts.rebooting ?? 0) > 0,
    );
    // Progress events reach the collector and are applied, but it dies before storing them: they are lost.
    sim.advance(25_000);
    const activeBefore = [...sim.storedDevices.values()].filter((d) =>
      ["downloading", "installing", "rebooting", "verifying"].includes(d.state),
    );
    expect(activeBefore.length).toBeGreaterThan(0);
    sim.restart();
    const after = sim.engine.devices(id);
    for (const d of activeBefore)
      expect(after.find((x) => x.deviceId === d.deviceId)?.commandId).toBe(d.commandId);
    sim.runToEnd();
    expect(sim.engine.get(id)?.state).toBe("completed");
    expect(sim.engine.get(id)?.counts.succeeded).toBe(60);
    expect([...sim.dispatchCount().values()].every((n) => n === 1)).toBe(true);
    expect(sim.dispatches).toHaveLength(60);
    // Those whose final event was lost were verified from the inventory.
    const reconciled = sim.engine
      .devices(id)
      .filter((d) => d.reason?.startsWith("verified from the inventory"));
    expect(reconciled.length).toBeGreaterThan(0);
  });

  it("reconciles an active device from two target-version readings when its final events never arrive", () => {
    const sim = new Sim(fleet(4), {
      tickMs: 1000,
      readingEveryMs: MIN,
      behaviour: () => ({ kind: "lostEvents" }),
    });
    const id = sim.create({
      concurrencyPerSite: 4,
      waves: [{ percent: 100 }],
      healthGate: { ...GATE, soakMs: 0 },
    });
    sim.act(id, "start");
    const at = sim.engine.devices(id)[0]?.dispatchedAt ?? 0;
    // Back on the target at +40 s; readings at +60 s and +120 s are only 1 minute apart.
    sim.run(at + 170_000);
    expect(sim.engine.get(id)?.counts.downloading).toBe(4);
    sim.runToEnd(30 * MIN);
    const devices = sim.engine.devices(id);
    expect(devices.every((d) => d.state === "succeeded" && d.attempts === 1)).toBe(true);
    expect(devices[0]?.reason).toBe(
      "verified from the inventory: reachable on 2.0.0 (no final progress event)",
    );
    expect((devices[0]?.finishedAt ?? 0) - at).toBeGreaterThanOrEqual(60_000 + RECONCILE_GRACE_MS);
    expect(sim.engine.get(id)?.state).toBe("completed");
  });
});

describe("RolloutEngine: devices", () => {
  function one(behaviour: Behaviour, input: Parameters<Sim["create"]>[0] = {}) {
    const sim = new Sim(fleet(1), { behaviour: () => behaviour });
    const id = sim.create({ waves: [{ percent: 100 }], healthGate: { ...GATE, soakMs: 0 }, ...input });
    sim.act(id, "start");
    return { sim, id };
  }

  it("moves a device through the progress phases to succeeded", () => {
    const { sim, id } = one({ kind: "ok" });
    const seen: string[] = [];
    sim.run(T0 + 60_000, () => {
      const s = sim.engine.devices(id)[0]?.state ?? "";
      if (seen.at(-1) !== s) seen.push(s);
      return false;
    });
    expect(seen).toEqual(["downloading", "installing", "rebooting", "verifying", "succeeded"]);
    const d = sim.engine.devices(id)[0];
    expect(d).toMatchObject({
      attempts: 1,
      commandId: `${id}.d0000.1`,
      reportedVersion: "2.0.0",
      failures: {},
    });
    expect(sim.dispatches[0]).toMatchObject({
      rolloutId: id,
      deviceId: "d0000",
      agentId: "agent-site0",
      siteId: "site0",
      attempt: 1,
      timeoutMs: 1_800_000,
      target: release("VVX 450"),
    });
  });

  it("accepts a succeeded event without a reported version", () => {
    const { sim, id } = one({ kind: "ok", noReportedVersion: true });
    sim.run(T0 + 60_000);
    expect(sim.engine.devices(id)[0]?.state).toBe("succeeded");
  });

  it("fails a device that comes back on the old version, even when the agent claims success", () => {
    for (const claimSuccess of [true, false]) {
      const { sim, id } = one({ kind: "oldVersion", claimSuccess });
      sim.runToEnd();
      const d = sim.engine.devices(id)[0];
      expect(d?.state).toBe("failed");
      expect(d?.failureClass).toBe("verify");
      expect(d?.reportedVersion).toBe("1.0.0");
      expect(d?.reason).toMatch(claimSuccess ? /came back on 1.0.0, expected 2.0.0/ : /UPDATE_WRONG_VERSION/);
      expect(sim.events(id, "device.succeeded")).toEqual([]);
    }
  });

  it("fails a device that does not answer at all within its timeout (+ grace), never before", () => {
    const { sim, id } = one({ kind: "silent" }, { deviceTimeoutMs: 600_000 });
    const at = sim.engine.devices(id)[0]?.dispatchedAt ?? 0;
    sim.run(at + 600_000 + TIMEOUT_GRACE_MS - 1000);
    expect(sim.engine.devices(id)[0]?.state).toBe("downloading");
    sim.run(at + 600_000 + TIMEOUT_GRACE_MS);
    const d = sim.engine.devices(id)[0];
    expect(d).toMatchObject({ state: "failed", failureClass: "timeout", failures: { timeout: 1 } });
    expect(d?.reason).toMatch(/^no answer from the agent within 660 s/);
    expect(sim.engine.get(id)?.state).toBe("halted");
  });

  it("does not mark succeeded a device whose agent answers after the collector gave up", () => {
    const { sim, id } = one({ kind: "ok", slowMs: 700_000 }, { deviceTimeoutMs: 600_000 });
    sim.runToEnd();
    sim.run(sim.now + 10 * MIN);
    expect(sim.engine.devices(id)[0]?.state).toBe("failed");
    expect(sim.events(id, "device.succeeded")).toEqual([]);
  });

  it("ignores progress of an older attempt's command id", () => {
    const sim = new Sim(fleet(1), {
      behaviour: (_d, attempt): Behaviour =>
        attempt === 1 ? { kind: "fail", code: "POLYFLEET_ERR_DOWNLOAD_FAILED" } : { kind: "silent" },
    });
    const id = sim.create({ waves: [{ percent: 100 }] });
    sim.act(id, "start");
    sim.run(sim.now + 40_000);
    expect(sim.engine.devices(id)[0]).toMatchObject({ state: "downloading", attempts: 2 });
    sim.engine.onProgress({
      v: 1,
      agentId: "agent-site0",
      siteId: "site0",
      seq: 9,
      ts: sim.now,
      type: "update.progress",
      deviceId: "d0000",
      commandId: commandIdFor(id, "d0000", 1),
      rolloutId: id,
      phase: "succeeded",
      targetVersion: "2.0.0",
      reportedVersion: "2.0.0",
    });
    expect(sim.engine.devices(id)[0]).toMatchObject({ state: "downloading", attempts: 2 });
  });

  it("defers a device in a call, then updates it when the call is over", () => {
    const sim = new Sim(fleet(1));
    sim.set("d0000", { inCall: true });
    const id = sim.create({
      waves: [{ percent: 100 }],
      inCallRetryMs: 120_000,
      healthGate: { ...GATE, soakMs: 0 },
    });
    sim.act(id, "start");
    const d = sim.engine.devices(id)[0];
    expect(d).toMatchObject({ state: "deferred", attempts: 0, notBefore: sim.now + 120_000 });
    expect(sim.events(id, "device.deferred")).toHaveLength(1);
    sim.run(sim.now + 60_000);
    expect(sim.dispatches).toHaveLength(0);
    sim.set("d0000", { inCall: false });
    sim.run(sim.now + 59_000);
    expect(sim.dispatches).toHaveLength(0);
    sim.runToEnd();
    expect(sim.engine.devices(id)[0]).toMatchObject({ state: "succeeded", attempts: 1, failures: {} });
    expect(sim.engine.get(id)?.state).toBe("completed");
  });

  it("defers without using the retry budget when the agent answers DEVICE_IN_CALL", () => {
    const sim = new Sim(fleet(1), {
      behaviour: (_d, attempt): Behaviour =>
        attempt <= 2 ? { kind: "reject", code: "POLYFLEET_ERR_DEVICE_IN_CALL" } : { kind: "ok" },
    });
    const id = sim.create({
      waves: [{ percent: 100 }],
      inCallRetryMs: 60_000,
      retries: { download: 0, install: 0, reboot: 0, verify: 0, timeout: 0, agent: 0, refused: 0 },
      healthGate: { ...GATE, soakMs: 0 },
    });
    sim.act(id, "start");
    sim.runToEnd();
    expect(sim.engine.devices(id)[0]).toMatchObject({ state: "succeeded", attempts: 3, failures: {} });
    expect(sim.events(id, "device.deferred")).toHaveLength(2);
  });

  it("spends each failure class's own retry budget, with back-off, then fails for good", () => {
    const cases: { code: string; reject?: boolean; cls: string; budget: number }[] = [
      { code: "POLYFLEET_ERR_DOWNLOAD_FAILED", cls: "download", budget: 2 },
      { code: "POLYFLEET_ERR_IMAGE_MISMATCH", cls: "download", budget: 2 },
      { code: "POLYFLEET_ERR_UPDATE_FAILED", cls: "install", budget: 1 },
      { code: "POLYFLEET_ERR_UPDATE_INTERRUPTED", cls: "agent", budget: 2 },
      { code: "POLYFLEET_ERR_UPDATE_TIMEOUT", cls: "timeout", budget: 0 },
      { code: "POLYFLEET_ERR_DOWNGRADE_REFUSED", cls: "refused", budget: 0 },
      { code: "POLYFLEET_ERR_COMMAND_FAILED", reject: true, cls: "agent", budget: 2 },
      { code: "POLYFLEET_ERR_COMMAND_UNSUPPORTED", reject: true, cls: "refused", budget: 0 },
      { code: "POLYFLEET_ERR_MODEL_MISMATCH", reject: true, cls: "refused", budget: 0 },
    ];
    for (const c of cases) {
      const sim = new Sim(fleet(1), {
        behaviour: (): Behaviour =>
          c.reject ? { kind: "reject", code: c.code } : { kind: "fail", code: c.code },
      });
      const id = sim.create({ waves: [{ percent: 100 }] });
      sim.act(id, "start");
      sim.runToEnd();
      const d = sim.engine.devices(id)[0];
      expect(d, c.code).toMatchObject({
        state: "failed",
        attempts: c.budget + 1,
        failureClass: c.cls,
        failures: { [c.cls]: c.budget + 1 },
      });
      const retries = sim.events(id, "device.retrying");
      expect(retries, c.code).toHaveLength(c.budget);
      // Back-off: 30 s × attempts between a failure and the next dispatch.
      const dispatched = sim.events(id, "device.dispatched").map((t) => t.at);
      for (let i = 0; i < retries.length; i++)
        expect((dispatched[i + 1] ?? 0) - (retries[i]?.at ?? 0), c.code).toBeGreaterThanOrEqual(
          30_000 * (i + 1),
        );
    }
  });

  it("retries with budget left and then succeeds", () => {
    const sim = new Sim(fleet(1), {
      behaviour: (_d, attempt): Behaviour =>
        attempt === 1 ? { kind: "fail", code: "POLYFLEET_ERR_DOWNLOAD_FAILED" } : { kind: "ok" },
    });
    const id = sim.create({
      waves: [{ percent: 100 }],
      errorThresholdPct: 0,
      healthGate: { ...GATE, soakMs: 0 },
    });
    sim.act(id, "start");
    sim.runToEnd();
    expect(sim.engine.devices(id)[0]).toMatchObject({
      state: "succeeded",
      attempts: 2,
      failures: { download: 1 },
    });
    // A retried failure is not a failure for the threshold (0% would have halted).
    expect(sim.engine.get(id)?.state).toBe("completed");
  });

  it("skips a device that stays unreachable for deviceTimeoutMs after its wave started", () => {
    const sim = new Sim(fleet(2));
    sim.set("d0001", { reachable: false });
    const id = sim.create({
      waves: [{ percent: 100 }],
      deviceTimeoutMs: 600_000,
      healthGate: { ...GATE, soakMs: 0 },
    });
    sim.act(id, "start");
    sim.run(sim.now + 599_000);
    expect(sim.engine.devices(id).find((d) => d.deviceId === "d0001")).toMatchObject({
      state: "queued",
      reason: "waiting: device unreachable",
    });
    sim.runToEnd();
    expect(sim.engine.devices(id).find((d) => d.deviceId === "d0001")).toMatchObject({
      state: "skipped",
      reason: "unreachable: device unreachable",
      attempts: 0,
    });
    expect(sim.engine.get(id)?.state).toBe("completed");
    expect(sim.dispatches.map((d) => d.deviceId)).toEqual(["d0000"]);
  });

  it("never dispatches to the devices of an offline agent, and starts them when it is back", () => {
    const sim = new Sim(fleet(4, { sites: 2 }));
    sim.setAgent("agent-site1", false);
    const id = sim.create({ waves: [{ percent: 100 }], healthGate: { ...GATE, soakMs: 0 } });
    sim.act(id, "start");
    sim.run(sim.now + 5 * MIN);
    expect(new Set(sim.dispatches.map((d) => d.siteId))).toEqual(new Set(["site0"]));
    expect(
      sim.engine
        .devices(id)
        .filter((d) => d.siteId === "site1")
        .map((d) => d.reason),
    ).toEqual(["waiting: agent agent-site1 offline", "waiting: agent agent-site1 offline"]);
    sim.setAgent("agent-site1", true);
    sim.runToEnd();
    expect(sim.engine.get(id)?.counts.succeeded).toBe(4);
  });

  it("skips a device that already runs the target when its turn comes", () => {
    const sim = new Sim(fleet(2));
    const id = sim.create({ waves: [{ percent: 100 }], healthGate: { ...GATE, soakMs: 0 } });
    sim.set("d0001", { version: "2.0.0" });
    sim.act(id, "start");
    sim.runToEnd();
    expect(sim.engine.devices(id).find((d) => d.deviceId === "d0001")).toMatchObject({
      state: "skipped",
      reason: "already on 2.0.0",
    });
  });

  it("keeps at most concurrencyPerSite devices active per site", () => {
    let maxActive = 0;
    const sim = new Sim(fleet(40, { sites: 2 }), {
      check: (s) => {
        for (const r of s.engine.list()) {
          const bySite = new Map<string, number>();
          for (const d of s.engine.devices(r.id))
            if (["downloading", "installing", "rebooting", "verifying"].includes(d.state))
              bySite.set(d.siteId, (bySite.get(d.siteId) ?? 0) + 1);
          for (const n of bySite.values()) maxActive = Math.max(maxActive, n);
        }
      },
    });
    const id = sim.create({
      waves: [{ percent: 100 }],
      concurrencyPerSite: 3,
      healthGate: { ...GATE, soakMs: 0 },
    });
    sim.act(id, "start");
    sim.runToEnd();
    expect(maxActive).toBe(3);
    expect(sim.engine.get(id)?.counts.succeeded).toBe(40);
  });
});

describe("RolloutEngine: maintenance windows", () => {
  const HOUR = 3_600_000;

  it("starts no device while its windows are closed, and the matching ones when one opens", () => {
    const sim = new Sim(fleet(6, { sites: 2 }), { tickMs: 5000 });
    sim.setWindows([
      {
        id: "w1",
        name: "night",
        matchers: [{ label: "siteId", op: "=", value: "site0" }],
        schedule: { type: "once", start: T0 + 2 * HOUR, end: T0 + 4 * HOUR },
        createdBy: "alice",
      },
    ]);
    const id = sim.create({
      waves: [{ percent: 100 }],
      windowIds: ["w1"],
      healthGate: { ...GATE, soakMs: 0 },
    });
    sim.act(id, "start");
    expect(sim.engine.get(id)?.counts.waitingWindow).toBe(6);
    sim.run(T0 + 2 * HOUR - 1000);
    expect(sim.dispatches).toEqual([]);
    sim.run(T0 + 3 * HOUR);
    expect(new Set(sim.dispatches.map((d) => d.siteId))).toEqual(new Set(["site0"]));
    expect(
      sim.engine
        .devices(id)
        .filter((d) => d.siteId === "site0")
        .every((d) => d.state === "succeeded"),
    ).toBe(true);
    expect(
      sim.engine
        .devices(id)
        .filter((d) => d.siteId === "site1")
        .map((d) => d.state),
    ).toEqual(["waitingWindow", "waitingWindow", "waitingWindow"]);
    sim.run(T0 + 10 * HOUR);
    expect(sim.dispatches).toHaveLength(3);
    expect(sim.engine.get(id)?.state).toBe("running");
  });

  it("never opens an unknown window id", () => {
    const sim = new Sim(fleet(2), { tickMs: MIN });
    const id = sim.create({ waves: [{ percent: 100 }], windowIds: ["gone"] });
    sim.act(id, "start");
    sim.run(T0 + 48 * HOUR);
    expect(sim.dispatches).toEqual([]);
    expect(sim.engine.get(id)?.counts.waitingWindow).toBe(2);
  });

  it("pauses starting devices when a window closes mid-wave, in-flight ones finish", () => {
    const sim = new Sim(fleet(10), { tickMs: 5000 });
    sim.setWindows([
      {
        id: "w1",
        name: "short",
        matchers: [],
        schedule: { type: "once", start: T0, end: T0 + 90_000 },
        createdBy: "alice",
      },
    ]);
    const id = sim.create({ waves: [{ percent: 100 }], windowIds: ["w1"], concurrencyPerSite: 2 });
    sim.act(id, "start");
    sim.run(T0 + HOUR);
    const n = sim.dispatches.length;
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThan(10);
    expect(sim.engine.get(id)?.counts.succeeded).toBe(n);
    expect(sim.engine.get(id)?.counts.waitingWindow).toBe(10 - n);
  });
});

describe("RolloutEngine: two rollouts", () => {
  it("never runs two updates at once on one device across rollouts", () => {
    const sim = new Sim(fleet(12, { sites: 2 }), { tickMs: 1000 });
    const a = sim.create({
      waves: [{ percent: 100 }],
      concurrencyPerSite: 3,
      healthGate: { ...GATE, soakMs: 0 },
    });
    const b = sim.create(
      {
        waves: [{ percent: 100 }],
        concurrencyPerSite: 3,
        target: { kind: "release", version: "3.0.0" },
        healthGate: { ...GATE, soakMs: 0 },
      },
      [release("VVX 450", "3.0.0")],
    );
    sim.act(a, "start");
    sim.act(b, "start");
    const waiting = sim.engine.devices(b).filter((d) => d.reason?.startsWith("another update is running"));
    expect(waiting.length).toBeGreaterThan(0);
    sim.runToEnd();
    expect(sim.engine.get(a)?.state).toBe("completed");
    expect(sim.engine.get(b)?.state).toBe("completed");
    expect(sim.dispatches).toHaveLength(24);
    // The harness throws on any dispatch to a device with an update out; every device ran both, one after the other.
    expect([...sim.devices.values()].every((d) => ["2.0.0", "3.0.0"].includes(d.version))).toBe(true);
  });
});

describe("RolloutEngine: actions", () => {
  it("validates every action against the rollout's state", () => {
    const sim = new Sim(fleet(3), { behaviour: () => ({ kind: "silent" }) });
    const id = sim.create({ waves: [{ percent: 100 }] });
    expectState(() => sim.engine.pause(id, "bob", "x"), "POLYFLEET_ERR_ROLLOUT_STATE", /it is pending/);
    expectState(() => sim.engine.resume(id, "bob", "x"), "POLYFLEET_ERR_ROLLOUT_STATE", /it is pending/);
    expectState(() => sim.engine.retryFailed(id, "bob", "x"), "POLYFLEET_ERR_ROLLOUT_STATE", /it is pending/);
    expectState(() => sim.engine.start("nope", "bob", "x"), "POLYFLEET_ERR_NOT_FOUND");
    sim.act(id, "start");
    expectState(
      () => sim.engine.start(id, "bob", "x"),
      "POLYFLEET_ERR_ROLLOUT_STATE",
      /cannot start .* it is running/,
    );
    expectState(() => sim.engine.resume(id, "bob", "x"), "POLYFLEET_ERR_ROLLOUT_STATE", /it is running/);
    expectState(
      () => sim.engine.retryFailed(id, "bob", "x"),
      "POLYFLEET_ERR_ROLLOUT_STATE",
      /no failed devices/,
    );
    sim.act(id, "pause");
    expectState(() => sim.engine.pause(id, "bob", "x"), "POLYFLEET_ERR_ROLLOUT_STATE", /it is paused/);
    sim.act(id, "cancel");
    for (const a of ["start", "pause", "resume", "cancel", "retryFailed"] as const)
      expectState(() => sim.engine[a](id, "bob", "x"), "POLYFLEET_ERR_ROLLOUT_STATE", /it is cancelled/);
    expectState(
      () =>
        sim.engine.create({
          id,
          spec: spec(),
          preview: sim.preview({}).preview,
          catalogVersion: 1,
          actor: "a",
        }),
      "POLYFLEET_ERR_ROLLOUT_STATE",
      /already exists/,
    );
    expectState(
      () =>
        sim.engine.create({
          id: "empty",
          spec: spec(),
          preview: { targets: [], catalogVersion: 1, waves: [], skipped: [] },
          catalogVersion: 1,
          actor: "a",
        }),
      "POLYFLEET_ERR_BODY_INVALID",
    );
  });

  it("pause stops dispatching, resume continues; transitions carry actor and reason", () => {
    const sim = new Sim(fleet(10));
    const id = sim.create({
      waves: [{ percent: 100 }],
      concurrencyPerSite: 2,
      healthGate: { ...GATE, soakMs: 0 },
    });
    sim.act(id, "start", "go");
    sim.run(sim.now + 10_000);
    const r = sim.act(id, "pause", "change freeze");
    expect(r).toMatchObject({ state: "paused", stateReason: "change freeze" });
    const n = sim.dispatches.length;
    sim.run(sim.now + 30 * MIN);
    expect(sim.dispatches).toHaveLength(n);
    expect(sim.engine.get(id)?.counts.succeeded).toBe(n);
    sim.act(id, "resume", "freeze over");
    sim.runToEnd();
    expect(sim.engine.get(id)?.state).toBe("completed");
    expect(sim.engine.get(id)?.stateReason).toBeUndefined();
    const ev = sim.events(id).filter((t) => ["started", "paused", "resumed"].includes(t.event));
    expect(ev.map((t) => [t.event, t.actor, t.reason])).toEqual([
      ["started", "alice", "go"],
      ["paused", "alice", "change freeze"],
      ["resumed", "alice", "freeze over"],
    ]);
  });

  it("cancel skips the waiting devices and keeps tracking the active ones", () => {
    const sim = new Sim(fleet(10));
    const id = sim.create({ waves: [{ count: 2 }, { percent: 100 }], concurrencyPerSite: 2 });
    sim.act(id, "start");
    sim.run(sim.now + 15_000);
    const r = sim.act(id, "cancel", "wrong release");
    expect(r).toMatchObject({ state: "cancelled", stateReason: "wrong release" });
    expect(r.counts.skipped).toBe(8);
    expect(sim.engine.devices(id).filter((d) => d.state === "skipped")[0]?.reason).toBe(
      "cancelled: wrong release",
    );
    expect((r.counts.installing ?? 0) + (r.counts.downloading ?? 0)).toBe(2);
    sim.runToEnd();
    expect(sim.engine.get(id)?.counts).toMatchObject({ succeeded: 2, skipped: 8 });
    expect(sim.engine.get(id)?.state).toBe("cancelled");
    expect(sim.dispatches).toHaveLength(2);
  });

  it("resume after a threshold halt accepts the failures so far and continues the wave", () => {
    const sim = new Sim(fleet(20), {
      behaviour: (d, attempt): Behaviour =>
        d === "d0003" || (d === "d0007" && attempt === 1)
          ? { kind: "fail", code: "POLYFLEET_ERR_UPDATE_FAILED" }
          : { kind: "ok" },
    });
    const id = sim.create({
      waves: [{ percent: 100 }],
      concurrencyPerSite: 20,
      errorThresholdPct: 10,
      retries: { download: 0, install: 0, reboot: 0, verify: 0, timeout: 0, agent: 0, refused: 0 },
      healthGate: { ...GATE, soakMs: 0 },
    });
    sim.act(id, "start");
    sim.runToEnd();
    // 2 of 20 failed = 10%, not > 10%: completed with failures.
    expect(sim.engine.get(id)).toMatchObject({ state: "completed", counts: { failed: 2, succeeded: 18 } });
    // Retry the failed ones: d0007 now succeeds, d0003 fails again (1/20 = 5%).
    const r = sim.act(id, "retryFailed", "vendor fixed the server");
    expect(r.state).toBe("running");
    expect(sim.engine.devices(id).find((d) => d.deviceId === "d0003")).toMatchObject({ failures: {} });
    sim.runToEnd();
    expect(sim.engine.get(id)).toMatchObject({ state: "completed", counts: { failed: 1, succeeded: 19 } });
    expect(sim.engine.devices(id).find((d) => d.deviceId === "d0003")).toMatchObject({
      attempts: 2,
      state: "failed",
    });
    expect(sim.engine.devices(id).find((d) => d.deviceId === "d0007")).toMatchObject({
      attempts: 2,
      state: "succeeded",
    });
    expect(sim.events(id, "retried")).toHaveLength(1);
  });

  it("halted by the threshold: resume continues with the failures accepted; a restart keeps them accepted", () => {
    const bad = new Set(["d0000", "d0001", "d0002"]);
    const sim = new Sim(fleet(30), {
      tickMs: 2000,
      behaviour: (d): Behaviour =>
        bad.has(d) ? { kind: "fail", code: "POLYFLEET_ERR_UPDATE_FAILED" } : { kind: "ok" },
    });
    const devices = sim.preview({ waves: [{ percent: 100 }] }).preview.waves[0]?.devices ?? [];
    // Put the bad devices first so they trip the threshold early.
    const ordered = [...devices].sort((a, b) => Number(bad.has(b.deviceId)) - Number(bad.has(a.deviceId)));
    const p = sim.preview({ waves: [{ percent: 100 }] }).preview;
    const id = sim.create(
      {
        waves: [{ percent: 100 }],
        concurrencyPerSite: 3,
        errorThresholdPct: 5,
        retries: { download: 0, install: 0, reboot: 0, verify: 0, timeout: 0, agent: 0, refused: 0 },
        healthGate: { ...GATE, soakMs: 0 },
      },
      undefined,
      { ...p, waves: [{ index: 0, name: "all", devices: ordered }] },
    );
    sim.act(id, "start");
    sim.runToEnd();
    expect(sim.engine.get(id)).toMatchObject({ state: "halted", counts: { failed: 3 } });
    expect(sim.engine.get(id)?.stateReason).toBe("error threshold exceeded: failures 1/3 = 33.3% > 5%");
    expect(sim.engine.get(id)?.waves[0]?.state).toBe("failed");
    sim.act(id, "resume", "known bad units");
    expect(sim.engine.get(id)?.waves[0]?.state).toBe("running");
    sim.run(sim.now + 2 * MIN);
    sim.restart();
    sim.runToEnd();
    expect(sim.engine.get(id)).toMatchObject({ state: "completed", counts: { failed: 3, succeeded: 27 } });
    expect([...sim.dispatchCount().values()].every((n) => n === 1)).toBe(true);
  });

  it("resume after a failed health gate moves on to the next wave", () => {
    const sim = new Sim(fleet(10), { tickMs: 1000 });
    const id = sim.create({ waves: [{ count: 2 }, { percent: 100 }], healthGate: GATE });
    sim.act(id, "start");
    sim.run(sim.now + 10 * MIN, () => sim.engine.get(id)?.waves[0]?.state === "soaking");
    const dev = sim.engine.devices(id).find((d) => d.wave === 0)?.deviceId ?? "";
    sim.engine.onAlert(alert(dev, sim.now));
    sim.drain();
    const r = sim.engine.get(id);
    expect(r?.state).toBe("halted");
    expect(r?.stateReason).toBe(`health gate of wave 1: device ${dev}: new critical alert status-item-down`);
    expect(r?.waves[0]).toMatchObject({ state: "failed", reason: r?.stateReason });
    sim.act(id, "resume", "alert was a false positive");
    expect(sim.engine.get(id)?.currentWave).toBe(1);
    expect(sim.engine.get(id)?.waves.map((w) => w.state)).toEqual(["failed", "running"]);
    sim.runToEnd();
    expect(sim.engine.get(id)?.state).toBe("completed");
  });

  it("drain and get return copies", () => {
    const sim = new Sim(fleet(2));
    const id = sim.create({ waves: [{ percent: 100 }] });
    const r = sim.engine.get(id);
    if (r) r.state = "cancelled";
    const d = sim.engine.devices(id)[0];
    if (d) d.failures.x = 1;
    expect(sim.engine.get(id)?.state).toBe("pending");
    expect(sim.engine.devices(id)[0]?.failures).toEqual({});
  });
});

describe("RolloutEngine: health gate", () => {
  function soaking(input: Parameters<Sim["create"]>[0] = {}) {
    const sim = new Sim(fleet(10), { tickMs: 1000 });
    const id = sim.create({ waves: [{ count: 3 }, { percent: 100 }], healthGate: GATE, ...input });
    sim.act(id, "start");
    sim.run(sim.now + 10 * MIN, () => sim.engine.get(id)?.waves[0]?.state === "soaking");
    expect(sim.engine.get(id)?.waves[0]?.state).toBe("soaking");
    const dev = sim.engine.devices(id).find((d) => d.wave === 0)?.deviceId ?? "";
    return { sim, id, dev };
  }

  it("holds the next wave for the soak and passes it", () => {
    const { sim, id } = soaking();
    const finishedAt = sim.engine.get(id)?.waves[0]?.finishedAt ?? 0;
    sim.run(finishedAt + GATE.soakMs - 1000);
    expect(sim.engine.get(id)?.waves[0]?.state).toBe("soaking");
    sim.run(finishedAt + GATE.soakMs + 1000);
    expect(sim.engine.get(id)?.waves.map((w) => w.state)).toEqual(["passed", "running"]);
  });

  it("fails on a new critical alert of a wave device, not on an older one or a lesser severity", () => {
    const { sim, id, dev } = soaking();
    const startedAt = sim.engine.get(id)?.waves[0]?.startedAt ?? 0;
    sim.engine.onAlert(alert(dev, startedAt - 1000));
    sim.engine.onAlert(alert(dev, sim.now, "major"));
    sim.engine.onAlert(alert("d9999", sim.now));
    sim.run(sim.now + 2000);
    expect(sim.engine.get(id)?.state).toBe("running");
    sim.engine.onAlert(alert(dev, sim.now));
    sim.drain();
    expect(sim.engine.get(id)?.state).toBe("halted");
    expect(sim.events(id, "wave.failed")[0]).toMatchObject({ wave: 0, actor: ROLLOUT_SYSTEM_ACTOR });
  });

  it("fails at soak start on a critical alert raised while the wave ran", () => {
    const sim = new Sim(fleet(10), { tickMs: 1000 });
    const id = sim.create({ waves: [{ count: 3 }, { percent: 100 }], healthGate: GATE });
    sim.act(id, "start");
    const dev = sim.engine.devices(id).find((d) => d.wave === 0)?.deviceId ?? "";
    sim.run(sim.now + 5000);
    sim.engine.onAlert(alert(dev, sim.now));
    sim.runToEnd();
    expect(sim.engine.get(id)?.state).toBe("halted");
    expect(sim.engine.get(id)?.stateReason).toMatch(new RegExp(`device ${dev}: new critical alert`));
    expect(
      sim.dispatches.every((d) => sim.engine.devices(id).find((x) => x.deviceId === d.deviceId)?.wave === 0),
    ).toBe(true);
  });

  it("ignores critical alerts when noNewCriticalAlerts is off", () => {
    const { sim, id, dev } = soaking({ healthGate: { ...GATE, noNewCriticalAlerts: false } });
    sim.engine.onAlert(alert(dev, sim.now));
    sim.run(sim.now + GATE.soakMs + 2000);
    expect(sim.engine.get(id)?.waves[0]?.state).toBe("passed");
  });

  it("fails when a device of the wave goes back to the old version", () => {
    const { sim, id, dev } = soaking();
    sim.set(dev, { version: "1.0.0" });
    sim.drain();
    const r = sim.engine.get(id);
    expect(r?.state).toBe("halted");
    expect(r?.stateReason).toBe(`health gate of wave 1: device ${dev}: reports 1.0.0, expected 2.0.0`);
  });

  it("fails when a device is unreachable at the end of the soak, not for a late record during it", () => {
    const { sim, id, dev } = soaking();
    sim.set(dev, { reachable: false });
    sim.drain();
    expect(sim.engine.get(id)?.state).toBe("running");
    sim.run(sim.now + GATE.soakMs + 2000);
    const r = sim.engine.get(id);
    expect(r?.state).toBe("halted");
    expect(r?.stateReason).toBe(`health gate of wave 1: device ${dev}: unreachable at the end of the soak`);
    // Back before the end: the wave passes.
    const again = soaking();
    again.sim.set(again.dev, { reachable: false });
    again.sim.run(again.sim.now + GATE.soakMs / 2);
    again.sim.set(again.dev, { reachable: true });
    again.sim.run(again.sim.now + GATE.soakMs + 2000);
    expect(again.sim.engine.get(again.id)?.waves[0]?.state).toBe("passed");
  });

  it("ignores a reading taken before the device finished (the store's record fed again after a restart)", () => {
    const { sim, id, dev } = soaking();
    const finishedAt = sim.engine.devices(id).find((d) => d.deviceId === dev)?.finishedAt ?? 0;
    sim.engine.onDevice({
      ...sim.record(sim.device(dev)),
      softwareVersion: "1.0.0",
      lastSeen: finishedAt - 1000,
    });
    sim.drain();
    expect(sim.engine.get(id)?.state).toBe("running");
    sim.set(dev, { version: "1.0.0" });
    sim.drain();
    expect(sim.engine.get(id)?.state).toBe("halted");
  });

  it("a paused rollout still watches the gate, and does not advance", () => {
    const { sim, id, dev } = soaking();
    sim.act(id, "pause", "hold");
    sim.run(sim.now + GATE.soakMs + 60_000);
    expect(sim.engine.get(id)?.waves[0]?.state).toBe("soaking");
    sim.set(dev, { version: "1.0.0" });
    sim.drain();
    expect(sim.engine.get(id)?.state).toBe("halted");
  });
});

describe("commandIdFor", () => {
  it("is <rollout>.<device>.<attempt> when valid, else a stable hash form", () => {
    expect(commandIdFor("r1", "0004f2aabbcc", 3)).toBe("r1.0004f2aabbcc.3");
    const long = commandIdFor("9b2c6f0e-1111-4222-8333-444455556666", `ip-${"1".repeat(120)}`, 1);
    expect(long).toMatch(/^fw\.[0-9a-f]{16}\.1$/);
    expect(commandIdFor("9b2c6f0e-1111-4222-8333-444455556666", `ip-${"1".repeat(120)}`, 1)).toBe(long);
    expect(commandIdFor("r", "d", 1)).toMatch(/^fw\.[0-9a-f]{16}\.1$/);
  });
});

describe("RolloutEngine: load", () => {
  it("restores counts from the devices and keeps active devices' commands", () => {
    const sim = new Sim(fleet(4), { behaviour: () => ({ kind: "silent" }) });
    const id = sim.create({ waves: [{ percent: 100 }], concurrencyPerSite: 2 });
    sim.act(id, "start");
    const stored = [...sim.storedDevices.values()];
    const rollout = { ...(sim.storedRollouts.get(id) as NonNullable<ReturnType<typeof sim.engine.get>>) };
    rollout.counts = { queued: 99 };
    const e = new RolloutEngine({ clock: { now: () => sim.now }, sameVersion });
    e.load([rollout], stored);
    expect(e.get(id)?.counts).toMatchObject({ queued: 2, downloading: 2 });
    const out = e.drain();
    expect(out.rollouts.map((r) => r.id)).toEqual([id]);
    expect(out.dispatches).toEqual([]);
    // Only the two queued devices may start; the active ones are not sent again.
    for (const d of sim.devices.values()) e.onDevice(sim.record(d));
    e.tick();
    expect(e.drain().dispatches).toEqual([]);
    expect(
      e
        .devices(id)
        .filter((d) => d.state === "downloading")
        .map((d) => d.attempts),
    ).toEqual([1, 1]);
  });
});
