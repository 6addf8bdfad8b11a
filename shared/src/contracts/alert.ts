import { z } from "zod";
import { DeviceId, EpochMs, Severity, TopicId } from "./common.js";

export const AlertState = z.enum(["firing", "acknowledged", "resolved"]);
export type AlertState = z.infer<typeof AlertState>;

/** Published on `polyfleet/v1/alerts/<severity>` and on the SSE stream at every transition. */
export const Alert = z.object({
  v: z.literal(1),
  id: z.string().min(1),
  fingerprint: z.string().min(1),
  rule: z.string().min(1),
  severity: Severity,
  state: AlertState,
  summary: z.string(),
  siteId: TopicId.optional(),
  agentId: TopicId.optional(),
  deviceId: DeviceId.optional(),
  labels: z.record(z.string(), z.string()),
  startsAt: EpochMs,
  updatedAt: EpochMs,
  endsAt: EpochMs.optional(),
  ack: z.object({ by: z.string().min(1), at: EpochMs, comment: z.string() }).optional(),
  flapping: z.boolean(),
  escalationLevel: z.int().nonnegative(),
  silenced: z.boolean(),
});
export type Alert = z.infer<typeof Alert>;
