import { type MosquittoHandle, startMosquitto, waitFor } from "@polyfleet/scripts/testing";
import { Alert, topicFilter } from "@polyfleet/shared";
import { connectAsync, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MqttAlertNotifier } from "../../../src/adapters/notifiers/index.js";
import { CountingMetrics, makeAlert, makeNotification } from "./fixtures.js";

describe("MqttAlertNotifier against real Mosquitto", () => {
  let broker: MosquittoHandle;
  let pub: MqttClient;
  let sub: MqttClient;

  beforeAll(async () => {
    broker = await startMosquitto();
    pub = await connectAsync(broker.url, { clientId: `pf-notifier-pub-${process.pid}`, protocolVersion: 5 });
    sub = await connectAsync(broker.url, { clientId: `pf-notifier-sub-${process.pid}`, protocolVersion: 5 });
  });

  afterAll(async () => {
    await pub?.endAsync();
    await sub?.endAsync();
    await broker?.stop();
  });

  it("publishes each alert of a notification on its severity topic, QoS 1, not retained, schema-valid", async () => {
    const got: Array<{ topic: string; payload: unknown; qos: number; retain: boolean }> = [];
    sub.on("message", (topic, payload, packet) => {
      got.push({
        topic,
        payload: JSON.parse(payload.toString("utf8")),
        qos: packet.qos,
        retain: packet.retain,
      });
    });
    await sub.subscribeAsync(topicFilter("alerts"), { qos: 1 });

    const metrics = new CountingMetrics();
    const notifier = new MqttAlertNotifier({
      metrics,
      publish: async (topic, payload, opts) => {
        await pub.publishAsync(topic, payload, opts);
      },
    });
    const crit = makeAlert({ severity: "critical" });
    const warn = makeAlert({
      severity: "warning",
      state: "acknowledged",
      ack: { by: "op", at: 1, comment: "on it" },
    });
    await notifier.notify(makeNotification([crit, warn]), [crit, warn]);
    const resolved = makeAlert({ severity: "minor", state: "resolved", endsAt: 1_700_000_009_000 });
    expect(await notifier.publishAlert(resolved)).toBe(true);

    await waitFor(() => got.length >= 3, 5000, "3 alert messages");
    expect(got.map((g) => g.topic)).toEqual([
      "polyfleet/v1/alerts/critical",
      "polyfleet/v1/alerts/warning",
      "polyfleet/v1/alerts/minor",
    ]);
    for (const g of got) {
      expect(Alert.safeParse(g.payload).success).toBe(true);
      expect(g.qos).toBe(1);
      expect(g.retain).toBe(false);
    }
    expect(got.map((g) => g.payload)).toEqual([crit, warn, resolved]);
    expect(metrics.get("polyfleet_notifier_sent_total", { notifier: "mqtt" })).toBe(3);

    // Not retained: a late subscriber gets nothing.
    const late = await connectAsync(broker.url, { clientId: `pf-notifier-late-${process.pid}` });
    const lateGot: string[] = [];
    late.on("message", (t) => lateGot.push(t));
    await late.subscribeAsync(topicFilter("alerts"), { qos: 1 });
    await new Promise((r) => setTimeout(r, 300));
    await late.endAsync();
    expect(lateGot).toEqual([]);
  });
});
