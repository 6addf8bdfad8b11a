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
