import { HealthReport } from "@polyfleet/shared";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { ApiDeps } from "../api-deps.js";

/** `GET /healthz`: no auth; 503 when the collector reports itself down. */
export function registerHealthRoute(app: FastifyInstance, deps: ApiDeps): void {
  app.withTypeProvider<ZodTypeProvider>().get(
    "/healthz",
    {
      schema: {
        tags: ["health"],
        summary: "Liveness and component health (no auth)",
        security: [],
        response: { 200: HealthReport, 503: HealthReport },
      },
    },
    async (_req, reply) => {
      const report = await deps.health();
      return reply.code(report.status === "down" ? 503 : 200).send(report);
    },
  );
}
