import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";

/** The dashboard's files: a fixed list, so no request path ever reaches the file system. */
const FILES: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/index.html": { file: "index.html", type: "text/html; charset=utf-8" },
  "/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
};

/** Same-origin only; no inline script or style, no CDN. */
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The dashboard directory: src/dashboard next to src/http, also when running from dist/http. */
export function defaultDashboardDir(): string {
  const candidates = [
    new URL("../dashboard/", import.meta.url),
    new URL("../../src/dashboard/", import.meta.url),
  ];
  for (const c of candidates) {
    const dir = fileURLToPath(c);
    if (existsSync(join(dir, "index.html"))) return dir;
  }
  return fileURLToPath(candidates[0] ?? new URL("../dashboard/", import.meta.url));
}

/** Serves the NOC dashboard (static, no auth: the page asks for a token and calls the API with it). */
export function registerDashboard(app: FastifyInstance, dir: string): void {
  const cache = new Map<string, Buffer>();
  for (const [url, { file, type }] of Object.entries(FILES)) {
    app.get(url, { schema: { hide: true } }, async (_req, reply) => {
      let body = cache.get(file);
      if (body === undefined) {
        body = await readFile(join(dir, file));
        cache.set(file, body);
      }
      return reply
        .type(type)
        .header("content-security-policy", DASHBOARD_CSP)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("cache-control", "no-cache")
        .send(body);
    });
  }
}
