import type { CatalogSigned } from "./catalog.js";
import { baselineRelease, releaseVersion } from "./resolve.js";
import { compareReleases, isValidVersion } from "./versions.js";

export type ComplianceStatus = "current" | "behind" | "ahead" | "unknown";

/** A device as the inventory knows it. VideoOS: `softwareVersion` may carry the build (`3.12.0-366027`). */
export interface ComplianceInput {
  deviceId: string;
  siteId?: string;
  family: string;
  model?: string;
  softwareVersion?: string;
}

export interface ComplianceRow {
  deviceId: string;
  siteId?: string;
  model?: string;
  softwareVersion?: string;
  /** The approved version of the device's model (the baseline release's full version). */
  baseline?: string;
  status: ComplianceStatus;
  /** Why the status is unknown. */
  reason?: string;
}

export interface CatalogCompliance {
  counts: Record<ComplianceStatus, number>;
  devices: ComplianceRow[];
}

function statusOf(
  cat: CatalogSigned,
  d: ComplianceInput,
): { status: ComplianceStatus; baseline?: string; reason?: string } {
  if (d.model === undefined) return { status: "unknown", reason: "model unknown" };
  const release = baselineRelease(cat, d.model);
  if (!release) return { status: "unknown", reason: `no baseline for ${d.model}` };
  const baseline = releaseVersion(release);
  if (release.family !== d.family)
    return { status: "unknown", baseline, reason: `baseline is ${release.family}, device is ${d.family}` };
  if (d.softwareVersion === undefined) return { status: "unknown", baseline, reason: "version unknown" };
  if (!isValidVersion(release.family, d.softwareVersion))
    return { status: "unknown", baseline, reason: `version does not parse as ${release.family}` };
  const c = compareReleases(release.family, d.softwareVersion, baseline);
  return { status: c === 0 ? "current" : c < 0 ? "behind" : "ahead", baseline };
}

/**
 * Each device's software against `baseline[model]`: current (the same release: a UC build timestamp is
 * ignored, a VideoOS version without a build matches any build), behind, ahead, or unknown (no model, no
 * baseline for the model, another family, no version, or a version that does not parse).
 */
export function complianceOf(cat: CatalogSigned, devices: readonly ComplianceInput[]): CatalogCompliance {
  const counts: Record<ComplianceStatus, number> = { current: 0, behind: 0, ahead: 0, unknown: 0 };
  const rows = devices.map((d): ComplianceRow => {
    const s = statusOf(cat, d);
    counts[s.status] += 1;
    return {
      deviceId: d.deviceId,
      ...(d.siteId !== undefined ? { siteId: d.siteId } : {}),
      ...(d.model !== undefined ? { model: d.model } : {}),
      ...(d.softwareVersion !== undefined ? { softwareVersion: d.softwareVersion } : {}),
      ...(s.baseline !== undefined ? { baseline: s.baseline } : {}),
      status: s.status,
      ...(s.reason !== undefined ? { reason: s.reason } : {}),
    };
  });
  return { counts, devices: rows };
}
