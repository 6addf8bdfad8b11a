import {
  AgentRecord,
  Alert,
  AlertDetail,
  ApiToken,
  AuditEntry,
  AuditVerifyResult,
  DeviceRecord,
  HealthReport,
  MaintenanceWindow,
  page,
  SeriesResponse,
  Silence,
  Site,
} from "@polyfleet/shared";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { type Harness, makeHarness, T0 } from "./fakes.js";

let h: Harness;
beforeEach(async () => {
  h = await makeHarness();
});
afterEach(async () => {
  await h.close();
});

const json = (body: string) => JSON.parse(body) as unknown;

describe("inventory routes", () => {
  it("GET /sites lists both sites with counts", async () => {
    const res = await h.app.inject({ url: "/api/v1/sites", headers: h.auth("viewer") });
    expect(res.statusCode).toBe(200);
    const sites = z.array(Site).parse(json(res.body));
    expect(sites.map((s) => [s.siteId, s.agents, s.devices])).toEqual([
      ["branch", 1, 1],
      ["hq", 1, 2],
    ]);
  });

  it("GET /agents lists the agents", async () => {
    const res = await h.app.inject({ url: "/api/v1/agents", headers: h.auth("viewer") });
    const agents = z.array(AgentRecord).parse(json(res.body));
    expect(agents.map((a) => a.agentId).sort()).toEqual(["agent-br", "agent-hq"]);
  });

  it("GET /devices filters, searches and paginates", async () => {
    const all = page(DeviceRecord).parse(
      json((await h.app.inject({ url: "/api/v1/devices", headers: h.auth("viewer") })).body),
    );
    expect(all.total).toBe(3);

    const unreachable = page(DeviceRecord).parse(
      json((await h.app.inject({ url: "/api/v1/devices?reachable=false", headers: h.auth("viewer") })).body),
    );
    expect(unreachable.items.map((d) => d.deviceId)).toEqual(["dev-hq-2"]);

    const search = page(DeviceRecord).parse(
      json((await h.app.inject({ url: "/api/v1/devices?q=studio", headers: h.auth("viewer") })).body),
    );
    expect(search.items.map((d) => d.deviceId)).toEqual(["dev-branch"]);

    const p1 = page(DeviceRecord).parse(
      json((await h.app.inject({ url: "/api/v1/devices?limit=2", headers: h.auth("viewer") })).body),
    );
    expect(p1.items).toHaveLength(2);
    expect(p1.nextCursor).toBeDefined();
    const p2 = page(DeviceRecord).parse(
      json(
        (
          await h.app.inject({
            url: `/api/v1/devices?limit=2&cursor=${p1.nextCursor}`,
            headers: h.auth("viewer"),
          })
        ).body,
      ),
    );
    expect(p2.items).toHaveLength(1);
    expect(p2.nextCursor).toBeUndefined();
    expect(new Set([...p1.items, ...p2.items].map((d) => d.deviceId)).size).toBe(3);
  });

  it("GET /devices/:id returns the device; an unknown id is 404", async () => {
    const res = await h.app.inject({ url: "/api/v1/devices/dev-hq", headers: h.auth("viewer") });
    expect(DeviceRecord.parse(json(res.body)).model).toBe("VVX 450");
    const missing = await h.app.inject({ url: "/api/v1/devices/nope", headers: h.auth("viewer") });
    expect(missing.statusCode).toBe(404);
    expect(json(missing.body)).toMatchObject({ error: { code: "POLYFLEET_ERR_NOT_FOUND" } });
  });

  it("PUT /devices/:id/tags replaces the tags (deduplicated) and audits it", async () => {
    const res = await h.app.inject({
      method: "PUT",
      url: "/api/v1/devices/dev-hq/tags",
      headers: h.auth("operator"),
      payload: { tags: ["lobby", "floor:2", "lobby"] },
    });
    expect(res.statusCode).toBe(200);
    expect(DeviceRecord.parse(json(res.body)).tags).toEqual(["lobby", "floor:2"]);
    expect((await h.store.getDevice("dev-hq"))?.tags).toEqual(["lobby", "floor:2"]);
    expect(h.audit.entries.at(-1)).toMatchObject({
      actor: "token:operator",
      action: "device.tags",
      target: "device:dev-hq",
      result: "ok",
    });
  });

  it("GET /devices/:id/series returns the points written to the metrics store", async () => {
    const res = await h.app.inject({
      url: `/api/v1/devices/dev-hq/series?field=cpuPct&from=${T0 - 3_600_000}&to=${T0}`,
      headers: h.auth("viewer"),
    });
    expect(res.statusCode).toBe(200);
    const s = SeriesResponse.parse(json(res.body));
    expect(s.points.map((p) => p.value)).toEqual([21]);
    const bad = await h.app.inject({
      url: `/api/v1/devices/dev-hq/series?field=cpuPct&from=${T0}&to=${T0 - 1}`,
      headers: h.auth("viewer"),
    });
    expect(bad.statusCode).toBe(400);
    expect(json(bad.body)).toMatchObject({
      error: { code: "POLYFLEET_ERR_BODY_INVALID", issues: [{ path: "from" }] },
    });
    const field = await h.app.inject({
      url: "/api/v1/devices/dev-hq/series?field=bogus",
      headers: h.auth("viewer"),
    });
    expect(json(field.body)).toMatchObject({ error: { issues: [{ path: "field" }] } });
  });
});

describe("alert routes", () => {
  it("GET /alerts filters by state, state=active excludes resolved", async () => {
    const all = z
      .array(Alert)
      .parse(json((await h.app.inject({ url: "/api/v1/alerts", headers: h.auth("viewer") })).body));
    expect(all.map((a) => a.id).sort()).toEqual(["a-branch", "a-hq", "a-old"]);
    const active = z
      .array(Alert)
      .parse(
        json((await h.app.inject({ url: "/api/v1/alerts?state=active", headers: h.auth("viewer") })).body),
      );
    expect(active.map((a) => a.id).sort()).toEqual(["a-branch", "a-hq"]);
    const resolved = z
      .array(Alert)
      .parse(
        json((await h.app.inject({ url: "/api/v1/alerts?state=resolved", headers: h.auth("viewer") })).body),
      );
    expect(resolved.map((a) => a.id)).toEqual(["a-old"]);
  });

  it("POST /alerts/:id/ack acknowledges via the engine, audited; GET /alerts/:id shows the history", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/v1/alerts/a-hq/ack",
      headers: h.auth("operator"),
      payload: { comment: "on it" },
    });
    expect(res.statusCode).toBe(200);
    expect(Alert.parse(json(res.body))).toMatchObject({
      state: "acknowledged",
      ack: { by: "token:operator", comment: "on it" },
    });
    expect(h.alerts.acks).toEqual([{ id: "a-hq", by: "token:operator", comment: "on it" }]);
    expect(h.audit.entries.at(-1)).toMatchObject({
      action: "alert.ack",
      target: "alert:a-hq",
      reason: "on it",
      result: "ok",
    });

    const detail = AlertDetail.parse(
      json((await h.app.inject({ url: "/api/v1/alerts/a-hq", headers: h.auth("viewer") })).body),
    );
    expect(detail.alert.state).toBe("acknowledged");
    expect(detail.history.map((a) => a.state)).toEqual(["firing", "acknowledged"]);
  });

  it("an ack the engine refuses answers with the engine's error and is audited as failed", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/v1/alerts/a-old/ack",
      headers: h.auth("operator"),
      payload: { comment: "late" },
    });
    expect(res.statusCode).toBe(400);
    expect(json(res.body)).toEqual({
      error: { code: "POLYFLEET_ERR_BODY_INVALID", message: "alert is resolved" },
    });
    expect(h.audit.entries.slice(-2).map((e) => e.result)).toEqual(["ok", "failed"]);
    expect(h.audit.entries.at(-1)?.details).toMatchObject({ code: "POLYFLEET_ERR_BODY_INVALID" });
  });

  it("silences: create, list, delete (unsilence) — the engine is told each time", async () => {
    const create = await h.app.inject({
      method: "POST",
      url: "/api/v1/silences",
      headers: h.auth("operator"),
      payload: {
        matchers: [{ label: "siteId", value: "hq" }],
        endsAt: T0 + 3_600_000,
        comment: "maintenance",
      },
    });
    expect(create.statusCode).toBe(201);
    const s = Silence.parse(json(create.body));
    expect(s).toMatchObject({
      startsAt: T0,
      createdBy: "token:operator",
      matchers: [{ label: "siteId", op: "=", value: "hq" }],
    });
    expect(h.alerts.silences?.map((x) => x.id)).toEqual([s.id]);

    const list = z
      .array(Silence)
      .parse(json((await h.app.inject({ url: "/api/v1/silences", headers: h.auth("viewer") })).body));
    expect(list.map((x) => x.id)).toEqual([s.id]);

    const del = await h.app.inject({
      method: "DELETE",
      url: `/api/v1/silences/${s.id}`,
      headers: h.auth("operator"),
    });
    expect(del.statusCode).toBe(204);
    expect(del.body).toBe("");
    expect(await h.store.listSilences()).toEqual([]);
    expect(h.alerts.silences).toEqual([]);
    expect(h.audit.entries.map((e) => e.action)).toEqual(["silence.create", "silence.delete"]);
    const again = await h.app.inject({
      method: "DELETE",
      url: `/api/v1/silences/${s.id}`,
      headers: h.auth("operator"),
    });
    expect(again.statusCode).toBe(404);
  });

  it("a silence ending in the past is refused naming endsAt", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/v1/silences",
      headers: h.auth("operator"),
      payload: { matchers: [{ label: "siteId", value: "hq" }], endsAt: T0 - 1, comment: "x" },
    });
    expect(res.statusCode).toBe(400);
    expect(json(res.body)).toMatchObject({ error: { issues: [{ path: "endsAt" }] } });
    expect(await h.store.listSilences()).toEqual([]);
  });

  it("GET /rules lists the engine's rules", async () => {
    const res = await h.app.inject({ url: "/api/v1/rules", headers: h.auth("viewer") });
    expect((json(res.body) as { name: string }[]).map((r) => r.name)).toEqual([
      "device-unreachable",
      "cpu-high",
    ]);
  });
});

describe("maintenance windows", () => {
  it("create, list, delete; the engine is told", async () => {
    const create = await h.app.inject({
      method: "POST",
      url: "/api/v1/maintenance-windows",
      headers: h.auth("operator"),
      payload: {
        name: "nightly",
        matchers: [{ label: "siteId", value: "hq" }],
        schedule: { type: "weekly", days: [1, 2], start: "02:00", durationMin: 60 },
      },
    });
    expect(create.statusCode).toBe(201);
    const w = MaintenanceWindow.parse(json(create.body));
    expect(w.schedule).toMatchObject({ timezone: "UTC" });
    expect(h.alerts.windows?.map((x) => x.id)).toEqual([w.id]);
    const list = z
      .array(MaintenanceWindow)
      .parse(
        json((await h.app.inject({ url: "/api/v1/maintenance-windows", headers: h.auth("viewer") })).body),
      );
    expect(list).toHaveLength(1);
    const del = await h.app.inject({
      method: "DELETE",
      url: `/api/v1/maintenance-windows/${w.id}`,
      headers: h.auth("operator"),
    });
    expect(del.statusCode).toBe(204);
    expect(await h.store.listWindows()).toEqual([]);
    expect(h.audit.entries.map((e) => e.action)).toEqual(["window.create", "window.delete"]);
  });
});

describe("audit routes", () => {
  it("query, verify and export as JSON lines", async () => {
    for (const tag of ["a", "b", "c"]) {
      await h.app.inject({
        method: "PUT",
        url: "/api/v1/devices/dev-hq/tags",
        headers: h.auth("operator"),
        payload: { tags: [tag] },
      });
    }
    const q = z.array(AuditEntry).parse(
      json(
        (
          await h.app.inject({
            url: "/api/v1/audit?action=device.tags&afterSeq=1",
            headers: h.auth("viewer"),
          })
        ).body,
      ),
    );
    expect(q.map((e) => e.seq)).toEqual([2, 3]);
    const v = AuditVerifyResult.parse(
      json((await h.app.inject({ url: "/api/v1/audit/verify", headers: h.auth("viewer") })).body),
    );
    expect(v).toEqual({ ok: true, entries: 3, checkpoints: 0 });

    const exp = await h.app.inject({ url: "/api/v1/audit/export", headers: h.auth("admin") });
    expect(exp.statusCode).toBe(200);
    expect(exp.headers["content-type"]).toMatch(/^application\/x-ndjson/);
    const lines = exp.body
      .trimEnd()
      .split("\n")
      .map((l) => AuditEntry.parse(JSON.parse(l)));
    expect(lines.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(lines).toEqual(h.audit.entries);
  });

  it("export needs admin; the audit log needs an all-sites token", async () => {
    expect(
      (await h.app.inject({ url: "/api/v1/audit/export", headers: h.auth("operator") })).statusCode,
    ).toBe(403);
    expect((await h.app.inject({ url: "/api/v1/audit", headers: h.auth("hqAdmin") })).statusCode).toBe(403);
  });
});

describe("tokens", () => {
  it("the secret is shown once at creation, works, and is never shown again (nor its hash)", async () => {
    const create = await h.app.inject({
      method: "POST",
      url: "/api/v1/tokens",
      headers: h.auth("admin"),
      payload: { name: "noc-wall", role: "viewer", sites: ["hq"] },
    });
    expect(create.statusCode).toBe(201);
    const { token, secret } = z.object({ token: ApiToken, secret: z.string() }).parse(json(create.body));
    expect(secret).toMatch(/^pf_[A-Za-z0-9_-]{43}$/);
    expect(token).toMatchObject({
      name: "noc-wall",
      role: "viewer",
      sites: ["hq"],
      createdBy: "token:admin",
    });

    const asNew = await h.app.inject({
      url: "/api/v1/devices",
      headers: { authorization: `Bearer ${secret}` },
    });
    expect(asNew.statusCode).toBe(200);
    expect((json(asNew.body) as { items: { siteId: string }[] }).items.every((d) => d.siteId === "hq")).toBe(
      true,
    );

    const list = await h.app.inject({ url: "/api/v1/tokens", headers: h.auth("admin") });
    const hash = (await h.store.findTokenByHash((await import("../../src/http/auth.js")).hashToken(secret)))
      ?.hash;
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(list.body).not.toContain(secret);
    expect(list.body).not.toContain(String(hash));
    expect(list.body).not.toContain('"hash"');
    expect(
      z
        .array(ApiToken)
        .parse(json(list.body))
        .map((t) => t.name),
    ).toContain("noc-wall");

    // Never in the audit log or the server's logs either.
    expect(JSON.stringify(h.audit.entries)).not.toContain(secret);
    expect(h.logText()).not.toContain(secret);
    for (const s of Object.values(h.secrets)) expect(h.logText()).not.toContain(s);
    expect(h.audit.entries.at(-1)).toMatchObject({ action: "token.create", target: "token:noc-wall" });

    const del = await h.app.inject({
      method: "DELETE",
      url: `/api/v1/tokens/${token.id}`,
      headers: h.auth("admin"),
    });
    expect(del.statusCode).toBe(204);
    const revoked = await h.app.inject({
      url: "/api/v1/devices",
      headers: { authorization: `Bearer ${secret}` },
    });
    expect(revoked.statusCode).toBe(401);
    expect(h.audit.entries.at(-1)).toMatchObject({ action: "token.delete", target: "token:noc-wall" });
  });

  it("a site-scoped admin cannot grant sites it does not have, nor see other tokens", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/v1/tokens",
      headers: h.auth("hqAdmin"),
      payload: { name: "wide", role: "viewer" },
    });
    expect(res.statusCode).toBe(403);
    const list = z
      .array(ApiToken)
      .parse(json((await h.app.inject({ url: "/api/v1/tokens", headers: h.auth("hqAdmin") })).body));
    expect(list.map((t) => t.name).sort()).toEqual(["hq-admin", "hq-operator", "hq-viewer"]);
  });

  it("records when a token was last used", async () => {
    await h.app.inject({ url: "/api/v1/sites", headers: h.auth("viewer") });
    const t = (await h.store.listTokens()).find((x) => x.name === "viewer");
    expect(t?.lastUsedAt).toBe(T0);
  });
});

describe("health", () => {
  it("GET /healthz answers without a token", async () => {
    const res = await h.app.inject({ url: "/healthz" });
    expect(res.statusCode).toBe(200);
    expect(HealthReport.parse(json(res.body)).status).toBe("ok");
  });
});
