// Must show (issue 4): a flapping device yields at most one notification per damping window (counted from
// its first notification), and its alert shows flapping: true. Real Mosquitto, the simulator's `flapping` fault, the built agent and collector, and a
// webhook notifier pointed at a receiver in this test.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type MosquittoHandle, startMosquitto } from "@polyfleet/scripts/testing";
import type { Alert, DeviceRecord } from "@polyfleet/shared";
import { afterAll, describe, expect, it } from "vitest";
import {
  AgentEventSpy,
  AgentProcess,
  assertBuilt,
  Cleanup,
  CollectorProcess,
  type Fleet,
  promSum,
  SseAlertClient,
  sleep,
  startFleet,
  WebhookSink,
  waitForValue,
} from "./harness.js";

const DEVICES = 10;
const POLL_INTERVAL_SEC = 5;
/** Away 10 s, up 10 s: the agent (5 s polls, unreachable at the 1st miss) sees every change. */
const FLAP_PERIOD_MS = 20_000;
const FLAP_WINDOW_SEC = 60;
const FLAP_THRESHOLD = 4;
/** Long enough for two full damping windows after the first notification (about 30 s in), with margin. */
const OBSERVE_MS = 165_000;
/** The engine ticks once a second: a deferred notification may go out up to ~1 s past its window. */
const TICK_SLACK_MS = 1500;

describe("collector e2e: flap damping (real Mosquitto, simulator, agent, webhook)", () => {
  const cleanup = new Cleanup();
  afterAll(async () => {
    await cleanup.run();
  });

  it("notifies a flapping device at most once per damping window and shows its alert as flapping", async () => {
    assertBuilt();
    const mosquitto: MosquittoHandle = await startMosquitto();
    cleanup.add("mosquitto", () => mosquitto.stop());
    const dir = await mkdtemp(join(tmpdir(), "polyfleet-e2e-collector-"));
    cleanup.add("collector dir", () => rm(dir, { recursive: true, force: true }));
    const webhook = new WebhookSink();
    await webhook.start();
    cleanup.add("webhook receiver", () => webhook.stop());

    // Grouping is short (5 s wait, 5 s interval), so without damping every fire/resolve of the device would be
    // notified within seconds; the damping window is what limits the notifications.
    const collector = new CollectorProcess({
      dir,
      brokerUrl: mosquitto.url,
      rules: {
        grouping: { by: ["siteId", "rule"], waitSec: 5, intervalSec: 5 },
        flap: { windowSec: FLAP_WINDOW_SEC, threshold: FLAP_THRESHOLD },
      },
      webhooks: [{ name: "e2e-hook", url: webhook.url, maxRetries: 0 }],
    });
    await collector.start();
    cleanup.add("collector", () => collector.stop());
    const sse = new SseAlertClient(collector.apiUrl, collector.token);
    await sse.start();
    cleanup.add("sse client", () => sse.stop());

    const fleet: Fleet = await startFleet({
      devices: DEVICES,
      brokerUrl: mosquitto.url,
      pollIntervalSec: POLL_INTERVAL_SEC,
      polling: { missesBeforeUnreachable: 1, timeoutMs: 2000, jitterPct: 0 },
      simArgs: ["--flap-period-ms", String(FLAP_PERIOD_MS)],
    });
    cleanup.add("simulator", () => fleet.stop());
    const events = new AgentEventSpy(mosquitto.url, fleet.siteId, fleet.agentId);
    await events.start();
    cleanup.add("event spy", () => events.stop());
    const agent = new AgentProcess(fleet.configFile, fleet.httpPort);
    await agent.start();
    cleanup.add("agent", () => agent.stop());

    const devices = await waitForValue(
      async () => {
        const list = (await collector.get<{ items: DeviceRecord[] }>("/api/v1/devices?limit=1000")).items;
        return list.filter((d) => d.reachable).length === DEVICES ? list : undefined;
      },
      90_000,
      `the collector listing all ${DEVICES} devices as reachable`,
      1000,
    );
    const target = devices.find((d) => d.family === "uc") ?? devices[0];
    if (!target) throw new Error("no device");
    const deviceId = target.deviceId;

    const tf = Date.now();
    await fleet.control("POST", `/devices/${encodeURIComponent(target.address)}/faults`, {
      add: ["flapping"],
    });
    await sleep(OBSERVE_MS);
    const tEnd = Date.now();

    // The device really flapped: the agent reported many reachability changes.
    const changes = events.reachability(deviceId).filter((e) => e.at >= tf);
    const ofDevice = <T extends { alert: Alert }>(list: T[]): T[] =>
      list.filter((s) => s.alert.deviceId === deviceId);
    const sseOfDevice = ofDevice(sse.alerts).filter((s) => s.alert.rule === "device-unreachable");
    const deliveries = webhook.forDevice(deviceId);
    const rel = (t: number): string => `${((t - tf) / 1000).toFixed(1)}s`;
    console.log(
      `[e2e flapping] device ${deviceId} flapping (${FLAP_PERIOD_MS} ms period) observed ${rel(tEnd)}: ` +
        `${changes.length} reachability changes from the agent (${changes.map((c) => `${c.reachable ? "up" : "down"}@${rel(c.at)}`).join(" ")}); ` +
        `${sseOfDevice.length} alert transitions on SSE; ${deliveries.length} webhook notifications: ` +
        deliveries
          .map(
            (d) =>
              `${d.notification.reason}@${rel(d.at)}[${d.alerts.map((a) => `${a.id.slice(0, 8)}:${a.state}${a.flapping ? ",flapping" : ""}`).join(" ")}]`,
          )
          .join(" "),
    );
    expect(changes.length).toBeGreaterThanOrEqual(2 * FLAP_THRESHOLD);
    expect(webhook.invalid).toEqual([]);
    expect(sse.invalid).toEqual([]);

    // Flapping was detected: an alert transition with flapping: true on the stream.
    const onset = sseOfDevice.find((s) => s.alert.flapping);
    expect(onset, "an alert of the device marked flapping on the SSE stream").toBeDefined();
    const onsetAt = onset?.at ?? tEnd;

    // At most one notification per damping window, counted from the device's FIRST notification: any two
    // notifications of the device are at least a window apart, by the engine's timestamps (exact: a held
    // notification goes out at the first tick at or after its window's end) and, with slack, as received.
    const windowMs = FLAP_WINDOW_SEC * 1000;
    const first = deliveries[0];
    expect(first, "the device's first change was notified").toBeDefined();
    const firstAt = first?.notification.ts ?? tEnd;
    for (let i = 1; i < deliveries.length; i++) {
      const d = deliveries[i];
      const prev = deliveries[i - 1];
      if (!d || !prev) continue;
      expect(
        d.notification.ts - prev.notification.ts,
        `notification ${i} (${d.notification.reason}) after the previous (engine time)`,
      ).toBeGreaterThanOrEqual(windowMs);
      expect(d.at - prev.at, `notification ${i} after the previous (received)`).toBeGreaterThanOrEqual(
        windowMs - TICK_SLACK_MS,
      );
    }
    // Per damping window (fixed windows from the first notification), at most one notification.
    const windowsObserved = Math.floor((tEnd - firstAt) / windowMs);
    expect(windowsObserved).toBeGreaterThanOrEqual(2);
    const perWindow = new Map<number, number>();
    for (const d of deliveries) {
      const w = Math.floor((d.notification.ts - firstAt) / windowMs);
      perWindow.set(w, (perWindow.get(w) ?? 0) + 1);
    }
    for (const n of perWindow.values()) expect(n).toBeLessThanOrEqual(1);
    expect(deliveries.length).toBeLessThanOrEqual(windowsObserved + 1);
    // The first notification is the genuine outage (`firing`, sent without waiting for a window); the device
    // reached the flap threshold within that first window, so the next one, which covers everything that
    // happened in between, says `flapping`, and so does every later one while it flaps.
    expect(first?.notification.reason).toBe("firing");
    const later = deliveries.slice(1);
    expect(later.length, "the flapping device is still notified (damped, not muted)").toBeGreaterThanOrEqual(
      1,
    );
    expect(later.map((d) => d.notification.reason).filter((r) => r !== "flapping")).toEqual([]);
    for (const d of later) {
      const mine = d.alerts.filter((x) => x.deviceId === deviceId);
      // It may also carry the resolution of an alert from before the onset; the open one shows flapping.
      expect(mine.some((a) => a.flapping)).toBe(true);
      for (const a of mine.filter((x) => x.state !== "resolved")) expect(a.flapping).toBe(true);
    }
    // The flapping onset came after the first notification and within its window (flap period 20 s,
    // threshold 4 changes, window 60 s), so the damping is what limited the first window to one notification.
    expect(onsetAt - firstAt).toBeLessThan(windowMs + TICK_SLACK_MS);
    // The device kept flapping all along: far more changes than notifications.
    const changesAfterFirst = changes.filter((c) => c.at >= firstAt).length;
    expect(changesAfterFirst).toBeGreaterThanOrEqual(2 * FLAP_THRESHOLD);
    expect(changesAfterFirst).toBeGreaterThan(2 * deliveries.length);
    console.log(
      `[e2e flapping] first notification at ${rel(firstAt)}, onset at ${rel(onsetAt)}; notifications per ${FLAP_WINDOW_SEC} s window from the first: ${JSON.stringify(Object.fromEntries(perWindow))} over ${windowsObserved} full windows, against ${changes.length} reachability changes`,
    );

    // The REST API shows the one open alert of the device as flapping.
    const active = await collector.get<Alert[]>(
      `/api/v1/alerts?state=active&deviceId=${encodeURIComponent(deviceId)}`,
    );
    const open = active.filter((a) => a.rule === "device-unreachable");
    expect(open).toHaveLength(1);
    expect(open[0]?.flapping).toBe(true);

    // The collector's own counter agrees: flapping notifications were sent (all groups; only this device flaps).
    const metrics = await collector.metrics();
    expect(promSum(metrics, "polyfleet_collector_notifications_total", { reason: "flapping" })).toBe(
      deliveries.filter((d) => d.notification.reason === "flapping").length,
    );

    sse.stop();
    expect(await agent.stop(), agent.output()).toEqual({ code: 0, signal: null });
    expect(await collector.stop(), collector.output()).toEqual({ code: 0, signal: null });
  }, 360_000);
});
