import type { ErrorCode } from "@polyfleet/shared";
import type { DeviceUpdateStatus, UpdateFamily } from "../ports/driver.js";
import { reportedVersionOf, sameRelease } from "./update-version.js";

/**
 * The update watch (pure): from periodic status reads of a device that was pointed at the provisioning
 * server, decide when it is rebooting, back, and on which version.
 *
 * A reboot "into the image" is a boot that certainly happened after the provisioning server finished
 * sending the image. Each status read bounds the boot time: the device measured `uptimeSec` (± its
 * resolution) somewhere between the request and the answer. Reads of the same boot are intersected, so
 * the bound tightens; a read that does not overlap the current bound is a new boot. This tells the
 * VideoOS trigger reboot (before the image is fetched) from the update reboot (after), and needs no
 * "went away" sample: a 5 s watch can miss a fast reboot entirely.
 *
 * - Reachable and on the target version → succeeded (whatever was or was not seen before).
 * - Booted after the image was served, on another version → failed UPDATE_WRONG_VERSION.
 * - Not done at the deadline → failed UPDATE_TIMEOUT.
 */
export type WatchPhase = "installing" | "rebooting" | "verifying";

export interface WatchState {
  phase: WatchPhase;
  /** Bounds of the boot time of the boot last seen (agent clock, ms). */
  boot?: { lo: number; hi: number } | undefined;
  /** The device was seen away after the image went out. */
  awayAfterServe?: boolean | undefined;
}

export interface WatchObservation {
  /** Agent clock when the status read started and ended. */
  startedAt: number;
  endedAt: number;
  status: DeviceUpdateStatus;
}

export interface WatchContext {
  family: UpdateFamily;
  targetVersion: string;
  deadline: number;
  /** When the image finished going out to this device, if it has. */
  imageServedAt?: number | undefined;
  /** Added to each boot bound for timer granularity (default 50 ms). */
  slackMs?: number;
}

export type WatchOutcome =
  | { ok: true; reportedVersion?: string }
  | { ok: false; code: ErrorCode; reason: string; reportedVersion?: string };

export interface WatchStep {
  state: WatchState;
  /** Phases entered in this step, in order. */
  entered: WatchPhase[];
  outcome?: WatchOutcome;
}

const ORDER: Record<WatchPhase, number> = { installing: 0, rebooting: 1, verifying: 2 };

/** The boot-time bounds one status read gives, or undefined without an uptime. */
export function bootBounds(obs: WatchObservation, slackMs = 50): { lo: number; hi: number } | undefined {
  const up = obs.status.uptimeSec;
  if (up === undefined || !Number.isFinite(up) || up < 0) return undefined;
  const res = Math.max(0, obs.status.uptimeResolutionSec ?? 1);
  return {
    lo: obs.startedAt - (up + res) * 1000 - slackMs,
    hi: obs.endedAt - Math.max(0, up - res) * 1000 + slackMs,
  };
}

/**
 * One watch step: `obs` is the status read of this tick (undefined when the device could not even be
 * looked up), `now` the agent clock.
 */
export function observeUpdate(
  state: WatchState,
  obs: WatchObservation | undefined,
  ctx: WatchContext,
  now: number,
): WatchStep {
  let phase = state.phase;
  let boot = state.boot;
  let away = state.awayAfterServe === true;
  const entered: WatchPhase[] = [];
  const enter = (p: WatchPhase): void => {
    if (ORDER[p] > ORDER[phase]) {
      phase = p;
      entered.push(p);
    }
  };
  const step = (outcome?: WatchOutcome): WatchStep => {
    const next: WatchState = { phase, boot, ...(away ? { awayAfterServe: true } : {}) };
    return outcome ? { state: next, entered, outcome } : { state: next, entered };
  };

  if (obs) {
    const s = obs.status;
    const reported = s.reachable ? reportedVersionOf(ctx.family, s) : undefined;
    if (reported !== undefined && sameRelease(ctx.family, reported, ctx.targetVersion)) {
      // Running the new image means it rebooted into it, seen or not.
      enter("rebooting");
      enter("verifying");
      return step({ ok: true, reportedVersion: reported });
    }
    const served = ctx.imageServedAt;
    if (!s.reachable) {
      if (served !== undefined && obs.startedAt >= served) {
        away = true;
        enter("rebooting");
      }
    } else {
      const b = bootBounds(obs, ctx.slackMs);
      if (b) boot = boot && b.lo <= boot.hi && b.hi >= boot.lo ? intersect(boot, b) : b;
      // Certainly booted after the image went out; or seen away since then and back with a boot that may be
      // after it (a network blip on a device up for long has a boot bound well before).
      const rebooted =
        served !== undefined && boot !== undefined && (boot.lo > served || (away && boot.hi > served));
      if (rebooted && reported !== undefined) {
        enter("rebooting");
        enter("verifying");
        return step({
          ok: false,
          code: "POLYFLEET_ERR_UPDATE_WRONG_VERSION",
          reason: `came back running ${reported}, expected ${ctx.targetVersion}`,
          reportedVersion: reported,
        });
      }
    }
  }
  if (now >= ctx.deadline) {
    const reported = obs?.status.reachable ? reportedVersionOf(ctx.family, obs.status) : undefined;
    return step({
      ok: false,
      code: "POLYFLEET_ERR_UPDATE_TIMEOUT",
      reason: timeoutReason(phase, ctx.imageServedAt !== undefined),
      ...(reported ? { reportedVersion: reported } : {}),
    });
  }
  return step();
}

function intersect(a: { lo: number; hi: number }, b: { lo: number; hi: number }): { lo: number; hi: number } {
  return { lo: Math.max(a.lo, b.lo), hi: Math.min(a.hi, b.hi) };
}

function timeoutReason(phase: WatchPhase, served: boolean): string {
  if (phase === "rebooting") return "device did not come back from its reboot in time";
  if (served) return "device received the image but did not reboot into it in time";
  return "device did not fetch the image from the provisioning server in time";
}
