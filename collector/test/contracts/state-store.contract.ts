import {
  type AgentEvent,
  type AgentState,
  type Alert,
  type DeviceQuery,
  type Reading,
  type Rollout,
  RolloutCreate,
  type RolloutDevice,
} from "@polyfleet/shared";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StoredEvent } from "../../src/adapters/memory/memory-state-store.js";
import { applyReading } from "../../src/core/device-state.js";
import type { IngestBatch, StateStore, StoredToken } from "../../src/ports/state-store.js";

/** A store under test: the port plus the adapters' (non-port) event reader. */
export type ContractStore = StateStore & {
  recentEvents(limit: number, agentId?: string): Promise<StoredEvent[]>;
};

export interface StateStoreFixture {
  /** Opens a migrated store; after `close()` it opens a new store over the same data (a restart). */
  open(): Promise<ContractStore>;
  /** Removes the data (files, database). */
  dispose(): Promise<void>;
}

let uniq = 0;
/** A fresh agent id per test, so tests sharing one store do not interfere. */
function agentId(): string {
  uniq++;
  return `agent-${uniq}-${Math.random().toString(36).slice(2, 7)}`;
}

export function reading(
  agent: string,
  site: string,
  seq: number,
  deviceId: string,
  over: Partial<Reading> = {},
): Reading {
  return {
    v: 1,
    agentId: agent,
    siteId: site,
    seq,
    ts: 1_700_000_000_000 + seq * 1000,
    kind: "reading",
    deviceId,
    driver: "poly-ucs",
    reachable: true,
    pollLatencyMs: 12,
    identity: {
      address: `10.0.0.${(seq % 250) + 1}`,
      family: "uc",
      vendor: "Poly",
      model: "VVX 450",
      serial: `SN${deviceId}`,
      mac: "0004f2aabbcc",
      systemName: `phone-${deviceId}`,
    },
    firmware: [
      { component: "application", version: "6.4.3.1234", build: "rel-1234" },
      { component: "updater", version: "6.4.0.1" },
    ],
    health: [{ name: "sipserver", state: "up" }],
    peripherals: [{ id: "hs1", category: "headset", name: "Headset", state: "connected" }],
    lines: [{ line: 1, address: "1001@pbx", registered: true, state: "registered" }],
    cpuPct: 12,
    memPct: 40,
    uptimeSec: 3600,
    inCall: false,
    network: { packetLossPct: 0.5 },
    errors: [],
    ...over,
  };
}

function dropped(agent: string, site: string, seq: number, fromSeq: number, toSeq: number): AgentEvent {
  return {
    v: 1,
    agentId: agent,
    siteId: site,
    seq,
    ts: 1_700_000_000_000 + seq * 1000,
    type: "outbox.dropped",
    dropped: toSeq - fromSeq + 1,
    fromSeq,
    toSeq,
    totalDropped: toSeq - fromSeq + 1,
  };
}

function reach(agent: string, site: string, seq: number, deviceId: string, reachable: boolean): AgentEvent {
  return {
    v: 1,
    agentId: agent,
    siteId: site,
    seq,
    ts: 1_700_000_000_000 + seq * 1000,
    type: "device.reachability",
    deviceId,
    reachable,
    missedPolls: reachable ? 0 : 3,
  };
}

function batch(agent: string, site: string, readings: Reading[], events: AgentEvent[] = []): IngestBatch {
  return { agentId: agent, siteId: site, readings, events };
}

function birth(agent: string, site: string, sessionId: string, ts = 1_700_000_000_000): AgentState {
  return {
    v: 1,
    agentId: agent,
    siteId: site,
    status: "online",
    sessionId,
    ts,
    version: "0.1.0",
    capabilities: ["poll", "update"],
    protocolVersion: 5,
    hostname: "agent-host",
  };
}

function will(agent: string, site: string, sessionId: string, ts = 1_700_000_100_000): AgentState {
  return { v: 1, agentId: agent, siteId: site, status: "offline", sessionId, ts, reason: "will" };
}

function alert(id: string, over: Partial<Alert> = {}): Alert {
  return {
    v: 1,
    id,
    fingerprint: `fp-${id}`,
    rule: "device-unreachable",
    severity: "major",
    state: "firing",
    summary: `device ${id} unreachable`,
    siteId: "site-a",
    deviceId: `dev-${id}`,
    labels: { rule: "device-unreachable" },
    startsAt: 1000,
    updatedAt: 1000,
    flapping: false,
    escalationLevel: 0,
    silenced: false,
    ...over,
  };
}

const q = (over: Partial<DeviceQuery> = {}): DeviceQuery => ({ limit: 100, ...over });

/** A rollout with every optional field set (so a round trip that drops one shows). */
export function rollout(id: string, over: Partial<Rollout> = {}): Rollout {
  return {
    id,
    name: `rollout ${id}`,
    reason: "quarterly baseline",
    spec: RolloutCreate.parse({
      name: `rollout ${id}`,
      reason: "quarterly baseline",
      target: { kind: "release", version: "8.2.0.1234", models: ["VVX 450"] },
      selection: { sites: ["hq"], tags: ["lobby"] },
      waves: [{ name: "canary", count: 2 }, { percent: 100 }],
      windowIds: ["nightly"],
    }),
    targets: [
      {
        family: "uc",
        model: "VVX 450",
        version: "8.2.0.1234",
        build: "rel-1234",
        image: { fileName: "vvx450-8.2.0.sip.ld", length: 123_456_789, sha256: "ab".repeat(32) },
        downgrade: false,
      },
    ],
    catalogVersion: 7,
    state: "running",
    stateReason: 'started by the NOC — "change 42" ✓',
    waves: [
      {
        index: 0,
        name: "canary",
        size: 2,
        state: "passed",
        startedAt: 1000,
        finishedAt: 2000,
        gatedAt: 3000,
        reason: "soak passed",
      },
      { index: 1, name: "wave 2", size: 8, state: "running", startedAt: 3001 },
    ],
    currentWave: 1,
    createdBy: "token:operator",
    createdAt: 900,
    updatedAt: 3001,
    startedAt: 1000,
    counts: { queued: 6, succeeded: 2, downloading: 2 },
    ...over,
  };
}

/** A rollout device with every optional field set. */
export function rolloutDevice(
  rolloutId: string,
  n: number,
  over: Partial<RolloutDevice> = {},
): RolloutDevice {
  return {
    rolloutId,
    deviceId: `0004f2${String(n).padStart(6, "0")}`,
    siteId: n % 2 === 0 ? "hq" : "branch",
    agentId: "agent-1",
    model: "VVX 450",
    wave: n < 2 ? 0 : 1,
    order: n,
    fromVersion: "6.4.3.1234",
    targetVersion: "8.2.0.1234",
    state: "failed",
    reason: "device came back on 6.4.3.1234",
    failureClass: "verify",
    attempts: 2,
    failures: { verify: 1, download: 1 },
    commandId: `cmd-${n}`,
    dispatchedAt: 1500 + n,
    notBefore: 1600 + n,
    reportedVersion: "6.4.3.1234",
    updatedAt: 1700 + n,
    finishedAt: 1800 + n,
    ...over,
  };
}

/**
 * The StateStore contract: every adapter (memory, SQLite, PostgreSQL) must pass it. `make` returns a fixture
 * whose `open()` gives a migrated store and, after `close()`, a new store over the same data.
 */
export function describeStateStoreContract(name: string, make: () => Promise<StateStoreFixture>): void {
  describe(`StateStore contract: ${name}`, () => {
    let fx: StateStoreFixture;
    let store: ContractStore;

    beforeAll(async () => {
      fx = await make();
      store = await fx.open();
    });

    afterAll(async () => {
      await store?.close();
      await fx?.dispose();
    });

    /** Closes and reopens the store (a collector restart). */
    async function restart(): Promise<void> {
      await store.close();
      store = await fx.open();
    }

    it("migrate() is idempotent", async () => {
      await store.migrate();
      await store.migrate();
      expect(await store.listSilences()).toEqual([]);
    });

    describe("ingest", () => {
      it("stores new readings, returns the contiguous watermark and counts duplicates", async () => {
        const a = agentId();
        const rs = [1, 2, 3].map((s) => reading(a, "site-i", s, `${a}-d${s}`));
        expect(await store.ingest(batch(a, "site-i", rs))).toEqual({
          watermark: 3,
          duplicates: 0,
          stored: 3,
        });
        // The same batch again (an agent replay): nothing new.
        expect(await store.ingest(batch(a, "site-i", rs))).toEqual({
          watermark: 3,
          duplicates: 3,
          stored: 0,
        });
        // A duplicate inside one batch counts once as stored, once as duplicate.
        const r4 = reading(a, "site-i", 4, `${a}-d4`);
        expect(await store.ingest(batch(a, "site-i", [r4, r4]))).toEqual({
          watermark: 4,
          duplicates: 1,
          stored: 1,
        });
        expect((await store.getAgent(a))?.ackedSeq).toBe(4);
      });

      it("holds the watermark at a gap until it is filled, whatever the arrival order", async () => {
        const a = agentId();
        const r = (s: number) => reading(a, "site-i", s, `${a}-d`);
        expect(await store.ingest(batch(a, "site-i", [r(1), r(2), r(4), r(5)]))).toMatchObject({
          watermark: 2,
          stored: 4,
        });
        expect(await store.ingest(batch(a, "site-i", [r(7)]))).toMatchObject({ watermark: 2, stored: 1 });
        expect(await store.ingest(batch(a, "site-i", [r(5), r(3)]))).toEqual({
          watermark: 5,
          duplicates: 1,
          stored: 1,
        });
        expect(await store.ingest(batch(a, "site-i", [r(6)]))).toMatchObject({ watermark: 7 });
      });

      it("counts an outbox.dropped range as seen, and a late copy from that range as a duplicate", async () => {
        const a = agentId();
        const rs = [1, 2, 3].map((s) => reading(a, "site-i", s, `${a}-d`));
        await store.ingest(batch(a, "site-i", rs));
        const res = await store.ingest(batch(a, "site-i", [], [dropped(a, "site-i", 10, 4, 9)]));
        expect(res).toEqual({ watermark: 10, duplicates: 0, stored: 1 });
        const late = await store.ingest(batch(a, "site-i", [reading(a, "site-i", 6, `${a}-d`)]));
        expect(late).toEqual({ watermark: 10, duplicates: 1, stored: 0 });
        // A range announced ahead of a gap: the gap still holds the watermark.
        const b = await store.ingest(
          batch(a, "site-i", [reading(a, "site-i", 11, `${a}-d`)], [dropped(a, "site-i", 20, 13, 19)]),
        );
        expect(b.watermark).toBe(11);
        expect((await store.ingest(batch(a, "site-i", [reading(a, "site-i", 12, `${a}-d`)]))).watermark).toBe(
          20,
        );
      });

      it("keeps the dedup state durable across a restart", async () => {
        const a = agentId();
        const r = (s: number) => reading(a, "site-i", s, `${a}-d`);
        await store.ingest(batch(a, "site-i", [r(1), r(2), r(4)], [dropped(a, "site-i", 9, 6, 8)]));
        await restart();
        expect(await store.ingest(batch(a, "site-i", [r(1), r(2), r(4)]))).toEqual({
          watermark: 2,
          duplicates: 3,
          stored: 0,
        });
        expect(await store.ingest(batch(a, "site-i", [r(3)]))).toEqual({
          watermark: 4,
          duplicates: 0,
          stored: 1,
        });
        expect(await store.ingest(batch(a, "site-i", [r(5)]))).toEqual({
          watermark: 9,
          duplicates: 0,
          stored: 1,
        });
        expect((await store.getAgent(a))?.ackedSeq).toBe(9);
      });

      it("matches the pure dedup model for random interleavings, duplications and reorderings", async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.integer({ min: 1, max: 40 }),
            fc.array(fc.nat(), { maxLength: 40 }),
            fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 10 }),
            async (n, noise, cuts) => {
              const a = agentId();
              // Every seq 1..n at least once, plus duplicates, shuffled by the noise.
              const seqs = Array.from({ length: n }, (_, i) => i + 1);
              for (const x of noise) seqs.push((x % n) + 1);
              const order = seqs
                .map((s, i) => ({ s, k: noise[i % Math.max(1, noise.length)] ?? i }))
                .sort((x, y) => x.k - y.k || x.s - y.s)
                .map((x) => x.s);
              const seen = new Set<number>();
              let dups = 0;
              let i = 0;
              let c = 0;
              while (i < order.length) {
                const size = cuts[c++ % cuts.length] ?? 1;
                const part = order.slice(i, i + size);
                i += size;
                let expectDups = 0;
                for (const s of part) {
                  if (seen.has(s)) expectDups++;
                  seen.add(s);
                }
                dups += expectDups;
                const res = await store.ingest(
                  batch(
                    a,
                    "site-p",
                    part.map((s) => reading(a, "site-p", s, `${a}-d`)),
                  ),
                );
                let w = 0;
                while (seen.has(w + 1)) w++;
                expect(res.watermark).toBe(w);
                expect(res.duplicates).toBe(expectDups);
                expect(res.stored).toBe(part.length - expectDups);
              }
              expect(dups).toBe(seqs.length - n);
              expect((await store.getAgent(a))?.ackedSeq).toBe(n);
            },
          ),
          { numRuns: 15 },
        );
      });

      it("upserts the device state the pure merge computes; only the newest reading of a batch counts", async () => {
        const a = agentId();
        const dev = `${a}-dev`;
        const r1 = reading(a, "site-m", 1, dev, { cpuPct: 10 });
        const r2 = reading(a, "site-m", 2, dev, {
          cpuPct: 20,
          identity: { ...r1.identity, model: "VVX 650" },
        });
        const r3 = reading(a, "site-m", 3, dev, {
          cpuPct: 30,
          firmware: [{ component: "application", version: "7.0.0.1", build: "b7" }],
        });
        // Out of order within the batch: r3 is the newest.
        await store.ingest(batch(a, "site-m", [r3, r1, r2]));
        const expected = applyReading(undefined, r3)?.record;
        expect(await store.getDevice(dev)).toEqual(expected);
        const d = await store.getDevice(dev);
        expect(d).toMatchObject({
          cpuPct: 30,
          softwareVersion: "7.0.0.1",
          softwareBuild: "b7",
          model: "VVX 450",
        });
        // A late, older reading (new seq, older ts) never rolls the state back.
        const old = reading(a, "site-m", 4, dev, { ts: r1.ts - 5000, cpuPct: 99 });
        await store.ingest(batch(a, "site-m", [old]));
        expect((await store.getDevice(dev))?.cpuPct).toBe(30);
      });

      it("merges VideoOS readings: the system component is the software version", async () => {
        const a = agentId();
        const dev = `${a}-vbar`;
        const r = reading(a, "site-m", 1, dev, {
          driver: "poly-videoos",
          identity: { address: "10.1.1.1", family: "videoos", model: "Studio X50", serial: "X50-1" },
          firmware: [
            { component: "camera", version: "1.2.3" },
            { component: "system", version: "4.1.0", build: "410123" },
          ],
        });
        await store.ingest(batch(a, "site-m", [r]));
        expect(await store.getDevice(dev)).toMatchObject({
          family: "videoos",
          driver: "poly-videoos",
          softwareVersion: "4.1.0",
          softwareBuild: "410123",
        });
      });

      it("an unreachable reading keeps identity, firmware and lastSeen and only flips reachable", async () => {
        const a = agentId();
        const dev = `${a}-dev`;
        const ok = reading(a, "site-m", 1, dev);
        await store.ingest(batch(a, "site-m", [ok]));
        const before = await store.getDevice(dev);
        const down = reading(a, "site-m", 2, dev, {
          reachable: false,
          identity: { address: ok.identity.address, family: "uc" },
          firmware: [],
          health: [],
          peripherals: [],
          lines: [],
          errors: [{ code: "POLYFLEET_ERR_DEVICE_TIMEOUT", message: "timeout" }],
        });
        delete down.cpuPct;
        await store.ingest(batch(a, "site-m", [down]));
        expect(await store.getDevice(dev)).toEqual({ ...before, reachable: false });
        // Back: reachable again with fresh data.
        await store.ingest(batch(a, "site-m", [reading(a, "site-m", 3, dev, { cpuPct: 55 })]));
        expect(await store.getDevice(dev)).toMatchObject({ reachable: true, cpuPct: 55 });
        expect((await store.getDevice(dev))?.firstSeen).toBe(ok.ts);
      });

      it("a device first seen unreachable is recorded from the reading's identity", async () => {
        const a = agentId();
        const dev = `${a}-dev`;
        const down = reading(a, "site-m", 1, dev, {
          reachable: false,
          identity: { address: "10.9.9.9", family: "uc" },
          firmware: [],
        });
        await store.ingest(batch(a, "site-m", [down]));
        expect(await store.getDevice(dev)).toMatchObject({
          deviceId: dev,
          address: "10.9.9.9",
          reachable: false,
          firstSeen: down.ts,
          lastSeen: down.ts,
          firmware: [],
          tags: [],
        });
      });

      it("stores events (first copies only), readable back in order", async () => {
        const a = agentId();
        const evs = [reach(a, "site-e", 1, `${a}-d`, false), reach(a, "site-e", 2, `${a}-d`, true)];
        expect(await store.ingest(batch(a, "site-e", [], evs))).toEqual({
          watermark: 2,
          duplicates: 0,
          stored: 2,
        });
        expect(await store.ingest(batch(a, "site-e", [], evs))).toEqual({
          watermark: 2,
          duplicates: 2,
          stored: 0,
        });
        const got = await store.recentEvents(10, a);
        expect(got.map((e) => e.event)).toEqual(evs);
        expect(got.map((e) => e.seq)).toEqual([1, 2]);
      });

      it("makes an agent known from its stream before any birth", async () => {
        const a = agentId();
        await store.ingest(batch(a, "site-s", [reading(a, "site-s", 1, `${a}-d`)]));
        expect(await store.getAgent(a)).toMatchObject({ agentId: a, siteId: "site-s", ackedSeq: 1 });
      });
    });

    describe("agents", () => {
      it("a birth sets online with its session, a Will of that session sets offline", async () => {
        const a = agentId();
        const on = await store.applyAgentState(birth(a, "site-ag", "s1"), 5000);
        expect(on).toMatchObject({
          agentId: a,
          siteId: "site-ag",
          status: "online",
          sessionId: "s1",
          version: "0.1.0",
          capabilities: ["poll", "update"],
          protocolVersion: 5,
          hostname: "agent-host",
          since: 5000,
          ackedSeq: 0,
        });
        expect(await store.getAgent(a)).toEqual(on);
        const off = await store.applyAgentState(will(a, "site-ag", "s1"), 6000);
        expect(off).toMatchObject({ status: "offline", sessionId: "s1", since: 6000 });
        expect(await store.getAgent(a)).toEqual(off);
      });

      it("ignores a late Will of an old session", async () => {
        const a = agentId();
        await store.applyAgentState(birth(a, "site-ag", "old"), 1000);
        await store.applyAgentState(birth(a, "site-ag", "new"), 2000);
        expect(await store.applyAgentState(will(a, "site-ag", "old"), 3000)).toBeUndefined();
        expect(await store.getAgent(a)).toMatchObject({ status: "online", sessionId: "new" });
        // A Will for an agent never seen is ignored too.
        expect(await store.applyAgentState(will(agentId(), "site-ag", "x"), 3000)).toBeUndefined();
      });

      it("keeps the ack watermark across births, and survives a restart", async () => {
        const a = agentId();
        await store.ingest(
          batch(
            a,
            "site-ag",
            [1, 2].map((s) => reading(a, "site-ag", s, `${a}-d`)),
          ),
        );
        await store.applyAgentState(birth(a, "site-ag", "s2"), 9000);
        expect((await store.getAgent(a))?.ackedSeq).toBe(2);
        await restart();
        expect(await store.getAgent(a)).toMatchObject({ status: "online", sessionId: "s2", ackedSeq: 2 });
      });

      it("lists agents by site scope", async () => {
        const a1 = agentId();
        const a2 = agentId();
        await store.applyAgentState(birth(a1, "scope-x", "s"), 1);
        await store.applyAgentState(birth(a2, "scope-y", "s"), 1);
        const ids = (await store.listAgents(["scope-x"])).map((x) => x.agentId);
        expect(ids).toContain(a1);
        expect(ids).not.toContain(a2);
        const all = (await store.listAgents()).map((x) => x.agentId);
        expect(all).toEqual(expect.arrayContaining([a1, a2]));
        expect(all).toEqual([...all].sort());
      });
    });

    describe("devices and sites", () => {
      const site1 = `lst-${Math.random().toString(36).slice(2, 6)}`;
      const site2 = `${site1}-b`;
      let a1: string;
      let a2: string;

      beforeAll(async () => {
        a1 = agentId();
        a2 = agentId();
        const rs1: Reading[] = [];
        for (let i = 1; i <= 25; i++) {
          rs1.push(
            reading(a1, site1, i, `${site1}-uc-${String(i).padStart(2, "0")}`, {
              reachable: i % 5 !== 0,
              identity: {
                address: `10.1.0.${i}`,
                family: "uc",
                model: i % 2 === 0 ? "VVX 450" : "CCX 600",
                serial: `SER-${i}`,
                mac: `0004f2${String(i).padStart(6, "0")}`,
                systemName: i === 7 ? "Reception_Phone" : `desk-${i}`,
              },
            }),
          );
        }
        await store.ingest(batch(a1, site1, rs1));
        const rs2: Reading[] = [];
        for (let i = 1; i <= 5; i++) {
          rs2.push(
            reading(a2, site2, i, `${site1}-vx-${i}`, {
              driver: "poly-videoos",
              identity: {
                address: `10.2.0.${i}`,
                family: "videoos",
                model: "Studio X30",
                serial: `X30-${i}`,
              },
              firmware: [{ component: "system", version: "4.0.0" }],
            }),
          );
        }
        await store.ingest(batch(a2, site2, rs2));
        await store.applyAgentState(birth(a1, site1, "s"), 1);
      });

      const scope = () => [site1, site2];

      it("filters by site, agent, model, family, reachable and tag", async () => {
        expect((await store.listDevices(q({ siteId: site1 }), scope())).total).toBe(25);
        expect((await store.listDevices(q({ agentId: a2 }), scope())).total).toBe(5);
        expect((await store.listDevices(q({ model: "CCX 600" }), scope())).total).toBe(13);
        expect((await store.listDevices(q({ family: "videoos" }), scope())).total).toBe(5);
        const down = await store.listDevices(q({ reachable: "false" }), scope());
        expect(down.items.map((d) => d.deviceId)).toEqual(
          [5, 10, 15, 20, 25].map((i) => `${site1}-uc-${String(i).padStart(2, "0")}`),
        );
        expect(down.items.every((d) => !d.reachable)).toBe(true);
        expect((await store.listDevices(q({ reachable: "true" }), scope())).total).toBe(25);
        await store.setDeviceTags(`${site1}-uc-03`, ["lobby", "vip"]);
        await store.setDeviceTags(`${site1}-vx-2`, ["lobby"]);
        const lobby = await store.listDevices(q({ tag: "lobby" }), scope());
        expect(lobby.items.map((d) => d.deviceId)).toEqual([`${site1}-uc-03`, `${site1}-vx-2`]);
        expect((await store.listDevices(q({ tag: "vip", family: "uc" }), scope())).total).toBe(1);
        expect((await store.listDevices(q({ tag: "lob" }), scope())).total).toBe(0);
      });

      it("searches free text over id, address, model, serial, MAC and system name (case-insensitive)", async () => {
        const ids = async (text: string) =>
          (await store.listDevices(q({ q: text }), scope())).items.map((d) => d.deviceId);
        expect(await ids("reception_")).toEqual([`${site1}-uc-07`]);
        expect(await ids("10.2.0.3")).toEqual([`${site1}-vx-3`]);
        expect(await ids("ser-12")).toEqual([`${site1}-uc-12`]);
        expect(await ids("0004F2000019")).toEqual([`${site1}-uc-19`]);
        expect((await ids("studio x30")).length).toBe(5);
        expect(await ids(`${site1}-UC-2`)).toHaveLength(6);
        // Wildcard characters are literal.
        expect(await ids("%")).toEqual([]);
        expect(await ids("desk_1")).toEqual([]);
      });

      it("restricts to the scope list", async () => {
        expect((await store.listDevices(q(), [site2])).items.every((d) => d.siteId === site2)).toBe(true);
        expect((await store.listDevices(q(), [site2])).total).toBe(5);
        expect((await store.listDevices(q({ siteId: site1 }), [site2])).total).toBe(0);
        expect((await store.listDevices(q(), [])).total).toBe(0);
      });

      it("paginates with a stable cursor by deviceId, with the total on every page", async () => {
        const seen: string[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const p = await store.listDevices(q({ limit: 7, ...(cursor ? { cursor } : {}) }), scope());
          expect(p.total).toBe(pages < 2 ? 30 : 31);
          expect(p.items.length).toBeLessThanOrEqual(7);
          seen.push(...p.items.map((d) => d.deviceId));
          cursor = p.nextCursor;
          pages++;
          // A device added mid-way (sorting last) shows up on a later page, nothing repeats.
          if (pages === 2) {
            await store.ingest(batch(a2, site2, [reading(a2, site2, 6, `${site1}-zz`)]));
          }
        } while (cursor !== undefined && pages < 10);
        expect(seen.length).toBe(31);
        expect(new Set(seen).size).toBe(31);
        expect(seen).toEqual([...seen].sort());
        const exact = await store.listDevices(q({ limit: 31 }), scope());
        expect(exact.items).toHaveLength(31);
        expect(exact.nextCursor).toBeUndefined();
      });

      it("keeps tags across new readings; setDeviceTags on an unknown device returns undefined", async () => {
        const id = `${site1}-uc-03`;
        await store.ingest(batch(a1, site1, [reading(a1, site1, 26, id, { cpuPct: 77 })]));
        expect(await store.getDevice(id)).toMatchObject({ tags: ["lobby", "vip"], cpuPct: 77 });
        expect(await store.setDeviceTags("no-such-device", ["x"])).toBeUndefined();
        expect(await store.setDeviceTags(id, [])).toMatchObject({ tags: [] });
        await restart();
        expect((await store.getDevice(id))?.tags).toEqual([]);
      });

      it("aggregates agents and devices per site", async () => {
        const sites = await store.listSites([site1, site2]);
        expect(sites).toEqual([
          { siteId: site1, name: site1, agents: 1, devices: 25 },
          { siteId: site2, name: site2, agents: 1, devices: 6 },
        ]);
        expect(await store.listSites([site2])).toEqual([
          { siteId: site2, name: site2, agents: 1, devices: 6 },
        ]);
        const all = await store.listSites();
        expect(all.map((s) => s.siteId)).toEqual(expect.arrayContaining([site1, site2]));
      });
    });

    describe("alerts", () => {
      it("upserts by id, appends every save to the history, filters and orders by updatedAt desc", async () => {
        const p = `al-${Math.random().toString(36).slice(2, 6)}`;
        const a1 = alert(`${p}-1`, { siteId: `${p}-s1`, updatedAt: 100 });
        const a2 = alert(`${p}-2`, { siteId: `${p}-s1`, severity: "critical", updatedAt: 200 });
        const a3 = alert(`${p}-3`, { siteId: `${p}-s2`, updatedAt: 300 });
        for (const x of [a1, a2, a3]) await store.saveAlert(x);
        const ack = {
          ...a1,
          state: "acknowledged" as const,
          updatedAt: 400,
          ack: { by: "op", at: 400, comment: "on it" },
        };
        await store.saveAlert(ack);
        const resolved = { ...a2, state: "resolved" as const, updatedAt: 500, endsAt: 500 };
        await store.saveAlert(resolved);
        expect(await store.getAlert(a1.id)).toEqual(ack);
        expect(await store.getAlert("nope")).toBeUndefined();
        expect(await store.alertHistory(a1.id)).toEqual([a1, ack]);
        expect(await store.alertHistory(a2.id)).toEqual([a2, resolved]);
        const sites = [`${p}-s1`, `${p}-s2`];
        const ids = async (f: Parameters<StateStore["listAlerts"]>[0]) =>
          (await store.listAlerts({ sites, ...f })).map((x) => x.id);
        expect(await ids({})).toEqual([a2.id, a1.id, a3.id]);
        expect(await ids({ state: "active" })).toEqual([a1.id, a3.id]);
        expect(await ids({ state: "firing" })).toEqual([a3.id]);
        expect(await ids({ state: "resolved" })).toEqual([a2.id]);
        expect(await ids({ severity: "critical" })).toEqual([a2.id]);
        expect(await ids({ siteId: `${p}-s2` })).toEqual([a3.id]);
        expect(await ids({ deviceId: a3.deviceId ?? "" })).toEqual([a3.id]);
        expect(await ids({ limit: 2 })).toEqual([a2.id, a1.id]);
        expect(await ids({ sites: [`${p}-s2`] })).toEqual([a3.id]);
        await restart();
        expect(await store.getAlert(a1.id)).toEqual(ack);
      });
    });

    describe("silences, windows, tokens", () => {
      it("saves, lists, replaces and deletes silences and maintenance windows", async () => {
        const s = {
          id: "sil-1",
          matchers: [{ label: "siteId", op: "=" as const, value: "a" }],
          startsAt: 1,
          endsAt: 2,
          createdBy: "admin",
          comment: "maintenance",
        };
        await store.saveSilence(s);
        await store.saveSilence({ ...s, id: "sil-0" });
        await store.saveSilence({ ...s, comment: "changed" });
        expect(await store.listSilences()).toEqual([
          { ...s, id: "sil-0" },
          { ...s, comment: "changed" },
        ]);
        expect(await store.deleteSilence("sil-1")).toBe(true);
        expect(await store.deleteSilence("sil-1")).toBe(false);
        expect((await store.listSilences()).map((x) => x.id)).toEqual(["sil-0"]);
        const w = {
          id: "win-1",
          name: "nightly",
          matchers: [],
          schedule: {
            type: "weekly" as const,
            days: [1, 3],
            start: "02:00",
            durationMin: 60,
            timezone: "UTC",
          },
          createdBy: "admin",
        };
        await store.saveWindow(w);
        expect(await store.listWindows()).toEqual([w]);
        expect(await store.deleteWindow("win-1")).toBe(true);
        expect(await store.listWindows()).toEqual([]);
      });

      it("stores tokens by hash only, lists them without the hash, touches and deletes", async () => {
        const t: StoredToken = {
          id: "tok-1",
          name: "noc",
          role: "operator",
          sites: ["site-a"],
          createdAt: 10,
          createdBy: "admin",
          hash: "a".repeat(64),
        };
        await store.saveToken(t);
        expect(await store.findTokenByHash(t.hash)).toEqual(t);
        expect(await store.findTokenByHash("b".repeat(64))).toBeUndefined();
        const listed = await store.listTokens();
        expect(listed).toEqual([
          {
            id: "tok-1",
            name: "noc",
            role: "operator",
            sites: ["site-a"],
            createdAt: 10,
            createdBy: "admin",
          },
        ]);
        expect(JSON.stringify(listed)).not.toContain(t.hash);
        await store.touchToken("tok-1", 99);
        expect(await store.findTokenByHash(t.hash)).toEqual({ ...t, lastUsedAt: 99 });
        expect((await store.listTokens())[0]?.lastUsedAt).toBe(99);
        await restart();
        expect(await store.findTokenByHash(t.hash)).toEqual({ ...t, lastUsedAt: 99 });
        expect(await store.deleteToken("tok-1")).toBe(true);
        expect(await store.deleteToken("tok-1")).toBe(false);
        expect(await store.findTokenByHash(t.hash)).toBeUndefined();
      });
    });

    describe("rollouts", () => {
      /** A fresh rollout id prefix per test: the store is shared by the whole suite. */
      const rid = () => `ro-${++uniq}-${Math.random().toString(36).slice(2, 7)}`;
      const mine = (prefix: string) => (d: { id?: string; rolloutId?: string }) =>
        (d.id ?? d.rolloutId ?? "").startsWith(prefix);

      it("round-trips a rollout and its devices exactly, also across a restart", async () => {
        const id = rid();
        // A NUL (which JSONB refuses) and non-ASCII text must come back as they went in.
        const r = rollout(id, { stateReason: "paused: \u0000 nul, ünïcode ✓, 𝄞" });
        const devs = [0, 1, 2].map((n) => rolloutDevice(id, n));
        // A device with only the required fields.
        const bare: RolloutDevice = {
          rolloutId: id,
          deviceId: "ip-10.0.0.9",
          siteId: "hq",
          agentId: "agent-1",
          model: "CCX 600",
          wave: 1,
          order: 3,
          targetVersion: "8.2.0.1234",
          state: "queued",
          attempts: 0,
          failures: {},
          updatedAt: 900,
        };
        await store.saveRolloutChanges({ rollouts: [r], devices: [...devs, bare] });
        expect(await store.getRollout(id)).toStrictEqual(r);
        expect(await store.listRolloutDevices(id)).toStrictEqual([...devs, bare]);
        await restart();
        expect(await store.getRollout(id)).toStrictEqual(r);
        expect(await store.listRolloutDevices(id)).toStrictEqual([...devs, bare]);
        expect(await store.getRollout(`${id}-nope`)).toBeUndefined();
        expect(await store.listRolloutDevices(`${id}-nope`)).toEqual([]);
      });

      it("upserts: a second save overwrites the rollout and the devices, never duplicates", async () => {
        const id = rid();
        await store.saveRolloutChanges({
          rollouts: [rollout(id, { state: "pending" })],
          devices: [0, 1].map((n) => rolloutDevice(id, n, { state: "queued" })),
        });
        const r2 = rollout(id, { state: "paused", stateReason: "lunch", updatedAt: 5000 });
        const d1 = rolloutDevice(id, 1, { state: "downloading", attempts: 1 });
        // Only the changed device is written; the rollout alone in one save, the device alone in the next.
        await store.saveRolloutChanges({ rollouts: [r2], devices: [] });
        await store.saveRolloutChanges({ rollouts: [], devices: [d1] });
        expect(await store.getRollout(id)).toStrictEqual(r2);
        expect(await store.listRolloutDevices(id)).toStrictEqual([
          rolloutDevice(id, 0, { state: "queued" }),
          d1,
        ]);
        expect((await store.listRollouts({ state: "pending" })).filter(mine(id))).toEqual([]);
        expect((await store.listRollouts({ state: "paused" })).filter(mine(id))).toStrictEqual([r2]);
        expect(await store.listRolloutDevices(id, { state: "queued" })).toHaveLength(1);
        // The same key twice in one batch: the last one wins.
        await store.saveRolloutChanges({
          rollouts: [rollout(id, { state: "halted" }), rollout(id, { state: "running" })],
          devices: [rolloutDevice(id, 0, { state: "failed" }), rolloutDevice(id, 0, { state: "succeeded" })],
        });
        expect((await store.getRollout(id))?.state).toBe("running");
        expect((await store.listRolloutDevices(id)).map((d) => d.state)).toEqual([
          "succeeded",
          "downloading",
        ]);
        // An empty save is fine.
        await store.saveRolloutChanges({ rollouts: [], devices: [] });
      });

      it("stores nothing of a batch with an invalid record", async () => {
        const old = rid();
        const r0 = rollout(old, { state: "running" });
        await store.saveRolloutChanges({ rollouts: [r0], devices: [rolloutDevice(old, 0)] });
        const id = rid();
        const bad = { ...rolloutDevice(id, 2), wave: -1 };
        await expect(
          store.saveRolloutChanges({
            rollouts: [rollout(id), rollout(old, { state: "halted" })],
            devices: [rolloutDevice(id, 0), rolloutDevice(old, 0, { state: "succeeded" }), bad],
          }),
        ).rejects.toThrow();
        const badRollout = { ...rollout(id), state: "exploded" } as unknown as Rollout;
        await expect(store.saveRolloutChanges({ rollouts: [badRollout], devices: [] })).rejects.toThrow();
        expect(await store.getRollout(id)).toBeUndefined();
        expect(await store.listRolloutDevices(id)).toEqual([]);
        expect(await store.getRollout(old)).toStrictEqual(r0);
        expect(await store.listRolloutDevices(old)).toStrictEqual([rolloutDevice(old, 0)]);
      });

      it("stores nothing of a batch with a device of an unknown rollout (rolled back mid-write)", async () => {
        const old = rid();
        const r0 = rollout(old);
        await store.saveRolloutChanges({ rollouts: [r0], devices: [rolloutDevice(old, 0)] });
        const id = rid();
        // The rollouts and the first devices are written before the orphan device fails the transaction.
        const devices = [
          ...Array.from({ length: 50 }, (_, n) => rolloutDevice(id, n)),
          rolloutDevice(old, 0, { state: "succeeded" }),
          rolloutDevice(`${id}-missing`, 1),
        ];
        await expect(
          store.saveRolloutChanges({ rollouts: [rollout(id), { ...r0, state: "completed" }], devices }),
        ).rejects.toThrow(/does not exist/);
        expect(await store.getRollout(id)).toBeUndefined();
        expect(await store.listRolloutDevices(id)).toEqual([]);
        expect(await store.getRollout(old)).toStrictEqual(r0);
        expect(await store.listRolloutDevices(old)).toStrictEqual([rolloutDevice(old, 0)]);
        // Still usable afterwards.
        await store.saveRolloutChanges({ rollouts: [rollout(id)], devices: [rolloutDevice(id, 0)] });
        expect(await store.listRolloutDevices(id)).toHaveLength(1);
      });

      it("lists rollouts newest first (ties by id) and filters by state", async () => {
        const p = rid();
        const rs = [
          rollout(`${p}-a`, { createdAt: 100, state: "completed" }),
          rollout(`${p}-c`, { createdAt: 300, state: "running" }),
          rollout(`${p}-b`, { createdAt: 300, state: "running" }),
          rollout(`${p}-d`, { createdAt: 200, state: "pending" }),
        ];
        await store.saveRolloutChanges({ rollouts: rs, devices: [] });
        const ids = async (f?: Parameters<StateStore["listRollouts"]>[0]) =>
          (await store.listRollouts(f)).filter(mine(p)).map((r) => r.id);
        expect(await ids()).toEqual([`${p}-b`, `${p}-c`, `${p}-d`, `${p}-a`]);
        expect(await ids({})).toEqual([`${p}-b`, `${p}-c`, `${p}-d`, `${p}-a`]);
        expect(await ids({ state: "running" })).toEqual([`${p}-b`, `${p}-c`]);
        expect(await ids({ state: "completed" })).toEqual([`${p}-a`]);
        expect(await ids({ state: "cancelled" })).toEqual([]);
        const all = await store.listRollouts();
        for (let i = 1; i < all.length; i++) {
          const a = all[i - 1]!;
          const b = all[i]!;
          expect(a.createdAt > b.createdAt || (a.createdAt === b.createdAt && a.id < b.id)).toBe(true);
        }
      });

      it("lists a rollout's devices in plan order, filtered by state and wave", async () => {
        const id = rid();
        const devs = Array.from({ length: 12 }, (_, n) =>
          rolloutDevice(id, n, {
            wave: Math.floor(n / 4),
            state: n % 3 === 0 ? "succeeded" : n % 3 === 1 ? "queued" : "failed",
          }),
        );
        // Written in reverse: the order comes from `order`, not from insertion.
        await store.saveRolloutChanges({ rollouts: [rollout(id)], devices: [...devs].reverse() });
        expect((await store.listRolloutDevices(id)).map((d) => d.order)).toEqual(devs.map((d) => d.order));
        expect((await store.listRolloutDevices(id, { wave: 1 })).map((d) => d.order)).toEqual([4, 5, 6, 7]);
        expect((await store.listRolloutDevices(id, { state: "queued" })).map((d) => d.order)).toEqual([
          1, 4, 7, 10,
        ]);
        expect(
          (await store.listRolloutDevices(id, { state: "failed", wave: 2 })).map((d) => d.order),
        ).toEqual([8, 11]);
        expect(await store.listRolloutDevices(id, { wave: 9 })).toEqual([]);
        expect(await store.listRolloutDevices(id, { state: undefined, wave: undefined })).toHaveLength(12);
      });

      it("lists the devices of unfinished rollouts for the restore, by rollout then plan order", async () => {
        const p = rid();
        const states = ["pending", "running", "paused", "halted", "completed", "cancelled"] as const;
        const rs = states.map((state, i) => rollout(`${p}-${i}`, { state }));
        const devices = rs.flatMap((r) => [2, 0, 1].map((n) => rolloutDevice(r.id, n)));
        await store.saveRolloutChanges({ rollouts: rs, devices });
        await restart();
        const active = (await store.listActiveRolloutDevices()).filter(mine(p));
        expect(active.map((d) => `${d.rolloutId}#${d.order}`)).toEqual(
          [0, 1, 2, 3].flatMap((i) => [0, 1, 2].map((n) => `${p}-${i}#${n}`)),
        );
        expect(active[0]).toStrictEqual(rolloutDevice(`${p}-0`, 0));
        // A rollout that finishes drops out.
        await store.saveRolloutChanges({ rollouts: [{ ...rs[1]!, state: "completed" }], devices: [] });
        const after = (await store.listActiveRolloutDevices()).filter(mine(p));
        expect([...new Set(after.map((d) => d.rolloutId))]).toEqual([`${p}-0`, `${p}-2`, `${p}-3`]);
      });

      it("writes and rewrites a 5,000-device rollout in one batch each", async () => {
        const id = rid();
        const n = 5000;
        const devs = Array.from({ length: n }, (_, i) =>
          rolloutDevice(id, i, { wave: i < 50 ? 0 : i < 500 ? 1 : 2, state: "queued" }),
        );
        const moved = devs.map((d) => ({ ...d, state: "downloading" as const, attempts: 1 }));
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        await store.saveRolloutChanges({ rollouts: [rollout(id, { state: "pending" })], devices: devs });
        const t1 = performance.now();
        await store.saveRolloutChanges({ rollouts: [rollout(id, { state: "running" })], devices: moved });
        const t2 = performance.now();
        const cpu = process.cpuUsage(cpu0);
        const got = await store.listRolloutDevices(id);
        expect(got).toHaveLength(n);
        expect(got.every((d, i) => d.order === i && d.state === "downloading" && d.attempts === 1)).toBe(
          true,
        );
        expect(await store.listRolloutDevices(id, { wave: 0 })).toHaveLength(50);
        expect((await store.listActiveRolloutDevices()).filter(mine(id))).toHaveLength(n);
        console.log(
          `[state-store perf] ${name}: 5,000 rollout devices inserted in ${(t1 - t0).toFixed(0)} ms, upserted in ${(t2 - t1).toFixed(0)} ms (wall); ${((cpu.user + cpu.system) / (2 * n)).toFixed(1)} µs CPU/device write (this process)`,
        );
      });
    });

    it("ingests 10,000 readings (batches of 100, 1,000 devices) and logs the CPU time per reading", async () => {
      const a = agentId();
      const site = "site-perf";
      const total = 10_000;
      const batches: IngestBatch[] = [];
      for (let b = 0; b < total / 100; b++) {
        const rs: Reading[] = [];
        for (let i = 0; i < 100; i++) {
          const seq = b * 100 + i + 1;
          rs.push(reading(a, site, seq, `${a}-p${seq % 1000}`, { cpuPct: seq % 100, uptimeSec: seq }));
        }
        batches.push(batch(a, site, rs));
      }
      // Warm-up (JIT, statement caches) on another agent's 2,000 readings, then measure. The first poll round
      // creates the 1,000 devices (full rows); later rounds change only metrics (the common case).
      const w = agentId();
      for (let b = 0; b < 20; b++) {
        const rs = Array.from({ length: 100 }, (_, i) => reading(w, site, b * 100 + i + 1, `${w}-p${i}`));
        await store.ingest(batch(w, site, rs));
      }
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      let last = { watermark: 0, duplicates: 0, stored: 0 };
      for (const b of batches) last = await store.ingest(b);
      const wall = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      expect(last.watermark).toBe(total);
      expect((await store.getDevice(`${a}-p0`))?.uptimeSec).toBe(total);
      const us = (cpu.user + cpu.system) / total;
      console.log(
        `[state-store perf] ${name}: ${us.toFixed(1)} µs CPU/reading (this process), ${((wall * 1000) / total).toFixed(1)} µs wall/reading, 10,000 readings in batches of 100`,
      );
    });
  });
}
