import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { PolyfleetError } from "./errors.js";

export interface Issue {
  path: string;
  message: string;
}

/** Formats a zod issue path the way a person reads it: `broker.url`, `devices[3].address`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out.length === 0 ? String(p) : `.${String(p)}`;
  }
  return out.length === 0 ? "(root)" : out;
}

export function issuesOf(error: z.ZodError): Issue[] {
  return error.issues.flatMap((i) =>
    // One issue per unknown key, at the key's own path: a typo reads `polling.intervalSecs: unknown key`
    // instead of `polling: Unrecognized key: "intervalSecs"`.
    i.code === "unrecognized_keys"
      ? i.keys.map((k) => ({ path: formatPath([...i.path, k]), message: "unknown key" }))
      : [{ path: formatPath(i.path), message: i.message }],
  );
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: PolyfleetError; issues: Issue[] };

/**
 * Parses an inbound payload (Buffer or string of JSON) against its schema. Never throws: the caller counts
 * and logs a failure. The error message names the first failing path.
 */
export function parseMessage<S extends z.ZodType>(
  schema: S,
  raw: Uint8Array | string,
): ParseResult<z.infer<S>> {
  let data: unknown;
  try {
    data = JSON.parse(typeof raw === "string" ? raw : Buffer.from(raw).toString("utf8"));
  } catch (cause) {
    const error = new PolyfleetError("POLYFLEET_ERR_MESSAGE_NOT_JSON", undefined, { cause });
    return { ok: false, error, issues: [{ path: "(root)", message: "not valid JSON" }] };
  }
  return validate(schema, data, "POLYFLEET_ERR_MESSAGE_INVALID");
}

/** Validates an already-decoded value. */
export function validate<S extends z.ZodType>(
  schema: S,
  data: unknown,
  code:
    | "POLYFLEET_ERR_MESSAGE_INVALID"
    | "POLYFLEET_ERR_BODY_INVALID"
    | "POLYFLEET_ERR_COMMAND_INVALID" = "POLYFLEET_ERR_MESSAGE_INVALID",
): ParseResult<z.infer<S>> {
  const r = schema.safeParse(data);
  if (r.success) return { ok: true, value: r.data };
  const issues = issuesOf(r.error);
  const first = issues[0] ?? { path: "(root)", message: "invalid" };
  const error = new PolyfleetError(code, `${first.path}: ${first.message}`, { details: { issues } });
  return { ok: false, error, issues };
}

/**
 * Parses a YAML or JSON config file's text. Throws PolyfleetError(POLYFLEET_ERR_CONFIG_INVALID) whose message
 * names the file, every failing key and the reason, e.g.
 * `agent.yaml: broker.url: must be mqtt://host:port or mqtts://host:port`.
 */
export function parseConfigText<S extends z.ZodType>(schema: S, text: string, file: string): z.infer<S> {
  let data: unknown;
  try {
    data = parseYaml(text, { prettyErrors: true });
  } catch (cause) {
    const msg = cause instanceof Error ? cause.message.split("\n")[0] : String(cause);
    throw new PolyfleetError("POLYFLEET_ERR_CONFIG_INVALID", `${file}: not valid YAML: ${msg}`, { cause });
  }
  const r = schema.safeParse(data ?? {});
  if (r.success) return r.data;
  const issues = issuesOf(r.error);
  const lines = issues.map((i) => `${file}: ${i.path}: ${i.message}`);
  throw new PolyfleetError("POLYFLEET_ERR_CONFIG_INVALID", lines.join("\n"), { details: { file, issues } });
}
