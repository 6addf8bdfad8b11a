export { AlertEngine, type AlertEngineOptions, type AlertOutput, OUTBOX_QUIET_MS } from "./engine.js";
export { alertFingerprint, IDENTITY_LABELS } from "./fingerprint.js";
export { type CompiledMatcher, compileMatchers, matchesAll } from "./matchers.js";
export { BUILTIN_RULES, effectiveRules, loadRules, notifiersForLevel, rulesFile } from "./rules.js";
export { problemsClearedBy, TRAP_RESOLUTIONS } from "./trap-pairs.js";
export { isWindowActive, localMinuteOfWeek, windowScheduleError } from "./windows.js";
