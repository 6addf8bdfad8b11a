import { sameRelease as catalogSameRelease, isValidVersion } from "@polyfleet/firmware-catalog";
import type { DeviceUpdateStatus, UpdateFamily } from "../ports/driver.js";

/**
 * Firmware version handling of the update watch: which target strings are valid per family, and whether
 * what a device reports is the target release. The rules are the firmware catalog's (poly-devices.md §5.2):
 *
 * - UC Software: `major.minor.patch.build` with an optional letter revision; a device reports it inside
 *   the application string, "7.2.2.1094 28-Feb-22 15:29" (the build date does not make another release).
 * - VideoOS: `major.minor.patch` plus a separate numeric build; targets are `4.1.0` or `4.1.0-401117`.
 */

/** Whether `target` is a version string the agent can update a device of this family to. */
export function validTargetVersion(family: UpdateFamily, target: string): boolean {
  return isValidVersion(family, target);
}

/** Whether a reported version is the target release; false when either does not parse. */
export function sameRelease(family: UpdateFamily, reported: string, target: string): boolean {
  try {
    return catalogSameRelease(family, reported, target);
  } catch {
    return false;
  }
}

/** `4.1.0-401117` → version and build, as a VideoOS package manifest names them. */
export function splitVideoOsVersion(target: string): { version: string; build?: string } {
  const dash = target.indexOf("-");
  return dash < 0 ? { version: target } : { version: target.slice(0, dash), build: target.slice(dash + 1) };
}

/** A UC version core at the start of the application text (the build date follows it). */
const UC_IN_TEXT = /^(\d{1,12}(?:\.\d{1,12}){2,3})([A-Z]{0,3})(?![\d.])/;

/**
 * The version a device reports, in the form the target uses: UC the version without the build date
 * ("7.2.2.1094"), VideoOS `version-build`. Undefined when the device did not say.
 */
export function reportedVersionOf(family: UpdateFamily, status: DeviceUpdateStatus): string | undefined {
  const v = status.version?.trim();
  if (!v) return undefined;
  if (family === "videoos") return status.build ? `${v}-${status.build}` : v;
  const m = UC_IN_TEXT.exec(v);
  return m ? `${m[1]}${m[2] ?? ""}` : v;
}
