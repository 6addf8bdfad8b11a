import { AuditEntry, AuditQueryParams, AuditVerifyResult, PolyfleetError } from "@polyfleet/shared";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import type { AuditQuery } from "../../ports/audit-log.js";
import type { ApiDeps, Principal } from "../api-deps.js";
import { allSites, requireRole } from "../auth.js";
import { principalOf } from "../request-context.js";
import { ERROR_RESPONSES } from "./common.js";

const EXPORT_PAGE = 1000;

/** The audit log spans every site: reading it needs an all-sites token. */
function requireAllSites(p: Principal): void {
  if (!allSites(p))
    throw new PolyfleetError("POLYFLEET_ERR_FORBIDDEN", "the audit log needs an all-sites token");
}

/** Audit log: query, verify, export as JSON lines. */
export function registerAuditRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    "/audit",
    {
      schema: {
        tags: ["audit"],
        summary: "Query the audit log (all-sites token)",
        querystring: AuditQueryParams,
        response: { 200: z.array(AuditEntry), ...ERROR_RESPONSES },
      },
    },
    (req) => {
      requireAllSites(principalOf(req));
      const q: AuditQuery = {};
      for (const [k, v] of Object.entries(req.query)) if (v !== undefined) Object.assign(q, { [k]: v });
      return deps.audit.query(q);
    },
  );

  r.get(
    "/audit/verify",
    {
      schema: {
        tags: ["audit"],
        summary: "Verify chain, sequence and checkpoints; names the first bad entry (all-sites token)",
        response: { 200: AuditVerifyResult, ...ERROR_RESPONSES },
      },
    },
    (req) => {
      requireAllSites(principalOf(req));
      return deps.audit.verify();
    },
  );

  // Plain (untyped) route: the answer is text, not one of the JSON response schemas.
  app.get(
    "/audit/export",
    {
      schema: {
        tags: ["audit"],
        summary: "The whole audit log as JSON lines (admin, all-sites token)",
        produces: ["application/x-ndjson"],
        // No 200 schema: the body is JSON lines, sent as text (one AuditEntry per line).
        response: { ...ERROR_RESPONSES },
      },
    },
    async (req, reply) => {
      const p = principalOf(req);
      requireRole(p, "admin");
      requireAllSites(p);
      const lines: string[] = [];
      let afterSeq = 0;
      for (;;) {
        const batch = await deps.audit.query({ afterSeq, limit: EXPORT_PAGE });
        for (const e of batch) lines.push(JSON.stringify(e));
        const last = batch.at(-1);
        if (batch.length < EXPORT_PAGE || last === undefined) break;
        afterSeq = last.seq;
      }
      const body = lines.length === 0 ? "" : `${lines.join("\n")}\n`;
      return reply
        .type("application/x-ndjson; charset=utf-8")
        .header("content-disposition", 'attachment; filename="polyfleet-audit.jsonl"')
        .send(body);
    },
  );
}
