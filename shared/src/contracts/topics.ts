import type { z } from "zod";
import { Ack, AgentState } from "./agent-state.js";
import { Alert } from "./alert.js";
import { Command, CommandResult } from "./command.js";
import { AgentEvent } from "./events.js";
import { RolloutNotification } from "./rollout.js";
import { Telemetry } from "./telemetry.js";

export const TOPIC_PREFIX = "polyfleet/v1";

/** Topic key -> pattern (with `{param}` placeholders) and the one schema its payload must pass. */
export const TOPICS = {
  state: { pattern: "polyfleet/v1/{site}/{agent}/state", schema: AgentState, params: ["site", "agent"] },
  telemetry: {
    pattern: "polyfleet/v1/{site}/{agent}/telemetry",
    schema: Telemetry,
    params: ["site", "agent"],
  },
  events: { pattern: "polyfleet/v1/{site}/{agent}/events", schema: AgentEvent, params: ["site", "agent"] },
  cmd: { pattern: "polyfleet/v1/{site}/{agent}/cmd", schema: Command, params: ["site", "agent"] },
  cmdResult: {
    pattern: "polyfleet/v1/{site}/{agent}/cmd-result",
    schema: CommandResult,
    params: ["site", "agent"],
  },
  ack: { pattern: "polyfleet/v1/{site}/{agent}/ack", schema: Ack, params: ["site", "agent"] },
  alerts: { pattern: "polyfleet/v1/alerts/{severity}", schema: Alert, params: ["severity"] },
  rollouts: { pattern: "polyfleet/v1/rollouts/{rollout}", schema: RolloutNotification, params: ["rollout"] },
} as const;

export type TopicKey = keyof typeof TOPICS;
export type TopicParams<K extends TopicKey> = Record<(typeof TOPICS)[K]["params"][number], string>;
export type TopicPayload<K extends TopicKey> = z.infer<(typeof TOPICS)[K]["schema"]>;

const LEVEL = /^[^/+#\s]+$/;

/** Builds the concrete topic for a key. Throws on a parameter that is not one safe topic level (a bug). */
export function topicFor<K extends TopicKey>(key: K, params: TopicParams<K>): string {
  return TOPICS[key].pattern.replace(/\{(\w+)\}/g, (_m, name: string) => {
    const value = (params as Record<string, string>)[name];
    if (value === undefined || !LEVEL.test(value)) {
      throw new Error(
        `topic ${key}: parameter ${name} must be one topic level, got ${JSON.stringify(value)}`,
      );
    }
    return value;
  });
}

/** The subscription filter for a key, with `+` for every parameter not given. */
export function topicFilter<K extends TopicKey>(key: K, params: Partial<TopicParams<K>> = {}): string {
  return TOPICS[key].pattern.replace(
    /\{(\w+)\}/g,
    (_m, name: string) => (params as Record<string, string>)[name] ?? "+",
  );
}

/** Matches a concrete topic back to its key and parameters, or undefined for a topic that is not ours. */
export function parseTopic(topic: string): { key: TopicKey; params: Record<string, string> } | undefined {
  const parts = topic.split("/");
  for (const key of Object.keys(TOPICS) as TopicKey[]) {
    const pattern = TOPICS[key].pattern.split("/");
    if (pattern.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < pattern.length && ok; i++) {
      const p = pattern[i] as string;
      const v = parts[i] as string;
      if (p.startsWith("{")) {
        if (v.length === 0) ok = false;
        else params[p.slice(1, -1)] = v;
      } else if (p !== v) ok = false;
    }
    if (ok) return { key, params };
  }
  return undefined;
}
