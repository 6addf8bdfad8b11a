import { polyUc, polyVideoOs, type SimDevice } from "@polyfleet/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { z } from "zod";
import { basic, https, videoOsSession } from "./https-client.js";
import { type SimHandle, startSim } from "./sim-harness.js";

/**
 * Conformance: the simulator's answers match the shapes documented in ../shared/poly-devices.md, as pinned
 * by the device answer schemas in shared/src/devices (which the agent's drivers parse with).
 */
let sim: SimHandle;
beforeAll(async () => {
  sim = await startSim(["--devices", "40", "--seed", "11"]);
});
afterAll(async () => {
  await sim?.stop();
});

function conform<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success)
    throw new Error(
      `${what} does not conform: ${JSON.stringify(r.error.issues.slice(0, 3))}\n${JSON.stringify(value).slice(0, 400)}`,
    );
  return r.data;
}

const base = (d: SimDevice) => `https://${d.address}:${d.httpsPort}`;
const byModel = () => {
  const seen = new Map<string, SimDevice>();
  for (const d of sim.manifest.devices) if (!seen.has(d.model)) seen.set(d.model, d);
  return [...seen.values()];
};

describe("UC Software REST conformance", () => {
  it("every simulated phone model answers every polled endpoint in the documented shape", async () => {
    const phones = byModel().filter((d) => d.family === "uc");
    expect(phones.length).toBeGreaterThanOrEqual(3);
    for (const d of phones) {
      const h = basic("Polycom", d.admin.password);
      const get = async (path: string) => (await https(`${base(d)}${path}`, { headers: h })).json;
      const v2 = conform(
        polyUc.UcDeviceInfoV2,
        await get("/api/v2/mgmt/device/info"),
        `${d.model} v2 device/info`,
      );
      expect(v2.Status).toBe("2000");
      expect(v2.data.ModelNumber).toBe(d.model);
      expect(v2.data.MACAddress).toBe(d.mac);
      expect(v2.data.Firmware.Application.startsWith(`${d.firmware} `)).toBe(true);
      expect(v2.data.Firmware.Application).toMatch(
        /^(\d+\.){3}\d{4,}[A-Z]? \d{2}-[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}$/,
      );
      conform(polyUc.UcDeviceInfoV1, await get("/api/v1/mgmt/device/info"), `${d.model} v1 device/info`);
      const stats = conform(
        polyUc.UcDeviceStats,
        await get("/api/v1/mgmt/device/stats"),
        `${d.model} device/stats`,
      );
      expect(Number(stats.data.Memory.Total)).toBeGreaterThan(Number(stats.data.Memory.Used));
      conform(polyUc.UcNetworkInfo, await get("/api/v1/mgmt/network/info"), `${d.model} network/info`);
      conform(polyUc.UcNetworkStats, await get("/api/v1/mgmt/network/stats"), `${d.model} network/stats`);
      const lines = conform(
        polyUc.UcLineInfoV1,
        await get("/api/v1/mgmt/lineInfo"),
        `${d.model} v1 lineInfo`,
      );
      expect(lines.data.length).toBeGreaterThan(0);
      conform(polyUc.UcLineInfoV2, await get("/api/v2/mgmt/lineInfo"), `${d.model} v2 lineInfo`);
      conform(polyUc.UcPollForStatus, await get("/api/v1/mgmt/pollForStatus"), `${d.model} pollForStatus`);
      conform(
        polyUc.UcCallStatusV2,
        await get("/api/v2/webCallControl/callStatus"),
        `${d.model} v2 callStatus`,
      );
      conform(polyUc.UcSessionStats, await get("/api/v1/mgmt/media/sessionStats"), `${d.model} sessionStats`);
      const cfg = await https(`${base(d)}/api/v1/mgmt/config/get`, {
        method: "POST",
        headers: { ...h, "content-type": "application/json" },
        body: JSON.stringify({ data: ["apps.restapi.enabled"] }),
      });
      const got = conform(polyUc.UcConfigGet, cfg.json, `${d.model} config/get`);
      expect(got.data["apps.restapi.enabled"]?.Value).toBe("1");
      if (d.model.startsWith("Trio"))
        conform(polyUc.UcMrPair, await get("/api/v1/mgmt/mrpair/info"), `${d.model} mrpair`);
    }
  });

  it("refuses wrong credentials with 401 and a Basic challenge", async () => {
    const d = sim.manifest.devices.find((x) => x.family === "uc");
    if (!d) throw new Error("no phone");
    const r = await https(`${base(d)}/api/v2/mgmt/device/info`, { headers: basic("Polycom", "wrong") });
    expect(r.status).toBe(401);
    expect(String(r.headers["www-authenticate"])).toMatch(/^Basic /);
  });
});

describe("VideoOS REST conformance", () => {
  it("every simulated video model answers in the documented shape", async () => {
    const bars = byModel().filter((d) => d.family === "videoos");
    expect(bars.length).toBeGreaterThanOrEqual(2);
    for (const d of bars) {
      const login = await https(`${base(d)}/rest/current/session`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ user: d.admin.user, password: d.admin.password }),
      });
      conform(polyVideoOs.VideoOsLogin, login.json, `${d.model} login`);
      const h = await videoOsSession(base(d), d.admin.user, d.admin.password);
      const system = conform(
        polyVideoOs.VideoOsSystem,
        (await https(`${base(d)}/rest/system`, { headers: h })).json,
        `${d.model} system`,
      );
      expect(system.model).toBe(d.model);
      expect(system.serialNumber).toBe(d.serial);
      expect(system.softwareVersion).toBe(d.firmware);
      const status = conform(
        polyVideoOs.VideoOsSystemStatus,
        (await https(`${base(d)}/rest/system/status`, { headers: h })).json,
        `${d.model} status`,
      );
      expect(status.map((s) => s.name)).toContain("system.status.provisioning");
      const peripherals = await https(`${base(d)}/rest/current/devicemanagement/devices`, {
        method: "POST",
        headers: h,
      });
      const list = conform(polyVideoOs.VideoOsPeripherals, peripherals.json, `${d.model} peripherals`);
      expect(list.some((p) => p.uid === "local-system")).toBe(true);
      const cfg = await https(`${base(d)}/rest/config`, {
        method: "POST",
        headers: h,
        body: JSON.stringify({ names: ["system.name"] }),
      });
      conform(polyVideoOs.VideoOsConfigVars, cfg.json, `${d.model} config`);
    }
  });

  it("answers 403 to a call without a valid session", async () => {
    const d = sim.manifest.devices.find((x) => x.family === "videoos");
    if (!d) throw new Error("no video device");
    const r = await https(`${base(d)}/rest/system`, {
      headers: { cookie: "session_id=PSbogus; XSRF-TOKEN=x", "x-xsrf-token": "x" },
    });
    expect([401, 403]).toContain(r.status);
  });
});
