import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  classifyFingerprints,
  classifyHttps,
  classifySnmp,
  type HttpsFingerprint,
  modelFromSysDescr,
  UC_PROBE_PATH,
  VIDEOOS_PROBE_PATH,
  wantsVideoOsProbe,
} from "../../src/core/classify.js";

// Answers as the simulator sends them (scripts/src/simulator/device-server.ts, uc/uc-api.ts, videoos/videoos-api.ts).
const UC_401: HttpsFingerprint = {
  port: 443,
  path: UC_PROBE_PATH,
  status: 401,
  server: "Polycom SoundPoint IP Telephone HTTPd",
  wwwAuthenticate: 'Basic realm="API Authentication"',
  contentType: "text/html",
  bodyStart: "<html><body><h1>401 Unauthorized</h1></body></html>",
};
const UC_REST_OFF: HttpsFingerprint = {
  port: 443,
  path: UC_PROBE_PATH,
  status: 404,
  server: "Polycom SoundPoint IP Telephone HTTPd",
  contentType: "text/html",
  bodyStart: "<html><body><h1>404 Not Found</h1></body></html>",
};
const VIDEO_401: HttpsFingerprint = {
  port: 8443,
  path: VIDEOOS_PROBE_PATH,
  status: 401,
  server: "Poly",
  wwwAuthenticate: 'Basic realm="Poly"',
  contentType: "application/json",
  bodyStart: '{"success":false,"errorCode":"NOT_AUTHENTICATED"}',
};
const NGINX_404: HttpsFingerprint = {
  port: 443,
  path: UC_PROBE_PATH,
  status: 404,
  server: "nginx/1.24.0",
  contentType: "text/html",
  bodyStart: "<html><head><title>404 Not Found</title></head></html>",
};

describe("classify: HTTPS", () => {
  it("recognises UC phones by the 401 realm or the Server header, REST on or off", () => {
    expect(classifyHttps(UC_401)?.family).toBe("uc");
    expect(classifyHttps(UC_REST_OFF)?.family).toBe("uc");
    expect(classifyHttps(UC_REST_OFF)?.reason).toMatch(/REST API disabled/);
    // The realm alone is enough when a proxy strips the Server header.
    const { server: _s, ...noServer } = UC_401;
    expect(classifyHttps(noServer)?.family).toBe("uc");
    expect(wantsVideoOsProbe(UC_401)).toBe(false);
  });

  it("recognises VideoOS by a JSON 401/403 on /rest/", () => {
    expect(classifyHttps(VIDEO_401)?.family).toBe("videoos");
    expect(
      classifyHttps({
        ...VIDEO_401,
        status: 403,
        bodyStart: '{"success":false,"errorCode":"SESSION_EXPIRED"}',
      })?.family,
    ).toBe("videoos");
    // The same JSON 401 on the UC path alone is not evidence (VideoOS authenticates before routing there).
    const onUcPath = { ...VIDEO_401, path: UC_PROBE_PATH };
    expect(classifyHttps(onUcPath)).toBeUndefined();
    expect(wantsVideoOsProbe(onUcPath)).toBe(true);
    // A HTML 401 on /rest/ is not VideoOS.
    expect(
      classifyHttps({ ...VIDEO_401, contentType: "text/html", bodyStart: "<html>401</html>" }),
    ).toBeUndefined();
  });

  it("leaves other web servers unclassified", () => {
    expect(classifyHttps(NGINX_404)).toBeUndefined();
    expect(
      classifyHttps({ ...NGINX_404, status: 401, wwwAuthenticate: 'Basic realm="Router"' }),
    ).toBeUndefined();
    expect(
      classifyHttps({ ...NGINX_404, path: VIDEOOS_PROBE_PATH, status: 200, bodyStart: '{"ok":true}' }),
    ).toBeUndefined();
  });

  it("never classifies an answer without Poly signatures", () => {
    fc.assert(
      fc.property(
        fc.record({
          port: fc.integer({ min: 1, max: 65535 }),
          path: fc.constantFrom(UC_PROBE_PATH, VIDEOOS_PROBE_PATH, "/"),
          status: fc.integer({ min: 100, max: 599 }).filter((s) => s !== 401 && s !== 403),
          server: fc.option(
            fc.string().filter((s) => !/polycom/i.test(s)),
            { nil: undefined },
          ),
          bodyStart: fc.string(),
        }),
        (fp) => {
          expect(classifyHttps(fp)).toBeUndefined();
        },
      ),
    );
  });
});

describe("classify: SNMP", () => {
  it("maps the Polycom enterprise subtree to VideoOS and anything else to generic", () => {
    expect(
      classifySnmp({ port: 161, credentialName: "v3", sysObjectId: "1.3.6.1.4.1.13885.101" }).family,
    ).toBe("videoos");
    expect(classifySnmp({ port: 161, credentialName: "v3", sysObjectId: ".1.3.6.1.4.1.13885" }).family).toBe(
      "videoos",
    );
    expect(
      classifySnmp({ port: 161, credentialName: "v3", sysObjectId: "1.3.6.1.4.1.138850.1" }).family,
    ).toBe("snmp");
    expect(
      classifySnmp({ port: 161, credentialName: "v3", sysObjectId: "1.3.6.1.4.1.8072.3.2.10" }).family,
    ).toBe("snmp");
    expect(classifySnmp({ port: 161, credentialName: "v3" }).family).toBe("snmp");
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 6 }), (tail) => {
        const oid = ["1.3.6.1.4.1.13885", ...tail].join(".");
        expect(classifySnmp({ port: 161, credentialName: "x", sysObjectId: oid }).family).toBe("videoos");
      }),
    );
  });

  it("reads the model from a VideoOS sysDescr", () => {
    expect(modelFromSysDescr("Videoconferencing Device, Poly StudioX50, VideoOS 4.1.0-401117")).toBe(
      "StudioX50",
    );
    expect(modelFromSysDescr("Videoconferencing Device, Poly G7500, VideoOS 3.14.2-1")).toBe("G7500");
    expect(modelFromSysDescr("Linux router 5.15.0")).toBeUndefined();
    expect(modelFromSysDescr(undefined)).toBeUndefined();
  });
});

describe("classify: combined", () => {
  const snmpVideo = {
    port: 1161,
    credentialName: "site-v3",
    sysObjectId: "1.3.6.1.4.1.13885.101",
    sysDescr: "Videoconferencing Device, Poly StudioX30, VideoOS 4.1.0-1",
  };

  it("UC phone over HTTPS", () => {
    expect(classifyFingerprints({ https: [UC_401], snmp: [] })).toMatchObject({
      driver: "poly-ucs",
      family: "uc",
      via: ["https"],
      httpsPort: 443,
    });
  });

  it("VideoOS over HTTPS and SNMP, or either alone", () => {
    expect(classifyFingerprints({ https: [VIDEO_401], snmp: [snmpVideo] })).toMatchObject({
      driver: "poly-videoos",
      family: "videoos",
      via: ["https", "snmp"],
      httpsPort: 8443,
      snmpPort: 1161,
      snmpCredentialName: "site-v3",
      modelHint: "StudioX30",
    });
    expect(classifyFingerprints({ https: [], snmp: [snmpVideo] })).toMatchObject({
      driver: "poly-videoos",
      via: ["snmp"],
    });
    expect(classifyFingerprints({ https: [VIDEO_401], snmp: [] })).toMatchObject({
      driver: "poly-videoos",
      via: ["https"],
    });
  });

  it("generic SNMP, and nothing for a plain web server", () => {
    const generic = {
      port: 161,
      credentialName: "v2",
      sysObjectId: "1.3.6.1.4.1.8072.3.2.10",
      sysDescr: "Linux",
    };
    expect(classifyFingerprints({ https: [NGINX_404], snmp: [generic] })).toMatchObject({
      driver: "snmp-generic",
      family: "snmp",
      via: ["snmp"],
    });
    expect(classifyFingerprints({ https: [NGINX_404], snmp: [] })).toBeUndefined();
    expect(classifyFingerprints({ https: [], snmp: [] })).toBeUndefined();
  });

  it("a UC signature wins over generic SNMP", () => {
    const generic = { port: 161, credentialName: "v2", sysObjectId: "1.3.6.1.4.1.9.1.1" };
    expect(classifyFingerprints({ https: [NGINX_404, UC_401], snmp: [generic] })?.driver).toBe("poly-ucs");
  });
});

describe("classify: MAC from ifPhysAddress", () => {
  it("accepts the decoded forms and refuses the rest", async () => {
    const { normalizeMac } = await import("../../src/core/classify.js");
    expect(normalizeMac("00:E0:DB:12:34:56")).toBe("00e0db123456");
    expect(normalizeMac("00-e0-db-12-34-56")).toBe("00e0db123456");
    expect(normalizeMac("00e0db123456")).toBe("00e0db123456");
    expect(normalizeMac("ABCDEF")).toBe("414243444546");
    expect(normalizeMac("00:00:00:00:00:00")).toBeUndefined();
    expect(normalizeMac("eth0")).toBeUndefined();
    expect(normalizeMac(undefined)).toBeUndefined();
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 6, maxLength: 6 }), (bytes) => {
        const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0"));
        const expected = hex.join("") === "000000000000" ? undefined : hex.join("");
        expect(normalizeMac(hex.join(":"))).toBe(expected);
        expect(normalizeMac(String.fromCharCode(...bytes))).toBe(expected);
      }),
    );
  });
});
