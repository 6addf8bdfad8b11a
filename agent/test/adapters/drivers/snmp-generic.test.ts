import { Reading } from "@polyfleet/shared";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type CounterSample,
  computeRates,
  counter32Delta,
  describeDevice,
  operStatusState,
  SnmpGenericDriver,
} from "../../../src/adapters/drivers/snmp-generic.js";
import type { Clock } from "../../../src/ports/clock.js";
import type { DeviceTarget } from "../../../src/ports/driver.js";
import type { SnmpBulkResult, SnmpClient, SnmpResult, Varbind } from "../../../src/ports/snmp.js";

const sample = (
  at: number,
  ticks: number | undefined,
  c: Record<number, [number, number, number, number]>,
): CounterSample => ({
  at,
  uptimeTicks: ticks,
  counters: new Map(
    Object.entries(c).map(([k, [i, o, ip, op]]) => [
      Number(k),
      { inOctets: i, outOctets: o, inUcastPkts: ip, outUcastPkts: op },
    ]),
  ),
});

describe("snmp-generic rates", () => {
  const eth = new Map([[1, 6]]);

  it("no rates on the first poll, after a reboot, or with no elapsed time", () => {
    const cur = sample(10_000, 1000, { 1: [100, 100, 1, 1] });
    expect(computeRates(undefined, cur, eth)).toEqual({});
    expect(computeRates(sample(0, 5000, { 1: [50, 50, 0, 0] }), cur, eth)).toEqual({}); // uptime went back
    expect(
      computeRates(
        sample(10_000, undefined, { 1: [50, 50, 0, 0] }),
        sample(10_000, undefined, { 1: [60, 60, 0, 0] }),
        eth,
      ),
    ).toEqual({});
  });

  it("uses sysUpTime for elapsed time and undoes a Counter32 wrap", () => {
    const prev = sample(0, 1000, { 1: [2 ** 32 - 100, 1000, 10, 20] });
    const cur = sample(99_999, 2000, { 1: [900, 3000, 30, 20] }); // 10 s of device time
    expect(computeRates(prev, cur, eth)).toEqual({
      rxBytesPerSec: 100,
      txBytesPerSec: 200,
      rxPacketsPerSec: 2,
      txPacketsPerSec: 0,
    });
  });

  it("falls back to the wall clock, skips loopback and interfaces seen once", () => {
    const types = new Map([
      [1, 6],
      [2, 24],
      [3, 6],
    ]);
    const prev = sample(0, undefined, { 1: [0, 0, 0, 0], 2: [0, 0, 0, 0] });
    const cur = sample(2000, undefined, {
      1: [200, 400, 2, 4],
      2: [1e6, 1e6, 1e6, 1e6],
      3: [5e6, 5e6, 5e6, 5e6],
    });
    expect(computeRates(prev, cur, types)).toEqual({
      rxBytesPerSec: 100,
      txBytesPerSec: 200,
      rxPacketsPerSec: 1,
      txPacketsPerSec: 2,
    });
  });

  it("property: rates are finite and non-negative for any counters", () => {
    const u32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
    const quad = fc.tuple(u32, u32, u32, u32);
    fc.assert(
      fc.property(
        quad,
        quad,
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        (a, b, t1, t2) => {
          const r = computeRates(sample(0, t1, { 1: a }), sample(60_000, t2, { 1: b }), eth);
          for (const v of Object.values(r)) {
            expect(Number.isFinite(v)).toBe(true);
            expect(v).toBeGreaterThanOrEqual(0);
          }
          expect(counter32Delta(a[0], b[0])).toBeLessThan(2 ** 32);
        },
      ),
    );
  });

  it("maps ifOperStatus and describes devices", () => {
    expect([1, 2, 3, 4, 5, 6, 7, undefined].map(operStatusState)).toEqual([
      "up",
      "down",
      "unknown",
      "unknown",
      "off",
      "off",
      "down",
      "unknown",
    ]);
    expect(
      describeDevice(
        "Videoconferencing Device, Poly StudioX30, VideoOS 3.12.0-366027",
        "1.3.6.1.4.1.13885.101",
      ),
    ).toEqual({
      vendor: "Poly",
      model: "Poly StudioX30",
    });
    expect(describeDevice("Linux host 6.1\nsecond line", "1.3.6.1.4.1.8072.3.2.10")).toEqual({
      vendor: "Net-SNMP",
      model: "Linux host 6.1",
    });
    expect(describeDevice(undefined, "1.3.6.1.4.1.424242.1")).toEqual({
      vendor: "enterprise 424242",
      model: "1.3.6.1.4.1.424242.1",
    });
  });
});

/** A scripted SnmpClient: an ordered MIB answered with GETNEXT semantics, optionally hostile. */
class FakeClient implements SnmpClient {
  calls = 0;
  constructor(
    private readonly mib: Varbind[],
    private readonly hostile?: (oid: string) => Varbind | undefined,
  ) {}
  private next(oid: string): Varbind {
    const h = this.hostile?.(oid);
    if (h) return h;
    const a = oid.split(".").map(Number);
    const found = this.mib.find((v) => cmp(v.oid.split(".").map(Number), a) > 0);
    return found ?? { oid, type: "EndOfMibView", value: null };
  }
  get(): Promise<SnmpResult<Varbind[]>> {
    throw new Error("not used");
  }
  getBulk(_t: unknown, non: string[], reps: string[], max: number): Promise<SnmpResult<SnmpBulkResult>> {
    this.calls++;
    const columns = reps.map((start) => {
      const out: Varbind[] = [];
      let cur = start;
      for (let i = 0; i < max; i++) {
        const v = this.next(cur);
        out.push(v);
        if (v.type === "EndOfMibView") break;
        cur = v.oid;
      }
      return out;
    });
    return Promise.resolve({ ok: true, value: { nonRepeaters: non.map((o) => this.next(o)), columns } });
  }
  walk(): Promise<SnmpResult<Varbind[]>> {
    throw new Error("not used");
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function cmp(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

function mibWith(interfaces: number, octets = 0): Varbind[] {
  const vbs: Varbind[] = [
    { oid: "1.3.6.1.2.1.1.1.0", type: "OctetString", value: "Some switch" },
    { oid: "1.3.6.1.2.1.1.2.0", type: "OID", value: "1.3.6.1.4.1.9.1.1" },
    { oid: "1.3.6.1.2.1.1.3.0", type: "TimeTicks", value: 100 + octets },
    { oid: "1.3.6.1.2.1.1.5.0", type: "OctetString", value: "sw1" },
    { oid: "1.3.6.1.2.1.2.1.0", type: "Integer", value: interfaces },
  ];
  for (const col of [2, 3, 8, 10, 11, 16, 17]) {
    for (let i = 1; i <= interfaces; i++) {
      const value = col === 2 ? `port${i}` : col === 3 ? 6 : col === 8 ? (i % 2 ? 1 : 2) : octets * i;
      vbs.push({ oid: `1.3.6.1.2.1.2.2.1.${col}.${i}`, type: col === 2 ? "OctetString" : "Integer", value });
    }
  }
  vbs.push({ oid: "1.3.6.1.2.1.3.1.0", type: "Integer", value: 0 });
  return vbs;
}

describe("SnmpGenericDriver.poll (scripted client)", () => {
  let now = 0;
  const clock: Clock = { now: () => now, setTimeout: () => ({ id: 0 }), clearTimeout: () => undefined };
  const target: DeviceTarget = {
    deviceId: "ip-10.0.0.1",
    address: "10.0.0.1",
    httpsPort: 443,
    snmpPort: 161,
    credentials: [{ name: "v2", type: "snmpv2c", community: "c" }],
    tags: [],
  };
  const opts = { signal: new AbortController().signal };
  const HEADER = { v: 1 as const, agentId: "a", siteId: "s", seq: 1, ts: 1, kind: "reading" as const };

  it("reads scalars and a small table in one GETBULK, then computes rates", async () => {
    const c1 = new FakeClient(mibWith(3, 0));
    const d = new SnmpGenericDriver({ client: c1, clock });
    const r1 = await d.poll(target, opts);
    expect(c1.calls).toBe(1);
    expect(Reading.safeParse({ ...HEADER, ...r1 }).success).toBe(true);
    expect(r1.identity).toEqual({
      address: "10.0.0.1",
      family: "snmp",
      vendor: "Cisco",
      model: "Some switch",
      systemName: "sw1",
    });
    expect(r1.health.map((h) => [h.name, h.state])).toEqual([
      ["if:port1", "up"],
      ["if:port2", "down"],
      ["if:port3", "up"],
    ]);
    // second poll from a new MIB state 10 s (1000 ticks) later
    (d as unknown as { opts: { client: SnmpClient } }).opts.client = new FakeClient(mibWith(3, 1000));
    now = 10_000;
    const r2 = await d.poll(target, opts);
    // in octets: 1000*(1+2+3) over (1100-100)/100 = 10 s
    expect(r2.network).toEqual({
      rxBytesPerSec: 600,
      txBytesPerSec: 600,
      rxPacketsPerSec: 600,
      txPacketsPerSec: 600,
    });
  });

  it("follows a large table with bounded extra GETBULKs and stops at maxInterfaces", async () => {
    const c = new FakeClient(mibWith(40));
    const d = new SnmpGenericDriver({ client: c, clock, rowsPerRequest: 16, maxInterfaces: 32 });
    const r = await d.poll(target, opts);
    expect(r.health).toHaveLength(32);
    expect(r.errors).toEqual([]);
    expect(c.calls).toBeLessThanOrEqual(3);
  });

  it("reports a non-increasing ifTable column as POLYFLEET_ERR_SNMP_WALK_LOOP and still returns a reading", async () => {
    const c = new FakeClient(mibWith(3), (oid) =>
      oid === "1.3.6.1.2.1.2.2.1.2.2"
        ? { oid: "1.3.6.1.2.1.2.2.1.2.1", type: "OctetString", value: "again" }
        : undefined,
    );
    const d = new SnmpGenericDriver({ client: c, clock });
    const r = await d.poll(target, opts);
    expect(r.reachable).toBe(true);
    expect(r.errors.map((e) => e.code)).toEqual(["POLYFLEET_ERR_SNMP_WALK_LOOP"]);
    expect(Reading.safeParse({ ...HEADER, ...r }).success).toBe(true);
  });

  it("never reads more than maxInterfaces rows even from an endless table", async () => {
    const endless = (oid: string): Varbind | undefined => {
      if (oid === "1.3.6.1.2.1.2.1") return { oid: "1.3.6.1.2.1.2.1.0", type: "Integer", value: 100_000 };
      const m = /^1\.3\.6\.1\.2\.1\.2\.2\.1\.(\d+)(?:\.(\d+))?$/.exec(oid);
      if (!m) return undefined;
      return { oid: `1.3.6.1.2.1.2.2.1.${m[1]}.${Number(m[2] ?? 0) + 1}`, type: "Integer", value: 1 };
    };
    const c = new FakeClient(mibWith(0), endless);
    const d = new SnmpGenericDriver({ client: c, clock, maxInterfaces: 20, rowsPerRequest: 8 });
    const r = await d.poll(target, opts);
    expect(r.health.length).toBe(20);
    expect(c.calls).toBeGreaterThan(1);
    expect(c.calls).toBeLessThanOrEqual(4);
  });

  it("returns an unreachable reading when no SNMP credential is configured", async () => {
    const d = new SnmpGenericDriver({ client: new FakeClient([]), clock });
    const r = await d.poll(
      { ...target, credentials: [{ name: "h", type: "http", user: "u", password: "p" }] },
      opts,
    );
    expect(r.reachable).toBe(false);
    expect(r.errors[0]?.code).toBe("POLYFLEET_ERR_DEVICE_AUTH");
  });
});
