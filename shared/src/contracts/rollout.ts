import { z } from "zod";
import { DeviceFamily, DeviceId, EpochMs, TopicId } from "./common.js";

/**
 * Firmware rollouts: the API bodies, the persisted rollout and per-device records, and the notification of a
 * transition. The planning and the state machines live in collector/src/core/rollouts (pure); these are the
 * shapes that cross process boundaries (REST API, SQL rows, MQTT notifications).
 */

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, "sha256 must be 64 lowercase hex digits");
const ImageFileName = z.string().regex(/^[A-Za-z0-9._-]{1,200}$/, "image file name: A-Z a-z 0-9 . _ -");

/** A release resolved from the signed catalog for one model: what the devices of that model move to. */
export const RolloutTargetRelease = z.object({
  family: DeviceFamily,
  model: z.string().min(1),
  version: z.string().min(1),
  build: z.string().optional(),
  image: z.object({ fileName: ImageFileName, length: z.int().positive(), sha256: Sha256 }),
  /** The catalog marks this release as an explicit, signed downgrade: it may go below the running version. */
  downgrade: z.boolean().default(false),
});
export type RolloutTargetRelease = z.infer<typeof RolloutTargetRelease>;

/** What to roll out: one catalog release (by version, for the models it exists for), or the approved baseline. */
export const RolloutTarget = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("release"),
    version: z.string().min(1),
    /** Restrict to these models (default: every model the release exists for). */
    models: z.array(z.string().min(1)).optional(),
  }),
  z.strictObject({ kind: z.literal("baseline") }),
]);
export type RolloutTarget = z.infer<typeof RolloutTarget>;

/** Which devices: every filter given must match (AND); values within one filter are alternatives (OR). */
export const DeviceSelection = z.strictObject({
  sites: z.array(TopicId).optional(),
  models: z.array(z.string().min(1)).optional(),
  /** Current software versions. */
  versions: z.array(z.string().min(1)).optional(),
  /** Every listed tag must be on the device. */
  tags: z.array(z.string().min(1)).optional(),
  deviceIds: z.array(DeviceId).optional(),
});
export type DeviceSelection = z.infer<typeof DeviceSelection>;

/**
 * One wave: `percent` is the cumulative share of the selected devices reached at the end of the wave
 * (canary 1, then 10, 50, 100); `count` is the number of devices this wave adds. Each wave has at least one
 * device; the last wave always takes every device left.
 */
export const WaveSpec = z.union([
  z.strictObject({ name: z.string().min(1).max(64).optional(), percent: z.number().gt(0).max(100) }),
  z.strictObject({ name: z.string().min(1).max(64).optional(), count: z.int().positive() }),
]);
export type WaveSpec = z.infer<typeof WaveSpec>;

export const HealthGate = z.strictObject({
  /** How long a finished wave's devices must stay healthy before the next wave starts. */
  soakMs: z
    .int()
    .min(0)
    .max(7 * 24 * 3_600_000)
    .default(600_000),
  /** Devices must be reachable and report the target version for the whole soak. */
  requireTargetVersion: z.boolean().default(true),
  /** No new critical alert on the wave's devices from the wave's start to the end of the soak. */
  noNewCriticalAlerts: z.boolean().default(true),
});
export type HealthGate = z.infer<typeof HealthGate>;

/** Failure classes: each has its own retry budget. */
export const FailureClass = z.enum([
  "download",
  "install",
  "reboot",
  "verify",
  "timeout",
  "agent",
  "refused",
]);
export type FailureClass = z.infer<typeof FailureClass>;

export const RetryPolicy = z.strictObject({
  download: z.int().min(0).max(10).default(2),
  install: z.int().min(0).max(10).default(1),
  reboot: z.int().min(0).max(10).default(0),
  verify: z.int().min(0).max(10).default(0),
  timeout: z.int().min(0).max(10).default(0),
  agent: z.int().min(0).max(10).default(2),
  refused: z.int().min(0).max(10).default(0),
});
export type RetryPolicy = z.infer<typeof RetryPolicy>;

/** `POST /api/v1/rollouts` (and `/api/v1/rollouts/preview`): the rollout to create. */
export const RolloutCreate = z.strictObject({
  name: z.string().min(1).max(200),
  reason: z.string().min(1).max(2000),
  target: RolloutTarget,
  selection: DeviceSelection.default({}),
  waves: z
    .array(WaveSpec)
    .min(1)
    .max(20)
    .default([{ percent: 1 }, { percent: 10 }, { percent: 50 }, { percent: 100 }]),
  /** Devices updating at once per site. */
  concurrencyPerSite: z.int().min(1).max(10_000).default(5),
  /** Maintenance windows (ids) a device must be inside to start; empty = any time. */
  windowIds: z.array(z.string().min(1)).default([]),
  healthGate: HealthGate.default({ soakMs: 600_000, requireTargetVersion: true, noNewCriticalAlerts: true }),
  /** Halt when failed devices exceed this share (percent) of the devices started so far. */
  errorThresholdPct: z.number().min(0).max(100).default(5),
  /** Time a device may take from dispatch to verified. */
  deviceTimeoutMs: z.int().min(10_000).max(7_200_000).default(1_800_000),
  retries: RetryPolicy.default({
    download: 2,
    install: 1,
    reboot: 0,
    verify: 0,
    timeout: 0,
    agent: 2,
    refused: 0,
  }),
  /** How long to wait before trying a device that was in a call again. */
  inCallRetryMs: z.int().min(1000).max(3_600_000).default(60_000),
});
export type RolloutCreate = z.infer<typeof RolloutCreate>;
export type RolloutCreateInput = z.input<typeof RolloutCreate>;

export const RolloutState = z.enum(["pending", "running", "paused", "halted", "completed", "cancelled"]);
export type RolloutState = z.infer<typeof RolloutState>;

export const WaveState = z.enum(["pending", "running", "soaking", "passed", "failed"]);
export type WaveState = z.infer<typeof WaveState>;

export const WaveRecord = z.object({
  index: z.int().nonnegative(),
  name: z.string(),
  size: z.int().nonnegative(),
  state: WaveState,
  startedAt: EpochMs.optional(),
  /** When every device of the wave was terminal (the soak starts). */
  finishedAt: EpochMs.optional(),
  /** When the health gate passed or failed. */
  gatedAt: EpochMs.optional(),
  reason: z.string().optional(),
});
export type WaveRecord = z.infer<typeof WaveRecord>;

/** A rollout as stored and served (`GET /api/v1/rollouts/:id`). */
export const Rollout = z.object({
  id: z.string().min(1),
  name: z.string(),
  reason: z.string(),
  spec: RolloutCreate,
  /** The catalog release per model, resolved and verified when the rollout was created. */
  targets: z.array(RolloutTargetRelease),
  /** Version of the signed catalog the targets came from. */
  catalogVersion: z.int().nonnegative(),
  state: RolloutState,
  /** Why the rollout is halted/paused/cancelled. */
  stateReason: z.string().optional(),
  waves: z.array(WaveRecord),
  /** Index of the wave running or soaking (or the last one once completed). */
  currentWave: z.int().nonnegative(),
  createdBy: z.string(),
  createdAt: EpochMs,
  updatedAt: EpochMs,
  startedAt: EpochMs.optional(),
  endedAt: EpochMs.optional(),
  counts: z.record(z.string(), z.int().nonnegative()),
});
export type Rollout = z.infer<typeof Rollout>;

export const RolloutDeviceState = z.enum([
  "queued",
  "waitingWindow",
  "deferred",
  "downloading",
  "installing",
  "rebooting",
  "verifying",
  "succeeded",
  "failed",
  "skipped",
]);
export type RolloutDeviceState = z.infer<typeof RolloutDeviceState>;

/** Terminal device states: nothing more happens to the device in this rollout (retry-failed aside). */
export const TERMINAL_DEVICE_STATES: ReadonlySet<RolloutDeviceState> = new Set([
  "succeeded",
  "failed",
  "skipped",
]);
/** States in which an update command is out at the device (never a second one). */
export const ACTIVE_DEVICE_STATES: ReadonlySet<RolloutDeviceState> = new Set([
  "downloading",
  "installing",
  "rebooting",
  "verifying",
]);

/** One device's progress in one rollout (`GET /api/v1/rollouts/:id/devices`). */
export const RolloutDevice = z.object({
  rolloutId: z.string().min(1),
  deviceId: DeviceId,
  siteId: TopicId,
  agentId: TopicId,
  model: z.string(),
  wave: z.int().nonnegative(),
  /** Position within the rollout's plan (stable order). */
  order: z.int().nonnegative(),
  fromVersion: z.string().optional(),
  targetVersion: z.string(),
  state: RolloutDeviceState,
  reason: z.string().optional(),
  failureClass: FailureClass.optional(),
  /** Update commands sent to this device (each with its own command id). */
  attempts: z.int().nonnegative(),
  /** Failures per class, against the retry policy. */
  failures: z.record(z.string(), z.int().nonnegative()),
  commandId: z.string().optional(),
  dispatchedAt: EpochMs.optional(),
  /** Not before this time (deferred in a call, retry back-off). */
  notBefore: EpochMs.optional(),
  reportedVersion: z.string().optional(),
  updatedAt: EpochMs,
  finishedAt: EpochMs.optional(),
});
export type RolloutDevice = z.infer<typeof RolloutDevice>;

/** `POST /api/v1/rollouts/:id/{start,pause,resume,cancel,retry-failed}`. */
export const RolloutAction = z.strictObject({ reason: z.string().min(1).max(2000) });
export type RolloutAction = z.infer<typeof RolloutAction>;

/** The dry run: every wave and its devices, before anything starts. */
export const RolloutPreview = z.object({
  targets: z.array(RolloutTargetRelease),
  catalogVersion: z.int().nonnegative(),
  waves: z.array(
    z.object({
      index: z.int().nonnegative(),
      name: z.string(),
      devices: z.array(
        z.object({
          deviceId: DeviceId,
          siteId: TopicId,
          model: z.string(),
          fromVersion: z.string().optional(),
          targetVersion: z.string(),
        }),
      ),
    }),
  ),
  /** Selected devices that will not be updated, with why (already current, no release for the model...). */
  skipped: z.array(z.object({ deviceId: DeviceId, model: z.string().optional(), reason: z.string() })),
});
export type RolloutPreview = z.infer<typeof RolloutPreview>;

/** Published on `polyfleet/v1/rollouts/<id>` and the SSE stream on every rollout transition. */
export const RolloutNotification = z.object({
  v: z.literal(1),
  rolloutId: z.string(),
  name: z.string(),
  ts: EpochMs,
  /** created, started, paused, resumed, cancelled, halted, completed, wave.started, wave.passed, wave.failed, retried. */
  event: z.string(),
  state: RolloutState,
  wave: z.int().nonnegative().optional(),
  actor: z.string(),
  reason: z.string().optional(),
  counts: z.record(z.string(), z.int().nonnegative()),
});
export type RolloutNotification = z.infer<typeof RolloutNotification>;
