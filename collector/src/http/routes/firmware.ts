import { open } from "node:fs/promises";
import { PolyfleetError } from "@polyfleet/shared";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import type { CatalogView, ComplianceReport, ComplianceRow, RolloutService } from "../../ports/rollouts.js";
import type { ApiDeps } from "../api-deps.js";
import { notFound } from "../auth.js";
import { decideRange, etagMatches } from "../byte-range.js";
import { principalOf } from "../request-context.js";
import { ERROR_RESPONSES } from "./common.js";
import { rolloutActor } from "./rollouts.js";

// Response schemas of the port's view types. TODO(lead): these belong in shared/src/contracts (with the port
// using their z.infer types); they live here until then. The assignments below keep them in step.
export const CatalogReleaseViewResponse = z.object({
  family: z.string(),
  model: z.string(),
  version: z.string(),
  build: z.string().optional(),
  channel: z.string(),
  releaseDate: z.string(),
  minVersion: z.string().optional(),
  downgrade: z.boolean(),
  notes: z.string().optional(),
  image: z.object({ fileName: z.string(), length: z.int().nonnegative(), sha256: z.string() }),
});

export const CatalogViewResponse = z.object({
  loaded: z.boolean(),
  version: z.int().nonnegative().optional(),
  expires: z.string().optional(),
  error: z.string().optional(),
  releases: z.array(CatalogReleaseViewResponse),
  baseline: z.record(z.string(), z.string()),
});

const ComplianceStatus = z.enum(["current", "behind", "ahead", "unknown"]);

export const ComplianceRowResponse = z.object({
  deviceId: z.string(),
  siteId: z.string(),
  model: z.string().optional(),
  softwareVersion: z.string().optional(),
  baseline: z.string().optional(),
  status: ComplianceStatus,
});

export const ComplianceReportResponse = z.object({
  catalogVersion: z.int().nonnegative().optional(),
  counts: z.object({
    current: z.int().nonnegative(),
    behind: z.int().nonnegative(),
    ahead: z.int().nonnegative(),
    unknown: z.int().nonnegative(),
  }),
  devices: z.array(ComplianceRowResponse),
});

// Compile-time check that the port's types fit the schemas both ways.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const SCHEMAS_MATCH_PORT: [
  Same<z.infer<typeof CatalogViewResponse>, CatalogView>,
  Same<z.infer<typeof ComplianceRowResponse>, ComplianceRow>,
  Same<z.infer<typeof ComplianceReportResponse>, ComplianceReport>,
] = [true, true, true];
void SCHEMAS_MATCH_PORT;

/** Route of the image download, relative to /api/v1; the auth hook lets it through without a token. */
export const IMAGE_ROUTE = "/firmware/images/:sha256";

const ImageParams = z.strictObject({
  sha256: z.string().regex(/^[0-9a-f]{64}$/, "sha256 must be 64 lowercase hex digits"),
});

/** Images are content-addressed: the bytes behind a sha256 never change, so caches may keep them. */
const IMAGE_CACHE_CONTROL = "public, max-age=31536000, immutable";

/**
 * Firmware: the verified catalog, compliance against its baseline, and the image download for agents.
 *
 * The image route takes no token: agents hold no API token (they authenticate to the broker), and what it
 * serves is public vendor firmware addressed by the sha256 the signed catalog lists. Only images of the
 * verified catalog are served (the service maps sha256 → file; no request path reaches the file system), so
 * knowing a hash gives nothing beyond the image the catalog already names. It is rate limited per client IP
 * like every unauthenticated request.
 */
export function registerFirmwareRoutes(
  app: FastifyInstance,
  deps: Pick<ApiDeps, "log">,
  rollouts: RolloutService,
): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    "/firmware/catalog",
    {
      schema: {
        tags: ["firmware"],
        summary: "The verified firmware catalog: releases per model and the approved baseline",
        response: { 200: CatalogViewResponse, ...ERROR_RESPONSES },
      },
    },
    () => Promise.resolve(rollouts.catalog()),
  );

  r.get(
    "/firmware/compliance",
    {
      schema: {
        tags: ["firmware"],
        summary:
          "Each device's software version against the approved baseline (current/behind/ahead/unknown)",
        response: { 200: ComplianceReportResponse, ...ERROR_RESPONSES },
      },
    },
    async (req) => rollouts.compliance(rolloutActor(principalOf(req))),
  );

  const handler = (head: boolean) => (req: FastifyRequest, reply: FastifyReply) =>
    sendImage(req, reply, rollouts, deps, head);
  const schema = (summary: string) => ({
    tags: ["firmware"],
    summary,
    security: [],
    params: ImageParams,
    produces: ["application/octet-stream"],
    response: { ...ERROR_RESPONSES },
  });
  // Plain (untyped) routes: the answer is a byte stream, not one of the JSON response schemas.
  app.get(
    IMAGE_ROUTE,
    {
      // HEAD is its own route below: fastify's automatic one would read the whole file to discard it.
      exposeHeadRoute: false,
      schema: schema(
        "Download a catalog image by sha256 (no token; Range supported). Used by agents to fetch updates",
      ),
    },
    handler(false),
  );
  app.head(IMAGE_ROUTE, { schema: schema("Length and ETag of a catalog image (no token)") }, handler(true));
}

async function sendImage(
  req: FastifyRequest,
  reply: FastifyReply,
  rollouts: RolloutService,
  deps: Pick<ApiDeps, "log">,
  head: boolean,
): Promise<FastifyReply> {
  const { sha256 } = req.params as z.infer<typeof ImageParams>;
  const image = rollouts.image(sha256);
  if (image === undefined) throw notFound(`firmware image ${sha256}`);
  const etag = `"${sha256}"`;
  const length = image.length;
  reply.header("etag", etag).header("accept-ranges", "bytes").header("cache-control", IMAGE_CACHE_CONTROL);
  if (etagMatches(req.headers["if-none-match"], etag)) return reply.code(304).send();

  // If-Range: the range applies only to the representation the client already has part of.
  const ifRange = req.headers["if-range"];
  const range = ifRange === undefined || ifRange === etag ? req.headers.range : undefined;
  const decision = decideRange(range, length);
  if (decision.kind === "unsatisfiable") {
    return reply.code(416).header("content-range", `bytes */${length}`).send();
  }

  const file = await open(image.path, "r").catch((err: unknown) => {
    deps.log.error({ err, sha256 }, "catalog image missing on disk");
    throw notFound(`firmware image ${sha256}`);
  });
  let handedOver = false;
  try {
    const st = await file.stat();
    if (st.size !== length) {
      deps.log.error(
        { sha256, onDisk: st.size, catalog: length },
        "catalog image on disk has the wrong length",
      );
      throw new PolyfleetError("POLYFLEET_ERR_IMAGE_MISMATCH");
    }
    const [start, end] = decision.kind === "partial" ? [decision.start, decision.end] : [0, length - 1];
    reply
      .type("application/octet-stream")
      .header("content-disposition", `attachment; filename="${image.fileName}"`)
      .header("content-length", String(end - start + 1));
    if (decision.kind === "partial") {
      reply.code(206).header("content-range", `bytes ${start}-${end}/${length}`);
    }
    if (head || length === 0) return reply.send();
    // The stream owns the file handle from here (closed when it ends, fails or the client goes away).
    const stream = file.createReadStream({ start, end, autoClose: true });
    handedOver = true;
    return reply.send(stream);
  } finally {
    if (!handedOver) await file.close();
  }
}
