import { z } from "zod";
import { Mac } from "./common.js";

export const SimFault = z.enum([
  "noAnswer",
  "slow",
  "flapping",
  "http500",
  "malformedJson",
  "truncatedJson",
  "wrongCredentials",
  "cameraDown",
  "microphoneDown",
  "sipUnregistered",
  "highCpu",
  "highMemory",
  "packetLoss",
  "rebootLoop",
  "updateDownloadFails",
  "updateBootsOldVersion",
  "updateNeverReturns",
]);
export type SimFault = z.infer<typeof SimFault>;

export const SimSnmp = z.union([
  z.object({ version: z.literal("2c"), community: z.string() }),
  z.object({
    version: z.literal("3"),
    user: z.string(),
    authProtocol: z.enum(["sha", "sha256"]),
    authKey: z.string(),
    privProtocol: z.literal("aes"),
    privKey: z.string(),
    community: z.string().optional(),
  }),
]);
export type SimSnmp = z.infer<typeof SimSnmp>;

export const SimDevice = z.object({
  id: z.string(),
  address: z.string(),
  httpsPort: z.int().positive(),
  snmpPort: z.int().positive().nullable(),
  family: z.enum(["uc", "videoos"]),
  model: z.string(),
  partNumber: z.string(),
  serial: z.string(),
  mac: Mac,
  firmware: z.string(),
  build: z.string().optional(),
  admin: z.object({ user: z.string(), password: z.string() }),
  snmp: SimSnmp.nullable(),
  restEnabled: z.boolean(),
  faults: z.array(SimFault),
});
export type SimDevice = z.infer<typeof SimDevice>;

/** The file `polyfleet-sim --manifest FILE` writes once every device listens. */
export const SimManifest = z.object({
  v: z.literal(1),
  startedAt: z.int(),
  pid: z.int(),
  subnet: z.string(),
  control: z.url(),
  provisioningHint: z.string().optional(),
  devices: z.array(SimDevice),
});
export type SimManifest = z.infer<typeof SimManifest>;

/** Bodies of the simulator's fault control API (see scripts/src/simulator/README.md). */
export const SimControlFaults = z.strictObject({
  /** Replace the device's faults with exactly these. */
  faults: z.array(SimFault).optional(),
  add: z.array(SimFault).default([]),
  remove: z.array(SimFault).default([]),
});
export type SimControlFaults = z.infer<typeof SimControlFaults>;

export const SimControlBulkFaults = z.strictObject({
  add: z.array(SimFault).default([]),
  remove: z.array(SimFault).default([]),
  /** Device ids, addresses or serials; absent = every device. */
  devices: z.array(z.string()).optional(),
  /** Pick this percentage of the selected devices at random. */
  percent: z.number().min(0).max(100).optional(),
});
export type SimControlBulkFaults = z.infer<typeof SimControlBulkFaults>;

export const SimControlCall = z.strictObject({ active: z.boolean() });
export const SimControlConfig = z.strictObject({ params: z.record(z.string().min(1), z.string()) });
export const SimControlTrap = z.strictObject({
  trap: z.int().min(1).max(200),
  summary: z.string().default("test notification"),
  kind: z.enum(["problem", "resolution", "info"]).default("info"),
});
export const SimControlReboot = z.strictObject({ reason: z.string().default("control API") });
