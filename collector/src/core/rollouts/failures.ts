import type { FailureClass } from "@polyfleet/shared";
import { hex64 } from "./hash.js";

/** What an error code means for the device: a failure of some class, or "in a call, try later". */
export type Outcome = { kind: "failed"; failureClass: FailureClass } | { kind: "deferred" };

const COMMON: Readonly<Record<string, Outcome>> = {
  POLYFLEET_ERR_DEVICE_IN_CALL: { kind: "deferred" },
  POLYFLEET_ERR_DOWNLOAD_FAILED: { kind: "failed", failureClass: "download" },
  POLYFLEET_ERR_IMAGE_MISMATCH: { kind: "failed", failureClass: "download" },
  POLYFLEET_ERR_IMAGE_TOO_LARGE: { kind: "failed", failureClass: "download" },
  POLYFLEET_ERR_UPDATE_TIMEOUT: { kind: "failed", failureClass: "timeout" },
  POLYFLEET_ERR_UPDATE_WRONG_VERSION: { kind: "failed", failureClass: "verify" },
  POLYFLEET_ERR_UPDATE_INTERRUPTED: { kind: "failed", failureClass: "agent" },
  POLYFLEET_ERR_MODEL_MISMATCH: { kind: "failed", failureClass: "refused" },
  POLYFLEET_ERR_DOWNGRADE_REFUSED: { kind: "failed", failureClass: "refused" },
  POLYFLEET_ERR_UPDATE_IN_PROGRESS: { kind: "failed", failureClass: "refused" },
};

const COMMAND_ONLY: Readonly<Record<string, Outcome>> = {
  POLYFLEET_ERR_COMMAND_UNSUPPORTED: { kind: "failed", failureClass: "refused" },
  POLYFLEET_ERR_NOT_FOUND: { kind: "failed", failureClass: "refused" },
  POLYFLEET_ERR_COMMAND_INVALID: { kind: "failed", failureClass: "refused" },
};

/**
 * The outcome of an `update.progress` event with phase `failed`: download errors (DOWNLOAD_FAILED,
 * IMAGE_MISMATCH, IMAGE_TOO_LARGE) are `download`, UPDATE_TIMEOUT `timeout`, UPDATE_WRONG_VERSION `verify`,
 * UPDATE_INTERRUPTED `agent`, MODEL_MISMATCH / DOWNGRADE_REFUSED / UPDATE_IN_PROGRESS `refused`,
 * DEVICE_IN_CALL defers the device; anything else (UPDATE_FAILED, no code) is `install`.
 */
export function progressOutcome(code: string | undefined): Outcome {
  return (code === undefined ? undefined : COMMON[code]) ?? { kind: "failed", failureClass: "install" };
}

/**
 * The outcome of an error answer to the firmwareUpdate command: the progress codes keep their meaning,
 * COMMAND_UNSUPPORTED / NOT_FOUND / COMMAND_INVALID are `refused`, any other error is `agent`.
 */
export function commandErrorOutcome(code: string): Outcome {
  return COMMON[code] ?? COMMAND_ONLY[code] ?? { kind: "failed", failureClass: "agent" };
}

const COMMAND_ID = /^[A-Za-z0-9_.:-]{8,128}$/;

/**
 * The command id of attempt `attempt` on a device: `<rolloutId>.<deviceId>.<attempt>` when that is a valid
 * CommandId (8-128 of A-Z a-z 0-9 _ . : -), else `fw.<64-bit hash of rollout and device>.<attempt>`.
 * Deterministic and unique per attempt, so a command is never sent twice under two ids nor two under one.
 */
export function commandIdFor(rolloutId: string, deviceId: string, attempt: number): string {
  const plain = `${rolloutId}.${deviceId}.${attempt}`;
  return COMMAND_ID.test(plain) ? plain : `fw.${hex64(`${rolloutId}\u0000${deviceId}`)}.${attempt}`;
}
