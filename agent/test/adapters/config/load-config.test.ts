import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PolyfleetError } from "@polyfleet/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadAgentConfig, resolveSecret } from "../../../src/adapters/config/load-config.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "polyfleet-agent-config-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("loadAgentConfig", () => {
  it("accepts the shipped sample config", () => {
    const cfg = loadAgentConfig(new URL("../../../agent.sample.yaml", import.meta.url).pathname);
    expect(cfg.siteId).toBe("hq-berlin");
    expect(cfg.credentials["video-snmp"]?.type).toBe("snmpv3");
    const snmp = cfg.credentials["video-snmp"];
    expect(snmp?.type === "snmpv3" && [snmp.authProtocol, snmp.privProtocol, snmp.securityLevel]).toEqual([
      "sha256",
      "aes128",
      "authPriv",
    ]);
  });

  it("names the file, the key and the reason for a typo", async () => {
    const file = join(dir, "typo.yaml");
    await writeFile(
      file,
      "siteId: s\nagentId: a\nbroker: { url: mqtt://x:1883 }\npolling: { intervalSecs: 30 }\n",
    );
    expect(() => loadAgentConfig(file)).toThrow(`${file}: polling.intervalSecs`);
  });

  it("names the file when it cannot be read", () => {
    const missing = join(dir, "missing.yaml");
    try {
      loadAgentConfig(missing);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(PolyfleetError);
      expect((e as PolyfleetError).code).toBe("POLYFLEET_ERR_CONFIG_UNREADABLE");
      expect((e as Error).message).toContain(missing);
    }
  });
});

describe("resolveSecret", () => {
  const sources = {
    env: { PW: "s3cret" } as Record<string, string | undefined>,
    readFile: (p: string) => (p === "/pw" ? "fromfile\n" : ""),
  };
  it("resolves inline, env and file secrets", () => {
    expect(resolveSecret("inline", "k", "f", sources)).toBe("inline");
    expect(resolveSecret({ env: "PW" }, "k", "f", sources)).toBe("s3cret");
    expect(resolveSecret({ file: "/pw" }, "k", "f", sources)).toBe("fromfile");
  });
  it("names the key and the source, never a value, when it cannot resolve", () => {
    expect(() =>
      resolveSecret({ env: "NOPE" }, "credentials.phones.password", "agent.yaml", sources),
    ).toThrow("agent.yaml: credentials.phones.password: environment variable NOPE is not set");
    expect(() => resolveSecret({ file: "/empty" }, "broker.password", "agent.yaml", sources)).toThrow(
      /secret file \/empty is empty/,
    );
  });
});
