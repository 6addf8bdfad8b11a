import { z } from "zod";
import { DeviceFamily, DeviceId, Severity, StreamHeader } from "./common.js";
import { DeviceIdentity } from "./telemetry.js";

const DeviceDiscovered = z.object({
  ...StreamHeader,
  type: z.literal("device.discovered"),
  deviceId: DeviceId,
  identity: DeviceIdentity,
  via: z.array(z.enum(["snmp", "https", "http", "config"])).min(1),
});

const DeviceLost = z.object({
  ...StreamHeader,
  type: z.literal("device.lost"),
  deviceId: DeviceId,
  address: z.string(),
  missedPolls: z.int().nonnegative(),
  reason: z.string(),
});

const DeviceReachability = z.object({
  ...StreamHeader,
  type: z.literal("device.reachability"),
  deviceId: DeviceId,
  reachable: z.boolean(),
  missedPolls: z.int().nonnegative(),
});

/** A Poly SNMP notification (POLYCOM-ENDPOINT-MIB trap 67..102) or any other trap. */
const Trap = z.object({
  ...StreamHeader,
  type: z.literal("trap"),
  deviceId: DeviceId.optional(),
  source: z.string(),
  trapOid: z.string().regex(/^\d+(\.\d+)+$/),
  name: z.string(),
  /** problem raises an alert, resolution clears it, info is recorded. */
  kind: z.enum(["problem", "resolution", "info"]),
  severity: Severity,
  varbinds: z.array(z.object({ oid: z.string(), value: z.string() })),
});

export const UpdatePhase = z.enum([
  "accepted",
  "downloading",
  "staged",
  "installing",
  "rebooting",
  "verifying",
  "succeeded",
  "failed",
]);
export type UpdatePhase = z.infer<typeof UpdatePhase>;

export const UpdateProgress = z.object({
  ...StreamHeader,
  type: z.literal("update.progress"),
  deviceId: DeviceId,
  commandId: z.string().min(1),
  rolloutId: z.string().optional(),
  phase: UpdatePhase,
  targetVersion: z.string(),
  reportedVersion: z.string().optional(),
  bytes: z.int().nonnegative().optional(),
  totalBytes: z.int().nonnegative().optional(),
  reason: z.string().optional(),
  /** On `failed`: the error code (POLYFLEET_ERR_DOWNLOAD_FAILED, _UPDATE_TIMEOUT, _UPDATE_WRONG_VERSION...). */
  code: z
    .string()
    .regex(/^POLYFLEET_ERR_[A-Z0-9_]+$/)
    .optional(),
});
export type UpdateProgress = z.infer<typeof UpdateProgress>;

const DiscoveryProgress = z.object({
  ...StreamHeader,
  type: z.literal("discovery.progress"),
  scanId: z.string(),
  scanned: z.int().nonnegative(),
  total: z.int().nonnegative(),
  found: z.int().nonnegative(),
  done: z.boolean(),
});

const OutboxDropped = z
  .object({
    ...StreamHeader,
    type: z.literal("outbox.dropped"),
    dropped: z.int().positive(),
    fromSeq: z.int().positive(),
    toSeq: z.int().positive(),
    totalDropped: z.int().positive(),
  })
  .refine(
    (e) => e.fromSeq <= e.toSeq && e.dropped <= e.toSeq - e.fromSeq + 1 && e.dropped <= e.totalDropped,
    {
      message: "dropped must fit the range fromSeq..toSeq and the total",
      path: ["dropped"],
    },
  );

const DeviceFamilyChanged = z.object({
  ...StreamHeader,
  type: z.literal("device.classified"),
  deviceId: DeviceId,
  family: DeviceFamily,
  model: z.string().optional(),
});

/** Payload of the events topic. */
export const AgentEvent = z.discriminatedUnion("type", [
  DeviceDiscovered,
  DeviceLost,
  DeviceReachability,
  Trap,
  UpdateProgress,
  DiscoveryProgress,
  OutboxDropped,
  DeviceFamilyChanged,
]);
export type AgentEvent = z.infer<typeof AgentEvent>;
export type AgentEventType = AgentEvent["type"];
