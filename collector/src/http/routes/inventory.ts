import {
  AgentRecord,
  DeviceQuery,
  DeviceRecord,
  DeviceTagsUpdate,
  PolyfleetError,
  page,
  SeriesRequest,
  SeriesResponse,
  Site,
} from "@polyfleet/shared";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import type { ApiDeps, Principal } from "../api-deps.js";
import { performAudited } from "../audited.js";
import { inScope, notFound, requireRole, siteScope } from "../auth.js";
import { principalOf } from "../request-context.js";
import { ERROR_RESPONSES, IdParams } from "./common.js";

const MAX_SERIES_RANGE_MS = 31 * 24 * 3600 * 1000;
const DEFAULT_SERIES_RANGE_MS = 3600 * 1000;

async function visibleDevice(deps: ApiDeps, p: Principal, id: string): Promise<DeviceRecord> {
  const d = await deps.store.getDevice(id);
  if (d === undefined || !inScope(p, d.siteId)) throw notFound(`device ${id}`);
  return d;
}

/** Sites, agents, devices, device tags and device series. */
export function registerInventoryRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    "/sites",
    {
      schema: {
        tags: ["inventory"],
        summary: "Sites with their agent and device counts",
        response: { 200: z.array(Site), ...ERROR_RESPONSES },
      },
    },
    async (req) => deps.store.listSites(siteScope(principalOf(req))),
  );

  r.get(
    "/agents",
    {
      schema: {
        tags: ["inventory"],
        summary: "Agents, online or offline",
        response: { 200: z.array(AgentRecord), ...ERROR_RESPONSES },
      },
    },
    async (req) => {
      const p = principalOf(req);
      return (await deps.store.listAgents(siteScope(p))).filter((a) => inScope(p, a.siteId));
    },
  );

  r.get(
    "/devices",
    {
      schema: {
        tags: ["inventory"],
        summary: "Devices: filter, free-text search (q), cursor pagination",
        querystring: DeviceQuery,
        response: { 200: page(DeviceRecord), ...ERROR_RESPONSES },
      },
    },
    async (req) => {
      const p = principalOf(req);
      const result = await deps.store.listDevices(req.query, siteScope(p));
      const items = result.items.filter((d) => inScope(p, d.siteId));
      return {
        items,
        total: result.total,
        ...(result.nextCursor === undefined ? {} : { nextCursor: result.nextCursor }),
      };
    },
  );

  r.get(
    "/devices/:id",
    {
      schema: {
        tags: ["inventory"],
        summary: "One device",
        params: IdParams,
        response: { 200: DeviceRecord, ...ERROR_RESPONSES },
      },
    },
    async (req) => visibleDevice(deps, principalOf(req), req.params.id),
  );

  r.put(
    "/devices/:id/tags",
    {
      schema: {
        tags: ["inventory"],
        summary: "Replace a device's tags (operator)",
        params: IdParams,
        body: DeviceTagsUpdate,
        response: { 200: DeviceRecord, ...ERROR_RESPONSES },
      },
    },
    async (req) => {
      const p = principalOf(req);
      requireRole(p, "operator");
      const id = req.params.id;
      await visibleDevice(deps, p, id);
      const tags = [...new Set(req.body.tags)];
      return performAudited(
        deps,
        p,
        { action: "device.tags", target: `device:${id}`, reason: "api", details: { tags } },
        async () => {
          const updated = await deps.store.setDeviceTags(id, tags);
          if (updated === undefined) throw notFound(`device ${id}`);
          return updated;
        },
      );
    },
  );

  r.get(
    "/devices/:id/series",
    {
      schema: {
        tags: ["inventory"],
        summary: "A device's metric series (from/to epoch ms, default the last hour; step ms, 0 = raw)",
        params: IdParams,
        querystring: SeriesRequest,
        response: { 200: SeriesResponse, ...ERROR_RESPONSES },
      },
    },
    async (req) => {
      const p = principalOf(req);
      const id = req.params.id;
      await visibleDevice(deps, p, id);
      const to = req.query.to ?? deps.clock.now();
      const from = req.query.from ?? Math.max(0, to - DEFAULT_SERIES_RANGE_MS);
      if (from >= to || to - from > MAX_SERIES_RANGE_MS) {
        throw new PolyfleetError("POLYFLEET_ERR_BODY_INVALID", "query is invalid", {
          details: {
            issues: [{ path: "from", message: "from must be before to, and the range at most 31 days" }],
          },
        });
      }
      const points = await deps.metrics.query({
        deviceId: id,
        field: req.query.field,
        from,
        to,
        stepMs: req.query.step,
      });
      return { deviceId: id, field: req.query.field, from, to, step: req.query.step, points };
    },
  );
}
