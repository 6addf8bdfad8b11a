import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  bootBounds,
  observeUpdate,
  type WatchContext,
  type WatchState,
} from "../../src/core/update-watch.js";
import type { DeviceUpdateStatus } from "../../src/ports/driver.js";

const UC: WatchContext = { family: "uc", targetVersion: "8.1.0.1000", deadline: 100_000 };
const VOS: WatchContext = { family: "videoos", targetVersion: "4.2.0-420001", deadline: 100_000 };

function uc(version: string, uptimeSec: number): DeviceUpdateStatus {
  return { reachable: true, version: `${version} 01-Jan-24 10:00`, uptimeSec, uptimeResolutionSec: 1 };
}
function vos(version: string, build: string, uptimeSec: number): DeviceUpdateStatus {
  return { reachable: true, version, build, uptimeSec, uptimeResolutionSec: 0.01 };
}
const away: DeviceUpdateStatus = { reachable: false };

/** Runs observations `[at, status]` (reads take 20 ms) and returns the entered phases and the outcome. */
function run(ctx: WatchContext, steps: [number, DeviceUpdateStatus | undefined][]) {
  let state: WatchState = { phase: "installing" };
  const entered: string[] = [];
  for (const [at, status] of steps) {
    const step = observeUpdate(
      state,
      status ? { startedAt: at, endedAt: at + 20, status } : undefined,
      ctx,
      at + 20,
    );
    state = step.state;
    entered.push(...step.entered);
    if (step.outcome) return { entered, outcome: step.outcome };
  }
  return { entered, outcome: undefined };
}

describe("update watch", () => {
  it("succeeds when the phone comes back on the target, seen away or not", () => {
    const ctx = { ...UC, imageServedAt: 10_000 };
    expect(
      run(ctx, [
        [9_000, uc("7.0.0.1", 500)],
        [10_500, away],
        [11_000, uc("8.1.0.1000", 0)],
      ]),
    ).toEqual({
      entered: ["rebooting", "verifying"],
      outcome: { ok: true, reportedVersion: "8.1.0.1000" },
    });
    expect(
      run(ctx, [
        [9_000, uc("7.0.0.1", 500)],
        [15_000, uc("8.1.0.1000", 4)],
      ]).outcome,
    ).toMatchObject({ ok: true });
  });

  it("waits while the phone holds the image but has not rebooted (a call defers it)", () => {
    const ctx = { ...UC, imageServedAt: 10_000 };
    const r = run(ctx, [
      [9_000, uc("7.0.0.1", 500)],
      [11_000, uc("7.0.0.1", 502)],
      [40_000, uc("7.0.0.1", 531)],
    ]);
    expect(r).toEqual({ entered: [], outcome: undefined });
  });

  it("fails a phone that booted after the image went out but runs the old version", () => {
    const ctx = { ...UC, imageServedAt: 10_000 };
    const r = run(ctx, [
      [9_000, uc("7.0.0.1", 500)],
      [13_000, uc("7.0.0.1", 1)],
    ]);
    expect(r.entered).toEqual(["rebooting", "verifying"]);
    expect(r.outcome).toMatchObject({
      ok: false,
      code: "POLYFLEET_ERR_UPDATE_WRONG_VERSION",
      reportedVersion: "7.0.0.1",
    });
  });

  it("does not take a boot close to the image transfer for one after it until the bound is certain", () => {
    // Booted at 10,300 (after the image at 10,000), uptime in whole seconds: the first read cannot tell.
    const ctx = { ...UC, imageServedAt: 10_000 };
    const first = run(ctx, [[10_500, uc("7.0.0.1", 0)]]);
    expect(first.outcome).toBeUndefined();
    // Reads at other phases of the second tighten the bound until it is certainly after 10,000.
    const more = run(ctx, [
      [10_500, uc("7.0.0.1", 0)],
      [11_250, uc("7.0.0.1", 0)],
      [12_200, uc("7.0.0.1", 1)],
    ]);
    expect(more.outcome).toMatchObject({ code: "POLYFLEET_ERR_UPDATE_WRONG_VERSION" });
  });

  it("takes a return after being seen away once the boot may be after the image, not a network blip", () => {
    const ctx = { ...UC, imageServedAt: 10_000 };
    // Away, then back at uptime 0: the bound (9,450 .. 11,570) straddles the transfer: seen away, so a reboot.
    const r = run(ctx, [
      [9_000, uc("7.0.0.1", 500)],
      [10_100, away],
      [10_500, uc("7.0.0.1", 0)],
    ]);
    expect(r.outcome).toMatchObject({ code: "POLYFLEET_ERR_UPDATE_WRONG_VERSION" });
    // Away for a moment but up since long before: waits.
    const blip = run(ctx, [
      [9_000, uc("7.0.0.1", 500)],
      [10_100, away],
      [10_500, uc("7.0.0.1", 501)],
    ]);
    expect(blip.outcome).toBeUndefined();
    expect(blip.entered).toEqual(["rebooting"]);
  });

  it("tells the VideoOS trigger reboot (before the image) from the update reboot (after)", () => {
    const ctx = { ...VOS, imageServedAt: 20_000 };
    const before: [number, DeviceUpdateStatus][] = [
      [10_000, vos("4.1.0", "401117", 3000)],
      [15_100, away],
      // Back from the trigger reboot at 15,300, before the image went out at 20,000.
      [19_000, vos("4.1.0", "401117", 3.7)],
    ];
    expect(run({ ...ctx, imageServedAt: undefined }, before).outcome).toBeUndefined();
    expect(run(ctx, before).outcome).toBeUndefined();
    const r = run(ctx, [...before, [20_100, away], [21_000, vos("4.1.0", "401117", 0.6)]]);
    expect(r.outcome).toMatchObject({
      code: "POLYFLEET_ERR_UPDATE_WRONG_VERSION",
      reportedVersion: "4.1.0-401117",
    });
    const ok = run(ctx, [...before, [21_000, vos("4.2.0", "420001", 0.6)]]);
    expect(ok.outcome).toEqual({ ok: true, reportedVersion: "4.2.0-420001" });
  });

  it("times out with a reason for where it stopped", () => {
    const ctx = { ...UC, deadline: 5_000 };
    expect(
      run(ctx, [
        [1_000, uc("7.0.0.1", 50)],
        [5_000, uc("7.0.0.1", 54)],
      ]).outcome,
    ).toMatchObject({
      code: "POLYFLEET_ERR_UPDATE_TIMEOUT",
      reason: "device did not fetch the image from the provisioning server in time",
    });
    const served = { ...ctx, imageServedAt: 2_000 };
    expect(
      run(served, [
        [3_000, away],
        [5_000, undefined],
      ]).outcome,
    ).toMatchObject({
      code: "POLYFLEET_ERR_UPDATE_TIMEOUT",
      reason: "device did not come back from its reboot in time",
    });
    expect(
      run(served, [
        [3_000, uc("7.0.0.1", 100)],
        [5_000, uc("7.0.0.1", 102)],
      ]).outcome,
    ).toMatchObject({
      reason: "device received the image but did not reboot into it in time",
    });
  });

  it("boot bounds always contain the true boot time (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10_000_000 }),
        fc.integer({ min: 0, max: 10_000_000 }),
        fc.integer({ min: 0, max: 500 }),
        fc.constantFrom(1, 0.01),
        (boot, since, latency, res) => {
          const startedAt = boot + since;
          const measuredAt = startedAt + Math.floor(latency / 2);
          const trueUp = (measuredAt - boot) / 1000;
          const uptimeSec = res === 1 ? Math.floor(trueUp) : Math.round(trueUp * 100) / 100;
          const b = bootBounds({
            startedAt,
            endedAt: startedAt + latency,
            status: { reachable: true, uptimeSec, uptimeResolutionSec: res },
          });
          expect(b).toBeDefined();
          expect(b?.lo).toBeLessThanOrEqual(boot);
          expect(b?.hi).toBeGreaterThanOrEqual(boot);
        },
      ),
    );
  });

  it("never succeeds on another version and never fails on the target (property)", () => {
    const status = fc.oneof(
      fc.constant(away),
      fc.record({
        reachable: fc.constant(true),
        version: fc.constantFrom("7.0.0.1", "8.1.0.1000"),
        uptimeSec: fc.integer({ min: 0, max: 100_000 }),
        uptimeResolutionSec: fc.constant(1),
      }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 200_000 }), status), { maxLength: 20 }),
        fc.option(fc.integer({ min: 0, max: 200_000 }), { nil: undefined }),
        (steps, served) => {
          steps.sort((a, b) => a[0] - b[0]);
          let state: WatchState = { phase: "installing" };
          for (const [at, s] of steps) {
            const step = observeUpdate(
              state,
              { startedAt: at, endedAt: at + 5, status: s },
              { ...UC, imageServedAt: served },
              at + 5,
            );
            state = step.state;
            if (step.outcome?.ok) expect(s.version).toBe("8.1.0.1000");
            if (
              step.outcome &&
              !step.outcome.ok &&
              step.outcome.code === "POLYFLEET_ERR_UPDATE_WRONG_VERSION"
            ) {
              expect(s.version).toBe("7.0.0.1");
            }
            if (step.outcome) break;
          }
        },
      ),
    );
  });
});
