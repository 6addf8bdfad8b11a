import { type MosquittoHandle, startMosquitto, TestCollector, waitFor } from "@polyfleet/scripts/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { readingBody, tempDir } from "../outbox/outbox-helpers.js";
import { AGENT, type LinkRig, SITE, sleep, startLink, startProxy, watchState } from "./link-helpers.js";

let broker: MosquittoHandle;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker?.stop();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function rig(url: string, over: Parameters<typeof startLink>[2] = {}): Promise<LinkRig> {
  const t = await tempDir("link");
  cleanups.push(t.cleanup);
  const r = startLink(t.dir, url, over);
  cleanups.push(() => r.stop());
  return r;
}

async function collector(url: string, agentId = AGENT): Promise<TestCollector> {
  const c = new TestCollector({ url, siteId: SITE, agentId });
  await c.start();
  cleanups.push(() => c.stop());
  return c;
}

describe("MqttAgentLink against real Mosquitto", () => {
  it("publishes 5,000 readings through a broker kill and restart: every seq, in order, outbox drained", async () => {
    const col = await collector(broker.url);
    const r = await rig(broker.url);
    await waitFor(() => r.link.connected, 5000, "link connected");
    expect(r.link.protocolVersion).toBe(5);

    const total = 5000;
    let appended = 0;
    const produce = async (upTo: number) => {
      while (appended < upTo) {
        // 50 readings every 10 ms (~5,000/s at most), the way a scheduler's polls trickle in.
        for (let i = 0; i < 50 && appended < upTo; i++) r.outbox.appendReading(readingBody(appended++));
        await sleep(10);
      }
    };
    await produce(1500);
    await broker.kill("SIGKILL");
    // Keep producing while the broker is down: entries pile up in the outbox.
    const down = Date.now();
    await produce(3000);
    await sleep(Math.max(0, 3000 - (Date.now() - down)));
    expect(r.link.connected).toBe(false);
    const depthWhileDown = r.outbox.depth();
    expect(depthWhileDown).toBeGreaterThan(0);
    await broker.restart();
    await produce(total);

    await col.waitForSeq(total, 30_000);
    await waitFor(() => r.outbox.depth() === 0, 10_000, "acks drain the outbox");
    expect(col.seqs()).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(col.gaps()).toEqual([]);
    expect(col.invalid).toBe(0);
    expect(r.outbox.ackedSeq()).toBe(total);
    expect(r.metrics.get("polyfleet_agent_acked_seq")).toBe(total);
    expect(r.metrics.get("polyfleet_agent_mqtt_reconnects_total")).toBeGreaterThanOrEqual(1);
    expect(r.metrics.get("polyfleet_agent_published_total", { kind: "reading" })).toBeGreaterThanOrEqual(
      total,
    );
    console.log(
      `[mosquitto outage] depth while down ${depthWhileDown}, messages ${col.messages}, duplicates received ${col.duplicates}, late arrivals ${col.lateArrivals}, acks ${col.acksSent}, replays ${r.metrics.get("polyfleet_agent_outbox_replays_total", { reason: "ack-timeout" })}`,
    );
  });

  it("retained birth, Will on an abrupt socket drop, birth again on reconnect, shutdown on clean stop", async () => {
    const proxy = await startProxy(broker.port);
    cleanups.push(() => proxy.stop());
    const t = await tempDir("link-will");
    cleanups.push(t.cleanup);
    const r = startLink(t.dir, proxy.url, { agentId: "agent-will" });
    let stopped = false;
    cleanups.push(async () => {
      if (!stopped) await r.stop();
    });
    await waitFor(() => r.link.connected, 5000, "link connected");
    // A subscriber that arrives later gets the retained birth.
    await sleep(200);
    const w1 = await watchState(broker.url, "agent-will");
    cleanups.push(w1.stop);
    await waitFor(() => w1.states.length >= 1, 5000, "retained birth");
    expect(w1.retained[0]).toBe(true);
    expect(w1.states[0]).toMatchObject({
      status: "online",
      agentId: "agent-will",
      siteId: SITE,
      sessionId: r.link.session,
      version: "1.2.3-test",
      capabilities: ["poll", "commands"],
      protocolVersion: 5,
      hostname: "test-host",
    });

    proxy.cut();
    await waitFor(() => w1.states.some((s) => s.status === "offline"), 5000, "Will after the socket drop");
    const will = w1.states.find((s) => s.status === "offline");
    expect(will).toMatchObject({ status: "offline", reason: "will", sessionId: r.link.session });
    // The Will is retained: a subscriber arriving now sees it (before the link is back, or the new birth).
    await waitFor(() => r.link.connected, 10_000, "link reconnected");
    await waitFor(
      () => w1.states.filter((s) => s.status === "online").length >= 2,
      5000,
      "birth again after the reconnect",
    );
    const w2 = await watchState(broker.url, "agent-will");
    cleanups.push(w2.stop);
    await waitFor(() => w2.states.length >= 1, 5000, "retained state");
    expect(w2.states[0]).toMatchObject({ status: "online", sessionId: r.link.session });

    stopped = true;
    await r.stop();
    await waitFor(
      () => w1.states.some((s) => s.status === "offline" && s.reason === "shutdown"),
      5000,
      "shutdown",
    );
    await sleep(300);
    // A clean stop sends DISCONNECT: no Will after the shutdown message.
    const last = w1.states[w1.states.length - 1];
    expect(last).toMatchObject({ status: "offline", reason: "shutdown", sessionId: r.link.session });
  });
});
