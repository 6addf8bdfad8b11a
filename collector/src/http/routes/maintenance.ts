import { randomUUID } from "node:crypto";
import { MaintenanceWindow, MaintenanceWindowCreate, PolyfleetError } from "@polyfleet/shared";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import type { ApiDeps } from "../api-deps.js";
import { performAudited } from "../audited.js";
import { matchersInScope, notFound, requireRole } from "../auth.js";
import { principalOf } from "../request-context.js";
import { ERROR_RESPONSES, IdParams, NO_CONTENT } from "./common.js";

/** Maintenance windows: list, create, delete. */
export function registerMaintenanceRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    "/maintenance-windows",
    {
      schema: {
        tags: ["maintenance"],
        summary: "Maintenance windows (a site-scoped token sees those pinned to its sites)",
        response: { 200: z.array(MaintenanceWindow), ...ERROR_RESPONSES },
      },
    },
    async (req) => {
      const p = principalOf(req);
      return (await deps.store.listWindows()).filter((w) => matchersInScope(p, w.matchers));
    },
  );

  r.post(
    "/maintenance-windows",
    {
      schema: {
        tags: ["maintenance"],
        summary: "Create a maintenance window (operator)",
        body: MaintenanceWindowCreate,
        response: { 201: MaintenanceWindow, ...ERROR_RESPONSES },
      },
    },
    async (req, reply) => {
      const p = principalOf(req);
      requireRole(p, "operator");
      if (!matchersInScope(p, req.body.matchers)) {
        throw new PolyfleetError(
          "POLYFLEET_ERR_FORBIDDEN",
          'a site-scoped token must pin its matchers to its sites (siteId="<site>")',
        );
      }
      const window: MaintenanceWindow = {
        id: randomUUID(),
        name: req.body.name,
        matchers: req.body.matchers,
        schedule: req.body.schedule,
        createdBy: p.actor,
      };
      await performAudited(
        deps,
        p,
        {
          action: "window.create",
          target: `window:${window.id}`,
          reason: window.name,
          details: { matchers: window.matchers, schedule: window.schedule },
        },
        async () => {
          await deps.store.saveWindow(window);
          await deps.alerts.windowsChanged(await deps.store.listWindows());
        },
      );
      return reply.code(201).send(window);
    },
  );

  r.delete(
    "/maintenance-windows/:id",
    {
      schema: {
        tags: ["maintenance"],
        summary: "Delete a maintenance window (operator)",
        params: IdParams,
        response: { 204: NO_CONTENT, ...ERROR_RESPONSES },
      },
    },
    async (req, reply) => {
      const p = principalOf(req);
      requireRole(p, "operator");
      const id = req.params.id;
      const window = (await deps.store.listWindows()).find((w) => w.id === id);
      if (window === undefined || !matchersInScope(p, window.matchers))
        throw notFound(`maintenance window ${id}`);
      await performAudited(
        deps,
        p,
        { action: "window.delete", target: `window:${id}`, reason: window.name },
        async () => {
          if (!(await deps.store.deleteWindow(id))) throw notFound(`maintenance window ${id}`);
          await deps.alerts.windowsChanged(await deps.store.listWindows());
        },
      );
      return reply.code(204).send();
    },
  );
}
