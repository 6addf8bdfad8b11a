import { z } from "zod";
import { DeviceFamily, DeviceId, EpochMs, Mac, TopicId } from "./common.js";
import { FirmwareComponent, HealthItem, Peripheral, SipLine } from "./telemetry.js";

/** A site as the collector knows it (API `GET /api/v1/sites`). */
export const Site = z.object({
  siteId: TopicId,
  name: z.string(),
  agents: z.int().nonnegative(),
  devices: z.int().nonnegative(),
});
export type Site = z.infer<typeof Site>;

/** An agent's state in the inventory, from its birth message and Last Will. */
export const AgentRecord = z.object({
  agentId: TopicId,
  siteId: TopicId,
  status: z.enum(["online", "offline"]),
  sessionId: z.string(),
  version: z.string().optional(),
  capabilities: z.array(z.string()),
  protocolVersion: z.union([z.literal(4), z.literal(5)]).optional(),
  hostname: z.string().optional(),
  since: EpochMs,
  lastSeen: EpochMs,
  /** Highest sequence number stored contiguously (the ack watermark). */
  ackedSeq: z.int().nonnegative(),
});
export type AgentRecord = z.infer<typeof AgentRecord>;

/** A device in the inventory: the latest normalised state plus bookkeeping (API `GET /api/v1/devices`). */
export const DeviceRecord = z.object({
  deviceId: DeviceId,
  siteId: TopicId,
  agentId: TopicId,
  address: z.string(),
  family: DeviceFamily,
  driver: z.string(),
  model: z.string().optional(),
  serial: z.string().optional(),
  mac: Mac.optional(),
  partNumber: z.string().optional(),
  systemName: z.string().optional(),
  /** The main software version and build (application / system component). */
  softwareVersion: z.string().optional(),
  softwareBuild: z.string().optional(),
  firmware: z.array(FirmwareComponent),
  health: z.array(HealthItem),
  peripherals: z.array(Peripheral),
  lines: z.array(SipLine),
  reachable: z.boolean(),
  cpuPct: z.number().optional(),
  memPct: z.number().optional(),
  packetLossPct: z.number().optional(),
  uptimeSec: z.number().optional(),
  inCall: z.boolean().optional(),
  tags: z.array(z.string()),
  firstSeen: EpochMs,
  lastSeen: EpochMs,
  lastPollLatencyMs: z.number().optional(),
});
export type DeviceRecord = z.infer<typeof DeviceRecord>;

/** A page of results: `nextCursor` is absent on the last page. */
export function page<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item), total: z.int().nonnegative(), nextCursor: z.string().optional() });
}
