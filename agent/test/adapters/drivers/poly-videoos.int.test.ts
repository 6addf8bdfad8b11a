import { Mac, Reading } from "@polyfleet/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolyUcsDriver } from "../../../src/adapters/drivers/poly-ucs.js";
import { PolyVideoOsDriver, VIDEOOS_LOGINS_METRIC } from "../../../src/adapters/drivers/poly-videoos.js";
import {
  type HttpsJsonClient,
  type HttpsRequest,
  type HttpsResult,
  UndiciHttpsClient,
} from "../../../src/adapters/http/https-client.js";
import { NetSnmpClient } from "../../../src/adapters/snmp/net-snmp-client.js";
import { VIDEOOS_SNMP_OIDS } from "../../../src/core/normalize-videoos.js";
import { PromRegistry } from "../../../src/core/prom-registry.js";
import type { Clock } from "../../../src/ports/clock.js";
import type { ReadingBody } from "../../../src/ports/driver.js";
import type { SnmpBulkResult, SnmpClient, SnmpResult, SnmpTarget, Varbind } from "../../../src/ports/snmp.js";
import { pollOpts, type SimDevice, type SimHandle, sleep, startSim, targetOf } from "../../helpers/sim.js";

class CountingClient implements HttpsJsonClient {
  readonly sent: string[] = [];
  /** How often close() was called: a driver must never close the client it was given. */
  closes = 0;
  constructor(private readonly inner: HttpsJsonClient) {}
  request(req: HttpsRequest): Promise<HttpsResult> {
    this.sent.push(`${req.address} ${req.method} ${req.path}`);
    return this.inner.request(req);
  }
  logins(address: string): number {
    return this.sent.filter((s) => s === `${address} POST /rest/current/session`).length;
  }
  peerFingerprint(a: string, p: number): string | undefined {
    return this.inner.peerFingerprint(a, p);
  }
  closeOrigin(a: string, p: number): Promise<void> {
    return this.inner.closeOrigin(a, p);
  }
  close(): Promise<void> {
    this.closes++;
    return this.inner.close();
  }
}

/** An explicit fake of the SnmpClient port: answers from a table the test sets. */
class FakeSnmp implements SnmpClient {
  values = new Map<string, number>();
  failWith: string | undefined;
  readonly calls: { target: SnmpTarget; oids: string[] }[] = [];
  get(target: SnmpTarget, oids: string[]): Promise<SnmpResult<Varbind[]>> {
    this.calls.push({ target, oids });
    if (this.failWith)
      return Promise.resolve({ ok: false, error: { code: this.failWith, message: "fake failure" } });
    return Promise.resolve({
      ok: true,
      value: oids.map((oid) => ({ oid, type: "Counter32", value: this.values.get(oid) ?? null })),
    });
  }
  getBulk(): Promise<SnmpResult<SnmpBulkResult>> {
    return Promise.resolve({ ok: false, error: { code: "POLYFLEET_ERR_SNMP_TIMEOUT", message: "not used" } });
  }
  walk(): Promise<SnmpResult<Varbind[]>> {
    return Promise.resolve({ ok: true, value: [] });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function manualClock(start = 1_700_000_000_000): Clock & { advance(ms: number): void } {
  let now = start;
  return {
    now: () => now,
    setTimeout: (fn, ms) => ({ id: setTimeout(fn, ms) }),
    clearTimeout: (h) => clearTimeout(h.id as NodeJS.Timeout),
    advance(ms: number) {
      now += ms;
    },
  };
}

function assertContract(r: ReadingBody): void {
  const full = { ...r, v: 1, agentId: "agent-1", siteId: "site-1", seq: 1, ts: Date.now(), kind: "reading" };
  const parsed = Reading.safeParse(full);
  if (!parsed.success) throw new Error(JSON.stringify(parsed.error.issues));
}

const health = (r: ReadingBody, name: string) => r.health.find((h) => h.name === name)?.state;

describe("PolyVideoOsDriver against the simulator", () => {
  let sim: SimHandle;
  let metrics: PromRegistry;
  let http: CountingClient;
  let driver: PolyVideoOsDriver;
  let devices: SimDevice[];
  const used = new Set<string>();
  const byModel = new Map<string, SimDevice>();

  beforeAll(async () => {
    sim = await startSim([
      "--devices",
      "24",
      "--models",
      "videoos",
      "--seed",
      "10",
      "--reboot-ms",
      "800",
      "--slow-ms",
      "200",
      "--flap-period-ms",
      "1600",
    ]);
    devices = sim.manifest.devices;
    for (const d of devices) if (!byModel.has(d.model)) byModel.set(d.model, d);
    for (const d of byModel.values()) used.add(d.id);
    metrics = new PromRegistry();
    http = new CountingClient(new UndiciHttpsClient({ metrics, timeoutMs: 2000 }));
    driver = new PolyVideoOsDriver({ http, metrics, requestTimeoutMs: 2000 });
  });
  afterAll(async () => {
    await driver?.close();
    // The test owns the client: the driver's close() leaves it open.
    await http?.close();
    await sim?.stop();
  });

  function fresh(): SimDevice {
    const d = devices.find((x) => !used.has(x.id));
    if (!d) throw new Error("ran out of simulated devices");
    used.add(d.id);
    return d;
  }
  const fault = (d: SimDevice, add: string[], remove: string[] = []) =>
    sim.control("POST", `/devices/${d.id}/faults`, { add, remove });

  it("polls every model into a complete reading without SNMP", async () => {
    expect([...byModel.keys()].sort()).toEqual(["G7500", "StudioX30", "StudioX50", "StudioX70"]);
    for (const d of byModel.values()) {
      const r = await driver.poll(targetOf(d), pollOpts());
      assertContract(r);
      expect(r.errors).toEqual([]);
      expect(r.reachable).toBe(true);
      expect(r.driver).toBe("poly-videoos");
      expect(r.identity).toMatchObject({ model: d.model, family: "videoos", serial: d.serial, mac: d.mac });
      expect(r.identity.systemName).toBeTruthy();
      expect(r.firmware[0]).toEqual({ component: "system", version: d.firmware, build: d.build });
      expect(r.firmware.some((f) => f.component === "Poly TC8")).toBe(true);
      for (const name of ["camera", "microphone", "sipserver", "ipnetwork"])
        expect(health(r, name)).toBe("up");
      expect(health(r, "provisioning")).toBe("off");
      const tc8 = r.peripherals.find((p) => p.name === "Poly TC8");
      expect(tc8?.state).toBe("paired");
      expect(r.peripherals.find((p) => p.category === "camera")?.state).toBe("connected");
      expect(r.peripherals.some((p) => p.id === "local-system")).toBe(false);
      expect(r.inCall).toBe(false);
      expect(r.uptimeSec).toBeGreaterThan(3000);
      expect(r.network.linkSpeedMbps).toBe(1000);
      expect(r.network.rxBytesPerSec).toBeUndefined();
    }
  });

  it("identify() returns the driver name and identity", async () => {
    const d = fresh();
    const id = await driver.identify(targetOf(d), pollOpts());
    expect(id).toMatchObject({
      ok: true,
      driver: "poly-videoos",
      via: ["https"],
      identity: { model: d.model, serial: d.serial, family: "videoos" },
    });
  });

  it("identify() and poll() report the manifest's MAC (the device id) for every model", async () => {
    // A driver of its own, so identify() runs on devices it has never polled (no identity to carry over).
    const own = new PolyVideoOsDriver({ http, requestTimeoutMs: 2000 });
    try {
      for (const d of byModel.values()) {
        const id = await own.identify(targetOf(d), pollOpts());
        if (!id.ok) throw new Error(`identify ${d.model}: ${id.error.code} ${id.error.message}`);
        expect(id.identity.mac).toBe(d.mac);
        expect(Mac.safeParse(id.identity.mac).success).toBe(true);
        // The agent's device id for a simulated device is its MAC: discovery and polls agree on it.
        expect(id.identity.mac).toBe(targetOf(d).deviceId);
        const r = await own.poll(targetOf(d), pollOpts());
        expect(r.errors).toEqual([]);
        expect(r.identity.mac).toBe(d.mac);
      }
    } finally {
      await own.close();
    }
  });

  it("close() releases its own sessions but leaves a shared HTTPS client open", async () => {
    const d = fresh();
    const t = targetOf(d);
    const shared = new CountingClient(new UndiciHttpsClient({ timeoutMs: 2000 }));
    const video = new PolyVideoOsDriver({ http: shared, requestTimeoutMs: 2000 });
    const uc = new PolyUcsDriver({ http: shared, requestTimeoutMs: 2000 });
    try {
      expect((await video.poll(t, pollOpts())).errors).toEqual([]);
      expect(shared.logins(d.address)).toBe(1);
      // The composition root shares one client between the drivers: closing one must not break the other.
      await uc.close();
      expect(shared.closes).toBe(0);
      const again = await video.poll(t, pollOpts());
      expect(again.errors).toEqual([]);
      expect(again.reachable).toBe(true);
      expect(shared.logins(d.address)).toBe(1);

      await video.close();
      expect(shared.closes).toBe(0);
      // The client still works for anyone else holding it...
      const other = new PolyVideoOsDriver({ http: shared, requestTimeoutMs: 2000 });
      try {
        expect((await other.poll(t, pollOpts())).errors).toEqual([]);
      } finally {
        await other.close();
      }
      // ...and the closed driver's own per-device state is gone: its next poll starts a new session.
      const before = shared.logins(d.address);
      expect((await video.poll(t, pollOpts())).errors).toEqual([]);
      expect(shared.logins(d.address)).toBe(before + 1);
    } finally {
      await video.close();
      await shared.close();
    }
    expect(shared.closes).toBe(1);
  });

  it("reuses the session across polls and renews it after a device reboot", async () => {
    const d = fresh();
    const t = targetOf(d);
    for (let i = 0; i < 3; i++) expect((await driver.poll(t, pollOpts())).errors).toEqual([]);
    expect(http.logins(d.address)).toBe(1);
    await sim.control("POST", `/devices/${d.id}/reboot`, {});
    const away = await driver.poll(t, pollOpts());
    expect(away.reachable).toBe(false);
    expect(away.errors[0]?.code).toBe("POLYFLEET_ERR_DEVICE_UNREACHABLE");
    await sleep(1000);
    const back = await driver.poll(t, pollOpts());
    expect(back.errors).toEqual([]);
    expect(back.uptimeSec).toBeLessThan(10);
    // The reboot dropped the session: one new login (403 → login → retry), then reuse again.
    expect(http.logins(d.address)).toBe(2);
    await driver.poll(t, pollOpts());
    expect(http.logins(d.address)).toBe(2);
    expect(metrics.total(VIDEOOS_LOGINS_METRIC)).toBeGreaterThanOrEqual(2);
  });

  it("reboot() posts the reboot and the device comes back", async () => {
    const d = fresh();
    const t = targetOf(d);
    expect((await driver.reboot(t, pollOpts())).ok).toBe(true);
    expect((await driver.poll(t, pollOpts())).reachable).toBe(false);
    await sleep(1000);
    const back = await driver.poll(t, pollOpts());
    expect(back.reachable).toBe(true);
    expect(back.uptimeSec).toBeLessThan(10);
  });

  it("reads the in-call state from /rest/conferences", async () => {
    const d = fresh();
    await sim.control("POST", `/devices/${d.id}/call`, { active: true });
    expect((await driver.poll(targetOf(d), pollOpts())).inCall).toBe(true);
    await sim.control("POST", `/devices/${d.id}/call`, { active: false });
    expect((await driver.poll(targetOf(d), pollOpts())).inCall).toBe(false);
  });

  describe("faults", () => {
    it("noAnswer: unreachable with a timeout", async () => {
      const d = fresh();
      await fault(d, ["noAnswer"]);
      const r = await driver.poll(targetOf(d), pollOpts());
      assertContract(r);
      expect(r.reachable).toBe(false);
      expect(r.errors[0]?.code).toBe("POLYFLEET_ERR_DEVICE_TIMEOUT");
    });

    it("slow: complete reading, later", async () => {
      const d = fresh();
      await fault(d, ["slow"]);
      const r = await driver.poll(targetOf(d), pollOpts());
      expect(r.errors).toEqual([]);
      expect(r.pollLatencyMs).toBeGreaterThanOrEqual(4 * 200);
    });

    it("flapping: up, then away", async () => {
      const d = fresh();
      await fault(d, ["flapping"]);
      expect((await driver.poll(targetOf(d), pollOpts())).reachable).toBe(true);
      await sleep(900);
      const away = await driver.poll(targetOf(d), pollOpts());
      expect(away.reachable).toBe(false);
      expect(away.identity.model).toBe(d.model);
    });

    it("http500, malformedJson, truncatedJson: reachable with the matching error", async () => {
      const cases: [string, string][] = [
        ["http500", "POLYFLEET_ERR_DEVICE_HTTP"],
        ["malformedJson", "POLYFLEET_ERR_DEVICE_BAD_RESPONSE"],
        ["truncatedJson", "POLYFLEET_ERR_DEVICE_BAD_RESPONSE"],
      ];
      for (const [f, code] of cases) {
        const d = fresh();
        await fault(d, [f]);
        const r = await driver.poll(targetOf(d), pollOpts());
        assertContract(r);
        expect(r.reachable).toBe(true);
        expect(r.errors[0]?.code).toBe(code);
      }
    });

    it("wrongCredentials: auth error after one re-login attempt, no secret leaked", async () => {
      const d = fresh();
      const t = targetOf(d);
      expect((await driver.poll(t, pollOpts())).errors).toEqual([]);
      const before = http.logins(d.address);
      await fault(d, ["wrongCredentials"]);
      const r = await driver.poll(t, pollOpts());
      expect(r.reachable).toBe(true);
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0]?.code).toBe("POLYFLEET_ERR_DEVICE_AUTH");
      expect(http.logins(d.address) - before).toBe(1);
      expect(JSON.stringify(r)).not.toContain(d.admin.password);
    });

    it("cameraDown, microphoneDown, sipUnregistered: health items down, camera missing", async () => {
      const d = fresh();
      await fault(d, ["cameraDown", "microphoneDown", "sipUnregistered"]);
      const r = await driver.poll(targetOf(d), pollOpts());
      expect(r.errors).toEqual([]);
      expect(health(r, "camera")).toBe("down");
      expect(health(r, "trackablecamera")).toBe("down");
      expect(health(r, "microphone")).toBe("down");
      expect(health(r, "sipserver")).toBe("down");
      expect(health(r, "ipnetwork")).toBe("up");
      expect(r.peripherals.find((p) => p.category === "camera")?.state).toBe("missing");
    });

    it("highCpu, highMemory, packetLoss: the REST reading stays complete", async () => {
      // VideoOS REST exposes no CPU, memory or media statistics; these faults change nothing it reports.
      const d = fresh();
      await fault(d, ["highCpu", "highMemory", "packetLoss"]);
      const r = await driver.poll(targetOf(d), pollOpts());
      expect(r.errors).toEqual([]);
      expect(r.reachable).toBe(true);
    });

    it("rebootLoop: away, then back with a low uptime", async () => {
      const d = fresh();
      const t = targetOf(d);
      await driver.poll(t, pollOpts());
      await fault(d, ["rebootLoop"]);
      expect((await driver.poll(t, pollOpts())).reachable).toBe(false);
      await sleep(1000);
      const back = await driver.poll(t, pollOpts());
      expect(back.errors).toEqual([]);
      expect(back.uptimeSec).toBeLessThan(10);
      // The simulator's reboot loop keeps sessions (no bootGeneration bump): at most one re-login.
      expect(http.logins(d.address)).toBeLessThanOrEqual(2);
    });
  });

  describe("with an SNMP client (explicit fake)", () => {
    const O = VIDEOOS_SNMP_OIDS;
    it("adds IF-MIB rates (wrap and reboot handled) and MIB hardware health", async () => {
      const d = fresh();
      const snmp = new FakeSnmp();
      const clock = manualClock();
      const own = new UndiciHttpsClient();
      const drv = new PolyVideoOsDriver({ http: own, snmp, clock });
      try {
        const t = targetOf(d);
        const set = (uptimeTicks: number, inOct: number, outOct: number, inPk: number, outPk: number) => {
          snmp.values.set(O.sysUpTime, uptimeTicks);
          snmp.values.set(O.ifInOctets, inOct);
          snmp.values.set(O.ifOutOctets, outOct);
          snmp.values.set(O.ifInUcastPkts, inPk);
          snmp.values.set(O.ifOutUcastPkts, outPk);
          snmp.values.set(O.hardwareOverallStatus, 2);
          snmp.values.set(O.hardwareCameraStatus, 3);
          snmp.values.set(O.hardwareMicrophoneStatus, 2);
        };
        set(100_000, 1000, 2000, 10, 20);
        const r1 = await drv.poll(t, pollOpts());
        expect(r1.network.rxBytesPerSec).toBeUndefined();
        expect(health(r1, "hardware")).toBe("up");
        expect(health(r1, "hardwareCamera")).toBe("down");
        expect(snmp.calls[0]?.target).toMatchObject({ address: d.address, port: d.snmpPort });
        expect(snmp.calls[0]?.target.credential.type).toBe("snmpv3");

        clock.advance(10_000);
        set(101_000, 11_000, 4000, 110, 70);
        const r2 = await drv.poll(t, pollOpts());
        expect(r2.network).toMatchObject({
          rxBytesPerSec: 1000,
          txBytesPerSec: 200,
          rxPacketsPerSec: 10,
          txPacketsPerSec: 5,
        });

        clock.advance(10_000);
        set(102_000, 2 ** 32 - 500, 5000, 120, 80);
        await drv.poll(t, pollOpts());
        clock.advance(10_000);
        set(103_000, 500, 6000, 130, 90); // ifInOctets wrapped
        const r4 = await drv.poll(t, pollOpts());
        expect(r4.network.rxBytesPerSec).toBe(100);

        clock.advance(10_000);
        set(50, 10, 10, 1, 1); // rebooted: uptime and counters back near 0
        const r5 = await drv.poll(t, pollOpts());
        expect(r5.network.rxBytesPerSec).toBeUndefined();
        expect(r5.network.txPacketsPerSec).toBeUndefined();

        snmp.failWith = "POLYFLEET_ERR_SNMP_TIMEOUT";
        const r6 = await drv.poll(t, pollOpts());
        expect(r6.reachable).toBe(true);
        expect(r6.errors.map((e) => e.code)).toEqual(["POLYFLEET_ERR_SNMP_TIMEOUT"]);
        expect(r6.health.some((h) => h.name === "camera")).toBe(true);
      } finally {
        await drv.close();
        await own.close();
      }
    });

    it("with the real net-snmp client against the simulator's SNMP agent (v3 authPriv)", async () => {
      const d = fresh();
      const snmpMetrics = new PromRegistry();
      const snmp = new NetSnmpClient({ metrics: snmpMetrics });
      const own = new UndiciHttpsClient();
      const drv = new PolyVideoOsDriver({ http: own, snmp });
      try {
        const t = targetOf(d);
        const r1 = await drv.poll(t, pollOpts());
        expect(r1.errors).toEqual([]);
        expect(health(r1, "hardware")).toBe("up");
        expect(health(r1, "hardwareCamera")).toBe("up");
        await fault(d, ["cameraDown"]);
        await sleep(1100);
        const r2 = await drv.poll(t, pollOpts());
        expect(r2.errors).toEqual([]);
        expect(health(r2, "hardware")).toBe("down");
        expect(health(r2, "hardwareCamera")).toBe("down");
        // The simulated bar moves 4..64 packets/s at ~200 bytes each.
        expect(r2.network.rxPacketsPerSec).toBeGreaterThan(0);
        expect(r2.network.rxPacketsPerSec).toBeLessThan(100);
        expect(r2.network.rxBytesPerSec).toBeGreaterThan(100 * (r2.network.rxPacketsPerSec ?? 0));
      } finally {
        await drv.close();
        await own.close();
        await snmp.close();
      }
    });

    it("does not call SNMP for a device without an SNMP credential", async () => {
      const d = fresh();
      const snmp = new FakeSnmp();
      const own = new UndiciHttpsClient();
      const drv = new PolyVideoOsDriver({ http: own, snmp });
      try {
        const r = await drv.poll(targetOf(d, { withSnmp: false }), pollOpts());
        expect(r.errors).toEqual([]);
        expect(snmp.calls).toHaveLength(0);
      } finally {
        await drv.close();
        await own.close();
      }
    });
  });
});
