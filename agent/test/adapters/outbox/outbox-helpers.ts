import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, type Logger } from "@polyfleet/shared";
import { build } from "esbuild";
import { SqliteOutbox, type SqliteOutboxOptions } from "../../../src/adapters/outbox/sqlite-outbox.js";
import { PromRegistry } from "../../../src/core/prom-registry.js";
import { type Clock, SYSTEM_CLOCK } from "../../../src/ports/clock.js";

export { readingBody } from "./outbox-helpers-lite.js";

/** A clock whose `now` is fixed (and settable); timers are real. */
export function fixedClock(start = 1_700_000_000_000): Clock & { t: number } {
  const c = { ...SYSTEM_CLOCK, t: start, now: () => c.t };
  return c;
}

/** A logger that records parsed log objects (pino sink pattern). */
export function memoryLogger(level: "warn" | "info" | "debug" | "silent" = "warn"): {
  log: Logger;
  lines: Record<string, unknown>[];
} {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ level, name: "test" }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { log, lines };
}

export async function tempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `polyfleet-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export function makeOutbox(
  dir: string,
  over: Partial<SqliteOutboxOptions> = {},
): { outbox: SqliteOutbox; metrics: PromRegistry; lines: Record<string, unknown>[] } {
  const metrics = new PromRegistry();
  const { log, lines } = memoryLogger();
  const outbox = new SqliteOutbox({
    dir,
    agentId: "agent-1",
    siteId: "site-1",
    maxEntries: 1000,
    clock: fixedClock(),
    metrics,
    log,
    ...over,
  });
  return { outbox, metrics, lines };
}

const ROOT = new URL("../../../../", import.meta.url);

/**
 * Bundles a TypeScript entry (our sources, from the `@polyfleet/source` condition) into one ESM file that
 * plain `node` runs as a child process. Native/CJS packages stay external; the file is written under the
 * repo's node_modules/.cache so they resolve from the repo's node_modules.
 */
export async function bundleChild(entry: URL, name: string): Promise<string> {
  const outfile = new URL(`node_modules/.cache/polyfleet-tests/${name}-${process.pid}.mjs`, ROOT).pathname;
  await build({
    entryPoints: [entry.pathname],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    conditions: ["@polyfleet/source"],
    external: ["better-sqlite3", "mqtt", "pino", "zod", "yaml"],
    logLevel: "error",
  });
  return outfile;
}
