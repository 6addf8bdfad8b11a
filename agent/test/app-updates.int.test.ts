// The firmware update wiring of buildAgent, end to end in this process: a command over MQTT (aedes), the
// agent's provisioning server and journal from its config, progress events out through the outbox.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeSimImage } from "@polyfleet/scripts";
import { type AedesHandle, startAedes } from "@polyfleet/scripts/testing";
import {
  AgentConfig,
  type AgentEvent,
  type CommandInput,
  CommandResult,
  createLogger,
  SYSTEM_CLOCK,
  topicFor,
} from "@polyfleet/shared";
import { connect, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT_CAPABILITIES, type Agent, buildAgent } from "../src/app.js";
import { TestImageServer } from "./helpers/image-server.js";
import { type SimHandle, startSim } from "./helpers/sim.js";

async function until<T>(get: () => T | undefined, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("buildAgent: firmware updates", () => {
  let sim: SimHandle;
  let broker: AedesHandle;
  let images: TestImageServer;
  let dir: string;
  let agent: Agent;
  let client: MqttClient;
  const events: AgentEvent[] = [];
  const results: CommandResult[] = [];
  const telemetry: string[] = [];
  const site = "site-u";
  const agentId = `agent-u-${Math.random().toString(36).slice(2, 7)}`;

  beforeAll(async () => {
    sim = await startSim(["--devices", "2", "--models", "VVX 350", "--reboot-ms", "300", "--seed", "9"]);
    broker = await startAedes();
    images = new TestImageServer();
    await images.start();
    dir = await mkdtemp(join(tmpdir(), "polyfleet-app-updates-"));
    const d = sim.manifest.devices[0];
    if (!d) throw new Error("no device");
    const config = AgentConfig.parse({
      siteId: site,
      agentId,
      broker: { url: broker.url, protocolVersion: 4 },
      credentials: { phones: { type: "http", user: d.admin.user, password: d.admin.password } },
      devices: [{ address: d.address, driver: "poly-ucs", httpsPort: d.httpsPort, credentials: ["phones"] }],
      polling: { intervalSec: 5, timeoutMs: 3000 },
      outbox: { dir: join(dir, "outbox") },
      provisioning: { host: "127.0.0.1", port: 0, dir: join(dir, "firmware") },
      traps: { enabled: false },
      http: { host: "127.0.0.1", port: 0 },
    });
    agent = buildAgent({
      config,
      credentials: new Map([
        ["phones", { name: "phones", type: "http", user: d.admin.user, password: d.admin.password }],
      ]),
      broker: { url: broker.url, protocolVersion: 4 },
      version: "0.0.0-test",
      log: createLogger({ level: "silent" }),
      clock: SYSTEM_CLOCK,
      updates: { watchIntervalMs: 150, download: { backoffMs: 20 } },
    });
    client = connect(broker.url, { protocolVersion: 4 });
    await new Promise<void>((resolve) => client.once("connect", () => resolve()));
    const p = { site, agent: agentId };
    await client.subscribeAsync([topicFor("events", p), topicFor("cmdResult", p), topicFor("telemetry", p)]);
    client.on("message", (topic, payload) => {
      const text = payload.toString("utf8");
      if (topic === topicFor("cmdResult", p)) results.push(CommandResult.parse(JSON.parse(text)));
      else if (topic === topicFor("events", p)) {
        const body = JSON.parse(text) as { events?: AgentEvent[] } | AgentEvent;
        for (const e of "events" in body && body.events ? body.events : [body as AgentEvent]) events.push(e);
      } else telemetry.push(text);
    });
    await agent.start();
  });
  afterAll(async () => {
    await agent?.stop();
    await client?.endAsync();
    await broker?.stop();
    await images?.stop();
    await sim?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("announces the capability and runs a firmwareUpdate command to succeeded", async () => {
    expect(AGENT_CAPABILITIES).toContain("cmd:firmwareUpdate");
    expect(agent.provisioningUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const d = sim.manifest.devices[0];
    if (!d) throw new Error("no device");
    // The device is configured by address; commands name it by MAC once a poll has reported it.
    await until(() => (telemetry.some((t) => t.includes(d.mac)) ? true : undefined), 15_000, "first reading");
    const bytes = makeSimImage({ family: "uc", model: d.model, version: "8.2.0.2000" }, 16_384);
    const url = images.add("app.sip.ld", bytes);
    const cmd: CommandInput = {
      v: 1,
      commandId: "cmd-app-update-1",
      agentId,
      issuedBy: "test",
      issuedAt: Date.now(),
      body: {
        type: "firmwareUpdate",
        deviceId: d.mac,
        rolloutId: "r-app",
        targetVersion: "8.2.0.2000",
        image: { url, fileName: "app.sip.ld", length: bytes.length, sha256: TestImageServer.sha256(bytes) },
        timeoutMs: 30_000,
      },
    };
    await client.publishAsync(topicFor("cmd", { site, agent: agentId }), JSON.stringify(cmd), { qos: 1 });
    const result = await until(
      () => results.find((r) => r.commandId === "cmd-app-update-1"),
      10_000,
      "result",
    );
    expect(result).toMatchObject({
      status: "ok",
      data: { accepted: true, deviceId: d.mac, phase: "accepted" },
    });
    const progress = (): Extract<AgentEvent, { type: "update.progress" }>[] =>
      events.filter(
        (e): e is Extract<AgentEvent, { type: "update.progress" }> =>
          e.type === "update.progress" && e.commandId === "cmd-app-update-1",
      );
    const end = await until(
      () => progress().find((e) => e.phase === "succeeded" || e.phase === "failed"),
      30_000,
      "update end",
    );
    expect(end).toMatchObject({
      phase: "succeeded",
      deviceId: d.mac,
      rolloutId: "r-app",
      reportedVersion: "8.2.0.2000",
    });
    expect(progress().map((e) => e.phase)).toEqual(
      expect.arrayContaining(["accepted", "staged", "installing", "verifying", "succeeded"]),
    );
    const metrics = await (await fetch(`${agent.opsUrl}/metrics`)).text();
    expect(metrics).toContain('polyfleet_agent_updates_total{result="succeeded"} 1');
    const health = (await (await fetch(`${agent.opsUrl}/healthz`)).json()) as Record<string, unknown>;
    expect(health).toMatchObject({ updatesRunning: 0, provisioning: agent.provisioningUrl });
  });
});
