import type { AgentEvent } from "@polyfleet/shared";
import type { ReadingBody } from "./driver.js";

/** An event without the stream header (v, agentId, siteId, seq, ts) the outbox adds. */
export type EventBody = AgentEvent extends infer E
  ? E extends AgentEvent
    ? Omit<E, "v" | "agentId" | "siteId" | "seq" | "ts">
    : never
  : never;

/**
 * Where pollers, discovery and the trap receiver put what they produce. `append*` is synchronous and
 * durable on return: the entry is in the on-disk outbox with its sequence number before anything is
 * published, so a crash right after loses nothing.
 */
export interface TelemetrySink {
  appendReading(reading: ReadingBody): number;
  appendEvent(event: EventBody): number;
}
