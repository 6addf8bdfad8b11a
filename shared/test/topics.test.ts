import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  parseTopic,
  Severity,
  TOPIC_PREFIX,
  TOPICS,
  type TopicKey,
  type TopicParams,
  topicFilter,
  topicFor,
} from "../src/index.js";
import { topicId } from "./arbitraries.js";

const RUNS = { numRuns: 200 };
const KEYS = Object.keys(TOPICS) as TopicKey[];
const AGENT_KEYS = KEYS.filter((k) => k !== "alerts" && k !== "rollouts");

/** Valid parameters for a key: TopicIds for site/agent, a Severity for alerts. */
function paramsFor(key: TopicKey): fc.Arbitrary<Record<string, string>> {
  if (key === "alerts") return fc.record({ severity: fc.constantFrom(...Severity.options) });
  if (key === "rollouts") return fc.record({ rollout: topicId });
  return fc.record({ site: topicId, agent: topicId });
}

const keyAndParams = fc
  .constantFrom(...KEYS)
  .chain((key) => paramsFor(key).map((params) => ({ key, params })));

/** MQTT topic-filter matching (`+` one level, `#` the rest), to check topicFilter against topicFor. */
function matches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length || (f[i] !== "+" && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

/** topicFor without the per-key parameter typing, for generated keys and deliberately bad parameters. */
const topicForAny = topicFor as (key: TopicKey, params: Record<string, string>) => string;

describe("TOPICS", () => {
  it("versions every topic under polyfleet/v1/ with the layout of ARCHITECTURE.md", () => {
    expect(TOPIC_PREFIX).toBe("polyfleet/v1");
    for (const key of KEYS) expect(TOPICS[key].pattern.startsWith("polyfleet/v1/")).toBe(true);
    const suffix: Record<Exclude<TopicKey, "alerts" | "rollouts">, string> = {
      state: "state",
      telemetry: "telemetry",
      events: "events",
      cmd: "cmd",
      cmdResult: "cmd-result",
      ack: "ack",
    };
    for (const key of AGENT_KEYS) {
      expect(TOPICS[key].pattern).toBe(`polyfleet/v1/{site}/{agent}/${suffix[key as keyof typeof suffix]}`);
      expect(TOPICS[key].params).toEqual(["site", "agent"]);
    }
    expect(TOPICS.alerts.pattern).toBe("polyfleet/v1/alerts/{severity}");
    expect(TOPICS.alerts.params).toEqual(["severity"]);
    expect(TOPICS.rollouts.pattern).toBe("polyfleet/v1/rollouts/{rollout}");
    expect(TOPICS.rollouts.params).toEqual(["rollout"]);
  });

  it("declares exactly the placeholders its pattern uses", () => {
    for (const key of KEYS) {
      const placeholders = [...TOPICS[key].pattern.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      expect(placeholders).toEqual([...TOPICS[key].params]);
    }
  });

  it("gives every key a distinct pattern (a topic maps back to one key)", () => {
    expect(new Set(KEYS.map((k) => TOPICS[k].pattern)).size).toBe(KEYS.length);
  });
});

describe("topicFor / parseTopic / topicFilter", () => {
  it("parseTopic(topicFor(key, params)) gives back the key and the params", () => {
    fc.assert(
      fc.property(keyAndParams, ({ key, params }) => {
        const topic = topicForAny(key, params);
        expect(topic.startsWith(`${TOPIC_PREFIX}/`)).toBe(true);
        expect(parseTopic(topic)).toEqual({ key, params });
      }),
      RUNS,
    );
  });

  it("the wildcard filter matches every concrete topic of its key and no topic of another key", () => {
    fc.assert(
      fc.property(keyAndParams, ({ key, params }) => {
        const topic = topicForAny(key, params);
        for (const other of KEYS) expect(matches(topicFilter(other), topic)).toBe(other === key);
      }),
      RUNS,
    );
  });

  it("a filter with some params fixed keeps them and puts + in the others", () => {
    fc.assert(
      fc.property(topicId, topicId, (site, agent) => {
        expect(topicFilter("telemetry")).toBe("polyfleet/v1/+/+/telemetry");
        expect(topicFilter("telemetry", { site })).toBe(`polyfleet/v1/${site}/+/telemetry`);
        expect(topicFilter("cmd", { agent })).toBe(`polyfleet/v1/+/${agent}/cmd`);
        expect(topicFilter("ack", { site, agent })).toBe(topicFor("ack", { site, agent }));
        expect(topicFilter("alerts")).toBe("polyfleet/v1/alerts/+");
        expect(matches(topicFilter("state", { site }), topicFor("state", { site, agent }))).toBe(true);
      }),
      RUNS,
    );
  });

  it("topicFor throws on a parameter that is not one safe topic level", () => {
    const bad = fc.oneof(
      fc.constantFrom("", "/", "+", "#", " ", "a/b", "a+", "#a", "a b", "\t", "a\nb"),
      fc
        .tuple(topicId, fc.constantFrom("/", "+", "#", " "), fc.string({ maxLength: 5 }))
        .map(([a, c, b]) => a + c + b),
    );
    fc.assert(
      fc.property(fc.constantFrom(...AGENT_KEYS), topicId, bad, fc.boolean(), (key, good, value, badSite) => {
        const params = badSite ? { site: value, agent: good } : { site: good, agent: value };
        expect(() => topicForAny(key, params)).toThrow(/must be one topic level/);
      }),
      RUNS,
    );
    fc.assert(
      fc.property(bad, (severity) => {
        expect(() => topicFor("alerts", { severity })).toThrow(/parameter severity/);
      }),
      RUNS,
    );
  });

  it("topicFor throws on a missing parameter", () => {
    expect(() => topicForAny("state", { site: "s1" })).toThrow(/parameter agent/);
    expect(() => topicForAny("alerts", {})).toThrow(/parameter severity/);
  });

  it("parseTopic returns undefined for topics that are not ours", () => {
    const foreign = [
      "",
      "polyfleet",
      "polyfleet/v1",
      "polyfleet/v1/",
      "polyfleet/v2/site/agent/state",
      "Polyfleet/v1/site/agent/state",
      "polyfleet/v1/site/agent/status",
      "polyfleet/v1/site/agent/state/extra",
      "polyfleet/v1/site/state",
      "polyfleet/v1//agent/state",
      "polyfleet/v1/site//state",
      "polyfleet/v1/alerts",
      "polyfleet/v1/alerts/",
      "polyfleet/v1/alerts/critical/extra",
      "/polyfleet/v1/site/agent/state",
      "$SYS/broker/uptime",
      "zigbee2mqtt/bridge/state",
    ];
    for (const topic of foreign) expect(parseTopic(topic), topic).toBeUndefined();
    fc.assert(
      fc.property(
        fc.string().filter((s) => !s.startsWith("polyfleet/v1/")),
        (topic) => {
          expect(parseTopic(topic)).toBeUndefined();
        },
      ),
      RUNS,
    );
  });

  it("parseTopic rejects a valid topic with any level removed, added or emptied", () => {
    fc.assert(
      fc.property(
        keyAndParams,
        fc.nat(),
        fc.constantFrom("drop", "add", "empty"),
        ({ key, params }, n, how) => {
          // A site or agent literally named "alerts" could make a shortened topic an alerts topic.
          fc.pre(!Object.values(params).some((v) => v === "alerts" || v === "rollouts"));
          const levels = topicForAny(key, params).split("/");
          const i = n % levels.length;
          if (how === "drop") levels.splice(i, 1);
          else if (how === "add") levels.splice(i, 0, "x");
          else levels[i] = "";
          expect(parseTopic(levels.join("/"))).toBeUndefined();
        },
      ),
      RUNS,
    );
  });
});

// Type-level check: TopicParams is keyed by the pattern's placeholders.
const _typed: TopicParams<"alerts"> = { severity: "critical" };
void _typed;
