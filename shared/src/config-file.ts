import { readFileSync, realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import type { z } from "zod";
import type { SecretRef } from "./contracts/common.js";
import { PolyfleetError } from "./errors.js";
import { parseConfigText } from "./parse.js";

/**
 * Reads and validates a YAML/JSON config file (the one place outside main.ts files that touches the file
 * system: both processes load their config the same way). Errors name the file, the key and the reason.
 */
export function loadConfigFile<S extends z.ZodType>(schema: S, file: string): z.infer<S> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? "error";
    throw new PolyfleetError(
      "POLYFLEET_ERR_CONFIG_UNREADABLE",
      `${file}: cannot read the config file (${code})`,
      { cause },
    );
  }
  return parseConfigText(schema, text, file);
}

export interface SecretSources {
  env: Record<string, string | undefined>;
  readFile(path: string): string;
}

export const PROCESS_SECRETS: SecretSources = {
  env: process.env,
  readFile: (path) => readFileSync(path, "utf8"),
};

/**
 * Resolves a secret reference: inline, `{env: NAME}` or `{file: PATH}` (trailing newline trimmed). The error
 * names the config key and where it looked, never the value.
 */
export function resolveSecret(
  ref: SecretRef,
  key: string,
  file: string,
  sources: SecretSources = PROCESS_SECRETS,
): string {
  if (typeof ref === "string") return ref;
  if ("env" in ref) {
    const v = sources.env[ref.env];
    if (v === undefined || v === "") {
      throw new PolyfleetError(
        "POLYFLEET_ERR_SECRET_UNRESOLVED",
        `${file}: ${key}: environment variable ${ref.env} is not set`,
      );
    }
    return v;
  }
  try {
    const v = sources.readFile(ref.file).replace(/\r?\n$/, "");
    if (v === "") throw new Error("empty");
    return v;
  } catch (cause) {
    const why = cause instanceof Error && cause.message === "empty" ? "is empty" : "cannot be read";
    throw new PolyfleetError(
      "POLYFLEET_ERR_SECRET_UNRESOLVED",
      `${file}: ${key}: secret file ${ref.file} ${why}`,
      { cause },
    );
  }
}

/**
 * Whether the module at `moduleUrl` (its `import.meta.url`) is the process entry (`node path/to/it.js`),
 * following symlinks such as npm's bin links.
 */
export function isProcessEntry(moduleUrl: string): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return moduleUrl === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}
