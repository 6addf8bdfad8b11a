import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadCollectorConfig } from "../src/main.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "polyfleet-collector-config-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("collector configuration", () => {
  it("accepts the shipped sample config and rules", async () => {
    const sample = new URL("../collector.sample.yaml", import.meta.url).pathname;
    const rulesSample = new URL("../rules.sample.yaml", import.meta.url).pathname;
    const text = (await import("node:fs"))
      .readFileSync(sample, "utf8")
      .replace("/etc/polyfleet/rules.yaml", rulesSample);
    const file = join(dir, "collector.yaml");
    await writeFile(file, text);
    const { config, rules } = loadCollectorConfig(file);
    expect(config.broker.type).toBe("embedded");
    expect(config.notifiers.webhooks[0]?.name).toBe("noc-chat");
    expect(rules.rules.length).toBeGreaterThan(0);
  });

  it("runs on embedded defaults without a file", () => {
    const { config } = loadCollectorConfig(undefined);
    expect(config.store).toEqual({ type: "sqlite", path: "./.polyfleet/state.db" });
    expect(config.metrics.type).toBe("embedded");
  });

  it("names the file and key of a typo, and of a broken rules file", async () => {
    const typo = join(dir, "typo.yaml");
    await writeFile(typo, "stor: { type: sqlite }\n");
    expect(() => loadCollectorConfig(typo)).toThrow(`${typo}: stor`);
    const rules = join(dir, "rules.yaml");
    await writeFile(
      rules,
      "rules:\n  - { name: x, kind: threshold, severity: major, metric: cpu, value: 90 }\n",
    );
    const cfg = join(dir, "with-rules.yaml");
    await writeFile(cfg, `alerts: { rulesFile: ${rules} }\n`);
    expect(() => loadCollectorConfig(cfg)).toThrow(`${rules}: rules[0].metric`);
  });
});
