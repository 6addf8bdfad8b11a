import { randomUUID } from "node:crypto";
import {
  Alert,
  AlertAck,
  AlertDetail,
  AlertListQuery,
  AlertRule,
  isPolyfleetError,
  PolyfleetError,
  Silence,
  SilenceCreate,
} from "@polyfleet/shared";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import type { ApiDeps, Principal } from "../api-deps.js";
import { performAudited } from "../audited.js";
import { allSites, inScope, matchersInScope, notFound, requireRole, siteScope } from "../auth.js";
import { principalOf } from "../request-context.js";
import { ERROR_RESPONSES, IdParams, NO_CONTENT } from "./common.js";

/** Route of the live stream; the auth hook accepts `?token=` on this route only (EventSource sends no headers). */
export const STREAM_ROUTE = "/api/v1/alerts/stream";

async function visibleAlert(deps: ApiDeps, p: Principal, id: string): Promise<Alert> {
  const a = await deps.store.getAlert(id);
  if (a === undefined || !inScope(p, a.siteId)) throw notFound(`alert ${id}`);
  return a;
}

const SCOPE_MESSAGE = 'a site-scoped token must pin its matchers to its sites (siteId="<site>")';

/** Alerts (list, detail, ack, live stream), silences and rules. */
export function registerAlertRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    "/alerts",
    {
      schema: {
        tags: ["alerts"],
        summary: "Alerts; state=active means firing or acknowledged",
        querystring: AlertListQuery,
        response: { 200: z.array(Alert), ...ERROR_RESPONSES },
      },
    },
    async (req) => {
      const p = principalOf(req);
      const q = req.query;
      const alerts = await deps.store.listAlerts({
        limit: q.limit,
        ...(q.state === undefined ? {} : { state: q.state }),
        ...(q.severity === undefined ? {} : { severity: q.severity }),
        ...(q.siteId === undefined ? {} : { siteId: q.siteId }),
        ...(q.deviceId === undefined ? {} : { deviceId: q.deviceId }),
        ...(siteScope(p) === undefined ? {} : { sites: siteScope(p) }),
      });
      return alerts.filter((a) => inScope(p, a.siteId));
    },
  );

  r.get(
    STREAM_ROUTE.slice("/api/v1".length),
    {
      schema: {
        tags: ["alerts"],
        summary:
          "Live alert transitions (Server-Sent Events); token via Authorization or ?token= for EventSource",
        querystring: z.strictObject({ token: z.string().optional() }),
        produces: ["text/event-stream"],
      },
    },
    (req, reply) => {
      const p = principalOf(req);
      reply.hijack();
      deps.sse.handle(req.raw, reply.raw, allSites(p) ? "*" : [...p.token.sites]);
    },
  );

  r.get(
    "/alerts/:id",
    {
      schema: {
        tags: ["alerts"],
        summary: "One alert with its history",
        params: IdParams,
        response: { 200: AlertDetail, ...ERROR_RESPONSES },
      },
    },
    async (req) => {
      const alert = await visibleAlert(deps, principalOf(req), req.params.id);
      return { alert, history: await deps.store.alertHistory(alert.id) };
    },
  );

  r.post(
    "/alerts/:id/ack",
    {
      schema: {
        tags: ["alerts"],
        summary: "Acknowledge an alert (operator)",
        params: IdParams,
        body: AlertAck,
        response: { 200: Alert, ...ERROR_RESPONSES },
      },
    },
    async (req) => {
      const p = principalOf(req);
      requireRole(p, "operator");
      const alert = await visibleAlert(deps, p, req.params.id);
      return performAudited(
        deps,
        p,
        {
          action: "alert.ack",
          target: `alert:${alert.id}`,
          reason: req.body.comment,
          details: { rule: alert.rule },
        },
        async () => {
          const res = await deps.alerts.ack(alert.id, p.actor, req.body.comment);
          if (isPolyfleetError(res)) throw res;
          return res;
        },
      );
    },
  );

  r.get(
    "/silences",
    {
      schema: {
        tags: ["alerts"],
        summary: "Silences (a site-scoped token sees those pinned to its sites)",
        response: { 200: z.array(Silence), ...ERROR_RESPONSES },
      },
    },
    async (req) => {
      const p = principalOf(req);
      return (await deps.store.listSilences()).filter((s) => matchersInScope(p, s.matchers));
    },
  );

  r.post(
    "/silences",
    {
      schema: {
        tags: ["alerts"],
        summary: "Silence alerts matching the matchers until endsAt (operator)",
        body: SilenceCreate,
        response: { 201: Silence, ...ERROR_RESPONSES },
      },
    },
    async (req, reply) => {
      const p = principalOf(req);
      requireRole(p, "operator");
      const body = req.body;
      if (!matchersInScope(p, body.matchers))
        throw new PolyfleetError("POLYFLEET_ERR_FORBIDDEN", SCOPE_MESSAGE);
      const now = deps.clock.now();
      const startsAt = body.startsAt ?? now;
      if (body.endsAt <= Math.max(now, startsAt)) {
        throw new PolyfleetError("POLYFLEET_ERR_BODY_INVALID", "request body is invalid", {
          details: {
            issues: [{ path: "endsAt", message: "endsAt must be in the future and after startsAt" }],
          },
        });
      }
      const silence: Silence = {
        id: randomUUID(),
        matchers: body.matchers,
        startsAt,
        endsAt: body.endsAt,
        createdBy: p.actor,
        comment: body.comment,
      };
      await performAudited(
        deps,
        p,
        {
          action: "silence.create",
          target: `silence:${silence.id}`,
          reason: body.comment,
          details: { matchers: silence.matchers, startsAt, endsAt: silence.endsAt },
        },
        async () => {
          await deps.store.saveSilence(silence);
          await deps.alerts.silencesChanged(await deps.store.listSilences());
        },
      );
      return reply.code(201).send(silence);
    },
  );

  r.delete(
    "/silences/:id",
    {
      schema: {
        tags: ["alerts"],
        summary: "Remove a silence: unsilence (operator)",
        params: IdParams,
        response: { 204: NO_CONTENT, ...ERROR_RESPONSES },
      },
    },
    async (req, reply) => {
      const p = principalOf(req);
      requireRole(p, "operator");
      const id = req.params.id;
      const silence = (await deps.store.listSilences()).find((s) => s.id === id);
      if (silence === undefined || !matchersInScope(p, silence.matchers)) throw notFound(`silence ${id}`);
      await performAudited(
        deps,
        p,
        {
          action: "silence.delete",
          target: `silence:${id}`,
          reason: "unsilence",
          details: { matchers: silence.matchers },
        },
        async () => {
          if (!(await deps.store.deleteSilence(id))) throw notFound(`silence ${id}`);
          await deps.alerts.silencesChanged(await deps.store.listSilences());
        },
      );
      return reply.code(204).send();
    },
  );

  r.get(
    "/rules",
    {
      schema: {
        tags: ["alerts"],
        summary: "The effective alert rules",
        response: { 200: z.array(AlertRule), ...ERROR_RESPONSES },
      },
    },
    async () => deps.alerts.rules(),
  );
}
