import { describe, expect, it } from "vitest";
import { MqttAlertNotifier } from "../../../src/adapters/notifiers/index.js";
import { CountingMetrics, makeAlert, makeNotification } from "./fixtures.js";

describe("MqttAlertNotifier (fake publish)", () => {
  it("retries a failing publish, then succeeds", async () => {
    const metrics = new CountingMetrics();
    const calls: string[] = [];
    let failures = 2;
    const n = new MqttAlertNotifier({
      metrics,
      baseDelayMs: 1,
      publish: (topic) => {
        calls.push(topic);
        if (failures-- > 0) return Promise.reject(new Error("client disconnected"));
        return Promise.resolve();
      },
    });
    const a = makeAlert({ severity: "major" });
    await expect(n.publishAlert(a)).resolves.toBe(true);
    expect(calls).toEqual(Array(3).fill("polyfleet/v1/alerts/major"));
    expect(metrics.get("polyfleet_notifier_retries_total")).toBe(2);
    expect(metrics.get("polyfleet_notifier_sent_total")).toBe(1);
  });

  it("gives up after maxRetries without throwing, and counts it", async () => {
    const metrics = new CountingMetrics();
    let calls = 0;
    const n = new MqttAlertNotifier({
      metrics,
      maxRetries: 2,
      baseDelayMs: 1,
      publish: () => {
        calls += 1;
        return Promise.reject(new Error("nope"));
      },
    });
    const a = makeAlert();
    await expect(n.notify(makeNotification([a]), [a])).resolves.toBeUndefined();
    expect(calls).toBe(3);
    expect(metrics.get("polyfleet_notifier_failed_total", { reason: "publish" })).toBe(1);
  });

  it("refuses an alert that does not match the schema", async () => {
    const metrics = new CountingMetrics();
    const published: string[] = [];
    const n = new MqttAlertNotifier({
      metrics,
      publish: (t) => {
        published.push(t);
        return Promise.resolve();
      },
    });
    const bad = { ...makeAlert(), severity: "apocalyptic" } as unknown as Parameters<
      typeof n.publishAlert
    >[0];
    await expect(n.publishAlert(bad)).resolves.toBe(false);
    expect(published).toEqual([]);
    expect(metrics.get("polyfleet_notifier_invalid_total")).toBe(1);
  });
});
