import {
  Rollout,
  RolloutAction,
  RolloutCreate,
  RolloutDevice,
  RolloutDeviceState,
  RolloutPreview,
  RolloutState,
} from "@polyfleet/shared";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import type { RolloutActionName, RolloutActor, RolloutService } from "../../ports/rollouts.js";
import type { Principal } from "../api-deps.js";
import { notFound, requireRole, siteScope } from "../auth.js";
import { principalOf } from "../request-context.js";
import { ERROR_RESPONSES, IdParams } from "./common.js";

/** Query of `GET /api/v1/rollouts`. */
export const RolloutListQuery = z.strictObject({ state: RolloutState.optional() });

/** Query of `GET /api/v1/rollouts/:id/devices`. */
export const RolloutDeviceQuery = z.strictObject({
  state: RolloutDeviceState.optional(),
  wave: z.coerce.number().int().min(0).max(100).optional(),
});

/** The actions, with what each does (the OpenAPI summary). */
const ACTIONS: Record<RolloutActionName, string> = {
  start: "Start a pending rollout: its first wave begins (operator)",
  pause: "Pause: no new device starts; devices already updating finish (operator)",
  resume: "Resume a paused or halted rollout (operator)",
  cancel: "Cancel: no new device starts, the rollout ends (operator)",
  "retry-failed": "Queue the failed devices of the started waves again (operator)",
};

/** The principal as the rollout service sees it: the audit actor and the token's sites (undefined = all). */
export function rolloutActor(p: Principal): RolloutActor {
  return { actor: p.actor, sites: siteScope(p) };
}

/**
 * Rollouts: preview (dry run), create, list, detail, devices and the five actions. Every state change is
 * audited and notified by the rollout service itself (intent before the change, a `failed` entry when it is
 * refused), so these routes do not audit again. Site scoping is the service's: it answers 404 for a rollout
 * outside the token's sites and refuses a selection that reaches beyond them.
 */
export function registerRolloutRoutes(app: FastifyInstance, rollouts: RolloutService): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post(
    "/rollouts/preview",
    {
      schema: {
        tags: ["rollouts"],
        summary: "Dry run: the waves and devices a rollout would have; nothing is stored (operator)",
        body: RolloutCreate,
        response: { 200: RolloutPreview, ...ERROR_RESPONSES },
      },
    },
    async (req) => {
      const p = principalOf(req);
      requireRole(p, "operator");
      return await rollouts.preview(req.body, rolloutActor(p));
    },
  );

  r.post(
    "/rollouts",
    {
      schema: {
        tags: ["rollouts"],
        summary: "Create a rollout in state pending, planned exactly as the preview shows (operator)",
        body: RolloutCreate,
        response: { 201: Rollout, ...ERROR_RESPONSES },
      },
    },
    async (req, reply) => {
      const p = principalOf(req);
      requireRole(p, "operator");
      const created = await rollouts.create(req.body, rolloutActor(p));
      return reply.code(201).send(created);
    },
  );

  r.get(
    "/rollouts",
    {
      schema: {
        tags: ["rollouts"],
        summary: "Rollouts, newest first; optionally of one state",
        querystring: RolloutListQuery,
        response: { 200: z.array(Rollout), ...ERROR_RESPONSES },
      },
    },
    async (req) => rollouts.list({ state: req.query.state }, rolloutActor(principalOf(req))),
  );

  r.get(
    "/rollouts/:id",
    {
      schema: {
        tags: ["rollouts"],
        summary: "One rollout with its waves and per-state device counts",
        params: IdParams,
        response: { 200: Rollout, ...ERROR_RESPONSES },
      },
    },
    async (req) => {
      const found = await rollouts.get(req.params.id, rolloutActor(principalOf(req)));
      if (found === undefined) throw notFound(`rollout ${req.params.id}`);
      return found;
    },
  );

  r.get(
    "/rollouts/:id/devices",
    {
      schema: {
        tags: ["rollouts"],
        summary: "A rollout's devices in plan order; filter by device state and wave index",
        params: IdParams,
        querystring: RolloutDeviceQuery,
        response: { 200: z.array(RolloutDevice), ...ERROR_RESPONSES },
      },
    },
    async (req) =>
      rollouts.devices(
        req.params.id,
        { state: req.query.state, wave: req.query.wave },
        rolloutActor(principalOf(req)),
      ),
  );

  for (const [action, summary] of Object.entries(ACTIONS) as [RolloutActionName, string][]) {
    r.post(
      `/rollouts/:id/${action}`,
      {
        schema: {
          tags: ["rollouts"],
          summary,
          params: IdParams,
          body: RolloutAction,
          response: { 200: Rollout, ...ERROR_RESPONSES },
        },
      },
      async (req) => {
        const p = principalOf(req);
        requireRole(p, "operator");
        return await rollouts.act(req.params.id, action, req.body.reason, rolloutActor(p));
      },
    );
  }
}
