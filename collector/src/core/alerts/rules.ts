import {
  type AlertRule,
  type AlertRuleInput,
  AlertRulesFile,
  PolyfleetError,
  parseConfigText,
} from "@polyfleet/shared";

/**
 * The built-in rules, in the same shape as `rules.yaml` entries. A file rule with the same name replaces
 * one; `builtins: false` drops them all. docs/alerts.md describes each.
 */
export const BUILTIN_RULES: readonly AlertRule[] = [
  {
    name: "agent-offline",
    kind: "agentOffline",
    severity: "critical",
    enabled: true,
    forSec: 60,
    labels: {},
  },
  {
    name: "device-unreachable",
    kind: "deviceUnreachable",
    severity: "major",
    enabled: true,
    forSec: 0,
    labels: {},
  },
  {
    name: "status-item-down",
    kind: "healthDown",
    severity: "major",
    enabled: true,
    forSec: 0,
    labels: {},
    items: [],
  },
  {
    name: "peripheral-missing",
    kind: "peripheralMissing",
    severity: "minor",
    enabled: true,
    forSec: 0,
    labels: {},
  },
  {
    name: "sip-line-unregistered",
    kind: "lineUnregistered",
    severity: "major",
    enabled: true,
    forSec: 60,
    labels: {},
  },
  {
    name: "cpu-high",
    kind: "threshold",
    severity: "warning",
    enabled: true,
    forSec: 300,
    labels: {},
    metric: "cpuPct",
    op: ">",
    value: 90,
  },
  {
    name: "memory-high",
    kind: "threshold",
    severity: "warning",
    enabled: true,
    forSec: 300,
    labels: {},
    metric: "memPct",
    op: ">",
    value: 90,
  },
  {
    name: "packet-loss-high",
    kind: "threshold",
    severity: "warning",
    enabled: true,
    forSec: 120,
    labels: {},
    metric: "packetLossPct",
    op: ">",
    value: 5,
  },
  {
    name: "firmware-noncompliant",
    kind: "firmwareCompliance",
    severity: "minor",
    enabled: true,
    forSec: 0,
    labels: {},
  },
  {
    name: "outbox-dropping",
    kind: "outboxDrops",
    severity: "major",
    enabled: true,
    forSec: 0,
    labels: {},
  },
  {
    name: "poly-trap",
    kind: "trap",
    severity: "info",
    enabled: true,
    forSec: 0,
    labels: {},
    traps: [],
  },
];

/**
 * Parses and validates a `rules.yaml` text. Throws PolyfleetError POLYFLEET_ERR_CONFIG_INVALID whose message
 * names `file` and every failing key path (e.g. `rules.yaml: rules[0].forSec: ...`), or says the YAML is
 * malformed. Duplicate rule names in the file are refused the same way.
 */
export function loadRules(text: string, file: string): AlertRulesFile {
  const parsed = parseConfigText(AlertRulesFile, text, file);
  const seen = new Set<string>();
  for (let i = 0; i < parsed.rules.length; i++) {
    const name = parsed.rules[i]?.name ?? "";
    if (seen.has(name)) {
      const path = `rules[${i}].name`;
      const message = `duplicate rule name "${name}"`;
      throw new PolyfleetError("POLYFLEET_ERR_CONFIG_INVALID", `${file}: ${path}: ${message}`, {
        details: { file, issues: [{ path, message }] },
      });
    }
    seen.add(name);
  }
  return parsed;
}

/**
 * The rules the engine runs: the built-ins (unless `builtins: false`) with same-named file rules in their
 * place, then the file's other rules in file order. Disabled rules are kept here (the engine skips them).
 */
export function effectiveRules(file: AlertRulesFile): AlertRule[] {
  const byName = new Map<string, AlertRule>();
  for (const r of file.rules) byName.set(r.name, r);
  const out: AlertRule[] = [];
  if (file.builtins) {
    for (const b of BUILTIN_RULES) {
      const override = byName.get(b.name);
      out.push(override ?? b);
      byName.delete(b.name);
    }
  }
  for (const r of file.rules) if (byName.has(r.name)) out.push(r);
  return out;
}

/** A rules file from already-typed input (tests, defaults): validated like a YAML one, without the YAML. */
export function rulesFile(input: {
  rules?: AlertRuleInput[];
  builtins?: boolean;
  grouping?: Partial<AlertRulesFile["grouping"]>;
  flap?: Partial<AlertRulesFile["flap"]>;
  escalation?: { afterSec: number; level: number; notify?: string[] }[];
}): AlertRulesFile {
  return AlertRulesFile.parse(input);
}

/**
 * The notifier names an escalation level is sent to, from the file's `escalation[].notify`. An empty list
 * means every notifier (also for level 0, i.e. not escalated, and for levels without an entry).
 */
export function notifiersForLevel(file: AlertRulesFile, level: number): readonly string[] {
  for (const e of file.escalation) if (e.level === level) return e.notify;
  return [];
}
