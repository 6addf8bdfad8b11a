import { CommandResult } from "@polyfleet/shared";
import { describe, expect, it } from "vitest";
import { createNetworkToolHandlers } from "../../../src/adapters/tools/index.js";
import { COMMANDS_TOTAL, CommandRunner } from "../../../src/core/command-runner.js";
import { PromRegistry } from "../../../src/core/prom-registry.js";
import { SYSTEM_CLOCK } from "../../../src/ports/clock.js";

const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

describe("CommandRunner with the real network tools", () => {
  it("runs ping, tcpConnect and traceroute commands end to end and refuses what it has no tool for", async () => {
    const published: CommandResult[] = [];
    const metrics = new PromRegistry();
    const runner = new CommandRunner({
      agentId: "site-agent",
      handlers: createNetworkToolHandlers(),
      clock: SYSTEM_CLOCK,
      metrics,
      publish: (r) => {
        published.push(CommandResult.parse(r));
      },
      log: quiet,
    });
    const send = (commandId: string, body: Record<string, unknown>) =>
      runner.handleRaw(
        new TextEncoder().encode(
          JSON.stringify({
            v: 1,
            commandId,
            agentId: "site-agent",
            issuedBy: "test",
            issuedAt: Date.now(),
            body,
          }),
        ),
      );
    await Promise.all([
      send("e2e-ping-1", { type: "ping", target: "127.0.0.1", count: 2 }),
      send("e2e-trace-1", { type: "traceroute", target: "127.0.0.1", maxHops: 3 }),
      send("e2e-tcp-1", { type: "tcpConnect", host: "127.0.0.1", port: 1, timeoutMs: 1000 }),
      send("e2e-snmp-1", { type: "snmpGet", target: { deviceId: "dev-1" }, oids: ["1.3.6.1.2.1.1.1.0"] }),
    ]);
    const byId = new Map(published.map((r) => [r.commandId, r]));
    expect(byId.get("e2e-ping-1")).toMatchObject({ status: "ok", data: { received: 2, lossPercent: 0 } });
    expect(byId.get("e2e-trace-1")).toMatchObject({ status: "ok", data: { reached: true } });
    expect(byId.get("e2e-tcp-1")).toMatchObject({
      status: "ok",
      data: { connected: false, error: { code: "ECONNREFUSED" } },
    });
    expect(byId.get("e2e-snmp-1")).toMatchObject({
      status: "error",
      error: { code: "POLYFLEET_ERR_COMMAND_UNSUPPORTED" },
    });
    expect(metrics.get(COMMANDS_TOTAL, { type: "ping", result: "ok" })).toBe(1);
    runner.stop();
  });
});
