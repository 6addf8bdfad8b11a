import type { ErrorCode, UpdatePhase } from "@polyfleet/shared";
import type { UpdateFamily } from "../ports/driver.js";

/** The image a firmware update installs, as the command names it. */
export interface UpdateImage {
  url: string;
  fileName: string;
  length: number;
  sha256: string;
}

/** How an update ended. */
export interface UpdateOutcome {
  code?: ErrorCode;
  reason?: string;
  reportedVersion?: string;
}

/**
 * One firmware update as the journal keeps it: enough to answer a repeated command without pushing twice,
 * and to end the update in a known state after an agent restart. `previousConfig` holds the device's own
 * values of the parameters the agent changed (never secrets).
 */
export interface UpdateRecord {
  commandId: string;
  /** The device id of the command (the MAC once known). */
  deviceId: string;
  /** The id the agent schedules the device under (`ip-<address>` for configured devices). */
  scheduledId: string;
  rolloutId?: string;
  family: UpdateFamily;
  model?: string;
  targetVersion: string;
  image: UpdateImage;
  phase: UpdatePhase;
  /** Version and build running when the update was accepted. */
  fromVersion?: { version: string; build?: string };
  previousConfig?: Record<string, string>;
  configRestored: boolean;
  acceptedAt: number;
  deadline: number;
  updatedAt: number;
  /** When the device was told to look for the update. */
  triggeredAt?: number;
  /** When the provisioning server finished sending the image to the device (first complete transfer). */
  imageServedAt?: number;
  outcome?: UpdateOutcome;
}

const TERMINAL: ReadonlySet<UpdatePhase> = new Set<UpdatePhase>(["succeeded", "failed"]);
const POINTED: ReadonlySet<UpdatePhase> = new Set<UpdatePhase>(["installing", "rebooting", "verifying"]);

/** Succeeded or failed: nothing more happens to the device. */
export function isTerminal(phase: UpdatePhase): boolean {
  return TERMINAL.has(phase);
}

/** The device has been pointed at the provisioning server (its config changed, the update triggered). */
export function isPointed(phase: UpdatePhase): boolean {
  return POINTED.has(phase);
}

/** Phase order, for the monotonic progress sequence. */
export const PHASE_ORDER: readonly UpdatePhase[] = [
  "accepted",
  "downloading",
  "staged",
  "installing",
  "rebooting",
  "verifying",
  "succeeded",
  "failed",
];

/** What a repeated command with the same id gets back: the update's state, nothing pushed again. */
export function acceptedAnswer(r: UpdateRecord): Record<string, unknown> {
  return {
    accepted: true,
    deviceId: r.deviceId,
    commandId: r.commandId,
    phase: r.phase,
    targetVersion: r.targetVersion,
    ...(r.rolloutId ? { rolloutId: r.rolloutId } : {}),
    ...(r.outcome?.code ? { code: r.outcome.code } : {}),
    ...(r.outcome?.reason ? { reason: r.outcome.reason } : {}),
    ...(r.outcome?.reportedVersion ? { reportedVersion: r.outcome.reportedVersion } : {}),
  };
}
