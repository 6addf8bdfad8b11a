import { z } from "zod";
import { EpochMs, TopicId } from "./common.js";

/**
 * Retained on `polyfleet/v1/<site>/<agent>/state`. The birth message says online; the Last Will, set at
 * connect time with the same session id, says offline. A Will whose session id is not the current one is
 * stale and ignored.
 */
export const AgentState = z.discriminatedUnion("status", [
  z.object({
    v: z.literal(1),
    agentId: TopicId,
    siteId: TopicId,
    status: z.literal("online"),
    sessionId: z.string().min(1),
    ts: EpochMs,
    version: z.string().min(1),
    capabilities: z.array(z.string()),
    protocolVersion: z.union([z.literal(4), z.literal(5)]),
    hostname: z.string().optional(),
  }),
  z.object({
    v: z.literal(1),
    agentId: TopicId,
    siteId: TopicId,
    status: z.literal("offline"),
    sessionId: z.string().min(1),
    ts: EpochMs,
    reason: z.enum(["will", "shutdown"]),
  }),
]);
export type AgentState = z.infer<typeof AgentState>;

/** The collector's acknowledgement: every sequence number up to and including `seq` is durably stored. */
export const Ack = z.object({
  v: z.literal(1),
  agentId: TopicId,
  seq: z.int().nonnegative(),
  ts: EpochMs,
});
export type Ack = z.infer<typeof Ack>;
