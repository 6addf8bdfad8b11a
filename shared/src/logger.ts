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
  "secret",
  "*.secret",
  "req.headers.authorization",
  "req.headers.cookie",
  "headers.authorization",
  "headers.cookie",
];

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
  };
  return destination ? pino(options, destination) : pino(options);
}

export type { Logger };
