import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentConfig, parseConfigText } from "@polyfleet/shared";
import { describe, expect, it } from "vitest";
import { startSim } from "./sim-harness.js";

describe("polyfleet-sim --agent-config", () => {
  it("writes a valid agent config listing every simulated device with working credentials", async () => {
    const dir = await mkdtemp(join(tmpdir(), "polyfleet-agentcfg-"));
    const file = join(dir, "agent.yaml");
    const sim = await startSim([
      "--devices",
      "12",
      "--seed",
      "3",
      "--agent-config",
      file,
      "--broker",
      "mqtt://127.0.0.1:18830",
      "--agent-id",
      "a1",
      "--site-id",
      "lab",
    ]);
    try {
      const text = await readFile(file, "utf8");
      const cfg = parseConfigText(AgentConfig, text, file);
      expect(cfg.agentId).toBe("a1");
      expect(cfg.siteId).toBe("lab");
      expect(cfg.broker.url).toBe("mqtt://127.0.0.1:18830");
      expect(cfg.devices.map((d) => d.address).sort()).toEqual(
        sim.manifest.devices.map((d) => d.address).sort(),
      );
      for (const d of cfg.devices) {
        const m = sim.manifest.devices.find((x) => x.address === d.address);
        expect(d.driver).toBe(m?.family === "uc" ? "poly-ucs" : "poly-videoos");
        for (const name of d.credentials) expect(cfg.credentials[name]).toBeDefined();
      }
      const phone = sim.manifest.devices.find((d) => d.family === "uc");
      const profile = cfg.credentials["sim-phones"];
      expect(profile?.type === "http" ? profile.password : undefined).toBe(phone?.admin.password);
      expect(cfg.discovery.ranges).toEqual([sim.manifest.subnet]);
      expect((await stat(file)).mode & 0o077).toBe(0);
    } finally {
      await sim.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses a broker URL that is not mqtt:// or mqtts://", async () => {
    await expect(
      startSim(["--devices", "2", "--agent-config", "/tmp/x.yaml", "--broker", "http://x"]),
    ).rejects.toThrow(/--broker/);
  });
});
