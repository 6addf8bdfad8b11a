import { ApiToken, ApiTokenCreate, ApiTokenCreated } from "@polyfleet/shared";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import type { ApiDeps, Principal } from "../api-deps.js";
import { performAudited } from "../audited.js";
import { allSites, issueToken, notFound, requireRole, requireSitesWithin } from "../auth.js";
import { principalOf } from "../request-context.js";
import { ERROR_RESPONSES, IdParams, NO_CONTENT } from "./common.js";

/** A site-scoped admin manages only tokens within its own sites. */
function manages(p: Principal, t: ApiToken): boolean {
  return allSites(p) || t.sites.every((s) => s !== "*" && p.token.sites.includes(s));
}

/** API tokens (admin): list, create (the secret is returned once), revoke. */
export function registerTokenRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    "/tokens",
    {
      schema: {
        tags: ["tokens"],
        summary: "API tokens (admin); never the secrets",
        response: { 200: z.array(ApiToken), ...ERROR_RESPONSES },
      },
    },
    async (req) => {
      const p = principalOf(req);
      requireRole(p, "admin");
      return (await deps.store.listTokens()).filter((t) => manages(p, t));
    },
  );

  r.post(
    "/tokens",
    {
      schema: {
        tags: ["tokens"],
        summary: "Create a token (admin); the answer holds the secret, shown this once only",
        body: ApiTokenCreate,
        response: { 201: ApiTokenCreated, ...ERROR_RESPONSES },
      },
    },
    async (req, reply) => {
      const p = principalOf(req);
      requireRole(p, "admin");
      requireSitesWithin(p, req.body.sites);
      const created = await performAudited(
        deps,
        p,
        {
          action: "token.create",
          target: `token:${req.body.name}`,
          reason: "api",
          details: { role: req.body.role, sites: req.body.sites },
        },
        () => issueToken(deps.store, req.body, p.actor, deps.clock),
      );
      return reply.code(201).send(created);
    },
  );

  r.delete(
    "/tokens/:id",
    {
      schema: {
        tags: ["tokens"],
        summary: "Revoke a token (admin)",
        params: IdParams,
        response: { 204: NO_CONTENT, ...ERROR_RESPONSES },
      },
    },
    async (req, reply) => {
      const p = principalOf(req);
      requireRole(p, "admin");
      const id = req.params.id;
      const token = (await deps.store.listTokens()).find((t) => t.id === id);
      if (token === undefined || !manages(p, token)) throw notFound(`token ${id}`);
      await performAudited(
        deps,
        p,
        {
          action: "token.delete",
          target: `token:${token.name}`,
          reason: "api",
          details: { id, role: token.role },
        },
        async () => {
          if (!(await deps.store.deleteToken(id))) throw notFound(`token ${id}`);
        },
      );
      return reply.code(204).send();
    },
  );
}
