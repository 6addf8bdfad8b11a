import { ApiError } from "@polyfleet/shared";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Harness, makeHarness, T0 } from "./fakes.js";

let h: Harness;
beforeEach(async () => {
  h = await makeHarness();
});
afterEach(async () => {
  await h.close();
});

function envelope(body: string): ApiError["error"] {
  return ApiError.strict().parse(JSON.parse(body)).error;
}

describe("authentication", () => {
  it("a request without a token is 401 with WWW-Authenticate and the envelope", async () => {
    const res = await h.app.inject({ url: "/api/v1/devices" });
    expect(res.statusCode).toBe(401);
    expect(res.headers["www-authenticate"]).toMatch(/^Bearer/);
    expect(envelope(res.body).code).toBe("POLYFLEET_ERR_UNAUTHORIZED");
  });

  it.each([
    ["unknown token", "Bearer pf_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
    ["malformed token", "Bearer hunter2"],
    ["other scheme", "Basic YWRtaW46YWRtaW4="],
    ["empty bearer", "Bearer "],
  ])("%s is 401", async (_name, authorization) => {
    const res = await h.app.inject({ url: "/api/v1/devices", headers: { authorization } });
    expect(res.statusCode).toBe(401);
    expect(envelope(res.body).code).toBe("POLYFLEET_ERR_UNAUTHORIZED");
  });

  it("?token= is accepted on the stream route only (EventSource), never elsewhere", async () => {
    const res = await h.app.inject({ url: `/api/v1/devices?token=${h.secrets.admin}` });
    expect(res.statusCode).toBe(401);
    const stream = await h.app.inject({ url: `/api/v1/alerts/stream?token=${h.secrets.admin}` });
    expect(stream.statusCode).toBe(200);
  });

  it("a 404 route under /api/v1 does not tell an unauthenticated caller which routes exist", async () => {
    expect((await h.app.inject({ url: "/api/v1/nope" })).statusCode).toBe(401);
    const res = await h.app.inject({ url: "/api/v1/nope", headers: h.auth("viewer") });
    expect(res.statusCode).toBe(404);
    expect(envelope(res.body).code).toBe("POLYFLEET_ERR_NOT_FOUND");
  });
});

describe("roles", () => {
  const writes: [string, string, string, unknown][] = [
    ["ack", "POST", "/api/v1/alerts/a-hq/ack", { comment: "x" }],
    [
      "silence",
      "POST",
      "/api/v1/silences",
      { matchers: [{ label: "siteId", value: "hq" }], endsAt: T0 + 60_000, comment: "x" },
    ],
    ["tags", "PUT", "/api/v1/devices/dev-hq/tags", { tags: ["x"] }],
    [
      "window",
      "POST",
      "/api/v1/maintenance-windows",
      { name: "w", schedule: { type: "once", start: T0, end: T0 + 1 } },
    ],
  ];
  it.each(writes)("a viewer cannot %s (403), and nothing is audited", async (_n, method, url, payload) => {
    const res = await h.app.inject({
      method: method as "POST",
      url,
      headers: h.auth("viewer"),
      payload: payload as object,
    });
    expect(res.statusCode).toBe(403);
    expect(envelope(res.body).code).toBe("POLYFLEET_ERR_FORBIDDEN");
    expect(h.audit.entries).toEqual([]);
  });

  it.each([
    ["GET", "/api/v1/tokens"],
    ["POST", "/api/v1/tokens"],
    ["DELETE", "/api/v1/tokens/x"],
    ["GET", "/api/v1/audit/export"],
  ])("an operator cannot %s %s (403)", async (method, url) => {
    const res = await h.app.inject({
      method: method as "GET",
      url,
      headers: h.auth("operator"),
      ...(method === "POST" ? { payload: { name: "t", role: "viewer" } } : {}),
    });
    expect(res.statusCode).toBe(403);
    expect(envelope(res.body).code).toBe("POLYFLEET_ERR_FORBIDDEN");
  });
});

describe("site scope", () => {
  it("an hq token sees only hq's sites, agents, devices and alerts", async () => {
    const get = async (url: string) =>
      JSON.parse((await h.app.inject({ url, headers: h.auth("hqViewer") })).body) as unknown;
    expect(((await get("/api/v1/sites")) as { siteId: string }[]).map((s) => s.siteId)).toEqual(["hq"]);
    expect(((await get("/api/v1/agents")) as { siteId: string }[]).map((a) => a.siteId)).toEqual(["hq"]);
    const devices = (await get("/api/v1/devices")) as { items: { siteId: string }[]; total: number };
    expect(devices.total).toBe(2);
    expect(devices.items.every((d) => d.siteId === "hq")).toBe(true);
    // Asking for another site's devices explicitly still yields nothing.
    expect(((await get("/api/v1/devices?siteId=branch")) as { total: number }).total).toBe(0);
    expect(((await get("/api/v1/alerts")) as { id: string }[]).map((a) => a.id).sort()).toEqual([
      "a-hq",
      "a-old",
    ]);
  });

  it.each([
    ["GET", "/api/v1/devices/dev-branch", undefined],
    ["GET", "/api/v1/devices/dev-branch/series?field=cpuPct", undefined],
    ["PUT", "/api/v1/devices/dev-branch/tags", { tags: ["x"] }],
    ["GET", "/api/v1/alerts/a-branch", undefined],
    ["POST", "/api/v1/alerts/a-branch/ack", { comment: "mine now" }],
  ])("%s %s out of scope is 404 exactly like a missing item", async (method, url, payload) => {
    const res = await h.app.inject({
      method: method as "GET",
      url,
      headers: h.auth("hqOperator"),
      ...(payload === undefined ? {} : { payload }),
    });
    expect(res.statusCode).toBe(404);
    const e = envelope(res.body);
    expect(e.code).toBe("POLYFLEET_ERR_NOT_FOUND");
    const missing = await h.app.inject({
      method: method as "GET",
      url: url.replace(/branch/, "missing"),
      headers: h.auth("hqOperator"),
      ...(payload === undefined ? {} : { payload }),
    });
    expect(missing.statusCode).toBe(404);
    expect(envelope(missing.body).message.replace(/missing/, "branch")).toBe(e.message);
    expect(h.alerts.acks).toEqual([]);
    expect((await h.store.getDevice("dev-branch"))?.tags).toEqual([]);
  });

  it("a site-scoped token must pin silences and windows to its sites, and sees only those", async () => {
    const unpinned = await h.app.inject({
      method: "POST",
      url: "/api/v1/silences",
      headers: h.auth("hqOperator"),
      payload: { matchers: [{ label: "rule", value: "cpu-high" }], endsAt: T0 + 60_000, comment: "x" },
    });
    expect(unpinned.statusCode).toBe(403);
    const other = await h.app.inject({
      method: "POST",
      url: "/api/v1/silences",
      headers: h.auth("hqOperator"),
      payload: { matchers: [{ label: "siteId", value: "branch" }], endsAt: T0 + 60_000, comment: "x" },
    });
    expect(other.statusCode).toBe(403);
    const ok = await h.app.inject({
      method: "POST",
      url: "/api/v1/silences",
      headers: h.auth("hqOperator"),
      payload: { matchers: [{ label: "siteId", value: "hq" }], endsAt: T0 + 60_000, comment: "x" },
    });
    expect(ok.statusCode).toBe(201);
    // A global silence made by an all-sites operator is invisible to, and not deletable by, the hq token.
    const global = await h.app.inject({
      method: "POST",
      url: "/api/v1/silences",
      headers: h.auth("operator"),
      payload: { matchers: [{ label: "rule", value: "cpu-high" }], endsAt: T0 + 60_000, comment: "x" },
    });
    const gid = (JSON.parse(global.body) as { id: string }).id;
    const seen = JSON.parse(
      (await h.app.inject({ url: "/api/v1/silences", headers: h.auth("hqViewer") })).body,
    ) as unknown[];
    expect(seen).toHaveLength(1);
    const del = await h.app.inject({
      method: "DELETE",
      url: `/api/v1/silences/${gid}`,
      headers: h.auth("hqOperator"),
    });
    expect(del.statusCode).toBe(404);
    expect(await h.store.listSilences()).toHaveLength(2);
  });

  it("the stream is handed the token's sites", async () => {
    await h.app.inject({ url: "/api/v1/alerts/stream", headers: h.auth("hqViewer") });
    await h.app.inject({ url: "/api/v1/alerts/stream", headers: h.auth("viewer") });
    expect(h.sse.calls.map((c) => c.sites)).toEqual([["hq"], "*"]);
  });
});
