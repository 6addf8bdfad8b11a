import { polyVideoOs } from "@polyfleet/shared";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { DeviceSim } from "../../src/simulator/device.js";
import type { SimResponse } from "../../src/simulator/http-types.js";
import { createVideoosApi, videoosApi } from "../../src/simulator/videoos/videoos-api.js";
import { makeVideoosDevice, manualClock, request } from "./videoos-helpers.js";

async function call(
  device: DeviceSim,
  req: ReturnType<typeof request>,
  api = videoosApi,
): Promise<SimResponse> {
  return await api.handle(device, req);
}

function cookies(res: SimResponse): { sessionId: string; token: string } {
  const sc = res.headers?.["set-cookie"];
  const list = Array.isArray(sc) ? sc : [String(sc)];
  const sid = list.find((c) => c.startsWith("session_id="));
  const xsrf = list.find((c) => c.startsWith("XSRF-TOKEN="));
  expect(sid).toMatch(/^session_id=PS[0-9a-f]+; Path=\/; Secure; HttpOnly$/);
  expect(xsrf).toMatch(/^XSRF-TOKEN=[^;]+; Path=\/; Secure$/);
  return {
    sessionId: sid!.split(";")[0]!.slice("session_id=".length),
    token: xsrf!.split(";")[0]!.slice(11),
  };
}

async function login(device: DeviceSim, api = videoosApi) {
  const res = await call(
    device,
    request("POST", "/rest/current/session", { body: { user: "admin", password: "Sim-Pass-1" } }),
    api,
  );
  expect(res.status).toBe(200);
  const c = cookies(res);
  const headers = { cookie: `session_id=${c.sessionId}; XSRF-TOKEN=${c.token}`, "x-xsrf-token": c.token };
  return { res, ...c, headers };
}

describe("VideoOS REST API: session", () => {
  it("logs in with the §2.1 reply shape and cookies", async () => {
    const device = makeVideoosDevice();
    const { res, sessionId } = await login(device);
    const body = polyVideoOs.VideoOsLogin.parse(res.json);
    expect(body.session.sessionId).toBe(sessionId);
    expect(body.session.role).toBe("ADMIN");
    expect(body.session.userId).toBe("admin");
    expect(res.json).toMatchObject({
      session: { clientType: "WEB", location: "10.9.8.7", isNew: true, isStale: false },
      loginStatus: { failedLogins: 0, isPasswordAgeLimitReached: false, loginResult: "NOLOCKOUT" },
    });
  });

  it("rejects a wrong password with 401 and counts failed logins", async () => {
    const device = makeVideoosDevice();
    const traps: number[] = [];
    device.events.on("trap", (t: { trap: number }) => traps.push(t.trap));
    const res = await call(
      device,
      request("POST", "/rest/current/session", { body: { user: "admin", password: "nope" } }),
    );
    expect(res.status).toBe(401);
    expect(res.json).toMatchObject({ success: false, loginStatus: { failedLogins: 1 } });
    expect(traps).toEqual([17]);
  });

  it("wrongCredentials: the configured password no longer works and sessions end", async () => {
    const device = makeVideoosDevice();
    const s = await login(device);
    device.setFaults(["wrongCredentials"]);
    expect((await call(device, request("GET", "/rest/system", { headers: s.headers }))).status).toBe(403);
    const res = await call(
      device,
      request("POST", "/rest/current/session", { body: { user: "admin", password: "Sim-Pass-1" } }),
    );
    expect(res.status).toBe(401);
    device.setFaults([]);
    await login(device);
  });

  it("requires a session; unknown session ids get 403", async () => {
    const device = makeVideoosDevice();
    expect((await call(device, request("GET", "/rest/system"))).status).toBe(401);
    const res = await call(
      device,
      request("GET", "/rest/system", { headers: { cookie: "session_id=PSdeadbeef" } }),
    );
    expect(res.status).toBe(403);
  });

  it("XSRF header is required from 4.6.2 on, optional before", async () => {
    const newer = makeVideoosDevice({ model: "StudioX70", version: "4.6.2", build: "462001" });
    const a = await login(newer);
    const noHeader = { cookie: `session_id=${a.sessionId}` };
    expect((await call(newer, request("GET", "/rest/system", { headers: noHeader }))).status).toBe(403);
    expect(
      (await call(newer, request("GET", "/rest/system", { headers: { ...noHeader, "x-xsrf-token": "bad" } })))
        .status,
    ).toBe(403);
    expect((await call(newer, request("GET", "/rest/system", { headers: a.headers }))).status).toBe(200);

    const older = makeVideoosDevice();
    const b = await login(older);
    expect(
      (
        await call(
          older,
          request("GET", "/rest/system", { headers: { cookie: `session_id=${b.sessionId}` } }),
        )
      ).status,
    ).toBe(200);
  });

  it("sessions expire after the idle time and are dropped by a reboot", async () => {
    const clock = manualClock();
    const device = makeVideoosDevice({ clock });
    const api = createVideoosApi({ sessionIdleMs: 60_000 });
    const s = await login(device, api);
    clock.advance(59_000);
    expect((await call(device, request("GET", "/rest/system", { headers: s.headers }), api)).status).toBe(
      200,
    );
    clock.advance(59_000); // idle time counts from the last use
    expect((await call(device, request("GET", "/rest/system", { headers: s.headers }), api)).status).toBe(
      200,
    );
    clock.advance(60_001);
    expect((await call(device, request("GET", "/rest/system", { headers: s.headers }), api)).status).toBe(
      403,
    );

    const t = await login(device, api);
    device.reboot("test");
    clock.advance(10_000);
    expect((await call(device, request("GET", "/rest/system", { headers: t.headers }), api)).status).toBe(
      403,
    );
  });

  it("older firmware (< 4.0) also takes HTTP Basic admin credentials", async () => {
    const old = makeVideoosDevice({ version: "3.12.0" });
    const basic = (p: string) => ({ authorization: `Basic ${Buffer.from(`admin:${p}`).toString("base64")}` });
    expect((await call(old, request("GET", "/rest/system", { headers: basic("Sim-Pass-1") }))).status).toBe(
      200,
    );
    expect((await call(old, request("GET", "/rest/system", { headers: basic("x") }))).status).toBe(401);
    const newer = makeVideoosDevice({ model: "StudioX70", version: "4.1.0", build: "401117" });
    expect((await call(newer, request("GET", "/rest/system", { headers: basic("Sim-Pass-1") }))).status).toBe(
      401,
    );
  });

  it("lists sessions and logs out", async () => {
    const device = makeVideoosDevice();
    const s = await login(device);
    const list = await call(device, request("GET", "/rest/current/session/sessions", { headers: s.headers }));
    expect((list.json as { sessionList: unknown[] }).sessionList).toHaveLength(1);
    expect(
      (await call(device, request("DELETE", "/rest/current/session", { headers: s.headers }))).status,
    ).toBe(200);
    expect((await call(device, request("GET", "/rest/system", { headers: s.headers }))).status).toBe(403);
  });
});

describe("VideoOS REST API: answers", () => {
  it("GET /rest/system has the identity fields with the right types", async () => {
    const device = makeVideoosDevice();
    const s = await login(device);
    const res = await call(device, request("GET", "/rest/system", { headers: s.headers }));
    expect(res.status).toBe(200);
    const sys = polyVideoOs.VideoOsSystem.parse(res.json);
    expect(sys).toMatchObject({
      model: "StudioX30",
      serialNumber: "8L2138A1B2C3FC",
      softwareVersion: "3.12.0",
      build: "366027",
      buildType: "Release",
      hardwareVersion: "1",
      systemName: "StudioX30-A1B2C3FC",
      state: "READY",
      rebootNeeded: false,
      lanStatus: { duplex: "FULL", speedMbps: 1000, state: "LAN_UP" },
    });
    expect(typeof sys.uptime).toBe("number");
    expect(sys.uptime).toBeGreaterThan(3600);
    expect(sys.systemTime).toBe(device.now());
    expect(res.json).toMatchObject({ timeServerState: "TIMESERVER_UP", timeOffset: 0 });
  });

  it("reboot resets uptime and invalidates the session", async () => {
    const clock = manualClock();
    const device = makeVideoosDevice({ clock });
    const s = await login(device);
    const before = polyVideoOs.VideoOsSystem.parse(
      (await call(device, request("GET", "/rest/system", { headers: s.headers }))).json,
    );
    const res = await call(
      device,
      request("POST", "/rest/system/reboot", { headers: s.headers, body: { action: "reboot" } }),
    );
    expect(res.status).toBe(200);
    expect(device.isUp()).toBe(false);
    clock.advance(5000 + 42_000);
    const s2 = await login(device);
    const after = polyVideoOs.VideoOsSystem.parse(
      (await call(device, request("GET", "/rest/system", { headers: s2.headers }))).json,
    );
    expect(after.uptime).toBeCloseTo(42, 1);
    expect(after.uptime).toBeLessThan(before.uptime);
    // The legacy path reboots too; a wrong action does not.
    expect(
      (
        await call(
          device,
          request("POST", "/rest/system/reboot", { headers: s2.headers, body: { action: "dance" } }),
        )
      ).status,
    ).toBe(400);
    expect(
      (await call(device, request("POST", "/rest/current/system/reboot", { headers: s2.headers }))).status,
    ).toBe(200);
    expect(device.isUp()).toBe(false);
  });

  it("status items follow the faults", async () => {
    const device = makeVideoosDevice();
    const s = await login(device);
    const states = async () => {
      const res = await call(device, request("GET", "/rest/system/status", { headers: s.headers }));
      const items = polyVideoOs.VideoOsSystemStatus.parse(res.json);
      return Object.fromEntries(items.map((i) => [i.name, i.stateList[0]]));
    };
    const ok = await states();
    expect(ok).toMatchObject({
      "system.status.trackablecamera": "up",
      "system.status.mr.camera": "up",
      "system.status.mr.audio": "up",
      "system.status.sipserver": "up",
      "system.status.ipnetwork": "up",
      "system.status.provisioning": "off",
    });
    device.setFaults(["cameraDown", "microphoneDown", "sipUnregistered"]);
    expect(await states()).toMatchObject({
      "system.status.trackablecamera": "down",
      "system.status.mr.camera": "down",
      "system.status.mr.audio": "down",
      "system.status.sipserver": "down",
    });
    const mics = await call(device, request("GET", "/rest/audio/microphones", { headers: s.headers }));
    expect(mics.json).toEqual([]);
    const audio = await call(device, request("GET", "/rest/audio", { headers: s.headers }));
    expect(audio.json).toMatchObject({ numOfMicsConnected: 0 });
    const cams = await call(device, request("GET", "/rest/cameras/near/all", { headers: s.headers }));
    expect(cams.json).toMatchObject([{ connected: false }]);
    const sip = await call(device, request("GET", "/rest/system/sipservers", { headers: s.headers }));
    expect(sip.json).toMatchObject([{ state: "DOWN" }]);
  });

  it("peripherals: codec, TC8 and camera; cameraDown disconnects the camera", async () => {
    const device = makeVideoosDevice();
    const s = await login(device);
    const get = async () =>
      polyVideoOs.VideoOsPeripherals.parse(
        (
          await call(
            device,
            request("POST", "/rest/current/devicemanagement/devices", { headers: s.headers }),
          )
        ).json,
      );
    const list = await get();
    expect(list.map((p) => p.deviceType)).toEqual(["CODEC", "TOUCHCONTROL", "CAMERA"]);
    expect(list[0]).toMatchObject({
      uid: "local-system",
      productName: "StudioX30",
      deviceState: "CONNECTED",
    });
    expect(list[1]).toMatchObject({
      productName: "Poly TC8",
      softwareVersion: "3.12.0-210716",
      deviceState: "PAIRED",
    });
    expect(list[1]?.serialNumber).toMatch(/FD$/);
    expect(list[2]?.deviceState).toBe("CONNECTED");
    device.setFaults(["cameraDown"]);
    expect((await get())[2]?.deviceState).toBe("DISCONNECTED");
  });

  it("config read and write; secrets are never echoed", async () => {
    const device = makeVideoosDevice();
    const s = await login(device);
    const post = (body: unknown) =>
      call(device, request("POST", "/rest/config", { headers: s.headers, body }));
    const read = await post({
      names: ["snmp.version2.enable", "system.name", "device.prov.password", "no.such.param"],
    });
    const vars = polyVideoOs.VideoOsConfigVars.parse(read.json).vars;
    expect(vars[0]).toEqual({
      name: "snmp.version2.enable",
      value: "false",
      result: "NOERROR",
      isEditable: true,
      isHidden: false,
      isSecure: false,
    });
    expect(vars[1]).toMatchObject({ value: "StudioX30-A1B2C3FC" });
    expect(vars[2]).toMatchObject({ value: "", isSecure: true, result: "NOERROR" });
    expect(vars[3]?.result).not.toBe("NOERROR");

    const write = await post({
      vars: [
        { name: "snmp.version2.enable", value: "true" },
        { name: "device.prov.password", value: "s3cret" },
        { name: "comm.nics.sipnic.sipusername", value: "room-1" },
      ],
    });
    expect(write.status).toBe(200);
    expect(write.json).toMatchObject({
      vars: [
        { name: "snmp.version2.enable", requestedValue: "true", result: "NOERROR", rebootNeeded: false },
        { name: "device.prov.password", requestedValue: "", result: "NOERROR" },
        { name: "comm.nics.sipnic.sipusername", requestedValue: "room-1", rebootNeeded: true },
      ],
    });
    expect(JSON.stringify(write.json)).not.toContain("s3cret");
    expect(device.config.get("snmp.version2.enable")).toBe("true");
    expect(device.config.get("device.prov.password")).toBe("s3cret");
    const sys = await call(device, request("GET", "/rest/system", { headers: s.headers }));
    expect(sys.json).toMatchObject({ rebootNeeded: true });
    const again = await post({ names: ["device.prov.password"] });
    expect(JSON.stringify(again.json)).not.toContain("s3cret");
  });

  it("conferences follow device.inCall; apps list; 404, 405 and 400", async () => {
    const device = makeVideoosDevice();
    const s = await login(device);
    expect((await call(device, request("GET", "/rest/conferences", { headers: s.headers }))).json).toEqual(
      [],
    );
    device.setCall(true);
    const conf = await call(device, request("GET", "/rest/conferences", { headers: s.headers }));
    expect(conf.json).toMatchObject([{ connections: [{ state: "CONNECTED", callType: "SIP" }] }]);
    const apps = await call(device, request("GET", "/rest/system/apps", { headers: s.headers }));
    expect(apps.json).toMatchObject([{ packageName: "com.poly.polylauncher", versionInfo: "3.12.0" }]);
    expect((await call(device, request("GET", "/rest/nope", { headers: s.headers }))).status).toBe(404);
    expect((await call(device, request("DELETE", "/rest/system", { headers: s.headers }))).status).toBe(405);
    const bad = await call(
      device,
      request("POST", "/rest/config", { headers: s.headers, rawBody: Buffer.from("{nope") }),
    );
    expect(bad.status).toBe(400);
    const badLogin = await call(
      device,
      request("POST", "/rest/current/session", { rawBody: Buffer.from("[1,") }),
    );
    expect(badLogin.status).toBe(400);
  });
});

describe("VideoOS REST API: fuzz", () => {
  it("never throws and answers 200..599 for arbitrary requests", async () => {
    const device = makeVideoosDevice();
    const s = await login(device);
    const paths = fc.oneof(
      fc.constantFrom(
        "/rest/current/session",
        "/rest/system",
        "/rest/system/status",
        "/rest/config",
        "/rest/current/devicemanagement/devices",
        "/rest/system/reboot",
        "/rest/audio/microphones",
        "/rest/conferences",
        "/",
        "",
      ),
      fc.string(),
    );
    const headerSets = fc.oneof(
      fc.constant<Record<string, string>>({}),
      fc.constant(s.headers),
      fc.dictionary(fc.constantFrom("cookie", "x-xsrf-token", "authorization", "content-type"), fc.string()),
    );
    const bodies = fc.oneof(
      fc.json().map((j) => Buffer.from(j)),
      fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
      fc
        .record(
          {
            names: fc.array(fc.anything()),
            vars: fc.anything(),
            user: fc.anything(),
            password: fc.anything(),
          },
          { requiredKeys: [] },
        )
        .map((o) => Buffer.from(JSON.stringify(o) ?? "")),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "get", ""),
        paths,
        headerSets,
        bodies,
        async (method, path, headers, body) => {
          const res = await videoosApi.handle(device, {
            method,
            path,
            query: new URLSearchParams(),
            headers,
            body,
            remoteAddress: "10.0.0.1",
          });
          expect(res.status).toBeGreaterThanOrEqual(200);
          expect(res.status).toBeLessThanOrEqual(599);
        },
      ),
      { numRuns: 500 },
    );
  });
});
