import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import type { AgentState } from "@polyfleet/shared";
import { AgentState as AgentStateSchema, parseMessage, topicFor } from "@polyfleet/shared";
import { connect, type MqttClient } from "mqtt";
import { MqttAgentLink, type MqttAgentLinkOptions } from "../../../src/adapters/mqtt/mqtt-agent-link.js";
import type { SqliteOutbox } from "../../../src/adapters/outbox/sqlite-outbox.js";
import { PromRegistry } from "../../../src/core/prom-registry.js";
import { SYSTEM_CLOCK } from "../../../src/ports/clock.js";
import { makeOutbox, memoryLogger } from "../outbox/outbox-helpers.js";

export const SITE = "site-1";
export const AGENT = "agent-1";

export interface LinkRig {
  outbox: SqliteOutbox;
  link: MqttAgentLink;
  metrics: PromRegistry;
  logLines: Record<string, unknown>[];
  stop(): Promise<void>;
}

/** An open outbox in `dir` and a started link to `url`, with test-friendly timings. */
export function startLink(dir: string, url: string, over: Partial<MqttAgentLinkOptions> = {}): LinkRig {
  const metrics = new PromRegistry();
  const { outbox } = makeOutbox(dir, {
    maxEntries: 1_000_000,
    clock: SYSTEM_CLOCK,
    metrics,
    agentId: over.agentId ?? AGENT,
    siteId: over.siteId ?? SITE,
  });
  outbox.open();
  const { log, lines } = memoryLogger("warn");
  const link = new MqttAgentLink({
    agentId: AGENT,
    siteId: SITE,
    broker: { url, keepaliveSec: 5 },
    outbox,
    batchSize: 100,
    ackTimeoutMs: 2000,
    reconnect: { minMs: 100, maxMs: 1000 },
    version: "1.2.3-test",
    capabilities: ["poll", "commands"],
    hostname: "test-host",
    clock: SYSTEM_CLOCK,
    metrics,
    log,
    ...over,
  });
  link.start();
  return {
    outbox,
    link,
    metrics,
    logLines: lines,
    stop: async () => {
      await link.stop();
      outbox.close();
    },
  };
}

/** A subscriber that records every state message (retained first) of an agent. */
export async function watchState(
  url: string,
  agent = AGENT,
  site = SITE,
): Promise<{ states: AgentState[]; retained: boolean[]; client: MqttClient; stop: () => Promise<void> }> {
  const states: AgentState[] = [];
  const retained: boolean[] = [];
  const client = connect(url, {
    clientId: `watch-${Math.random().toString(36).slice(2)}`,
    reconnectPeriod: 200,
  });
  client.on("error", () => {});
  client.on("message", (_t, payload, packet) => {
    const r = parseMessage(AgentStateSchema, payload);
    if (r.ok) {
      states.push(r.value);
      retained.push(packet.retain);
    }
  });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () =>
      client.subscribe(topicFor("state", { site, agent }), { qos: 1 }, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  });
  return { states, retained, client, stop: async () => void (await client.endAsync(true)) };
}

/** A TCP proxy in front of a broker whose connections the test can cut abruptly (no DISCONNECT). */
export async function startProxy(
  targetPort: number,
): Promise<{ url: string; cut: () => void; stop: () => Promise<void> }> {
  const pairs = new Set<[Socket, Socket]>();
  const server: Server = createServer({ noDelay: true }, (down) => {
    const up = tcpConnect({ host: "127.0.0.1", port: targetPort, noDelay: true });
    const pair: [Socket, Socket] = [down, up];
    pairs.add(pair);
    down.pipe(up);
    up.pipe(down);
    const end = () => {
      down.destroy();
      up.destroy();
      pairs.delete(pair);
    };
    down.on("error", end);
    up.on("error", end);
    down.on("close", end);
    up.on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  const cut = () => {
    for (const [d, u] of pairs) {
      d.resetAndDestroy();
      u.resetAndDestroy();
    }
    pairs.clear();
  };
  return {
    url: `mqtt://127.0.0.1:${port}`,
    cut,
    stop: async () => {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
