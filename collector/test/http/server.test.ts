import { ApiError } from "@polyfleet/shared";
import { afterEach, describe, expect, it } from "vitest";
import { TokenBucketLimiter } from "../../src/http/rate-limit.js";
import { type Harness, ManualClock, makeHarness } from "./fakes.js";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe("OpenAPI", () => {
  it("/docs/json lists every API route with its method, and /docs serves the UI", async () => {
    h = await makeHarness();
    const res = await h.app.inject({ url: "/docs/json" });
    expect(res.statusCode).toBe(200);
    const doc = JSON.parse(res.body) as {
      openapi: string;
      paths: Record<string, Record<string, { requestBody?: unknown; parameters?: { name: string }[] }>>;
      components: { securitySchemes: Record<string, unknown> };
    };
    expect(doc.openapi).toMatch(/^3\./);
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(routes.sort()).toEqual(
      [
        "GET /api/v1/sites",
        "GET /api/v1/agents",
        "GET /api/v1/devices",
        "GET /api/v1/devices/{id}",
        "PUT /api/v1/devices/{id}/tags",
        "GET /api/v1/devices/{id}/series",
        "GET /api/v1/alerts",
        "GET /api/v1/alerts/stream",
        "GET /api/v1/alerts/{id}",
        "POST /api/v1/alerts/{id}/ack",
        "GET /api/v1/silences",
        "POST /api/v1/silences",
        "DELETE /api/v1/silences/{id}",
        "GET /api/v1/rules",
        "GET /api/v1/maintenance-windows",
        "POST /api/v1/maintenance-windows",
        "DELETE /api/v1/maintenance-windows/{id}",
        "GET /api/v1/audit",
        "GET /api/v1/audit/verify",
        "GET /api/v1/audit/export",
        "GET /api/v1/tokens",
        "POST /api/v1/tokens",
        "DELETE /api/v1/tokens/{id}",
        "POST /api/v1/rollouts/preview",
        "POST /api/v1/rollouts",
        "GET /api/v1/rollouts",
        "GET /api/v1/rollouts/{id}",
        "GET /api/v1/rollouts/{id}/devices",
        "POST /api/v1/rollouts/{id}/start",
        "POST /api/v1/rollouts/{id}/pause",
        "POST /api/v1/rollouts/{id}/resume",
        "POST /api/v1/rollouts/{id}/cancel",
        "POST /api/v1/rollouts/{id}/retry-failed",
        "GET /api/v1/firmware/catalog",
        "GET /api/v1/firmware/compliance",
        "GET /api/v1/firmware/images/{sha256}",
        "GET /healthz",
      ].sort(),
    );
    const image = (doc.paths["/api/v1/firmware/images/{sha256}"]?.get ?? {}) as {
      security?: unknown;
      tags?: string[];
    };
    expect(image.security).toEqual([]);
    expect(image.tags).toEqual(["firmware"]);
    expect(JSON.stringify(doc.paths["/api/v1/rollouts"]?.post?.requestBody)).toContain("concurrencyPerSite");
    // The shared zod schemas made it into the document.
    expect(JSON.stringify(doc.paths["/api/v1/silences"]?.post?.requestBody)).toContain("matchers");
    expect(doc.paths["/api/v1/devices"]?.get?.parameters?.map((p) => p.name)).toContain("q");
    expect(doc.components.securitySchemes.bearer).toEqual({ type: "http", scheme: "bearer" });

    const ui = await h.app.inject({ url: "/docs/" });
    expect(ui.statusCode).toBe(200);
    expect(ui.headers["content-type"]).toMatch(/text\/html/);
  });
});

describe("SSE", () => {
  it("the stream route hands the raw request over to the hub", async () => {
    h = await makeHarness();
    const res = await h.app.inject({ url: `/api/v1/alerts/stream?token=${h.secrets.hqViewer}` });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/event-stream/);
    expect(res.body).toBe(": hello hq\n\n");
    expect(h.sse.calls).toHaveLength(1);
    expect(h.sse.calls[0]?.url).toContain("/api/v1/alerts/stream");
    // The secret from the URL never reaches the log.
    expect(h.logText()).not.toContain(h.secrets.hqViewer);
    expect(h.logs.some((l) => typeof l.url === "string" && l.url.includes("token=[redacted]"))).toBe(true);
  });

  it("without a token the hub is never called", async () => {
    h = await makeHarness();
    const res = await h.app.inject({ url: "/api/v1/alerts/stream" });
    expect(res.statusCode).toBe(401);
    expect(h.sse.calls).toEqual([]);
  });
});

describe("dashboard", () => {
  it.each([
    ["/", /^text\/html/, "<title>polyfleet NOC</title>"],
    ["/index.html", /^text\/html/, 'src="/app.js"'],
    ["/app.js", /^text\/javascript/, "new EventSource("],
    ["/style.css", /^text\/css/, "--critical"],
  ])("%s is served with the right type and a strict CSP, without a token", async (url, type, content) => {
    h = await makeHarness();
    const res = await h.app.inject({ url });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(type);
    expect(res.headers["content-security-policy"]).toContain("script-src 'self'");
    expect(res.headers["content-security-policy"]).not.toContain("unsafe-inline");
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.body).toContain(content);
  });

  it("the page has no inline script or style and loads nothing from elsewhere", async () => {
    h = await makeHarness();
    const html = (await h.app.inject({ url: "/" })).body;
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/\sstyle=/);
    expect(html).not.toMatch(/https?:\/\//);
  });

  it("other paths are not served from the dashboard folder", async () => {
    h = await makeHarness();
    for (const url of ["/../package.json", "/dashboard/app.js", "/%2e%2e/server.ts"]) {
      const res = await h.app.inject({ url });
      expect(res.statusCode).toBe(404);
      expect(ApiError.parse(JSON.parse(res.body)).error.code).toBe("POLYFLEET_ERR_NOT_FOUND");
    }
  });
});

describe("rate limits", () => {
  it("a token over its budget gets 429 with Retry-After; it refills with time; other tokens are unaffected", async () => {
    h = await makeHarness({ rateLimitPerMinute: 3 });
    for (let i = 0; i < 3; i++) {
      expect((await h.app.inject({ url: "/api/v1/sites", headers: h.auth("viewer") })).statusCode).toBe(200);
    }
    const limited = await h.app.inject({ url: "/api/v1/sites", headers: h.auth("viewer") });
    expect(limited.statusCode).toBe(429);
    expect(limited.headers["retry-after"]).toBe("20");
    expect(ApiError.parse(JSON.parse(limited.body)).error.code).toBe("POLYFLEET_ERR_RATE_LIMITED");
    expect((await h.app.inject({ url: "/api/v1/sites", headers: h.auth("admin") })).statusCode).toBe(200);
    h.clock.advance(20_000);
    expect((await h.app.inject({ url: "/api/v1/sites", headers: h.auth("viewer") })).statusCode).toBe(200);
    expect((await h.app.inject({ url: "/api/v1/sites", headers: h.auth("viewer") })).statusCode).toBe(429);
  });

  it("unauthenticated and bad-token requests are limited per client IP", async () => {
    h = await makeHarness({ rateLimitPerMinute: 100, anonymousRateLimitPerMinute: 2 });
    const bad = { authorization: "Bearer pf_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" };
    expect((await h.app.inject({ url: "/api/v1/sites", headers: bad })).statusCode).toBe(401);
    expect((await h.app.inject({ url: "/healthz" })).statusCode).toBe(200);
    const res = await h.app.inject({ url: "/api/v1/sites", headers: bad });
    expect(res.statusCode).toBe(429);
    expect(Number(res.headers["retry-after"])).toBeGreaterThan(0);
    // Another client address has its own bucket; a valid token is not limited by the IP bucket.
    expect(
      (await h.app.inject({ url: "/api/v1/sites", headers: bad, remoteAddress: "127.0.0.9" })).statusCode,
    ).toBe(401);
    expect((await h.app.inject({ url: "/api/v1/sites", headers: h.auth("viewer") })).statusCode).toBe(200);
  });
});

describe("TokenBucketLimiter", () => {
  it("allows a burst of perMinute, then refills continuously, and forgets least recently used keys", () => {
    const clock = new ManualClock();
    const l = new TokenBucketLimiter(60, clock, 2);
    for (let i = 0; i < 60; i++) expect(l.take("a").ok).toBe(true);
    expect(l.take("a")).toEqual({ ok: false, retryAfterSec: 1 });
    clock.advance(1000);
    expect(l.take("a").ok).toBe(true);
    expect(l.take("a").ok).toBe(false);
    l.take("b");
    l.take("c"); // evicts "a": it comes back with a full bucket
    expect(l.take("a").ok).toBe(true);
    expect(l.take("a").ok).toBe(true);
  });
});
