import { AgentConfig, isPolyfleetError } from "@polyfleet/shared";
import { describe, expect, it } from "vitest";
import { checkProvisioning } from "../src/main.js";

const base = { siteId: "s", agentId: "a", broker: { url: "mqtt://127.0.0.1:1883" } };

describe("provisioning config check", () => {
  it("accepts no advertised URL or an http(s) one", () => {
    expect(() => checkProvisioning(AgentConfig.parse(base), "a.yaml")).not.toThrow();
    for (const advertisedUrl of ["http://10.0.0.5:8085", "https://prov.example.net/agent"]) {
      const c = AgentConfig.parse({ ...base, provisioning: { advertisedUrl } });
      expect(() => checkProvisioning(c, "a.yaml")).not.toThrow();
    }
  });

  it("refuses anything devices could not resolve paths against", () => {
    for (const advertisedUrl of ["10.0.0.5:8085", "ftp://x", "http://x/?a=1", "not a url"]) {
      const c = AgentConfig.parse({ ...base, provisioning: { advertisedUrl } });
      let err: unknown;
      try {
        checkProvisioning(c, "a.yaml");
      } catch (e) {
        err = e;
      }
      expect(isPolyfleetError(err) && err.code, advertisedUrl).toBe("POLYFLEET_ERR_CONFIG_INVALID");
    }
  });
});
