import { type Matcher, PolyfleetError } from "@polyfleet/shared";

/** A matcher ready to run: regular expressions compiled once, anchored like Alertmanager's. */
export interface CompiledMatcher {
  readonly label: string;
  readonly op: Matcher["op"];
  readonly value: string;
  readonly re: RegExp | undefined;
}

/**
 * Compiles label matchers (`=`, `!=`, `=~`, `!~`). Regular expressions are anchored at both ends
 * (`=~ "cam.*"` matches `camera`, not `webcam`). Returns a PolyfleetError value
 * (POLYFLEET_ERR_BODY_INVALID, naming the matcher) for an invalid expression; never throws.
 */
export function compileMatchers(matchers: readonly Matcher[]): CompiledMatcher[] | PolyfleetError {
  const out: CompiledMatcher[] = [];
  for (let i = 0; i < matchers.length; i++) {
    const m = matchers[i];
    if (m === undefined) continue;
    let re: RegExp | undefined;
    if (m.op === "=~" || m.op === "!~") {
      try {
        re = new RegExp(`^(?:${m.value})$`);
      } catch (cause) {
        return new PolyfleetError(
          "POLYFLEET_ERR_BODY_INVALID",
          `matchers[${i}].value: invalid regular expression for label "${m.label}"`,
          { cause },
        );
      }
    }
    out.push({ label: m.label, op: m.op, value: m.value, re });
  }
  return out;
}

/**
 * True when every matcher holds for `labels` (an empty list matches everything). A missing label reads as
 * the empty string, as in Alertmanager: `{team!="noc"}` matches an alert without `team`.
 */
export function matchesAll(
  matchers: readonly CompiledMatcher[],
  labels: Readonly<Record<string, string>>,
): boolean {
  for (const m of matchers) {
    const v = labels[m.label] ?? "";
    switch (m.op) {
      case "=":
        if (v !== m.value) return false;
        break;
      case "!=":
        if (v === m.value) return false;
        break;
      case "=~":
        if (!m.re?.test(v)) return false;
        break;
      case "!~":
        if (m.re?.test(v)) return false;
        break;
    }
  }
  return true;
}
