import { z } from "zod";
import { DeviceFamily, DeviceId, Mac, StreamHeader, TopicId } from "./common.js";

export const DeviceIdentity = z.object({
  address: z.string().min(1),
  family: DeviceFamily,
  vendor: z.string().optional(),
  model: z.string().optional(),
  serial: z.string().optional(),
  mac: Mac.optional(),
  partNumber: z.string().optional(),
  systemName: z.string().optional(),
  ipv6: z.string().optional(),
});
export type DeviceIdentity = z.infer<typeof DeviceIdentity>;

/** One firmware component: `application`, `updater`, `bootBlock` on phones; `system` and peripherals on VideoOS. */
export const FirmwareComponent = z.object({
  component: z.string().min(1),
  version: z.string().min(1),
  build: z.string().optional(),
});
export type FirmwareComponent = z.infer<typeof FirmwareComponent>;

export const HealthState = z.enum(["up", "down", "off", "unknown"]);
export type HealthState = z.infer<typeof HealthState>;

/** A health item: provisioning, sipserver, camera, microphone, ipnetwork... */
export const HealthItem = z.object({
  name: z.string().min(1),
  state: HealthState,
  detail: z.string().optional(),
});
export type HealthItem = z.infer<typeof HealthItem>;

export const Peripheral = z.object({
  id: z.string().min(1),
  category: z.string().min(1),
  name: z.string(),
  state: z.enum(["connected", "paired", "disconnected", "missing", "unknown"]),
  serial: z.string().optional(),
  firmware: z.string().optional(),
  mac: z.string().optional(),
});
export type Peripheral = z.infer<typeof Peripheral>;

export const SipLine = z.object({
  line: z.int().positive(),
  address: z.string(),
  label: z.string().optional(),
  registered: z.boolean(),
  state: z.string(),
});
export type SipLine = z.infer<typeof SipLine>;

/** Network counters as rates over the last poll interval (absent on the first poll). */
export const NetworkRates = z.object({
  rxPacketsPerSec: z.number().nonnegative().optional(),
  txPacketsPerSec: z.number().nonnegative().optional(),
  rxBytesPerSec: z.number().nonnegative().optional(),
  txBytesPerSec: z.number().nonnegative().optional(),
  packetLossPct: z.number().min(0).max(100).optional(),
  linkSpeedMbps: z.number().nonnegative().optional(),
});
export type NetworkRates = z.infer<typeof NetworkRates>;

export const PollError = z.object({
  code: z.string().regex(/^POLYFLEET_ERR_[A-Z0-9_]+$/),
  message: z.string(),
  endpoint: z.string().optional(),
});
export type PollError = z.infer<typeof PollError>;

/** One normalised poll of one device. */
export const Reading = z.object({
  ...StreamHeader,
  kind: z.literal("reading"),
  deviceId: DeviceId,
  driver: z.enum(["poly-ucs", "poly-videoos", "snmp-generic"]),
  reachable: z.boolean(),
  pollLatencyMs: z.number().nonnegative(),
  identity: DeviceIdentity,
  firmware: z.array(FirmwareComponent),
  health: z.array(HealthItem),
  peripherals: z.array(Peripheral),
  lines: z.array(SipLine),
  cpuPct: z.number().min(0).max(100).optional(),
  memPct: z.number().min(0).max(100).optional(),
  memUsedBytes: z.number().nonnegative().optional(),
  memTotalBytes: z.number().nonnegative().optional(),
  uptimeSec: z.number().nonnegative().optional(),
  inCall: z.boolean().optional(),
  network: NetworkRates,
  errors: z.array(PollError),
});
export type Reading = z.infer<typeof Reading>;

/** Several readings in one MQTT message, as the agent's outbox sends them. */
export const ReadingBatch = z.object({
  v: z.literal(1),
  kind: z.literal("batch"),
  agentId: TopicId,
  siteId: TopicId,
  items: z.array(Reading).min(1).max(1000),
});
export type ReadingBatch = z.infer<typeof ReadingBatch>;

/** Payload of the telemetry topic: one reading or a batch. */
export const Telemetry = z.discriminatedUnion("kind", [Reading, ReadingBatch]);
export type Telemetry = z.infer<typeof Telemetry>;
