import { describe, expect, it } from "vitest";
import {
  type PlanDevice,
  planRollout,
  runningVersionOf,
  targetVersionOf,
  waveBounds,
} from "../../../src/core/rollouts/index.js";
import { alwaysEligible, fleet, planDeviceOf, release, spec } from "./harness.js";

function sizes(p: ReturnType<typeof planRollout>): number[] {
  return p.waves.map((w) => w.devices.length);
}

function plan(devices: PlanDevice[], input: Parameters<typeof spec>[0] = {}, eligibility = alwaysEligible) {
  const models = [...new Set(devices.map((d) => d.model ?? ""))];
  return planRollout({ spec: spec(input), targets: models.map((m) => release(m)), devices, eligibility });
}

describe("waveBounds", () => {
  it("percent waves are cumulative shares, rounded up", () => {
    const b = waveBounds([{ percent: 1 }, { percent: 10 }, { percent: 50 }, { percent: 100 }], 1000);
    expect(b.map((x) => x.end - x.start)).toEqual([10, 90, 400, 500]);
  });

  it("gives each wave at least one device while devices remain and drops the empty ones", () => {
    const b = waveBounds([{ percent: 1 }, { percent: 2 }, { percent: 3 }, { percent: 100 }], 3);
    expect(b.map((x) => x.end - x.start)).toEqual([1, 1, 1]);
    expect(waveBounds([{ percent: 50 }, { percent: 100 }], 0)).toEqual([]);
  });

  it("count waves add devices; the last wave takes the rest, whatever it says", () => {
    const b = waveBounds([{ count: 2 }, { count: 5 }, { count: 1 }], 20);
    expect(b.map((x) => x.end - x.start)).toEqual([2, 5, 13]);
    expect(waveBounds([{ count: 50 }, { count: 50 }], 10).map((x) => x.end - x.start)).toEqual([10]);
  });

  it("a percent below the devices already planned still adds one device", () => {
    const b = waveBounds([{ count: 10 }, { percent: 5 }, { percent: 100 }], 100);
    expect(b.map((x) => x.end - x.start)).toEqual([10, 1, 89]);
  });

  it("does not round 7% of 100 up to 8 (floating point)", () => {
    expect(waveBounds([{ percent: 7 }, { percent: 100 }], 100).map((x) => x.end - x.start)).toEqual([7, 93]);
  });
});

describe("planRollout", () => {
  it("plans 1000 devices into the default canary/10/50/100 waves with names", () => {
    const p = plan(fleet(1000, { sites: 10 }).map(planDeviceOf));
    expect(sizes(p)).toEqual([10, 90, 400, 500]);
    expect(p.waves.map((w) => w.name)).toEqual(["canary", "wave 2", "wave 3", "wave 4"]);
    expect(p.waves.map((w) => w.index)).toEqual([0, 1, 2, 3]);
    expect(p.skipped).toEqual([]);
    expect(p.targets.map((t) => t.model)).toEqual(["VVX 450"]);
    const all = p.waves.flatMap((w) => w.devices.map((d) => d.deviceId));
    expect(new Set(all).size).toBe(1000);
    const first = p.waves[0]?.devices[0];
    expect(first).toMatchObject({ fromVersion: "1.0.0", targetVersion: "2.0.0", model: "VVX 450" });
    expect(first).toHaveProperty("agentId");
  });

  it("keeps explicit wave names and names a first wave of 5% or more 'wave 1'", () => {
    const p = plan(fleet(100).map(planDeviceOf), {
      waves: [{ percent: 20 }, { name: "rest", percent: 100 }],
    });
    expect(p.waves.map((w) => w.name)).toEqual(["wave 1", "rest"]);
  });

  it("is deterministic and independent of the input order", () => {
    const devices = fleet(300, { sites: 7, models: ["VVX 450", "Trio 8800"] }).map(planDeviceOf);
    const a = plan(devices);
    const b = plan([...devices].reverse());
    expect(b).toEqual(a);
  });

  it("spreads the canary over sites and models (stratified by site and model)", () => {
    const devices = fleet(1000, { sites: 10, models: ["VVX 450", "Trio 8800"] }).map(planDeviceOf);
    const p = plan(devices);
    const canary = p.waves[0]?.devices ?? [];
    expect(canary).toHaveLength(10);
    expect(new Set(canary.map((d) => d.siteId)).size).toBeGreaterThanOrEqual(6);
    expect(new Set(canary.map((d) => d.model)).size).toBe(2);
    // Every wave carries about its share of each site.
    const wave3 = p.waves[2]?.devices ?? [];
    for (let s = 0; s < 10; s++) {
      const n = wave3.filter((d) => d.siteId === `site${s}`).length;
      expect(n).toBeGreaterThanOrEqual(38);
      expect(n).toBeLessThanOrEqual(42);
    }
  });

  it("applies every selection filter (AND) with alternatives within one (OR)", () => {
    const devices = fleet(40, { sites: 4, models: ["VVX 450", "Trio 8800"] }).map(planDeviceOf);
    for (const [i, d] of devices.entries()) {
      if (i % 2 === 0) d.tags = ["lobby", "floor1"];
      if (i % 5 === 0) d.softwareVersion = "1.5.0";
    }
    const ids = (p: ReturnType<typeof planRollout>) =>
      p.waves.flatMap((w) => w.devices.map((d) => d.deviceId)).sort();
    const bySite = plan(devices, { selection: { sites: ["site0", "site1"] } });
    expect(ids(bySite)).toEqual(
      devices
        .filter((d) => ["site0", "site1"].includes(d.siteId))
        .map((d) => d.deviceId)
        .sort(),
    );
    const byModel = plan(devices, { selection: { models: ["Trio 8800"] } });
    expect(ids(byModel)).toEqual(
      devices
        .filter((d) => d.model === "Trio 8800")
        .map((d) => d.deviceId)
        .sort(),
    );
    const byVersion = plan(devices, { selection: { versions: ["1.5.0"] } });
    expect(ids(byVersion)).toEqual(
      devices
        .filter((d) => d.softwareVersion === "1.5.0")
        .map((d) => d.deviceId)
        .sort(),
    );
    const byTags = plan(devices, { selection: { tags: ["lobby", "floor1"] } });
    expect(ids(byTags)).toHaveLength(20);
    expect(ids(plan(devices, { selection: { tags: ["lobby", "nowhere"] } }))).toEqual([]);
    const both = plan(devices, { selection: { sites: ["site0"], tags: ["lobby"] } });
    expect(ids(both)).toEqual(
      devices
        .filter((d) => d.siteId === "site0" && d.tags.includes("lobby"))
        .map((d) => d.deviceId)
        .sort(),
    );
    const byId = plan(devices, { selection: { deviceIds: ["d0003", "d0007", "nope"] } });
    expect(ids(byId)).toEqual(["d0003", "d0007"]);
  });

  it("skips devices without a release for their model, of unknown model, or refused by eligibility", () => {
    const devices = fleet(6, { models: ["VVX 450"] }).map(planDeviceOf);
    (devices[1] as PlanDevice).model = "CCX 500";
    delete (devices[2] as PlanDevice).model;
    (devices[3] as PlanDevice).softwareVersion = "2.0.0";
    const p = planRollout({
      spec: spec(),
      targets: [release("VVX 450")],
      devices,
      eligibility: (d, t) =>
        d.softwareVersion === t.version
          ? { ok: false, reason: `already on ${t.version}` }
          : d.deviceId === "d0004"
            ? { ok: false, reason: "below minVersion 1.2.0" }
            : { ok: true },
    });
    expect(p.skipped).toEqual([
      { deviceId: "d0001", model: "CCX 500", reason: "no release for model CCX 500" },
      { deviceId: "d0002", reason: "model unknown: no release can be chosen" },
      { deviceId: "d0003", model: "VVX 450", reason: "already on 2.0.0" },
      { deviceId: "d0004", model: "VVX 450", reason: "below minVersion 1.2.0" },
    ]);
    expect(p.waves.flatMap((w) => w.devices.map((d) => d.deviceId)).sort()).toEqual(["d0000", "d0005"]);
  });

  it("plans nothing when every device is skipped, and lists only the releases it uses", () => {
    const devices = fleet(3).map(planDeviceOf);
    const p = planRollout({
      spec: spec(),
      targets: [release("VVX 450"), release("Trio 8800")],
      devices,
      eligibility: () => ({ ok: false, reason: "no" }),
    });
    expect(p.waves).toEqual([]);
    expect(p.targets).toEqual([]);
    expect(p.skipped).toHaveLength(3);
  });

  it("refuses a release of another family for the same model name", () => {
    const devices = fleet(2).map(planDeviceOf);
    const p = planRollout({
      spec: spec(),
      targets: [release("VVX 450", "2.0.0", "videoos")],
      devices,
      eligibility: alwaysEligible,
    });
    expect(p.skipped.map((s) => s.reason)).toEqual([
      "no release for model VVX 450",
      "no release for model VVX 450",
    ]);
  });

  it("shows VideoOS versions as version-build", () => {
    const t = { ...release("G7500", "4.1.0", "videoos"), build: "366027" };
    expect(targetVersionOf(t)).toBe("4.1.0-366027");
    expect(runningVersionOf({ family: "videoos", softwareVersion: "3.12.0", softwareBuild: "1" })).toBe(
      "3.12.0-1",
    );
    expect(runningVersionOf({ family: "videoos", softwareVersion: "3.12.0-1", softwareBuild: "1" })).toBe(
      "3.12.0-1",
    );
    expect(runningVersionOf({ family: "uc", softwareVersion: "7.2.2.1094", softwareBuild: "x" })).toBe(
      "7.2.2.1094",
    );
    expect(runningVersionOf({ family: "uc" })).toBeUndefined();
  });
});
