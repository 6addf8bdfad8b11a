import { type SnmpdHandle, startSnmpd } from "@polyfleet/scripts/testing";
import { Reading } from "@polyfleet/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SnmpGenericDriver } from "../../../src/adapters/drivers/snmp-generic.js";
import { NetSnmpClient, SNMP_ERRORS_METRIC } from "../../../src/adapters/snmp/net-snmp-client.js";
import { PromRegistry } from "../../../src/core/prom-registry.js";
import type { ResolvedCredential } from "../../../src/ports/credentials.js";
import type { DeviceTarget, ReadingBody } from "../../../src/ports/driver.js";

const COMMUNITY = `c${Math.random().toString(36).slice(2, 10)}`;
const V3: Extract<ResolvedCredential, { type: "snmpv3" }> = {
  name: "lab-v3",
  type: "snmpv3",
  user: "polyfleet",
  level: "authPriv",
  authProtocol: "sha256",
  authKey: "auth-pass-2468",
  privProtocol: "aes128",
  privKey: "priv-pass-1357",
};

function target(snmpd: SnmpdHandle, credentials: ResolvedCredential[]): DeviceTarget {
  return {
    deviceId: `ip-${snmpd.address}`,
    address: snmpd.address,
    httpsPort: 443,
    snmpPort: snmpd.port,
    credentials,
    tags: [],
  };
}

const signal = () => AbortSignal.timeout(10_000);
const HEADER = {
  v: 1 as const,
  agentId: "a1",
  siteId: "s1",
  seq: 1,
  ts: Date.now(),
  kind: "reading" as const,
};

function expectValidReading(r: ReadingBody): void {
  const parsed = Reading.safeParse({ ...HEADER, ...r });
  expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
}

describe("snmp-generic against a real Net-SNMP snmpd", () => {
  let snmpd: SnmpdHandle;
  const metrics = new PromRegistry();
  const client = new NetSnmpClient({ metrics, timeoutMs: 1000, retries: 1 });

  beforeAll(async () => {
    snmpd = await startSnmpd({
      v2cCommunity: COMMUNITY,
      v3User: {
        user: V3.user,
        authProtocol: "SHA-256",
        authKey: V3.authKey,
        privProtocol: "AES",
        privKey: V3.privKey,
      },
    });
  });
  afterAll(async () => {
    await client.close();
    await snmpd?.stop();
  });

  for (const [label, cred] of [
    ["v2c", { name: "lab-v2c", type: "snmpv2c", community: COMMUNITY } as ResolvedCredential],
    ["v3 authPriv SHA-256/AES-128", V3 as ResolvedCredential],
  ] as const) {
    it(`${label}: identifies, polls twice with an interface table and sane rates`, async () => {
      const driver = new SnmpGenericDriver({ client });
      const t = target(snmpd, [cred]);
      const id = await driver.identify(t, { signal: signal() });
      expect(id.ok, JSON.stringify(id)).toBe(true);
      if (!id.ok) return;
      expect(id.driver).toBe("snmp-generic");
      expect(id.via).toEqual(["snmp"]);
      expect(id.identity).toMatchObject({
        address: snmpd.address,
        family: "snmp",
        vendor: "Net-SNMP",
        systemName: "polyfleet-snmpd-test",
      });
      expect(id.identity.model).toMatch(/^Linux /);

      const first = await driver.poll(t, { signal: signal() });
      expectValidReading(first);
      expect(first.reachable).toBe(true);
      expect(first.errors).toEqual([]);
      expect(first.uptimeSec).toBeGreaterThanOrEqual(0);
      // snmpd on Linux lists at least the loopback interface, with ifDescr "lo", up
      expect(first.health.find((h) => h.name === "if:lo")).toMatchObject({ state: "up" });
      expect(first.network).toEqual({}); // no rates on the first poll

      await new Promise((r) => setTimeout(r, 1200));
      const second = await driver.poll(t, { signal: signal() });
      expectValidReading(second);
      expect(second.reachable).toBe(true);
      expect(second.errors).toEqual([]);
      expect(second.uptimeSec).toBeGreaterThan(first.uptimeSec ?? Number.POSITIVE_INFINITY);
      expect(second.health.length).toBe(first.health.length);
      const n = second.network;
      for (const k of ["rxBytesPerSec", "txBytesPerSec", "rxPacketsPerSec", "txPacketsPerSec"] as const) {
        const v = n[k];
        // present when a non-loopback interface exists (eth0 here); always finite and non-negative
        if (v !== undefined) {
          expect(Number.isFinite(v)).toBe(true);
          expect(v).toBeGreaterThanOrEqual(0);
          expect(v).toBeLessThan(10e9 / 8); // below 10 Gbit/s on a test box
        }
      }
    });
  }

  it("tries the next credential when the first one fails and remembers the one that worked", async () => {
    const driver = new SnmpGenericDriver({ client, timeoutMs: 400 });
    const wrong: ResolvedCredential = { ...V3, name: "wrong", authKey: "not-the-auth-key" };
    const t = target(snmpd, [wrong, V3]);
    const r = await driver.poll({ ...t, deviceId: "ip-retry" }, { signal: signal() });
    expect(r.reachable).toBe(true);
    expect(metrics.get(SNMP_ERRORS_METRIC, { reason: "auth" })).toBeGreaterThanOrEqual(1);
    const authErrors = metrics.get(SNMP_ERRORS_METRIC, { reason: "auth" });
    const again = await driver.poll({ ...t, deviceId: "ip-retry" }, { signal: signal() });
    expect(again.reachable).toBe(true);
    expect(metrics.get(SNMP_ERRORS_METRIC, { reason: "auth" })).toBe(authErrors); // went straight to V3
  });

  it("reports unreachable (a value, not an exception) for a wrong community and an unknown v3 user", async () => {
    const driver = new SnmpGenericDriver({ client, timeoutMs: 300 });
    const bad = await driver.poll(target(snmpd, [{ name: "x", type: "snmpv2c", community: "nope-nope" }]), {
      signal: signal(),
    });
    expectValidReading(bad);
    expect(bad.reachable).toBe(false);
    expect(bad.errors[0]?.code).toBe("POLYFLEET_ERR_SNMP_TIMEOUT");
    const before = metrics.get(SNMP_ERRORS_METRIC, { reason: "unknown_user" });
    const ghost = await driver.poll(target(snmpd, [{ ...V3, name: "ghost", user: "ghost" }]), {
      signal: signal(),
    });
    expect(ghost.reachable).toBe(false);
    expect(ghost.errors[0]?.code).toBe("POLYFLEET_ERR_SNMP_AUTH");
    expect(ghost.errors[0]?.message).not.toContain(V3.authKey);
    expect(metrics.get(SNMP_ERRORS_METRIC, { reason: "unknown_user" })).toBe(before + 1);
  });

  it("reboot is not supported", async () => {
    const driver = new SnmpGenericDriver({ client });
    const r = await driver.reboot(target(snmpd, [V3]), { signal: signal() });
    expect(r).toMatchObject({ ok: false, error: { code: "POLYFLEET_ERR_DEVICE_ACTION_UNSUPPORTED" } });
  });

  it("walks the interface table through the client, bounded", async () => {
    const t = { address: snmpd.address, port: snmpd.port, credential: V3 };
    const all = await client.walk(t, "1.3.6.1.2.1.2.2.1.2", { maxVarbinds: 1000, maxMs: 5000 });
    expect(all.ok).toBe(true);
    if (!all.ok) return;
    expect(all.value.map((v) => v.value)).toContain("lo");
    const few = await client.walk(t, "1.3.6.1.2.1.2.2", { maxVarbinds: 3, maxMs: 5000 });
    expect(few).toMatchObject({ ok: false, error: { code: "POLYFLEET_ERR_SNMP_WALK_LIMIT" } });
  });
});
