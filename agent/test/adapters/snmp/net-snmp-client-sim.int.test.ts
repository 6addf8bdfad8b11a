import { Reading } from "@polyfleet/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SnmpGenericDriver } from "../../../src/adapters/drivers/snmp-generic.js";
import { NetSnmpClient, SNMP_ERRORS_METRIC } from "../../../src/adapters/snmp/net-snmp-client.js";
import { PromRegistry } from "../../../src/core/prom-registry.js";
import type { SnmpTarget } from "../../../src/ports/snmp.js";
import { type SimHandle, simV3Credential, startSim } from "./sim.js";

const SYS = "1.3.6.1.2.1.1";
const ENDPOINT_MIB = "1.3.6.1.4.1.13885.101";

describe("NetSnmpClient against the simulator's VideoOS SNMP agents", () => {
  let sim: SimHandle;
  let sha1Sim: SimHandle;
  const metrics = new PromRegistry();
  const client = new NetSnmpClient({ metrics, timeoutMs: 1000, retries: 1 });

  beforeAll(async () => {
    sim = await startSim(["--devices", "3", "--models", "videoos", "--snmp-v2c"]);
    sha1Sim = await startSim(["--devices", "1", "--models", "videoos", "--snmp-auth", "sha"]);
  });
  afterAll(async () => {
    await client.close();
    await sim?.stop();
    await sha1Sim?.stop();
  });

  const v3Target = (h: SimHandle, i: number): SnmpTarget => {
    const d = h.manifest.devices[i];
    if (!d?.snmpPort) throw new Error("no snmp");
    return { address: d.address, port: d.snmpPort, credential: simV3Credential(d) };
  };

  it("gets the system group over v3 authPriv (SHA-256/AES) from every device, reusing sessions", async () => {
    for (let i = 0; i < sim.manifest.devices.length; i++) {
      const d = sim.manifest.devices[i];
      const r = await client.get(v3Target(sim, i), [`${SYS}.1.0`, `${SYS}.2.0`, `${SYS}.3.0`, `${SYS}.5.0`]);
      expect(r.ok, JSON.stringify(r)).toBe(true);
      if (!r.ok) continue;
      expect(r.value[0]?.value).toMatch(new RegExp(`Poly ${d?.model.replace(/ /g, "")}`));
      expect(r.value[1]).toMatchObject({ type: "OID", value: ENDPOINT_MIB });
      expect(r.value[2]?.type).toBe("TimeTicks");
    }
    const again = await client.get(v3Target(sim, 0), [`${SYS}.5.0`]);
    expect(again.ok).toBe(true);
    expect(client.stats().sessions).toBe(3);
    expect(client.stats().sockets).toBe(1);
  });

  it("gets over v3 with legacy SHA-1 and over v2c with the device community", async () => {
    const r = await client.get(v3Target(sha1Sim, 0), [`${SYS}.5.0`]);
    expect(r.ok, JSON.stringify(r)).toBe(true);
    const d = sim.manifest.devices[1];
    const community = d?.snmp?.community;
    expect(community).toBeDefined();
    const v2 = await client.get(
      {
        address: d?.address ?? "",
        port: d?.snmpPort ?? 0,
        credential: { name: "v2", type: "snmpv2c", community: community ?? "" },
      },
      [`${SYS}.5.0`],
    );
    expect(v2.ok, JSON.stringify(v2)).toBe(true);
  });

  it("walks POLYCOM-ENDPOINT-MIB and the ifTable, bounded", async () => {
    const t = v3Target(sim, 0);
    const all = await client.walk(t, ENDPOINT_MIB, { maxVarbinds: 2000, maxMs: 10_000 });
    expect(all.ok).toBe(true);
    if (!all.ok) return;
    expect(all.value.length).toBeGreaterThan(30);
    const serial = all.value.find((v) => v.oid === `${ENDPOINT_MIB}.1.1.5.0`);
    expect(serial?.value).toBe(sim.manifest.devices[0]?.serial);
    const bounded = await client.walk(t, ENDPOINT_MIB, { maxVarbinds: 10, maxMs: 10_000 });
    expect(bounded).toMatchObject({ ok: false, error: { code: "POLYFLEET_ERR_SNMP_WALK_LIMIT" } });
    const bulk = await client.getBulk(t, [`${SYS}.3`], ["1.3.6.1.2.1.2.2.1.2", "1.3.6.1.2.1.2.2.1.10"], 4);
    expect(bulk.ok).toBe(true);
    if (!bulk.ok) return;
    expect(bulk.value.nonRepeaters[0]?.oid).toBe(`${SYS}.3.0`);
    expect(bulk.value.columns[0]?.[0]).toMatchObject({ oid: "1.3.6.1.2.1.2.2.1.2.1", value: "eth0" });
    expect(bulk.value.columns[1]?.[0]).toMatchObject({ oid: "1.3.6.1.2.1.2.2.1.10.1", type: "Counter" });
  });

  it("classifies a wrong auth key and an unknown user, counted, keys never in messages", async () => {
    const t = v3Target(sim, 2);
    const cred = t.credential;
    if (cred.type !== "snmpv3") throw new Error("v3 expected");
    const authBefore = metrics.get(SNMP_ERRORS_METRIC, { reason: "auth" });
    const userBefore = metrics.get(SNMP_ERRORS_METRIC, { reason: "unknown_user" });
    const timeoutBefore = metrics.get(SNMP_ERRORS_METRIC, { reason: "timeout" });
    // net-snmp's agent (the simulator) drops a request with a wrong digest without a usmStatsWrongDigests
    // report, so this is a timeout here; against the real snmpd it is an auth failure (snmp-generic test).
    const wrong = await client.get(
      { ...t, credential: { ...cred, name: "wrong-key", authKey: "definitely-wrong" } },
      [`${SYS}.5.0`],
      { timeoutMs: 400 },
    );
    expect(wrong).toMatchObject({ ok: false, error: { code: "POLYFLEET_ERR_SNMP_TIMEOUT" } });
    expect(metrics.get(SNMP_ERRORS_METRIC, { reason: "timeout" })).toBe(timeoutBefore + 1);
    const ghost = await client.get({ ...t, credential: { ...cred, name: "ghost", user: "ghost" } }, [
      `${SYS}.5.0`,
    ]);
    expect(ghost).toMatchObject({ ok: false, error: { code: "POLYFLEET_ERR_SNMP_AUTH" } });
    expect(metrics.get(SNMP_ERRORS_METRIC, { reason: "auth" })).toBe(authBefore);
    expect(metrics.get(SNMP_ERRORS_METRIC, { reason: "unknown_user" })).toBe(userBefore + 1);
    for (const r of [wrong, ghost]) {
      if (r.ok) continue;
      expect(r.error.message).not.toContain(cred.authKey);
      expect(r.error.message).not.toContain(cred.privKey);
      expect(r.error.message).not.toContain("definitely-wrong");
    }
    // the good credential still works on the same device
    expect((await client.get(t, [`${SYS}.5.0`])).ok).toBe(true);
  });

  it("snmp-generic polls a simulated Studio X / G7500 over v3 in one GETBULK", async () => {
    const d = sim.manifest.devices[0];
    if (!d?.snmpPort) throw new Error("no snmp");
    const driver = new SnmpGenericDriver({ client });
    const target = {
      deviceId: d.id,
      address: d.address,
      httpsPort: d.httpsPort,
      snmpPort: d.snmpPort,
      credentials: [simV3Credential(d)],
      tags: [],
    };
    const r = await driver.poll(target, { signal: AbortSignal.timeout(5000) });
    expect(
      Reading.safeParse({ v: 1, agentId: "a", siteId: "s", seq: 1, ts: 1, kind: "reading", ...r }).success,
    ).toBe(true);
    expect(r.reachable).toBe(true);
    expect(r.errors).toEqual([]);
    expect(r.identity).toMatchObject({
      family: "snmp",
      vendor: "Poly",
      model: `Poly ${d.model.replace(/ /g, "")}`,
    });
    expect(r.health).toEqual([{ name: "if:eth0", state: "up", detail: "ifIndex 1" }]);
    expect(r.uptimeSec).toBeGreaterThan(0);
  });
});
