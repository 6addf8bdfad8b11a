import { readFileSync } from "node:fs";
import { PolyfleetError } from "@polyfleet/shared";
import { describe, expect, it } from "vitest";
import { compileMatchers, matchesAll } from "../../../src/core/alerts/matchers.js";
import {
  BUILTIN_RULES,
  effectiveRules,
  loadRules,
  notifiersForLevel,
} from "../../../src/core/alerts/rules.js";
import { isWindowActive, localMinuteOfWeek, windowScheduleError } from "../../../src/core/alerts/windows.js";

const sample = readFileSync(new URL("../../../rules.sample.yaml", import.meta.url), "utf8");

function thrown(f: () => unknown): PolyfleetError {
  try {
    f();
  } catch (e) {
    if (e instanceof PolyfleetError) return e;
    throw e;
  }
  throw new Error("did not throw");
}

describe("rules file", () => {
  it("loads the documented sample", () => {
    const file = loadRules(sample, "rules.sample.yaml");
    const rules = effectiveRules(file);
    expect(rules.find((r) => r.name === "cpu-high")).toMatchObject({ kind: "threshold", forSec: 600 });
    expect(rules.some((r) => r.name === "meeting-room-cameras")).toBe(true);
    expect(file.escalation.length).toBeGreaterThan(0);
  });

  it("file rules override built-ins by name; builtins: false drops them", () => {
    const file = loadRules(
      "rules:\n  - { name: cpu-high, kind: threshold, metric: cpuPct, value: 80, severity: major }\n  - { name: mine, kind: deviceUnreachable, severity: info }\n",
      "rules.yaml",
    );
    const rules = effectiveRules(file);
    expect(rules.length).toBe(BUILTIN_RULES.length + 1);
    expect(rules.find((r) => r.name === "cpu-high")).toMatchObject({
      value: 80,
      severity: "major",
      forSec: 0,
    });
    expect(effectiveRules(loadRules("builtins: false\n", "rules.yaml"))).toEqual([]);
    expect(BUILTIN_RULES.map((r) => r.kind).sort()).toEqual(
      [
        "agentOffline",
        "deviceUnreachable",
        "firmwareCompliance",
        "healthDown",
        "lineUnregistered",
        "outboxDrops",
        "peripheralMissing",
        "threshold",
        "threshold",
        "threshold",
        "trap",
      ].sort(),
    );
  });

  it("errors name the file and the key", () => {
    const e = thrown(() =>
      loadRules(
        "rules:\n  - { name: x, kind: threshold, metric: cpu, value: 1, severity: major }\n",
        "r.yaml",
      ),
    );
    expect(e.code).toBe("POLYFLEET_ERR_CONFIG_INVALID");
    expect(e.message).toContain("r.yaml: rules[0].metric");
    expect(thrown(() => loadRules("grouping: { waitSecs: 3 }\n", "r.yaml")).message).toContain(
      "r.yaml: grouping.waitSecs: unknown key",
    );
    expect(thrown(() => loadRules("rules: [\n", "r.yaml")).message).toContain("r.yaml: not valid YAML");
    expect(
      thrown(() =>
        loadRules(
          "rules:\n  - { name: a, kind: outboxDrops, severity: info }\n  - { name: a, kind: outboxDrops, severity: info }\n",
          "r.yaml",
        ),
      ).message,
    ).toBe('r.yaml: rules[1].name: duplicate rule name "a"');
  });

  it("escalation notifiers by level (empty = all)", () => {
    const f = loadRules("escalation:\n  - { afterSec: 900, level: 1, notify: [email] }\n", "r.yaml");
    expect(notifiersForLevel(f, 1)).toEqual(["email"]);
    expect(notifiersForLevel(f, 0)).toEqual([]);
  });
});

describe("matchers", () => {
  it("=, !=, =~ (anchored), !~; missing labels read as empty", () => {
    const m = compileMatchers([
      { label: "rule", op: "=~", value: "cam.*" },
      { label: "siteId", op: "!=", value: "lab" },
      { label: "team", op: "!~", value: ".+" },
      { label: "severity", op: "=", value: "major" },
    ]);
    if (m instanceof PolyfleetError) throw m;
    expect(matchesAll(m, { rule: "camera", siteId: "hq", severity: "major" })).toBe(true);
    expect(matchesAll(m, { rule: "webcam", siteId: "hq", severity: "major" })).toBe(false);
    expect(matchesAll(m, { rule: "camera", siteId: "lab", severity: "major" })).toBe(false);
    expect(matchesAll(m, { rule: "camera", siteId: "hq", severity: "major", team: "av" })).toBe(false);
    expect(matchesAll([], {})).toBe(true);
    const bad = compileMatchers([{ label: "x", op: "=~", value: "(" }]);
    expect(bad).toBeInstanceOf(PolyfleetError);
    expect((bad as PolyfleetError).code).toBe("POLYFLEET_ERR_BODY_INVALID");
  });
});

describe("maintenance windows", () => {
  const weekly = (days: number[], start: string, durationMin: number, timezone: string) =>
    ({ type: "weekly", days, start, durationMin, timezone }) as const;

  it("local minute of week follows the timezone", () => {
    // 2024-01-07 is a Sunday. 00:30Z is Saturday 19:30 in New York and Sunday 09:30 in Tokyo.
    const at = Date.UTC(2024, 0, 7, 0, 30);
    expect(localMinuteOfWeek(at, "UTC")).toBe(30);
    expect(localMinuteOfWeek(at, "America/New_York")).toBe(6 * 1440 + 19 * 60 + 30);
    expect(localMinuteOfWeek(at, "Asia/Tokyo")).toBe(9 * 60 + 30);
    expect(localMinuteOfWeek(at, "Mars/Olympus")).toBeUndefined();
  });

  it("weekly windows across midnight and the week's end, in several timezones", () => {
    const satLate = weekly([6], "23:00", 120, "Europe/Berlin"); // Sat 23:00 .. Sun 01:00 Berlin (UTC+1)
    expect(isWindowActive(satLate, Date.UTC(2024, 0, 6, 21, 59))).toBe(false);
    expect(isWindowActive(satLate, Date.UTC(2024, 0, 6, 22, 0))).toBe(true);
    expect(isWindowActive(satLate, Date.UTC(2024, 0, 6, 23, 30))).toBe(true); // Sun 00:30 Berlin
    expect(isWindowActive(satLate, Date.UTC(2024, 0, 6, 23, 59))).toBe(true);
    expect(isWindowActive(satLate, Date.UTC(2024, 0, 7, 0, 0))).toBe(false);
    // Summer time: Berlin is UTC+2 in July.
    expect(isWindowActive(satLate, Date.UTC(2024, 6, 6, 21, 0))).toBe(true); // Sat 23:00 CEST
    expect(isWindowActive(satLate, Date.UTC(2024, 6, 6, 20, 59))).toBe(false);
    const weekdays = weekly([1, 2, 3, 4, 5], "02:00", 60, "Asia/Tokyo");
    expect(isWindowActive(weekdays, Date.UTC(2024, 0, 7, 17, 30))).toBe(true); // Mon 02:30 Tokyo
    expect(isWindowActive(weekdays, Date.UTC(2024, 0, 6, 17, 30))).toBe(false); // Sun 02:30 Tokyo
    expect(isWindowActive(weekly([0], "00:00", 7 * 24 * 60, "UTC"), Date.UTC(2024, 0, 3))).toBe(true);
  });

  it("once windows and schedule errors", () => {
    expect(isWindowActive({ type: "once", start: 100, end: 200 }, 100)).toBe(true);
    expect(isWindowActive({ type: "once", start: 100, end: 200 }, 200)).toBe(false);
    expect(windowScheduleError({ type: "once", start: 200, end: 100 })?.code).toBe(
      "POLYFLEET_ERR_BODY_INVALID",
    );
    expect(windowScheduleError(weekly([1], "01:00", 5, "Nowhere/City"))?.message).toContain("Nowhere/City");
    expect(windowScheduleError(weekly([1], "01:00", 5, "UTC"))).toBeUndefined();
    expect(isWindowActive(weekly([1], "01:00", 5, "Nowhere/City"), 0)).toBe(false);
  });
});
