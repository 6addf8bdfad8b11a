import { PolyfleetError } from "@polyfleet/shared";
import type { FastifyRequest } from "fastify";
import type { Principal } from "./api-deps.js";

declare module "fastify" {
  interface FastifyRequest {
    /** Set by the auth hook on every /api/v1 request that carried a valid token. */
    principal: Principal | null;
  }
}

/** The authenticated caller; the auth hook guarantees it on /api/v1 routes. */
export function principalOf(req: FastifyRequest): Principal {
  if (req.principal === null) throw new PolyfleetError("POLYFLEET_ERR_UNAUTHORIZED");
  return req.principal;
}

/** The request URL with any `token=` query value replaced, safe to log. */
export function redactUrl(url: string): string {
  return url.replace(/([?&]token=)[^&#]*/gi, "$1[redacted]");
}
