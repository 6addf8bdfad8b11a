// The agent keeps polling the healthy devices while some are hostile (no answer, slow, malformed or truncated
// JSON, wrong credentials, HTTP 500, flapping) and while garbage and invalid commands arrive on its command
// topic; the bad inputs are counted in /metrics, and commands are answered once per command id.

import { type MosquittoHandle, startMosquitto, TestCollector, waitFor } from "@polyfleet/scripts/testing";
import type { SimFault } from "@polyfleet/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AgentProcess,
  assertAgentBuilt,
  CommandClient,
  type E2eFleet,
  promSamples,
  promSum,
  randomId,
  type SeenReading,
  sleep,
  startE2eFleet,
  TelemetrySpy,
} from "./harness.js";

const cleanups: (() => Promise<void>)[] = [];
let mosquitto: MosquittoHandle;

beforeAll(async () => {
  assertAgentBuilt();
  mosquitto = await startMosquitto();
  cleanups.push(() => mosquitto.stop());
});

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

const DEVICES = 60;
const INTERVAL_SEC = 5;
/** One hostile device per fault (7 of 60, ~12 %), alternating families where the fleet has both. */
const FAULTS: { fault: SimFault; family: "uc" | "videoos" }[] = [
  { fault: "noAnswer", family: "uc" },
  { fault: "slow", family: "videoos" },
  { fault: "malformedJson", family: "uc" },
  { fault: "truncatedJson", family: "videoos" },
  { fault: "wrongCredentials", family: "uc" },
  { fault: "http500", family: "videoos" },
  { fault: "flapping", family: "uc" },
];

/** Picks a device per fault (its family when possible) and switches the fault on through the control API. */
async function assignFaults(fleet: E2eFleet): Promise<Map<string, SimFault>> {
  const free = [...fleet.manifest.devices];
  const hostile = new Map<string, SimFault>();
  for (const f of FAULTS) {
    let i = free.findIndex((d) => d.family === f.family);
    if (i < 0) i = 0;
    const [d] = free.splice(i, 1);
    if (!d) throw new Error("not enough devices");
    await fleet.control("PUT", `/devices/${encodeURIComponent(d.id)}/faults`, { faults: [f.fault] });
    hostile.set(d.address, f.fault);
  }
  return hostile;
}

function byAddress(readings: SeenReading[]): Map<string, SeenReading[]> {
  const m = new Map<string, SeenReading[]>();
  for (const r of readings) {
    const list = m.get(r.address) ?? [];
    list.push(r);
    m.set(r.address, list);
  }
  return m;
}

describe("agent e2e: hostile devices and bad commands", () => {
  it("keeps polling the healthy devices every interval, counts the bad inputs, answers commands once", async () => {
    const agentId = randomId("e2e-hostile");
    const siteId = "e2e-site";
    const fleet = await startE2eFleet({
      devices: DEVICES,
      brokerUrl: mosquitto.url,
      agentId,
      siteId,
      pollIntervalSec: INTERVAL_SEC,
      simArgs: ["--flap-period-ms", "8000", "--slow-ms", "3000"],
    });
    cleanups.push(() => fleet.stop());
    const hostile = await assignFaults(fleet);
    const healthy = fleet.manifest.devices.filter((d) => !hostile.has(d.address));
    expect(healthy).toHaveLength(DEVICES - FAULTS.length);

    const collector = new TestCollector({ url: mosquitto.url, siteId, agentId });
    await collector.start();
    cleanups.push(() => collector.stop());
    const spy = new TelemetrySpy(mosquitto.url, siteId, agentId);
    await spy.start();
    cleanups.push(() => spy.stop());
    const commands = new CommandClient(mosquitto.url, siteId, agentId);
    await commands.start();
    cleanups.push(() => commands.stop());

    const agent = new AgentProcess(fleet.configFile, fleet.httpPort);
    cleanups.push(() => agent.dispose());
    await agent.start();

    // Warm-up: every healthy device answered once.
    await waitFor(
      () => {
        const ok = new Set(spy.readings.filter((r) => r.reachable).map((r) => r.address));
        return healthy.every((d) => ok.has(d.address));
      },
      INTERVAL_SEC * 1000 * 6,
      "a reachable reading from every healthy device",
      200,
    );

    // ---- bad and good commands ----
    const before = await agent.metrics();
    const badPayloads: (string | Buffer)[] = [
      "this is not JSON {{{",
      Buffer.from([0x00, 0xff, 0xfe, 0x7b, 0x22, 0x0a, 0x80]),
      JSON.stringify({ v: 1, agentId, issuedBy: "x" }),
      "[]",
    ];
    for (const p of badPayloads) await commands.publishRaw(p);
    // An invalid command that still carries a usable id (unknown type): answered with an error.
    const invalidId = "e2e-invalid-0001";
    await commands.publishRaw(
      JSON.stringify({
        v: 1,
        commandId: invalidId,
        agentId,
        issuedBy: "e2e-test",
        issuedAt: Date.now(),
        body: { type: "formatDisk", target: "127.0.0.1" },
      }),
    );
    const target = healthy[0];
    if (!target) throw new Error("no healthy device");
    const cmdId = "e2e-tcp-connect-0001";
    await commands.send(cmdId, {
      type: "tcpConnect",
      host: target.address,
      port: target.httpsPort,
      timeoutMs: 3000,
    });
    await waitFor(() => (commands.results.get(cmdId)?.length ?? 0) >= 1, 15_000, "the tcpConnect result", 50);
    await waitFor(
      () => (commands.results.get(invalidId)?.length ?? 0) >= 1,
      15_000,
      "the invalid command's answer",
      50,
    );
    // The same command id again: answered again from the stored result, not run twice.
    await commands.send(cmdId, {
      type: "tcpConnect",
      host: target.address,
      port: target.httpsPort,
      timeoutMs: 3000,
    });
    await waitFor(
      () => (commands.results.get(cmdId)?.length ?? 0) >= 2,
      15_000,
      "the repeated command's answer",
      50,
    );

    // ---- observation window: the healthy devices keep being polled every interval ----
    const windowStart = Date.now();
    const windowMs = INTERVAL_SEC * 1000 * 5;
    await sleep(windowMs);
    const windowEnd = Date.now();
    const after = await agent.metrics();
    const health = await agent.health();
    expect(agent.running).toBe(true);
    expect(health.connected).toBe(true);

    const seen = byAddress(spy.between(windowStart, windowEnd));
    const healthyCounts = healthy.map((d) => (seen.get(d.address) ?? []).filter((r) => r.reachable).length);
    // 5 intervals: 5 polls expected per device (± jitter); at least 3 from every one of them.
    const starved = healthy.filter((_d, i) => (healthyCounts[i] ?? 0) < 3).map((d) => d.address);
    expect(starved).toEqual([]);
    // Every hostile device still produced readings (every poll makes one), each one naming what went wrong.
    const hostileView: Record<string, { n: number; reachable: number; codes: string[] }> = {};
    for (const [address, fault] of hostile) {
      const rs = seen.get(address) ?? [];
      hostileView[fault] = {
        n: rs.length,
        reachable: rs.filter((r) => r.reachable).length,
        codes: [...new Set(rs.flatMap((r) => r.errorCodes))].sort(),
      };
    }
    console.log(`[e2e hostile] devices per fault: ${JSON.stringify(hostileView)}`);
    for (const fault of ["noAnswer", "malformedJson", "truncatedJson", "wrongCredentials", "http500"]) {
      const v = hostileView[fault];
      expect(v, fault).toBeDefined();
      expect(v?.n, `${fault}: readings`).toBeGreaterThan(0);
      expect(v?.codes.length, `${fault}: error codes in its readings`).toBeGreaterThan(0);
    }

    // ---- the bad inputs are counted ----
    const failures = promSamples(after, "polyfleet_agent_poll_failures_total");
    const badResponses = promSamples(after, "polyfleet_agent_bad_responses_total");
    console.log(
      `[e2e hostile] poll failures ${JSON.stringify(failures.map((s) => [s.labels, s.value]))}; bad responses ${JSON.stringify(badResponses.map((s) => [s.labels, s.value]))}`,
    );
    expect(promSum(after, "polyfleet_agent_poll_failures_total")).toBeGreaterThan(0);
    // malformedJson and truncatedJson answers, by reason.
    expect(promSum(after, "polyfleet_agent_bad_responses_total", { reason: "invalid_json" })).toBeGreaterThan(
      0,
    );
    expect(promSum(after, "polyfleet_agent_bad_responses_total", { reason: "truncated" })).toBeGreaterThan(0);
    // The devices that never answer in time are counted as timeouts.
    expect(
      promSum(after, "polyfleet_agent_poll_failures_total", { reason: "POLYFLEET_ERR_DEVICE_TIMEOUT" }),
    ).toBeGreaterThan(0);
    const invalidCount = (text: string): number =>
      promSum(text, "polyfleet_agent_invalid_messages_total") +
      promSum(text, "polyfleet_agent_commands_total", { result: "invalid" });
    expect(invalidCount(after) - invalidCount(before)).toBeGreaterThanOrEqual(badPayloads.length + 1);

    // ---- command answers ----
    const invalidAnswer = commands.results.get(invalidId)?.[0];
    expect(invalidAnswer).toMatchObject({
      status: "error",
      agentId,
      error: { code: "POLYFLEET_ERR_COMMAND_INVALID" },
    });
    const answers = commands.results.get(cmdId) ?? [];
    expect(answers.length).toBeGreaterThanOrEqual(2);
    expect(answers[0]).toMatchObject({ status: "ok", agentId, commandId: cmdId });
    // Answered again from the stored result: the very same answer (same timestamp and duration), and the
    // metrics show one run and one duplicate.
    expect(answers[1]).toEqual(answers[0]);
    expect(promSum(after, "polyfleet_agent_commands_total", { type: "tcpConnect", result: "ok" })).toBe(1);
    expect(
      promSum(after, "polyfleet_agent_commands_total", { type: "tcpConnect", result: "duplicate" }),
    ).toBeGreaterThanOrEqual(1);
    expect(commands.invalidResults).toBe(0);

    // Everything the agent published was valid, in seq order, and stored without gaps.
    expect(collector.invalid).toBe(0);
    expect(spy.invalid).toBe(0);
    expect(collector.gaps()).toEqual([]);
    expect(agent.exits).toEqual([]);
    expect(await agent.stop()).toEqual({ code: 0, signal: null });
    console.log(
      `[e2e hostile] healthy readings per device in ${windowMs / 1000} s: min ${Math.min(...healthyCounts)}, max ${Math.max(...healthyCounts)}; tcpConnect ${JSON.stringify(answers[0])}`,
    );
  }, 180_000);
});
