import fastifySwagger from "@fastify/swagger";
import fastifySwaggerUi from "@fastify/swagger-ui";
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from "fastify";
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import type { ApiDeps, Principal } from "./api-deps.js";
import { authenticate, extractToken } from "./auth.js";
import { defaultDashboardDir, registerDashboard } from "./dashboard.js";
import { installErrorHandling, sendError } from "./error-handler.js";
import { TokenBucketLimiter } from "./rate-limit.js";
import { redactUrl } from "./request-context.js";
import { registerAlertRoutes, STREAM_ROUTE } from "./routes/alerts.js";
import { registerAuditRoutes } from "./routes/audit.js";
import { IMAGE_ROUTE, registerFirmwareRoutes } from "./routes/firmware.js";
import { registerHealthRoute } from "./routes/health.js";
import { registerInventoryRoutes } from "./routes/inventory.js";
import { registerMaintenanceRoutes } from "./routes/maintenance.js";
import { registerRolloutRoutes } from "./routes/rollouts.js";
import { registerTokenRoutes } from "./routes/tokens.js";

export const API_PREFIX = "/api/v1";
/** The firmware image download: no token (see routes/firmware.ts), rate limited per client IP. */
const PUBLIC_IMAGE_ROUTE = `${API_PREFIX}${IMAGE_ROUTE}`;
/** Don't write `lastUsedAt` more often than this per token. */
const TOUCH_INTERVAL_MS = 60_000;

/**
 * Builds the REST API + dashboard server (routes, auth, rate limits, error envelope, OpenAPI at /docs).
 * Does not listen: main.ts calls `listen()`, tests call `inject()`.
 */
export function buildServer(deps: ApiDeps): FastifyInstance {
  const log = deps.log.child({ component: "http" });
  const app = Fastify({
    loggerInstance: log,
    // Request logging is ours (onResponse below): fastify's would log `?token=` secrets in URLs.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: deps.config.bodyLimit ?? 65_536,
    return503OnClosing: true,
  }) as unknown as FastifyInstance;
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest("principal", null);
  installErrorHandling(app, log);

  const perToken = new TokenBucketLimiter(deps.config.rateLimitPerMinute, deps.clock);
  const perIp = new TokenBucketLimiter(
    deps.config.anonymousRateLimitPerMinute ?? deps.config.rateLimitPerMinute,
    deps.clock,
  );

  const limited = (reply: FastifyReply, retryAfterSec: number): FastifyReply =>
    sendError(reply.header("retry-after", String(retryAfterSec)), "POLYFLEET_ERR_RATE_LIMITED");

  app.addHook("onRequest", async (req: FastifyRequest, reply: FastifyReply) => {
    if (!req.url.startsWith(`${API_PREFIX}/`) || req.routeOptions.url === PUBLIC_IMAGE_ROUTE) {
      const d = perIp.take(`ip:${req.ip}`);
      return d.ok ? undefined : limited(reply, d.retryAfterSec);
    }
    const query = req.query as Record<string, unknown> | undefined;
    const queryToken =
      req.routeOptions.url === STREAM_ROUTE && typeof query?.token === "string" ? query.token : undefined;
    const secret = extractToken(req.headers.authorization, queryToken);
    const principal: Principal | undefined =
      secret === undefined || secret === "" ? undefined : await authenticate(deps.store, secret);
    if (principal === undefined) {
      // Unauthenticated and bad-token attempts share the client IP's bucket (slows token guessing).
      const d = perIp.take(`ip:${req.ip}`);
      if (!d.ok) return limited(reply, d.retryAfterSec);
      return sendError(
        reply.header("www-authenticate", 'Bearer realm="polyfleet"'),
        "POLYFLEET_ERR_UNAUTHORIZED",
        secret === undefined
          ? "authentication required: send Authorization: Bearer <token>"
          : "invalid token",
      );
    }
    const d = perToken.take(`token:${principal.token.id}`);
    if (!d.ok) return limited(reply, d.retryAfterSec);
    req.principal = principal;
    const now = deps.clock.now();
    if (principal.token.lastUsedAt === undefined || now - principal.token.lastUsedAt >= TOUCH_INTERVAL_MS) {
      deps.store.touchToken(principal.token.id, now).catch((err: unknown) => {
        log.warn({ err, tokenId: principal.token.id }, "could not record token use");
      });
    }
    return undefined;
  });

  app.addHook("onSend", (req, reply, payload, done) => {
    if (req.url.startsWith(`${API_PREFIX}/`) || req.url === "/healthz") {
      // Images are content-addressed and say how long they may be cached; everything else is never cached.
      if (req.routeOptions.url !== PUBLIC_IMAGE_ROUTE || reply.statusCode >= 400) {
        reply.header("cache-control", "no-store");
      }
      reply.header("x-content-type-options", "nosniff");
    }
    done(null, payload);
  });

  app.addHook("onResponse", (req, reply, done) => {
    log.debug(
      {
        method: req.method,
        url: redactUrl(req.url),
        statusCode: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
        actor: req.principal?.actor,
      },
      "request",
    );
    done();
  });

  void app.register(fastifySwagger, {
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "polyfleet collector API",
        description:
          "Fleet inventory, alerts, silences, maintenance windows, audit log, API tokens, firmware catalog and rollouts.",
        version: deps.config.version ?? "0.1.0",
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });
  void app.register(fastifySwaggerUi, { routePrefix: "/docs" });

  void app.register(
    (api, _opts, done) => {
      registerInventoryRoutes(api, deps);
      registerAlertRoutes(api, deps);
      registerMaintenanceRoutes(api, deps);
      registerAuditRoutes(api, deps);
      registerTokenRoutes(api, deps);
      if (deps.rollouts !== undefined) {
        registerRolloutRoutes(api, deps.rollouts);
        registerFirmwareRoutes(api, deps, deps.rollouts);
      }
      done();
    },
    { prefix: API_PREFIX },
  );
  // Registered as a plugin too, so it loads after @fastify/swagger and lands in the OpenAPI document.
  void app.register((root, _opts, done) => {
    registerHealthRoute(root, deps);
    registerDashboard(root, deps.config.dashboardDir ?? defaultDashboardDir());
    done();
  });
  return app;
}
