import type {
  DeviceFamily,
  RolloutCreate,
  RolloutPreview,
  RolloutTargetRelease,
  WaveSpec,
} from "@polyfleet/shared";
import { fnv1a32 } from "./hash.js";

/** A device as the planner sees it (from the inventory). */
export interface PlanDevice {
  deviceId: string;
  siteId: string;
  agentId: string;
  family: DeviceFamily;
  model?: string;
  softwareVersion?: string;
  softwareBuild?: string;
  tags: string[];
  reachable: boolean;
  inCall?: boolean;
}

/** Why a device cannot take a target (already current, downgrade refused, below minVersion...) — supplied by the service from the catalog. */
export type Eligibility = (
  device: PlanDevice,
  target: RolloutTargetRelease,
) => { ok: true } | { ok: false; reason: string };

/**
 * A device of a preview wave. `agentId` and `family` ride along (the RolloutPreview contract does not list them
 * yet) so RolloutEngine.create can fill RolloutDevice.agentId before the first reading of the device arrives.
 */
export type PlannedDevice = RolloutPreview["waves"][number]["devices"][number] & {
  agentId?: string;
  family?: DeviceFamily;
};

export interface PlanInput {
  spec: RolloutCreate;
  /** The catalog release per model (one per model; the first one wins when a model is listed twice). */
  targets: RolloutTargetRelease[];
  devices: PlanDevice[];
  eligibility: Eligibility;
  /** Copied into the preview (default 0; the service sets the catalog's version). */
  catalogVersion?: number;
}

/** The version string a release is shown and compared as: VideoOS `version-build`, UC/SNMP the version. */
export function targetVersionOf(t: RolloutTargetRelease): string {
  return t.family === "videoos" && t.build ? `${t.version}-${t.build}` : t.version;
}

/** The version a device runs, in the same form as targetVersionOf (VideoOS version and build joined by `-`). */
export function runningVersionOf(d: {
  family: DeviceFamily;
  softwareVersion?: string | undefined;
  softwareBuild?: string | undefined;
}): string | undefined {
  const v = d.softwareVersion;
  if (!v) return undefined;
  const b = d.softwareBuild;
  return d.family === "videoos" && b && !v.endsWith(`-${b}`) ? `${v}-${b}` : v;
}

function selected(spec: RolloutCreate, d: PlanDevice): boolean {
  const s = spec.selection;
  if (s.deviceIds && !s.deviceIds.includes(d.deviceId)) return false;
  if (s.sites && !s.sites.includes(d.siteId)) return false;
  if (s.models && (d.model === undefined || !s.models.includes(d.model))) return false;
  if (s.versions) {
    const running = runningVersionOf(d);
    const ok =
      (d.softwareVersion !== undefined && s.versions.includes(d.softwareVersion)) ||
      (running !== undefined && s.versions.includes(running));
    if (!ok) return false;
  }
  if (s.tags) for (const t of s.tags) if (!d.tags.includes(t)) return false;
  return true;
}

interface Entry {
  device: PlanDevice;
  target: RolloutTargetRelease;
  hash: number;
  pos: number;
}

function byHash(a: Entry, b: Entry): number {
  if (a.hash !== b.hash) return a.hash - b.hash;
  return a.device.deviceId < b.device.deviceId ? -1 : a.device.deviceId > b.device.deviceId ? 1 : 0;
}

/**
 * Orders the eligible devices so that every prefix is a stratified sample of the fleet: devices are grouped by
 * site and model, each group is ordered by a hash of the device id, and device j of a group of n gets the
 * position (j + offset) / n, where the offset in [0,1) is a hash of the group. Sorting by position spreads each
 * group evenly over the plan, so a 1% canary takes devices from many sites and models, and every wave carries
 * about its share of each group. Deterministic: the same devices give the same order whatever the input order.
 */
function stratify(entries: Entry[]): Entry[] {
  const groups = new Map<string, Entry[]>();
  for (const e of entries) {
    const key = `${e.device.siteId}\u0000${e.device.model ?? ""}`;
    let g = groups.get(key);
    if (!g) {
      g = [];
      groups.set(key, g);
    }
    g.push(e);
  }
  for (const [key, g] of groups) {
    g.sort(byHash);
    const offset = fnv1a32(key) / 4_294_967_296;
    for (let j = 0; j < g.length; j++) (g[j] as Entry).pos = (j + offset) / g.length;
  }
  return entries.sort((a, b) => (a.pos !== b.pos ? a.pos - b.pos : byHash(a, b)));
}

/** Cut points of the waves over `n` devices (WaveSpec semantics); waves left without devices are dropped. */
export function waveBounds(
  specs: readonly WaveSpec[],
  n: number,
): { spec: WaveSpec; start: number; end: number }[] {
  const out: { spec: WaveSpec; start: number; end: number }[] = [];
  let prev = 0;
  for (let i = 0; i < specs.length && prev < n; i++) {
    const w = specs[i] as WaveSpec;
    let end: number;
    if (i === specs.length - 1) end = n;
    // The epsilon keeps 7% of 100 (7.000000000000001 in floating point) at 7.
    else if ("percent" in w) end = Math.ceil((n * w.percent) / 100 - 1e-9);
    else end = prev + w.count;
    end = Math.min(n, Math.max(end, prev + 1));
    out.push({ spec: w, start: prev, end });
    prev = end;
  }
  return out;
}

/**
 * The dry run of a rollout: selects the devices (every filter of `spec.selection` must match; values within a
 * filter are alternatives; versions compare as exact strings, VideoOS also as `version-build`), resolves the
 * target release of each device's model (none: skipped "no release for model X"), asks `eligibility` (refused:
 * skipped with its reason), orders the rest (see stratify) and cuts them into waves: `percent` is the
 * cumulative share reached at the end of a wave (rounded up), `count` the devices a wave adds, each wave gets
 * at least one device while devices remain, the last wave takes the rest, waves left empty are dropped. An
 * unnamed wave is "canary" when it is the first of several and under 5% of the devices, else "wave N"
 * (N = its position, 1-based). Pure and deterministic.
 */
export function planRollout(input: PlanInput): RolloutPreview {
  const { spec, eligibility } = input;
  const targetByModel = new Map<string, RolloutTargetRelease>();
  for (const t of input.targets) if (!targetByModel.has(t.model)) targetByModel.set(t.model, t);

  const skipped: RolloutPreview["skipped"] = [];
  const entries: Entry[] = [];
  const seen = new Set<string>();
  for (const d of input.devices) {
    if (seen.has(d.deviceId)) continue;
    seen.add(d.deviceId);
    if (!selected(spec, d)) continue;
    if (d.model === undefined) {
      skipped.push({ deviceId: d.deviceId, reason: "model unknown: no release can be chosen" });
      continue;
    }
    const target = targetByModel.get(d.model);
    if (!target || target.family !== d.family) {
      skipped.push({ deviceId: d.deviceId, model: d.model, reason: `no release for model ${d.model}` });
      continue;
    }
    const ok = eligibility(d, target);
    if (!ok.ok) {
      skipped.push({ deviceId: d.deviceId, model: d.model, reason: ok.reason });
      continue;
    }
    entries.push({ device: d, target, hash: fnv1a32(d.deviceId), pos: 0 });
  }
  skipped.sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));

  const ordered = stratify(entries);
  const n = ordered.length;
  const bounds = waveBounds(spec.waves, n);
  const used = new Set<RolloutTargetRelease>();
  const waves: RolloutPreview["waves"] = bounds.map((b, index) => {
    const share = (b.end * 100) / n;
    const name =
      b.spec.name ?? (index === 0 && bounds.length > 1 && share < 5 ? "canary" : `wave ${index + 1}`);
    const devices: PlannedDevice[] = [];
    for (let i = b.start; i < b.end; i++) {
      const e = ordered[i] as Entry;
      used.add(e.target);
      const from = runningVersionOf(e.device);
      devices.push({
        deviceId: e.device.deviceId,
        siteId: e.device.siteId,
        model: e.device.model ?? "",
        ...(from ? { fromVersion: from } : {}),
        targetVersion: targetVersionOf(e.target),
        agentId: e.device.agentId,
        family: e.device.family,
      });
    }
    return { index, name, devices };
  });
  return {
    targets: input.targets.filter((t) => used.has(t)),
    catalogVersion: input.catalogVersion ?? 0,
    waves,
    skipped,
  };
}
