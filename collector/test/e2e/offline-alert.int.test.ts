// Must show (issue 4): end to end with real Mosquitto, real InfluxDB and the simulator, a device taken
// offline raises an alert on the MQTT alert topic and the SSE stream within two poll intervals plus 5 s,
// resolves when it returns, and data appears in InfluxDB.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type InfluxdHandle,
  type MosquittoHandle,
  startInfluxd,
  startMosquitto,
} from "@polyfleet/scripts/testing";
import type { DeviceRecord } from "@polyfleet/shared";
import { afterAll, describe, expect, it } from "vitest";
import {
  AgentEventSpy,
  AgentProcess,
  AlertTopicSpy,
  assertBuilt,
  Cleanup,
  CollectorProcess,
  type Fleet,
  influxQuery,
  type SeenAlert,
  SseAlertClient,
  startFleet,
  waitForValue,
} from "./harness.js";

const DEVICES = 30;
const POLL_INTERVAL_SEC = 5;
const MISSES_BEFORE_UNREACHABLE = 2;
const POLL_TIMEOUT_MS = 2000;
/** The requirement: two poll intervals plus 5 s. */
const ALERT_BOUND_MS = 2 * POLL_INTERVAL_SEC * 1000 + 5000;
const INFLUX_DB = "polyfleet_e2e";

describe("collector e2e: a device taken offline (real Mosquitto, InfluxDB 1.x, simulator, agent)", () => {
  const cleanup = new Cleanup();
  afterAll(async () => {
    await cleanup.run();
  });

  it("raises device-unreachable on the MQTT alert topic and the SSE stream within 2 poll intervals + 5 s, resolves on return, writes InfluxDB", async () => {
    assertBuilt();
    const mosquitto: MosquittoHandle = await startMosquitto();
    cleanup.add("mosquitto", () => mosquitto.stop());
    const influx: InfluxdHandle = await startInfluxd();
    cleanup.add("influxd", () => influx.stop());
    const dir = await mkdtemp(join(tmpdir(), "polyfleet-e2e-collector-"));
    cleanup.add("collector dir", () => rm(dir, { recursive: true, force: true }));

    const collector = new CollectorProcess({
      dir,
      brokerUrl: mosquitto.url,
      influx: { url: influx.url, database: INFLUX_DB },
    });
    await collector.start();
    cleanup.add("collector", () => collector.stop());

    const mqttAlerts = new AlertTopicSpy(mosquitto.url);
    await mqttAlerts.start();
    cleanup.add("mqtt alert spy", () => mqttAlerts.stop());
    const sse = new SseAlertClient(collector.apiUrl, collector.token);
    await sse.start();
    cleanup.add("sse client", () => sse.stop());

    // Polling: every 5 s without jitter; a poll the device does not answer fails after 2 s; the agent reports
    // the device unreachable at the 2nd consecutive miss.
    const fleet: Fleet = await startFleet({
      devices: DEVICES,
      brokerUrl: mosquitto.url,
      pollIntervalSec: POLL_INTERVAL_SEC,
      polling: {
        missesBeforeUnreachable: MISSES_BEFORE_UNREACHABLE,
        timeoutMs: POLL_TIMEOUT_MS,
        jitterPct: 0,
      },
    });
    cleanup.add("simulator", () => fleet.stop());
    const events = new AgentEventSpy(mosquitto.url, fleet.siteId, fleet.agentId);
    await events.start();
    cleanup.add("event spy", () => events.stop());
    const agent = new AgentProcess(fleet.configFile, fleet.httpPort);
    await agent.start();
    cleanup.add("agent", () => agent.stop());

    // The collector's inventory lists the whole fleet, every device reachable.
    const listDevices = async (): Promise<DeviceRecord[]> =>
      (await collector.get<{ items: DeviceRecord[]; total: number }>("/api/v1/devices?limit=1000")).items;
    const fleetAddresses = new Set(fleet.manifest.devices.map((d) => d.address));
    const devices = await waitForValue(
      async () => {
        const list = await listDevices();
        const mine = list.filter((d) => fleetAddresses.has(d.address) && d.reachable);
        return mine.length === DEVICES ? list : undefined;
      },
      90_000,
      `the collector listing all ${DEVICES} simulated devices as reachable`,
      1000,
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}\nagent:\n${agent.output()}\ncollector:\n${collector.output()}`);
    });
    expect(devices).toHaveLength(DEVICES);
    for (const d of devices) {
      expect(d.siteId).toBe(fleet.siteId);
      expect(d.agentId).toBe(fleet.agentId);
      const sim = fleet.manifest.devices.find((m) => m.address === d.address);
      expect(sim, `simulated device at ${d.address}`).toBeDefined();
      expect(d.model).toBe(sim?.model);
      expect(d.family).toBe(sim?.family);
    }
    const agents = await collector.get<{ agentId: string; status: string }[]>("/api/v1/agents");
    expect(agents.find((a) => a.agentId === fleet.agentId)?.status).toBe("online");

    // Take one phone offline: it accepts connections and never answers.
    const target = devices.find((d) => d.family === "uc") ?? devices[0];
    if (!target) throw new Error("no device");
    const deviceId = target.deviceId;
    const isOurs = (s: SeenAlert): boolean =>
      s.alert.deviceId === deviceId && s.alert.rule === "device-unreachable";
    expect(mqttAlerts.alerts.filter(isOurs)).toEqual([]);

    // How the bound is measured: t0 is taken just before the simulator's control API makes the device stop
    // answering, which is when it became unreachable for any poller (the agent included); the alert's
    // arrival is when this process received it on the MQTT alert topic / the SSE stream. The agent needs
    // 2 misses: worst case the next poll starts 5 s after t0 and the one after 10 s after t0, failing 2 s
    // later, so ~12 s is expected against the 15 s requirement.
    const t0 = Date.now();
    await fleet.control("POST", `/devices/${encodeURIComponent(target.address)}/faults`, {
      add: ["noAnswer"],
    });
    const firingOf = (list: SeenAlert[]): SeenAlert | undefined =>
      list.find((s) => isOurs(s) && s.alert.state === "firing");
    const mqttFiring = await waitForValue(
      () => firingOf(mqttAlerts.alerts),
      60_000,
      `device-unreachable firing for ${deviceId} on the MQTT alert topic`,
      50,
    );
    const sseFiring = await waitForValue(
      () => firingOf(sse.alerts),
      10_000,
      `device-unreachable firing for ${deviceId} on the SSE stream`,
      50,
    );
    const agentDown = events.reachability(deviceId).find((e) => !e.reachable && e.at >= t0);
    const mqttLatency = mqttFiring.at - t0;
    const sseLatency = sseFiring.at - t0;
    console.log(
      `[e2e offline] device ${deviceId} (${target.model}) offline at t0; alert on MQTT after ${mqttLatency} ms, on SSE after ${sseLatency} ms (bound ${ALERT_BOUND_MS} ms); agent's device.reachability false at t0+${agentDown ? agentDown.ts - t0 : "?"} ms, collector's alert ${agentDown ? mqttFiring.at - agentDown.at : "?"} ms after that event reached the broker`,
    );
    expect(mqttLatency).toBeLessThanOrEqual(ALERT_BOUND_MS);
    expect(sseLatency).toBeLessThanOrEqual(ALERT_BOUND_MS);
    expect(agentDown, "the agent's device.reachability false event").toBeDefined();

    // The alert's content, identical on both channels.
    const a = mqttFiring.alert;
    expect(mqttFiring.topic).toBe("polyfleet/v1/alerts/major");
    expect(a).toMatchObject({
      rule: "device-unreachable",
      severity: "major",
      state: "firing",
      siteId: fleet.siteId,
      agentId: fleet.agentId,
      deviceId,
      flapping: false,
      silenced: false,
    });
    expect(a.labels.address).toBe(target.address);
    expect(sseFiring.alert.id).toBe(a.id);
    expect(sseFiring.alert.fingerprint).toBe(a.fingerprint);
    // One alert for the condition, and the REST API agrees.
    const active = await collector.get<{ id: string; rule: string }[]>(
      `/api/v1/alerts?state=active&deviceId=${encodeURIComponent(deviceId)}`,
    );
    expect(active.filter((x) => x.rule === "device-unreachable").map((x) => x.id)).toEqual([a.id]);

    // The device returns: the alert resolves on both channels. No latency bound is required here (the agent
    // backs off polling a failing device), the measured figure is printed.
    const t1 = Date.now();
    await fleet.control("POST", `/devices/${encodeURIComponent(target.address)}/faults`, {
      remove: ["noAnswer"],
    });
    const resolvedOf = (list: SeenAlert[]): SeenAlert | undefined =>
      list.find((s) => s.alert.id === a.id && s.alert.state === "resolved");
    const mqttResolved = await waitForValue(
      () => resolvedOf(mqttAlerts.alerts),
      120_000,
      `the alert ${a.id} resolved on the MQTT alert topic`,
      50,
    );
    const sseResolved = await waitForValue(
      () => resolvedOf(sse.alerts),
      10_000,
      `the alert ${a.id} resolved on the SSE stream`,
      50,
    );
    console.log(
      `[e2e offline] device back at t1; resolved on MQTT after ${mqttResolved.at - t1} ms, on SSE after ${sseResolved.at - t1} ms`,
    );
    expect(mqttResolved.alert.endsAt).toBeGreaterThanOrEqual(a.startsAt);
    expect(mqttResolved.topic).toBe("polyfleet/v1/alerts/major");
    // Exactly one alert for the whole outage (deduplicated by fingerprint), on both channels.
    expect(new Set(mqttAlerts.alerts.filter(isOurs).map((s) => s.alert.id))).toEqual(new Set([a.id]));
    expect(new Set(sse.alerts.filter(isOurs).map((s) => s.alert.id))).toEqual(new Set([a.id]));
    const after = await collector.get<{ id: string; state: string }[]>(
      `/api/v1/alerts?deviceId=${encodeURIComponent(deviceId)}`,
    );
    expect(after.find((x) => x.id === a.id)?.state).toBe("resolved");
    const detail = await collector.get<{ history: { state: string }[] }>(`/api/v1/alerts/${a.id}`);
    expect(detail.history.map((h) => h.state)).toEqual(["firing", "resolved"]);

    // Every payload on the MQTT alert topic and the SSE stream passed the shared Alert schema.
    expect(mqttAlerts.invalid).toEqual([]);
    expect(sse.invalid).toEqual([]);

    // Data in InfluxDB: points of the `device` measurement, from every device of the fleet.
    const counted = await waitForValue(
      async () => {
        const series = await influxQuery(influx.url, INFLUX_DB, "SELECT count(*) FROM device");
        const row = series[0]?.values[0];
        if (!row) return undefined;
        const counts = row.slice(1).filter((v): v is number => typeof v === "number");
        return Math.max(0, ...counts) >= DEVICES ? series[0] : undefined;
      },
      30_000,
      "points of the device measurement in InfluxDB",
      500,
    );
    const columns = counted?.columns ?? [];
    const values = counted?.values[0] ?? [];
    const perField = Object.fromEntries(columns.slice(1).map((c, i) => [c, values[i + 1]]));
    console.log(`[e2e offline] InfluxDB SELECT count(*) FROM device: ${JSON.stringify(perField)}`);
    const tagValues = await influxQuery(
      influx.url,
      INFLUX_DB,
      'SHOW TAG VALUES FROM device WITH KEY = "device"',
    );
    const inInflux = new Set((tagValues[0]?.values ?? []).map((v) => String(v[1])));
    expect(inInflux).toEqual(new Set(devices.map((d) => d.deviceId)));
    const health = await collector.get<{ checks: Record<string, { ok: boolean; detail?: string }> }>(
      "/healthz",
    );
    expect(health.checks.metrics?.ok).toBe(true);

    // Clean stops: agent and collector exit 0 on SIGTERM. The SSE client leaves first: with a client still
    // connected the collector does not stop (see shutdown.int.test.ts).
    sse.stop();
    expect(await agent.stop(), agent.output()).toEqual({ code: 0, signal: null });
    expect(await collector.stop(), collector.output()).toEqual({ code: 0, signal: null });
  }, 300_000);
});
