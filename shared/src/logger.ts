import { type DestinationStream, type Logger, type LoggerOptions, pino } from "pino";

/** Paths redacted in every log line: credentials never reach a log. Fixed in code on purpose. */
export const REDACT_PATHS = [
  "password",
  "*.password",
  "*.*.password",
  "community",
  "*.community",
  "*.*.community",
  "authKey",
  "*.authKey",
  "*.*.authKey",
  "privKey",
  "*.privKey",
  "*.*.privKey",
  "token",
  "*.token",
  "*.*.token",
  "secret",
  "*.secret",
  "*.*.secret",
  "req.headers.authorization",
  "req.headers.cookie",
  "headers.authorization",
  "headers.cookie",
];

/** Keys whose values are secrets wherever they appear, at any depth (see `redactDeep`). */
export const SECRET_KEY =
  /^(password|passwd|community|authKey|privKey|token|secret|apiKey|authorization|cookie|set-cookie|key)$/i;

/**
 * Returns a copy of `value` with every secret-named key replaced by `[redacted]`, at any depth (pino's path
 * redaction covers fixed depths only; this covers a whole config or credential profile logged by mistake).
 */
export function redactDeep(value: unknown, depth = 0): unknown {
  if (depth > 8 || value === null || typeof value !== "object") return value;
  if (value instanceof Error) return value;
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_KEY.test(k) && v !== undefined && v !== null ? "[redacted]" : redactDeep(v, depth + 1);
  }
  return out;
}

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

/** The pino root for one process. Components take `log.child({ component })` from it. */
export function createLogger(
  opts: { level?: LogLevel; name?: string; base?: Record<string, unknown> } = {},
  destination?: DestinationStream,
): Logger {
  const options: LoggerOptions = {
    level: opts.level ?? "info",
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    base: { name: opts.name, ...opts.base },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { log: (obj) => redactDeep(obj) as Record<string, unknown> },
  };
  return destination ? pino(options, destination) : pino(options);
}

export type { Logger };
