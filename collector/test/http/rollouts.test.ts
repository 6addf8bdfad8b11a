import { Rollout, RolloutDevice, RolloutPreview } from "@polyfleet/shared";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { CatalogViewResponse, ComplianceReportResponse } from "../../src/http/routes/firmware.js";
import { type Harness, makeHarness, T0 } from "./fakes.js";

let h: Harness;
beforeEach(async () => {
  h = await makeHarness();
});
afterEach(async () => {
  await h.close();
});

const json = (body: string) => JSON.parse(body) as unknown;
const CREATE = {
  name: "VVX baseline",
  reason: "CHG-42",
  target: { kind: "release", version: "8.2.0.1234" },
};
const ACTIONS = ["start", "pause", "resume", "cancel", "retry-failed"] as const;

describe("rollout routes: roles", () => {
  it("a viewer can read but not preview, create or act; the service is never asked", async () => {
    const reads = ["/api/v1/rollouts", "/api/v1/rollouts/ro-hq", "/api/v1/rollouts/ro-hq/devices"];
    for (const url of reads) {
      expect((await h.app.inject({ url, headers: h.auth("viewer") })).statusCode).toBe(200);
    }
    const before = h.rollouts.calls.length;
    const writes = [
      { url: "/api/v1/rollouts/preview", payload: CREATE },
      { url: "/api/v1/rollouts", payload: CREATE },
      ...ACTIONS.map((a) => ({ url: `/api/v1/rollouts/ro-hq/${a}`, payload: { reason: "x" } })),
    ];
    for (const w of writes) {
      const res = await h.app.inject({ method: "POST", ...w, headers: h.auth("viewer") });
      expect(res.statusCode, w.url).toBe(403);
      expect(json(res.body)).toMatchObject({ error: { code: "POLYFLEET_ERR_FORBIDDEN" } });
    }
    expect(h.rollouts.calls.length).toBe(before);
  });

  it("without a token every rollout and firmware route but the image answers 401", async () => {
    for (const url of ["/api/v1/rollouts", "/api/v1/firmware/catalog", "/api/v1/firmware/compliance"]) {
      expect((await h.app.inject({ url })).statusCode).toBe(401);
    }
    const res = await h.app.inject({ method: "POST", url: "/api/v1/rollouts", payload: CREATE });
    expect(res.statusCode).toBe(401);
    expect(h.rollouts.calls).toEqual([]);
  });
});

describe("rollout routes", () => {
  it("POST /rollouts/preview hands the parsed spec (defaults applied) and the actor to the service", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/v1/rollouts/preview",
      headers: h.auth("operator"),
      payload: CREATE,
    });
    expect(res.statusCode).toBe(200);
    const preview = RolloutPreview.parse(json(res.body));
    expect(preview.waves).toHaveLength(4);
    expect(preview.skipped).toEqual([
      { deviceId: "dev-branch", model: "Studio X50", reason: "no release for the model" },
    ]);
    const call = h.rollouts.calls.at(-1);
    expect(call?.method).toBe("preview");
    expect(call?.who).toEqual({ actor: "token:operator", sites: undefined });
    expect(call?.args[0]).toMatchObject({
      ...CREATE,
      selection: {},
      concurrencyPerSite: 5,
      errorThresholdPct: 5,
      waves: [{ percent: 1 }, { percent: 10 }, { percent: 50 }, { percent: 100 }],
      healthGate: { soakMs: 600_000, requireTargetVersion: true, noNewCriticalAlerts: true },
    });
  });

  it("POST /rollouts creates (201) and passes a site-scoped token's sites", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/v1/rollouts",
      headers: h.auth("hqOperator"),
      payload: { ...CREATE, selection: { sites: ["hq"] }, waves: [{ count: 1 }, { percent: 100 }] },
    });
    expect(res.statusCode).toBe(201);
    const created = Rollout.parse(json(res.body));
    expect(created).toMatchObject({ state: "pending", createdBy: "token:hq-operator", createdAt: T0 });
    expect(h.rollouts.calls.at(-1)).toMatchObject({
      method: "create",
      who: { actor: "token:hq-operator", sites: ["hq"] },
    });
    // The service audits create/act itself: the routes add no entry of their own.
    expect(h.audit.entries).toEqual([]);
  });

  it("names the failing field of an invalid body", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ ...CREATE, target: undefined }, "target"],
      [{ ...CREATE, target: { kind: "release" } }, "target.version"],
      [{ ...CREATE, bogus: 1 }, "bogus"],
      [{ ...CREATE, waves: [] }, "waves"],
      [{ ...CREATE, concurrencyPerSite: 0 }, "concurrencyPerSite"],
      [{ ...CREATE, selection: { sites: ["bad site!"] } }, "selection.sites[0]"],
      [{ ...CREATE, reason: "" }, "reason"],
    ];
    for (const [payload, path] of cases) {
      for (const url of ["/api/v1/rollouts", "/api/v1/rollouts/preview"]) {
        const res = await h.app.inject({ method: "POST", url, headers: h.auth("operator"), payload });
        expect(res.statusCode, `${url} ${path}`).toBe(400);
        const body = json(res.body) as { error: { code: string; issues: { path: string }[] } };
        expect(body.error.code).toBe("POLYFLEET_ERR_BODY_INVALID");
        expect(body.error.issues.map((i) => i.path)).toContain(path);
      }
    }
    for (const [payload, path] of [
      [{}, "reason"],
      [{ reason: "" }, "reason"],
      [{ reason: "x", force: true }, "force"],
    ] as const) {
      const res = await h.app.inject({
        method: "POST",
        url: "/api/v1/rollouts/ro-hq/pause",
        headers: h.auth("operator"),
        payload,
      });
      expect(res.statusCode).toBe(400);
      expect(json(res.body)).toMatchObject({ error: { issues: [{ path }] } });
    }
    expect(h.rollouts.calls).toEqual([]);
  });

  it("GET /rollouts lists newest first, filters by state, scopes by the token's sites", async () => {
    const ids = async (url: string, who: Parameters<Harness["auth"]>[0] = "viewer") => {
      const res = await h.app.inject({ url, headers: h.auth(who) });
      expect(res.statusCode).toBe(200);
      return z
        .array(Rollout)
        .parse(json(res.body))
        .map((r) => r.id);
    };
    expect(await ids("/api/v1/rollouts")).toEqual(["ro-branch", "ro-hq"]);
    expect(await ids("/api/v1/rollouts?state=running")).toEqual(["ro-hq"]);
    expect(h.rollouts.calls.at(-1)).toMatchObject({ method: "list", args: [{ state: "running" }] });
    expect(await ids("/api/v1/rollouts", "hqViewer")).toEqual(["ro-hq"]);
    expect(h.rollouts.calls.at(-1)?.who).toEqual({ actor: "token:hq-viewer", sites: ["hq"] });
    const bad = await h.app.inject({ url: "/api/v1/rollouts?state=exploded", headers: h.auth("viewer") });
    expect(bad.statusCode).toBe(400);
    expect(json(bad.body)).toMatchObject({ error: { issues: [{ path: "state" }] } });
  });

  it("GET /rollouts/:id: 404 for an unknown id and for one outside the token's sites", async () => {
    const ok = await h.app.inject({ url: "/api/v1/rollouts/ro-branch", headers: h.auth("viewer") });
    expect(Rollout.parse(json(ok.body)).id).toBe("ro-branch");
    for (const [url, who] of [
      ["/api/v1/rollouts/nope", "viewer"],
      ["/api/v1/rollouts/ro-branch", "hqViewer"],
    ] as const) {
      const res = await h.app.inject({ url, headers: h.auth(who) });
      expect(res.statusCode).toBe(404);
      expect(json(res.body)).toMatchObject({ error: { code: "POLYFLEET_ERR_NOT_FOUND" } });
    }
  });

  it("GET /rollouts/:id/devices filters by state and wave; bad filters are named; unknown id 404", async () => {
    const orders = async (qs: string) => {
      const res = await h.app.inject({
        url: `/api/v1/rollouts/ro-hq/devices${qs}`,
        headers: h.auth("viewer"),
      });
      expect(res.statusCode).toBe(200);
      return z
        .array(RolloutDevice)
        .parse(json(res.body))
        .map((d) => d.order);
    };
    expect(await orders("")).toEqual([0, 1, 2, 3]);
    expect(await orders("?state=failed")).toEqual([0, 1, 2]);
    expect(await orders("?state=failed&wave=1")).toEqual([2]);
    expect(h.rollouts.calls.at(-1)).toMatchObject({
      method: "devices",
      args: ["ro-hq", { state: "failed", wave: 1 }],
    });
    for (const [qs, path] of [
      ["?wave=x", "wave"],
      ["?wave=-1", "wave"],
      ["?state=done", "state"],
      ["?page=2", "page"],
    ]) {
      const res = await h.app.inject({
        url: `/api/v1/rollouts/ro-hq/devices${qs}`,
        headers: h.auth("viewer"),
      });
      expect(res.statusCode, qs).toBe(400);
      expect(json(res.body)).toMatchObject({ error: { issues: [{ path }] } });
    }
    const missing = await h.app.inject({ url: "/api/v1/rollouts/nope/devices", headers: h.auth("viewer") });
    expect(missing.statusCode).toBe(404);
    const scoped = await h.app.inject({
      url: "/api/v1/rollouts/ro-branch/devices",
      headers: h.auth("hqViewer"),
    });
    expect(scoped.statusCode).toBe(404);
  });

  it("the five actions reach the service with the reason and the actor, without a route audit entry", async () => {
    const act = (
      id: string,
      action: string,
      reason = `${action} now`,
      who: "operator" | "hqOperator" = "operator",
    ) =>
      h.app.inject({
        method: "POST",
        url: `/api/v1/rollouts/${id}/${action}`,
        headers: h.auth(who),
        payload: { reason },
      });
    const steps: [string, string, number, string?][] = [
      ["ro-branch", "start", 200, "running"],
      ["ro-branch", "start", 409],
      ["ro-branch", "pause", 200, "paused"],
      ["ro-branch", "resume", 200, "running"],
      ["ro-branch", "retry-failed", 200, "running"],
      ["ro-branch", "cancel", 200, "cancelled"],
      ["ro-branch", "resume", 409],
      ["nope", "start", 404],
    ];
    for (const [id, action, status, state] of steps) {
      const res = await act(id, action);
      expect(res.statusCode, `${action} ${id}`).toBe(status);
      if (state !== undefined) expect(Rollout.parse(json(res.body)).state).toBe(state);
      else
        expect((json(res.body) as { error: { code: string } }).error.code).toMatch(/ROLLOUT_STATE|NOT_FOUND/);
    }
    expect(h.rollouts.calls.filter((c) => c.method === "act").map((c) => c.args)).toEqual(
      steps.map(([id, action]) => [id, action, `${action} now`]),
    );
    expect(h.rollouts.calls.at(-1)?.who).toEqual({ actor: "token:operator", sites: undefined });
    // A site-scoped operator cannot act on another site's rollout (404, existence not leaked).
    const other = await act("ro-hq", "pause", "x", "hqOperator");
    expect(other.statusCode).toBe(200);
    const hidden = await act("ro-branch", "cancel", "x", "hqOperator");
    expect(hidden.statusCode).toBe(404);
    expect(h.audit.entries).toEqual([]);
  });

  it("are not registered without a rollout service", async () => {
    await h.close();
    h = await makeHarness({}, { rollouts: false });
    for (const url of ["/api/v1/rollouts", "/api/v1/firmware/catalog"]) {
      const res = await h.app.inject({ url, headers: h.auth("admin") });
      expect(res.statusCode).toBe(404);
    }
    const doc = JSON.parse((await h.app.inject({ url: "/docs/json" })).body) as { paths: object };
    expect(Object.keys(doc.paths).some((p) => p.includes("rollouts") || p.includes("firmware"))).toBe(false);
  });
});

describe("firmware routes", () => {
  it("GET /firmware/catalog answers the service's view to a viewer", async () => {
    const res = await h.app.inject({ url: "/api/v1/firmware/catalog", headers: h.auth("hqViewer") });
    expect(res.statusCode).toBe(200);
    expect(CatalogViewResponse.parse(json(res.body))).toEqual(h.rollouts.catalogView);
    h.rollouts.catalogView = {
      loaded: false,
      error: "POLYFLEET_ERR_CATALOG_EXPIRED",
      releases: [],
      baseline: {},
    };
    const off = await h.app.inject({ url: "/api/v1/firmware/catalog", headers: h.auth("viewer") });
    expect(json(off.body)).toEqual(h.rollouts.catalogView);
  });

  it("GET /firmware/compliance is scoped to the token's sites", async () => {
    const all = ComplianceReportResponse.parse(
      json((await h.app.inject({ url: "/api/v1/firmware/compliance", headers: h.auth("viewer") })).body),
    );
    expect(all.counts).toEqual({ current: 1, behind: 1, ahead: 0, unknown: 1 });
    const hq = ComplianceReportResponse.parse(
      json((await h.app.inject({ url: "/api/v1/firmware/compliance", headers: h.auth("hqViewer") })).body),
    );
    expect(hq.devices.map((d) => d.deviceId)).toEqual(["dev-hq", "dev-hq-2"]);
    expect(h.rollouts.calls.at(-1)).toMatchObject({ method: "compliance", who: { sites: ["hq"] } });
  });
});
