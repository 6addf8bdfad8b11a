import { type ApiError, ERRORS, type ErrorCode, isPolyfleetError, type Logger } from "@polyfleet/shared";
import type { FastifyError, FastifyInstance, FastifyReply } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";

type Issue = { path: string; message: string };

/** `/matchers/0/label` → `matchers[0].label`. */
export function formatIssuePath(segments: readonly string[]): string {
  let out = "";
  for (const s of segments) {
    if (s === "") continue;
    if (/^\d+$/.test(s)) out += `[${s}]`;
    else out += out === "" ? s : `.${s}`;
  }
  return out;
}

function pointerSegments(instancePath: string): string[] {
  return instancePath.split("/").map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
}

/** The failing fields of a zod validation error, one issue per field (unknown keys are named each). */
function zodIssues(
  validation: readonly {
    instancePath: string;
    message?: string;
    keyword: string;
    params: Record<string, unknown>;
  }[],
  context: string,
): Issue[] {
  const issues: Issue[] = [];
  for (const v of validation) {
    const base = pointerSegments(v.instancePath);
    const keys = v.params.keys;
    if (v.keyword === "unrecognized_keys" && Array.isArray(keys)) {
      for (const k of keys)
        issues.push({ path: formatIssuePath([...base, String(k)]), message: "unknown field" });
      continue;
    }
    const path = formatIssuePath(base);
    issues.push({ path: path === "" ? `(${context})` : path, message: v.message ?? "invalid" });
  }
  return issues;
}

function detailIssues(details: Record<string, unknown> | undefined): Issue[] | undefined {
  const issues = details?.issues;
  if (!Array.isArray(issues)) return undefined;
  return issues.filter(
    (i): i is Issue =>
      typeof i === "object" && i !== null && typeof i.path === "string" && typeof i.message === "string",
  );
}

/** Sends the one error envelope. */
export function sendError(
  reply: FastifyReply,
  code: ErrorCode,
  message?: string,
  issues?: Issue[],
): FastifyReply {
  const body: ApiError = {
    error: { code, message: message ?? ERRORS[code].message, ...(issues === undefined ? {} : { issues }) },
  };
  return reply.code(ERRORS[code].status).type("application/json; charset=utf-8").send(body);
}

const FASTIFY_CODES: Partial<Record<string, ErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: "POLYFLEET_ERR_BODY_TOO_LARGE",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "POLYFLEET_ERR_MEDIA_TYPE_UNSUPPORTED",
  FST_ERR_CTP_EMPTY_JSON_BODY: "POLYFLEET_ERR_BODY_INVALID",
  FST_ERR_CTP_INVALID_JSON_BODY: "POLYFLEET_ERR_BODY_INVALID",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "POLYFLEET_ERR_BODY_INVALID",
  FST_ERR_BAD_URL: "POLYFLEET_ERR_NOT_FOUND",
};

/**
 * The one error handler and the 404 handler: every error leaves as `{ error: { code, message, issues? } }`.
 * PolyfleetError → its status and code; schema validation → 400 naming the fields; fastify's body parser
 * errors → their catalog code; anything else → 500 with a generic message, logged with `err`.
 */
export function installErrorHandling(app: FastifyInstance, log: Logger): void {
  app.setNotFoundHandler((req, reply) =>
    sendError(reply, "POLYFLEET_ERR_NOT_FOUND", `no route ${req.method} ${req.url.split("?")[0] ?? ""}`),
  );

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (isPolyfleetError(err)) {
      if (err.statusCode >= 500)
        log.warn({ err, method: req.method, route: req.routeOptions.url }, err.message);
      return sendError(reply, err.code, err.message, detailIssues(err.details));
    }
    if (hasZodFastifySchemaValidationErrors(err)) {
      const context = err.validationContext ?? "body";
      const what = context === "body" ? "request body" : context === "querystring" ? "query" : context;
      return sendError(
        reply,
        "POLYFLEET_ERR_BODY_INVALID",
        `${what} is invalid`,
        zodIssues(err.validation, context),
      );
    }
    const mapped = typeof err.code === "string" ? FASTIFY_CODES[err.code] : undefined;
    if (mapped !== undefined) return sendError(reply, mapped, ERRORS[mapped].message);
    if (typeof err.statusCode === "number" && err.statusCode >= 400 && err.statusCode < 500) {
      // Other client errors fastify raises (e.g. a malformed URL): never echo library text.
      return sendError(reply, "POLYFLEET_ERR_BODY_INVALID", ERRORS.POLYFLEET_ERR_BODY_INVALID.message);
    }
    log.error({ err, method: req.method, route: req.routeOptions.url }, "request failed");
    return sendError(reply, "POLYFLEET_ERR_INTERNAL");
  });
}
