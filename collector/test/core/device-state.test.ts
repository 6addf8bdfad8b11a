import type { AgentState } from "@polyfleet/shared";
import { describe, expect, it } from "vitest";
import { applyReading, mainFirmware, newestPerDevice, nextAgentRecord } from "../../src/core/device-state.js";
import { reading } from "../contracts/state-store.contract.js";

describe("device state merge", () => {
  it("builds a record from a reachable UC reading (application component = software version)", () => {
    const r = reading("ag", "s1", 1, "dev1");
    const s = applyReading(undefined, r);
    expect(s?.readingTs).toBe(r.ts);
    expect(s?.record).toEqual({
      deviceId: "dev1",
      siteId: "s1",
      agentId: "ag",
      address: r.identity.address,
      family: "uc",
      driver: "poly-ucs",
      model: "VVX 450",
      serial: "SNdev1",
      mac: "0004f2aabbcc",
      systemName: "phone-dev1",
      softwareVersion: "6.4.3.1234",
      softwareBuild: "rel-1234",
      firmware: r.firmware,
      health: r.health,
      peripherals: r.peripherals,
      lines: r.lines,
      reachable: true,
      cpuPct: 12,
      memPct: 40,
      packetLossPct: 0.5,
      uptimeSec: 3600,
      inCall: false,
      tags: [],
      firstSeen: r.ts,
      lastSeen: r.ts,
      lastPollLatencyMs: 12,
    });
  });

  it("picks the system component on VideoOS, else the first component", () => {
    expect(
      mainFirmware([
        { component: "camera", version: "1" },
        { component: "system", version: "4.1" },
      ])?.version,
    ).toBe("4.1");
    expect(mainFirmware([{ component: "bootBlock", version: "3" }])?.version).toBe("3");
    expect(mainFirmware([])).toBeUndefined();
  });

  it("an unreachable reading only flips reachable; tags and firstSeen are kept; identity gaps keep old values", () => {
    const first = applyReading(undefined, reading("ag", "s1", 1, "dev1"));
    if (!first) throw new Error("no state");
    first.record.tags = ["lobby"];
    const down = reading("ag", "s1", 2, "dev1", {
      reachable: false,
      identity: { address: "10.0.0.9", family: "uc" },
      firmware: [],
      health: [],
    });
    const s2 = applyReading(first, down);
    expect(s2?.record).toEqual({ ...first.record, reachable: false });
    expect(s2?.readingTs).toBe(down.ts);
    const up = reading("ag", "s1", 3, "dev1", {
      identity: { address: "10.0.0.9", family: "uc" },
      firmware: [],
    });
    const s3 = applyReading(s2, up);
    expect(s3?.record).toMatchObject({
      reachable: true,
      address: "10.0.0.9",
      model: "VVX 450",
      serial: "SNdev1",
      softwareVersion: "6.4.3.1234",
      firmware: first.record.firmware,
      tags: ["lobby"],
      firstSeen: first.record.firstSeen,
      lastSeen: up.ts,
    });
  });

  it("ignores a reading older than the last applied one", () => {
    const s = applyReading(undefined, reading("ag", "s1", 5, "dev1"));
    expect(applyReading(s, reading("ag", "s1", 4, "dev1"))).toBeUndefined();
  });

  it("keeps only the newest reading per device in a batch", () => {
    const a1 = reading("ag", "s", 1, "a");
    const b1 = reading("ag", "s", 2, "b");
    const a2 = reading("ag", "s", 3, "a");
    const aOld = reading("ag", "s", 4, "a", { ts: a1.ts - 1 });
    expect(newestPerDevice([a1, b1, a2, aOld])).toEqual([b1, a2]);
    const distinct = [a1, b1];
    expect(newestPerDevice(distinct)).toBe(distinct);
  });
});

describe("agent record", () => {
  const birth = (sessionId: string): AgentState => ({
    v: 1,
    agentId: "a",
    siteId: "s",
    status: "online",
    sessionId,
    ts: 1,
    version: "1",
    capabilities: [],
    protocolVersion: 5,
  });
  const off = (sessionId: string): AgentState => ({
    v: 1,
    agentId: "a",
    siteId: "s",
    status: "offline",
    sessionId,
    ts: 2,
    reason: "will",
  });

  it("applies a Will only for the current session", () => {
    const on = nextAgentRecord(undefined, birth("s1"), 100);
    expect(on).toMatchObject({ status: "online", sessionId: "s1", since: 100, ackedSeq: 0 });
    expect(nextAgentRecord(on, off("s0"), 200)).toBeUndefined();
    expect(nextAgentRecord(undefined, off("s1"), 200)).toBeUndefined();
    expect(nextAgentRecord(on, off("s1"), 200)).toMatchObject({ status: "offline", since: 200 });
    // A repeated birth of the same session keeps `since`.
    expect(nextAgentRecord(on, birth("s1"), 300)?.since).toBe(100);
  });
});
