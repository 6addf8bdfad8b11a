import { ApiError } from "@polyfleet/shared";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Harness, makeHarness, T0 } from "./fakes.js";

let h: Harness;
beforeEach(async () => {
  h = await makeHarness({ bodyLimit: 4096 });
});
afterEach(async () => {
  await h.close();
});

function envelope(body: string): ApiError["error"] {
  return ApiError.strict().parse(JSON.parse(body)).error;
}

describe("invalid requests: 400 naming the field", () => {
  it("a bad matcher names matchers[0].label", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/v1/silences",
      headers: h.auth("operator"),
      payload: { matchers: [{ label: "", value: "x" }], endsAt: T0 + 60_000, comment: "c" },
    });
    expect(res.statusCode).toBe(400);
    const e = envelope(res.body);
    expect(e.code).toBe("POLYFLEET_ERR_BODY_INVALID");
    expect(e.message).toBe("request body is invalid");
    expect(e.issues?.map((i) => i.path)).toEqual(["matchers[0].label"]);
  });

  it("several failures are all named, unknown keys each by name", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/v1/silences",
      headers: h.auth("operator"),
      payload: { matchers: [{ label: "a", value: "b", op: "~" }], endsAt: "soon", comment: "", extra: 1 },
    });
    const paths = envelope(res.body)
      .issues?.map((i) => i.path)
      .sort();
    expect(paths).toEqual(["comment", "endsAt", "extra", "matchers[0].op"]);
  });

  it("a nested schedule error in a window names schedule.start", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/v1/maintenance-windows",
      headers: h.auth("operator"),
      payload: { name: "w", schedule: { type: "weekly", days: [1], start: "25:00", durationMin: 5 } },
    });
    expect(res.statusCode).toBe(400);
    expect(envelope(res.body).issues?.map((i) => i.path)).toEqual(["schedule.start"]);
  });

  it("an invalid ack comment names comment; a missing body names the body", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/v1/alerts/a-hq/ack",
      headers: h.auth("operator"),
      payload: { comment: "" },
    });
    expect(envelope(res.body).issues?.map((i) => i.path)).toEqual(["comment"]);
    const none = await h.app.inject({
      method: "POST",
      url: "/api/v1/alerts/a-hq/ack",
      headers: h.auth("operator"),
    });
    expect(none.statusCode).toBe(400);
    expect(envelope(none.body).code).toBe("POLYFLEET_ERR_BODY_INVALID");
  });

  it("invalid query parameters are named", async () => {
    const res = await h.app.inject({ url: "/api/v1/devices?limit=0&bogus=1", headers: h.auth("viewer") });
    expect(res.statusCode).toBe(400);
    const e = envelope(res.body);
    expect(e.message).toBe("query is invalid");
    expect(e.issues?.map((i) => i.path).sort()).toEqual(["bogus", "limit"]);
    const token = await h.app.inject({
      method: "POST",
      url: "/api/v1/tokens",
      headers: h.auth("admin"),
      payload: { name: "bad name", role: "root" },
    });
    expect(
      envelope(token.body)
        .issues?.map((i) => i.path)
        .sort(),
    ).toEqual(["name", "role"]);
  });

  it("malformed JSON, a wrong content type and an oversized body get the envelope", async () => {
    const bad = await h.app.inject({
      method: "POST",
      url: "/api/v1/silences",
      headers: { ...h.auth("operator"), "content-type": "application/json" },
      payload: "{not json",
    });
    expect(bad.statusCode).toBe(400);
    expect(envelope(bad.body).code).toBe("POLYFLEET_ERR_BODY_INVALID");
    const type = await h.app.inject({
      method: "POST",
      url: "/api/v1/silences",
      headers: { ...h.auth("operator"), "content-type": "application/xml" },
      payload: "<x/>",
    });
    expect(type.statusCode).toBe(415);
    expect(envelope(type.body).code).toBe("POLYFLEET_ERR_MEDIA_TYPE_UNSUPPORTED");
    const big = await h.app.inject({
      method: "PUT",
      url: "/api/v1/devices/dev-hq/tags",
      headers: h.auth("operator"),
      payload: { tags: ["x".repeat(5000)] },
    });
    expect(big.statusCode).toBe(413);
    expect(envelope(big.body).code).toBe("POLYFLEET_ERR_BODY_TOO_LARGE");
  });
});

describe("other error paths", () => {
  it("an unknown route is 404 POLYFLEET_ERR_NOT_FOUND", async () => {
    for (const url of ["/nope", "/api/v2/devices"]) {
      const res = await h.app.inject({ url, headers: h.auth("viewer") });
      expect(res.statusCode).toBe(404);
      expect(envelope(res.body).code).toBe("POLYFLEET_ERR_NOT_FOUND");
    }
  });

  it("an unexpected failure is 500 with a generic message, logged with err, no detail leaked", async () => {
    h.store.listSites = () => Promise.reject(new Error("SQLITE_CORRUPT: secret path /var/lib/x.db"));
    const res = await h.app.inject({ url: "/api/v1/sites", headers: h.auth("viewer") });
    expect(res.statusCode).toBe(500);
    expect(envelope(res.body)).toEqual({ code: "POLYFLEET_ERR_INTERNAL", message: "internal error" });
    expect(res.body).not.toContain("SQLITE");
    const line = h.logs.find((l) => l.msg === "request failed");
    expect(line?.level).toBe(50);
    expect((line?.err as { message?: string } | undefined)?.message).toContain("SQLITE_CORRUPT");
  });

  it("a PolyfleetError from a port keeps its status and code", async () => {
    const { PolyfleetError } = await import("@polyfleet/shared");
    h.metrics.query = () => Promise.reject(new PolyfleetError("POLYFLEET_ERR_METRICS_UNAVAILABLE"));
    const res = await h.app.inject({
      url: "/api/v1/devices/dev-hq/series?field=cpuPct",
      headers: h.auth("viewer"),
    });
    expect(res.statusCode).toBe(503);
    expect(envelope(res.body).code).toBe("POLYFLEET_ERR_METRICS_UNAVAILABLE");
  });

  it("a response that breaks its own schema is a 500, never the raw object", async () => {
    h.store.listSites = () => Promise.resolve([{ siteId: "hq", name: "hq", agents: -1, devices: 0 }]);
    const res = await h.app.inject({ url: "/api/v1/sites", headers: h.auth("viewer") });
    expect(res.statusCode).toBe(500);
    expect(envelope(res.body).code).toBe("POLYFLEET_ERR_INTERNAL");
  });
});

describe("audit fail-closed", () => {
  const actions: [string, "POST" | "PUT" | "DELETE", string, object | undefined][] = [
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
    ["token", "POST", "/api/v1/tokens", { name: "new", role: "viewer" }],
  ];

  it.each(actions)(
    "%s is refused with 503 when the audit write fails, and nothing changes",
    async (_n, method, url, payload) => {
      const before = {
        alert: await h.store.getAlert("a-hq"),
        silences: await h.store.listSilences(),
        device: await h.store.getDevice("dev-hq"),
        windows: await h.store.listWindows(),
        tokens: (await h.store.listTokens()).map(({ lastUsedAt: _u, ...t }) => t),
      };
      h.audit.failing = true;
      const res = await h.app.inject({
        method,
        url,
        headers: h.auth("admin"),
        ...(payload ? { payload } : {}),
      });
      expect(res.statusCode).toBe(503);
      expect(envelope(res.body)).toEqual({
        code: "POLYFLEET_ERR_AUDIT_WRITE_FAILED",
        message: "audit write failed; action refused",
      });
      expect(h.alerts.acks).toEqual([]);
      expect(h.alerts.silences).toBeUndefined();
      expect(h.alerts.windows).toBeUndefined();
      expect({
        alert: await h.store.getAlert("a-hq"),
        silences: await h.store.listSilences(),
        device: await h.store.getDevice("dev-hq"),
        windows: await h.store.listWindows(),
        tokens: (await h.store.listTokens()).map(({ lastUsedAt: _u, ...t }) => t),
      }).toEqual(before);
      expect(h.logs.some((l) => l.msg === "audit write failed; action refused")).toBe(true);
    },
  );

  it("deletes (unsilence, window, token) are refused too and the items stay", async () => {
    const s = JSON.parse(
      (
        await h.app.inject({
          method: "POST",
          url: "/api/v1/silences",
          headers: h.auth("operator"),
          payload: { matchers: [{ label: "siteId", value: "hq" }], endsAt: T0 + 60_000, comment: "x" },
        })
      ).body,
    ) as { id: string };
    const w = JSON.parse(
      (
        await h.app.inject({
          method: "POST",
          url: "/api/v1/maintenance-windows",
          headers: h.auth("operator"),
          payload: { name: "w", schedule: { type: "once", start: T0, end: T0 + 1 } },
        })
      ).body,
    ) as { id: string };
    const t = (await h.store.listTokens())[0];
    h.audit.failing = true;
    for (const url of [
      `/api/v1/silences/${s.id}`,
      `/api/v1/maintenance-windows/${w.id}`,
      `/api/v1/tokens/${t?.id}`,
    ]) {
      const res = await h.app.inject({ method: "DELETE", url, headers: h.auth("admin") });
      expect(res.statusCode).toBe(503);
      expect(envelope(res.body).code).toBe("POLYFLEET_ERR_AUDIT_WRITE_FAILED");
    }
    expect(await h.store.listSilences()).toHaveLength(1);
    expect(await h.store.listWindows()).toHaveLength(1);
    expect(await h.store.listTokens()).toHaveLength(6);
  });
});
