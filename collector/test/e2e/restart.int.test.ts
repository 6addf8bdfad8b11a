// The collector killed (SIGKILL) and restarted on the same SQLite state: the agent's backlog is acked with
// nothing stored twice, active alerts come back without a second notification, and the audit log verifies.
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type MosquittoHandle, startMosquitto } from "@polyfleet/scripts/testing";
import type { AgentRecord, Alert, DeviceRecord } from "@polyfleet/shared";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import {
  AgentEventSpy,
  AgentProcess,
  AlertTopicSpy,
  assertBuilt,
  Cleanup,
  CollectorProcess,
  type Fleet,
  POLYFLEET_CLI,
  promSum,
  type SeenAlert,
  sleep,
  startFleet,
  WebhookSink,
  waitForValue,
} from "./harness.js";

const DEVICES = 10;
const POLL_INTERVAL_SEC = 5;

/** Stored events per (agent, seq) that occur more than once: none when dedup works. */
function duplicateEvents(stateDb: string): { agent_id: string; seq: number; n: number }[] {
  const db = new Database(stateDb, { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare("SELECT agent_id, seq, COUNT(*) AS n FROM events GROUP BY agent_id, seq HAVING n > 1")
      .all() as { agent_id: string; seq: number; n: number }[];
  } finally {
    db.close();
  }
}

/** Stored `device.reachability` events of one device: seq and reachable. */
function storedReachability(stateDb: string, deviceId: string): { seq: number; reachable: boolean }[] {
  const db = new Database(stateDb, { readonly: true, fileMustExist: true });
  try {
    const rows = db
      .prepare(
        "SELECT seq, body FROM events WHERE type = 'device.reachability' AND device_id = ? ORDER BY seq",
      )
      .all(deviceId) as { seq: number; body: string }[];
    return rows.map((r) => ({
      seq: r.seq,
      reachable: (JSON.parse(r.body) as { reachable: boolean }).reachable,
    }));
  } finally {
    db.close();
  }
}

describe("collector e2e: SIGKILL and restart on the same state (real Mosquitto, simulator, agent)", () => {
  const cleanup = new Cleanup();
  afterAll(async () => {
    await cleanup.run();
  });

  it("acks the agent's backlog once, stores nothing twice, restores active alerts without re-notifying, audit verifies", async () => {
    assertBuilt();
    const mosquitto: MosquittoHandle = await startMosquitto();
    cleanup.add("mosquitto", () => mosquitto.stop());
    const dir = await mkdtemp(join(tmpdir(), "polyfleet-e2e-collector-"));
    cleanup.add("collector dir", () => rm(dir, { recursive: true, force: true }));
    const webhook = new WebhookSink();
    await webhook.start();
    cleanup.add("webhook receiver", () => webhook.stop());
    const collector = new CollectorProcess({
      dir,
      brokerUrl: mosquitto.url,
      rules: { grouping: { by: ["siteId", "rule", "deviceId"], waitSec: 1, intervalSec: 5 } },
      webhooks: [{ name: "e2e-hook", url: webhook.url, maxRetries: 0 }],
      // A signed checkpoint every 2 entries, so verify checks signatures across the crash too.
      auditCheckpointEvery: 2,
    });
    await collector.start();
    cleanup.add("collector", () => collector.stop());
    const mqttAlerts = new AlertTopicSpy(mosquitto.url);
    await mqttAlerts.start();
    cleanup.add("mqtt alert spy", () => mqttAlerts.stop());

    const fleet: Fleet = await startFleet({
      devices: DEVICES,
      brokerUrl: mosquitto.url,
      pollIntervalSec: POLL_INTERVAL_SEC,
      polling: { missesBeforeUnreachable: 1, timeoutMs: 2000, jitterPct: 0 },
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
    const [devA, devB] = devices;
    if (!devA || !devB) throw new Error("fleet too small");
    const fault = (address: string, change: { add?: string[]; remove?: string[] }) =>
      fleet.control("POST", `/devices/${encodeURIComponent(address)}/faults`, change);
    const unreachableAlerts = (deviceId: string, list: SeenAlert[]) =>
      list.filter((s) => s.alert.deviceId === deviceId && s.alert.rule === "device-unreachable");

    // Device A goes away before the crash: its alert fires and is notified once.
    await fault(devA.address, { add: ["noAnswer"] });
    const firingA = await waitForValue(
      () => unreachableAlerts(devA.deviceId, mqttAlerts.alerts).find((s) => s.alert.state === "firing"),
      60_000,
      "device A's unreachable alert",
    );
    const alertA = firingA.alert;
    await waitForValue(
      () =>
        webhook.deliveries.find(
          (d) => d.notification.reason === "firing" && d.notification.alertIds.includes(alertA.id),
        ),
      30_000,
      "the firing notification of device A's alert",
    );
    // Let the agent's outbox drain, then crash the collector.
    await waitForValue(
      async () => {
        const h = await agent.health();
        return h.ackedSeq === h.lastSeq && h.lastSeq > 0 ? h : undefined;
      },
      60_000,
      "the agent's outbox acked up to its last seq",
      250,
    );
    const deliveriesBeforeKill = webhook.deliveries.length;
    await collector.kill();
    const killedAt = Date.now();

    // While the collector is away, device B goes away too: its event waits in the agent's backlog.
    await fault(devB.address, { add: ["noAnswer"] });
    const eventB = await waitForValue(
      () => events.reachability(devB.deviceId).find((e) => !e.reachable && e.at > killedAt),
      60_000,
      "the agent's device.reachability false event for device B (published while the collector is down)",
    );
    await sleep(5000);
    const backlog = await agent.health();
    console.log(
      `[e2e restart] collector SIGKILLed; agent backlog: lastSeq ${backlog.lastSeq}, ackedSeq ${backlog.ackedSeq}, depth ${backlog.outboxDepth}; device B's event seq ${eventB.seq}`,
    );
    expect(backlog.lastSeq).toBeGreaterThan(backlog.ackedSeq);
    expect(eventB.seq).toBeGreaterThan(backlog.ackedSeq);

    // Restart on the same state.
    const restartAt = Date.now();
    await collector.start();
    const caughtUp = await waitForValue(
      async () => {
        const h = await agent.health();
        return h.ackedSeq >= backlog.lastSeq ? h : undefined;
      },
      150_000,
      `the agent's backlog (up to seq ${backlog.lastSeq}) acked by the restarted collector`,
      250,
    );
    console.log(
      `[e2e restart] backlog acked ${((Date.now() - restartAt) / 1000).toFixed(1)} s after the restart (agent ackedSeq ${caughtUp.ackedSeq})`,
    );
    const agentRecord = (await collector.get<AgentRecord[]>("/api/v1/agents")).find(
      (a) => a.agentId === fleet.agentId,
    );
    expect(agentRecord?.ackedSeq).toBeGreaterThanOrEqual(backlog.lastSeq);
    expect(agentRecord?.status).toBe("online");

    // Device B's alert fires once, from the backlog.
    const firingB = await waitForValue(
      () => unreachableAlerts(devB.deviceId, mqttAlerts.alerts).find((s) => s.alert.state === "firing"),
      30_000,
      "device B's unreachable alert after the restart",
    );
    await waitForValue(
      () =>
        webhook.deliveries.find(
          (d) => d.notification.reason === "firing" && d.notification.alertIds.includes(firingB.alert.id),
        ),
      30_000,
      "the firing notification of device B's alert",
    );
    // Let a few group intervals pass to catch a late duplicate.
    await sleep(12_000);

    // Nothing stored twice: no (agent, seq) twice among the stored events; B's event stored once.
    expect(duplicateEvents(collector.stateDb)).toEqual([]);
    const storedB = storedReachability(collector.stateDb, devB.deviceId).filter((e) => !e.reachable);
    expect(storedB.map((e) => e.seq)).toEqual([eventB.seq]);
    const list = await collector.get<{ items: DeviceRecord[]; total: number }>("/api/v1/devices?limit=1000");
    expect(list.total).toBe(DEVICES);
    expect(new Set(list.items.map((d) => d.deviceId)).size).toBe(DEVICES);

    // Active alerts restored: A's alert keeps its id, one per device, and was not notified again.
    const activeA = (
      await collector.get<Alert[]>(
        `/api/v1/alerts?state=active&deviceId=${encodeURIComponent(devA.deviceId)}`,
      )
    ).filter((a) => a.rule === "device-unreachable");
    expect(activeA.map((a) => a.id)).toEqual([alertA.id]);
    const activeB = (
      await collector.get<Alert[]>(
        `/api/v1/alerts?state=active&deviceId=${encodeURIComponent(devB.deviceId)}`,
      )
    ).filter((a) => a.rule === "device-unreachable");
    expect(activeB.map((a) => a.id)).toEqual([firingB.alert.id]);
    const afterRestart = webhook.deliveries.slice(deliveriesBeforeKill);
    expect(afterRestart.filter((d) => d.alerts.some((a) => a.deviceId === devA.deviceId))).toEqual([]);
    expect(
      afterRestart
        .filter((d) => d.notification.alertIds.includes(firingB.alert.id))
        .map((d) => d.notification.reason),
    ).toEqual(["firing"]);
    expect(new Set(unreachableAlerts(devA.deviceId, mqttAlerts.alerts).map((s) => s.alert.id))).toEqual(
      new Set([alertA.id]),
    );
    expect(
      unreachableAlerts(devA.deviceId, mqttAlerts.alerts).filter(
        (s) => s.at > restartAt && s.alert.state === "firing",
      ),
    ).toEqual([]);
    const metrics = await collector.metrics();
    console.log(
      `[e2e restart] after restart: ${afterRestart.length} webhook notification(s) (${afterRestart.map((d) => d.notification.reason).join(", ")}); collector notifications_total ${promSum(metrics, "polyfleet_collector_notifications_total")}`,
    );

    // The restored alert still follows its lifecycle: A returns and its alert (same id) resolves, notified.
    await fault(devA.address, { remove: ["noAnswer"] });
    await fault(devB.address, { remove: ["noAnswer"] });
    await waitForValue(
      () => unreachableAlerts(devA.deviceId, mqttAlerts.alerts).find((s) => s.alert.state === "resolved"),
      120_000,
      "device A's alert resolved",
    ).then((s) => expect(s.alert.id).toBe(alertA.id));
    await waitForValue(
      () =>
        webhook.deliveries.find(
          (d) => d.notification.reason === "resolved" && d.notification.alertIds.includes(alertA.id),
        ),
      30_000,
      "the resolved notification of device A's restored alert",
    );
    expect(mqttAlerts.invalid).toEqual([]);
    expect(webhook.invalid).toEqual([]);

    // Clean stop, then the audit log of the crashed and restarted collector verifies.
    expect(await agent.stop(), agent.output()).toEqual({ code: 0, signal: null });
    expect(await collector.stop(), collector.output()).toEqual({ code: 0, signal: null });
    const verify = spawnSync(
      process.execPath,
      [POLYFLEET_CLI, "audit", "verify", "--db", collector.stateDb],
      {
        encoding: "utf8",
        timeout: 60_000,
      },
    );
    console.log(`[e2e restart] polyfleet audit verify: exit ${verify.status}: ${verify.stdout.trim()}`);
    expect(verify.status, `${verify.stdout}\n${verify.stderr}`).toBe(0);
    const m = /^OK: (\d+) entries, (\d+) checkpoints/.exec(verify.stdout);
    expect(m, verify.stdout).not.toBeNull();
    // The bootstrap token, collector.start (twice) and collector.stop at least; checkpoints signed on the way.
    expect(Number(m?.[1])).toBeGreaterThanOrEqual(4);
    expect(Number(m?.[2])).toBeGreaterThanOrEqual(1);
  }, 360_000);
});
