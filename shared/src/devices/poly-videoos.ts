import { z } from "zod";

/**
 * Answers of the Poly VideoOS REST API (Studio X, G7500), as documented in ../shared/poly-devices.md §2.
 * Loose on purpose: they pin the fields drivers read; firmware adds others.
 */
export const VideoOsLogin = z.object({
  success: z.literal(true),
  session: z.object({
    sessionId: z.string().min(1),
    userId: z.string(),
    role: z.string(),
    isAuthenticated: z.boolean(),
  }),
  loginStatus: z.object({ failedLogins: z.int(), loginResult: z.string() }).loose(),
});

export const VideoOsSystem = z.object({
  model: z.string(),
  serialNumber: z.string(),
  softwareVersion: z.string().regex(/^\d+\.\d+\.\d+$/),
  build: z.string().regex(/^\d+$/),
  buildType: z.string().optional(),
  hardwareVersion: z.string().optional(),
  systemName: z.string(),
  state: z.string(),
  rebootNeeded: z.boolean(),
  uptime: z.number().nonnegative(),
  systemTime: z.number().optional(),
  lanStatus: z.object({ duplex: z.string(), speedMbps: z.number(), state: z.string() }).optional(),
});
export type VideoOsSystem = z.infer<typeof VideoOsSystem>;

export const VideoOsStatusItem = z.object({
  langtag: z.string().optional(),
  name: z.string(),
  stateList: z.array(z.string()),
});
export const VideoOsSystemStatus = z.array(VideoOsStatusItem);
export type VideoOsSystemStatus = z.infer<typeof VideoOsSystemStatus>;

export const VideoOsPeripheral = z
  .object({
    uid: z.string(),
    deviceCategory: z.string(),
    deviceType: z.string(),
    deviceState: z.string(),
    productName: z.string(),
    serialNumber: z.string().optional(),
    softwareVersion: z.string().optional(),
    macAddress: z.string().optional(),
  })
  .loose();
export const VideoOsPeripherals = z.array(VideoOsPeripheral);
export type VideoOsPeripherals = z.infer<typeof VideoOsPeripherals>;

export const VideoOsConfigVars = z.object({
  vars: z.array(z.object({ name: z.string(), value: z.string().optional(), result: z.string() }).loose()),
});

/**
 * `GET /rest/conferences`: the active conferences, `[]` when idle (poly-devices.md §2; the simulator answers
 * `{id, isActive, startTime, duration, connections[]}`). Added for the agent's `inCall`.
 */
export const VideoOsConference = z
  .object({
    id: z.union([z.int(), z.string()]).optional(),
    isActive: z.boolean().optional(),
    connections: z
      .array(z.object({ state: z.string().optional(), callType: z.string().optional() }).loose())
      .optional(),
  })
  .loose();
export const VideoOsConferences = z.array(VideoOsConference);
export type VideoOsConferences = z.infer<typeof VideoOsConferences>;
