import { type AedesHandle, startAedes, TestCollector, waitFor } from "@polyfleet/scripts/testing";
import {
  type Command,
  type CommandResult,
  CommandResult as CommandResultSchema,
  parseMessage,
  topicFor,
} from "@polyfleet/shared";
import { connect, type MqttClient } from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { readingBody, tempDir } from "../outbox/outbox-helpers.js";
import { AGENT, SITE, sleep, startLink, watchState } from "./link-helpers.js";

let broker: AedesHandle;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  broker = await startAedes();
});
afterAll(async () => {
  await broker?.stop();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function rawClient(): Promise<MqttClient> {
  const c = connect(broker.url, {
    clientId: `raw-${Math.random().toString(36).slice(2)}`,
    reconnectPeriod: 0,
  });
  c.on("error", () => {});
  await new Promise<void>((resolve) => c.once("connect", () => resolve()));
  cleanups.push(async () => void (await c.endAsync(true)));
  return c;
}

describe("MqttAgentLink against the embedded aedes broker (MQTT 3.1.1 only)", () => {
  it("falls back to 3.1.1, publishes and drains 3,000 readings and events across a link restart", async () => {
    const col = new TestCollector({ url: broker.url, siteId: SITE, agentId: AGENT, protocolVersion: 4 });
    await col.start();
    cleanups.push(() => col.stop());
    const t = await tempDir("aedes-link");
    cleanups.push(t.cleanup);
    let r = startLink(t.dir, broker.url);
    await waitFor(() => r.link.connected, 5000, "link connected");
    expect(r.link.protocolVersion).toBe(4);
    const watch = await watchState(broker.url);
    cleanups.push(watch.stop);
    await waitFor(() => watch.states.length > 0, 5000, "birth");
    expect(watch.states[0]).toMatchObject({
      status: "online",
      protocolVersion: 4,
      sessionId: r.link.session,
    });

    let n = 0;
    const produce = async (upTo: number) => {
      while (n < upTo) {
        for (let i = 0; i < 40 && n < upTo; i++) {
          n++;
          if (n % 97 === 0) {
            r.outbox.appendEvent({
              type: "device.reachability",
              deviceId: "dev-1",
              reachable: false,
              missedPolls: 3,
            });
          } else r.outbox.appendReading(readingBody(n));
        }
        await sleep(5);
      }
    };
    await produce(1500);
    // Stop the link mid-stream (entries in flight, not all acked) and start a new one on the same outbox.
    await r.stop();
    r = startLink(t.dir, broker.url);
    cleanups.push(() => r.stop());
    await produce(3000);
    await col.waitForSeq(3000, 20_000);
    await waitFor(() => r.outbox.depth() === 0, 10_000, "outbox drained");
    expect(col.seqs()).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
    expect(col.invalid).toBe(0);
    expect(col.events.filter((e) => e.type === "device.reachability")).toHaveLength(Math.floor(3000 / 97));
    expect(r.outbox.ackedSeq()).toBe(3000);
  });

  it("replays from the watermark when acks stop (messages published while no collector listened)", async () => {
    const t = await tempDir("aedes-replay");
    cleanups.push(t.cleanup);
    const r = startLink(t.dir, broker.url, { agentId: "agent-replay", ackTimeoutMs: 300 });
    cleanups.push(() => r.stop());
    await waitFor(() => r.link.connected, 5000, "link connected");
    for (let i = 0; i < 500; i++) r.outbox.appendReading(readingBody(i));
    // Published to nobody: no subscriber yet, so the broker discards them and no ack comes.
    await waitFor(
      () => r.metrics.get("polyfleet_agent_published_total", { kind: "reading" }) >= 500,
      5000,
      "published once",
    );
    const col = new TestCollector({
      url: broker.url,
      siteId: SITE,
      agentId: "agent-replay",
      protocolVersion: 4,
    });
    await col.start();
    cleanups.push(() => col.stop());
    await col.waitForSeq(500, 10_000);
    await waitFor(() => r.outbox.depth() === 0, 5000, "drained");
    expect(col.seqs()).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    expect(
      r.metrics.get("polyfleet_agent_outbox_replays_total", { reason: "ack-timeout" }),
    ).toBeGreaterThanOrEqual(1);
  });

  it("counts and drops invalid acks and commands, delivers valid commands, publishes results", async () => {
    const t = await tempDir("aedes-cmd");
    cleanups.push(t.cleanup);
    const r = startLink(t.dir, broker.url, { agentId: "agent-cmd" });
    cleanups.push(() => r.stop());
    const got: Command[] = [];
    r.link.onCommand((c) => got.push(c));
    r.link.onCommand(() => {
      throw new Error("a failing handler must not take the link down");
    });
    await waitFor(() => r.link.connected, 5000, "link connected");
    await sleep(100);
    const raw = await rawClient();
    const p = { site: SITE, agent: "agent-cmd" };
    const results: CommandResult[] = [];
    raw.on("message", (_t, payload) => {
      const m = parseMessage(CommandResultSchema, payload);
      if (m.ok) results.push(m.value);
    });
    await raw.subscribeAsync(topicFor("cmdResult", p), { qos: 1 });
    r.outbox.appendReading(readingBody(1));
    r.outbox.appendReading(readingBody(2));

    await raw.publishAsync(topicFor("ack", p), "not json", { qos: 1 });
    await raw.publishAsync(
      topicFor("ack", p),
      JSON.stringify({ v: 1, agentId: "agent-cmd", seq: -1, ts: 1 }),
      { qos: 1 },
    );
    await raw.publishAsync(
      topicFor("ack", p),
      JSON.stringify({ v: 1, agentId: "someone-else", seq: 1, ts: 1 }),
      { qos: 1 },
    );
    await raw.publishAsync(topicFor("cmd", p), JSON.stringify({ v: 1, commandId: "short" }), { qos: 1 });
    const cmd = {
      v: 1,
      commandId: "cmd-000000001",
      agentId: "agent-cmd",
      issuedBy: "tester",
      issuedAt: 1_700_000_000_000,
      body: { type: "ping", target: "127.0.0.1" },
    };
    await raw.publishAsync(topicFor("cmd", p), JSON.stringify(cmd), { qos: 1 });
    await waitFor(() => got.length === 1, 5000, "valid command delivered");
    expect(got[0]).toMatchObject({
      commandId: "cmd-000000001",
      body: { type: "ping", target: "127.0.0.1", count: 3 },
    });
    expect(r.metrics.get("polyfleet_agent_invalid_messages_total", { topic: "ack" })).toBe(3);
    expect(r.metrics.get("polyfleet_agent_invalid_messages_total", { topic: "cmd" })).toBe(1);
    // Nothing was acked by the invalid messages.
    expect(r.outbox.depth()).toBe(2);
    // A valid ack still works after all that.
    await raw.publishAsync(
      topicFor("ack", p),
      JSON.stringify({ v: 1, agentId: "agent-cmd", seq: 2, ts: 1 }),
      { qos: 1 },
    );
    await waitFor(() => r.outbox.depth() === 0, 5000, "valid ack applied");

    await r.link.publishResult({
      v: 1,
      agentId: "agent-cmd",
      commandId: "cmd-000000001",
      status: "ok",
      ts: 1_700_000_000_100,
      durationMs: 12,
      data: { rttMs: 0.1 },
    });
    await waitFor(() => results.length === 1, 5000, "result received");
    expect(results[0]).toMatchObject({ commandId: "cmd-000000001", status: "ok", data: { rttMs: 0.1 } });
    expect(r.link.connected).toBe(true);
  });
});
