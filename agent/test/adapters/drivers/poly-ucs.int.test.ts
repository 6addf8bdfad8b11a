import { Reading } from "@polyfleet/shared";
import { Client } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolyUcsDriver } from "../../../src/adapters/drivers/poly-ucs.js";
import {
  BAD_RESPONSES_METRIC,
  type HttpsJsonClient,
  type HttpsRequest,
  type HttpsResult,
  UndiciHttpsClient,
} from "../../../src/adapters/http/https-client.js";
import { PromRegistry } from "../../../src/core/prom-registry.js";
import type { ReadingBody } from "../../../src/ports/driver.js";
import { pollOpts, type SimDevice, type SimHandle, sleep, startSim, targetOf } from "../../helpers/sim.js";

/** Wraps the real client to count requests per path (an independent view of what the driver sends). */
class CountingClient implements HttpsJsonClient {
  readonly paths: string[] = [];
  /** How often close() was called: a driver must never close the client it was given. */
  closes = 0;
  inFlight = new Map<string, number>();
  maxInFlight = 0;
  constructor(private readonly inner: HttpsJsonClient) {}
  async request(req: HttpsRequest): Promise<HttpsResult> {
    this.paths.push(`${req.method} ${req.path}`);
    const n = (this.inFlight.get(req.address) ?? 0) + 1;
    this.inFlight.set(req.address, n);
    this.maxInFlight = Math.max(this.maxInFlight, n);
    try {
      return await this.inner.request(req);
    } finally {
      this.inFlight.set(req.address, (this.inFlight.get(req.address) ?? 1) - 1);
    }
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

/** A reading stamped with a stream header must satisfy the shared Reading contract. */
function assertContract(r: ReadingBody): void {
  const full = { ...r, v: 1, agentId: "agent-1", siteId: "site-1", seq: 1, ts: Date.now(), kind: "reading" };
  const parsed = Reading.safeParse(full);
  if (!parsed.success) throw new Error(JSON.stringify(parsed.error.issues));
}

function health(r: ReadingBody, name: string): string | undefined {
  return r.health.find((h) => h.name === name)?.state;
}

describe("PolyUcsDriver against the simulator", () => {
  let sim: SimHandle;
  let metrics: PromRegistry;
  let http: CountingClient;
  let driver: PolyUcsDriver;
  const byModel = new Map<string, SimDevice>();
  const used = new Set<string>();
  let devices: SimDevice[];

  beforeAll(async () => {
    sim = await startSim([
      "--devices",
      "40",
      "--models",
      "VVX 350,VVX 501,Trio 8800,CCX 500,Trio 8300",
      "--reboot-ms",
      "800",
      "--slow-ms",
      "300",
      "--flap-period-ms",
      "1600",
      "--seed",
      "10",
    ]);
    devices = sim.manifest.devices;
    for (const d of devices) if (!byModel.has(d.model)) byModel.set(d.model, d);
    for (const d of byModel.values()) used.add(d.id);
    metrics = new PromRegistry();
    http = new CountingClient(new UndiciHttpsClient({ metrics, timeoutMs: 2000 }));
    driver = new PolyUcsDriver({ http, metrics, requestTimeoutMs: 2000 });
  });
  afterAll(async () => {
    await driver?.close();
    // The test owns the client: the driver's close() leaves it open.
    await http?.close();
    await sim?.stop();
  });

  /** Devices are used one per test so faults never leak between tests. */
  function fresh(pred: (d: SimDevice) => boolean = () => true): SimDevice {
    const d = devices.find((x) => !used.has(x.id) && pred(x));
    if (!d) throw new Error("ran out of simulated devices");
    used.add(d.id);
    return d;
  }
  async function fault(d: SimDevice, add: string[], remove: string[] = []): Promise<void> {
    await sim.control("POST", `/devices/${d.id}/faults`, { add, remove });
  }

  it("polls every model into a complete, contract-valid reading", async () => {
    expect(byModel.size).toBe(5);
    for (const d of byModel.values()) {
      const r = await driver.poll(targetOf(d), pollOpts());
      assertContract(r);
      expect(r.errors).toEqual([]);
      expect(r.reachable).toBe(true);
      expect(r.driver).toBe("poly-ucs");
      expect(r.identity).toMatchObject({
        model: d.model,
        family: "uc",
        mac: d.mac,
        serial: d.mac.toUpperCase(),
      });
      expect(r.identity.partNumber).toBe(d.partNumber.replace(/^\d+-/, ""));
      const app = r.firmware.find((f) => f.component === "application");
      expect(app?.version).toBe(d.firmware);
      expect(app?.build).toMatch(/\d{2}-[A-Z][a-z]{2}-\d{2}/);
      expect(r.firmware.map((f) => f.component).sort()).toEqual(["application", "bootBlock", "updater"]);
      expect(r.lines.length).toBeGreaterThan(0);
      expect(r.lines.every((l) => l.registered && l.address.includes("@"))).toBe(true);
      expect(health(r, "status")).toBe("up");
      expect(health(r, "sipRegistration")).toBe("up");
      expect(r.cpuPct).toBeGreaterThan(0);
      expect(r.cpuPct).toBeLessThan(60);
      expect(r.memPct).toBeGreaterThan(30);
      expect(r.memPct).toBeLessThan(70);
      expect(r.uptimeSec).toBeGreaterThan(3000);
      expect(r.inCall).toBe(false);
      expect(r.network.linkSpeedMbps).toBe(1000);
      // First poll: no rate yet.
      expect(r.network.rxPacketsPerSec).toBeUndefined();
    }
  });

  it("identify() fingerprints a phone and returns the driver name and identity", async () => {
    const d = fresh();
    const id = await driver.identify(targetOf(d), pollOpts());
    expect(id).toMatchObject({ ok: true, driver: "poly-ucs", via: ["https"] });
    if (id.ok) expect(id.identity).toMatchObject({ model: d.model, mac: d.mac, serial: d.mac.toUpperCase() });
  });

  it("computes packet rates from counter deltas, and none across a reboot", async () => {
    const d = fresh();
    const t = targetOf(d);
    await driver.poll(t, pollOpts());
    await sleep(1200);
    const r2 = await driver.poll(t, pollOpts());
    // The simulator's phones send 4..34 and receive 5..45 packets/s when idle.
    expect(r2.network.rxPacketsPerSec).toBeGreaterThanOrEqual(4);
    expect(r2.network.rxPacketsPerSec).toBeLessThanOrEqual(46);
    expect(r2.network.txPacketsPerSec).toBeGreaterThanOrEqual(3);
    expect(r2.network.txPacketsPerSec).toBeLessThanOrEqual(35);
    await sim.control("POST", `/devices/${d.id}/reboot`, {});
    const during = await driver.poll(t, pollOpts());
    expect(during.reachable).toBe(false);
    expect(during.errors[0]?.code).toBe("POLYFLEET_ERR_DEVICE_UNREACHABLE");
    await sleep(1000);
    const after = await driver.poll(t, pollOpts());
    expect(after.reachable).toBe(true);
    expect(after.uptimeSec).toBeLessThan(10);
    // Counters restarted at 0: no (negative or bogus) rate for the interval spanning the reboot.
    expect(after.network.rxPacketsPerSec).toBeUndefined();
    expect(after.network.txPacketsPerSec).toBeUndefined();
    await sleep(1200);
    const later = await driver.poll(t, pollOpts());
    expect(later.network.rxPacketsPerSec).toBeGreaterThanOrEqual(4);
    expect(later.network.rxPacketsPerSec).toBeLessThanOrEqual(46);
  });

  it("never causes a 403 busy itself under concurrent polls of one phone", async () => {
    const d = fresh();
    const t = targetOf(d);
    const before = http.paths.length;
    const readings = await Promise.all(Array.from({ length: 12 }, () => driver.poll(t, pollOpts(30_000))));
    for (const r of readings) {
      expect(r.errors).toEqual([]);
      expect(r.reachable).toBe(true);
    }
    expect(http.paths.length - before).toBeGreaterThanOrEqual(12 * 5);
    expect(http.maxInFlight).toBe(1);
  });

  it("keeps a poll to a handful of requests", async () => {
    const d = fresh((x) => x.model.startsWith("VVX"));
    const t = targetOf(d);
    await driver.poll(t, pollOpts());
    const before = http.paths.length;
    await driver.poll(t, pollOpts());
    const sent = http.paths.slice(before);
    expect(sent).toEqual([
      "GET /api/v2/mgmt/device/info",
      "GET /api/v1/mgmt/device/stats",
      "GET /api/v1/mgmt/network/stats",
      "GET /api/v2/mgmt/lineInfo",
      "GET /api/v1/mgmt/pollForStatus",
    ]);
  });

  it("reads in-call state and media packet loss (packetLoss fault)", async () => {
    const d = fresh();
    const t = targetOf(d);
    await fault(d, ["packetLoss"]);
    await sim.control("POST", `/devices/${d.id}/call`, { active: true });
    await sleep(1100);
    const r = await driver.poll(t, pollOpts());
    expect(r.inCall).toBe(true);
    expect(r.network.packetLossPct).toBeGreaterThan(8);
    expect(r.network.packetLossPct).toBeLessThan(16);
    await sim.control("POST", `/devices/${d.id}/call`, { active: false });
    const idle = await driver.poll(t, pollOpts());
    expect(idle.inCall).toBe(false);
    expect(idle.network.packetLossPct).toBeUndefined();
  });

  it("reports Trio peripherals (mrpair) and a camera that disappears as missing", async () => {
    // Even-index Trios have a Visual+ with a camera.
    const d = fresh((x) => x.model.startsWith("Trio") && devices.indexOf(x) % 2 === 0);
    const t = targetOf(d);
    const r1 = await driver.poll(t, pollOpts());
    expect(r1.peripherals.map((p) => p.category).sort()).toEqual(["audioSrcSink", "cameraSrc", "displayUI"]);
    expect(r1.peripherals.every((p) => p.state === "connected")).toBe(true);
    await fault(d, ["cameraDown"]);
    const r2 = await driver.poll(t, pollOpts());
    expect(r2.peripherals.find((p) => p.category === "cameraSrc")?.state).toBe("missing");
    await fault(d, [], ["cameraDown"]);
    const r3 = await driver.poll(t, pollOpts());
    expect(r3.peripherals.find((p) => p.category === "cameraSrc")?.state).toBe("connected");
  });

  it("reboot() sends a safe reboot and the phone comes back with uptime 0", async () => {
    const d = fresh();
    const t = targetOf(d);
    const res = await driver.reboot(t, pollOpts());
    expect(res.ok).toBe(true);
    const r = await driver.poll(t, pollOpts());
    expect(r.reachable).toBe(false);
    await sleep(1000);
    const back = await driver.poll(t, pollOpts());
    expect(back.reachable).toBe(true);
    expect(back.uptimeSec).toBeLessThan(10);
  });

  it("tries the credentials in order and remembers the one that works", async () => {
    const d = fresh();
    const t = targetOf(d, {
      extraCredentials: [{ name: "old", type: "http", user: "Polycom", password: "not-the-password" }],
    });
    const r = await driver.poll(t, pollOpts());
    expect(r.errors).toEqual([]);
    const before = http.paths.length;
    await driver.poll(t, pollOpts());
    // No failed attempt with the old credential any more: exactly the 5 poll requests.
    expect(http.paths.length - before).toBe(5);
  });

  it("close() releases its own device state but leaves a shared HTTPS client open", async () => {
    const a = fresh();
    const b = fresh();
    const ta = targetOf(a, {
      extraCredentials: [{ name: "old", type: "http", user: "Polycom", password: "not-the-password" }],
    });
    const tb = targetOf(b);
    const shared = new CountingClient(new UndiciHttpsClient({ timeoutMs: 2000 }));
    const first = new PolyUcsDriver({ http: shared, requestTimeoutMs: 2000 });
    const second = new PolyUcsDriver({ http: shared, requestTimeoutMs: 2000 });
    try {
      expect((await first.poll(ta, pollOpts())).errors).toEqual([]);
      expect((await second.poll(tb, pollOpts())).errors).toEqual([]);
      // The composition root shares one client between drivers: closing one must not break the other.
      await first.close();
      expect(shared.closes).toBe(0);
      const r = await second.poll(tb, pollOpts());
      expect(r.errors).toEqual([]);
      expect(r.reachable).toBe(true);
      expect(r.identity.mac).toBe(b.mac);
      // The closed driver forgot what it had learnt about its phone: the remembered credential (so the
      // wrong one is tried first again) and the network/info schedule (read again on the first poll).
      const before = shared.paths.length;
      expect((await first.poll(ta, pollOpts())).errors).toEqual([]);
      const sent = shared.paths.slice(before);
      expect(sent.length).toBeGreaterThan(5);
      expect(sent).toContain("GET /api/v1/mgmt/network/info");
    } finally {
      await first.close();
      await second.close();
      await shared.close();
    }
    expect(shared.closes).toBe(1);
  });

  describe("faults", () => {
    it("noAnswer: unreachable with a timeout, bounded by the request timeout", async () => {
      const d = fresh();
      await fault(d, ["noAnswer"]);
      const t0 = Date.now();
      const r = await driver.poll(targetOf(d), pollOpts());
      expect(Date.now() - t0).toBeLessThan(6000);
      assertContract(r);
      expect(r.reachable).toBe(false);
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0]).toMatchObject({
        code: "POLYFLEET_ERR_DEVICE_TIMEOUT",
        endpoint: "/api/v2/mgmt/device/info",
      });
      expect(r.identity).toMatchObject({ address: d.address, family: "uc" });
    });

    it("noAnswer: the scheduler's poll signal aborts the poll", async () => {
      const d = fresh();
      await fault(d, ["noAnswer"]);
      const r = await driver.poll(targetOf(d), pollOpts(300));
      expect(r.reachable).toBe(false);
      expect(r.errors[0]?.code).toBe("POLYFLEET_ERR_DEVICE_TIMEOUT");
      expect(r.pollLatencyMs).toBeLessThan(1900);
    });

    it("slow: answers arrive late but the reading is complete", async () => {
      const d = fresh();
      await fault(d, ["slow"]);
      const r = await driver.poll(targetOf(d), pollOpts());
      expect(r.errors).toEqual([]);
      expect(r.reachable).toBe(true);
      expect(r.pollLatencyMs).toBeGreaterThanOrEqual(5 * 300);
    });

    it("slow beyond the request timeout: timeout error", async () => {
      const d = fresh();
      await fault(d, ["slow"]);
      const own = new UndiciHttpsClient();
      const quick = new PolyUcsDriver({ http: own, requestTimeoutMs: 100 });
      try {
        const r = await quick.poll(targetOf(d), pollOpts());
        expect(r.reachable).toBe(false);
        expect(r.errors[0]?.code).toBe("POLYFLEET_ERR_DEVICE_TIMEOUT");
      } finally {
        await quick.close();
        await own.close();
      }
    });

    it("flapping: reachable in the up half, unreachable in the away half", async () => {
      const d = fresh();
      const t = targetOf(d);
      await fault(d, ["flapping"]);
      const up = await driver.poll(t, pollOpts());
      expect(up.reachable).toBe(true);
      await sleep(900);
      const away = await driver.poll(t, pollOpts());
      expect(away.reachable).toBe(false);
      expect(away.errors[0]?.code).toBe("POLYFLEET_ERR_DEVICE_UNREACHABLE");
      // The identity learnt while up is kept in the unreachable reading.
      expect(away.identity.model).toBe(d.model);
    });

    it("http500: reachable, with an HTTP error", async () => {
      const d = fresh();
      await fault(d, ["http500"]);
      const r = await driver.poll(targetOf(d), pollOpts());
      assertContract(r);
      expect(r.reachable).toBe(true);
      expect(r.errors[0]).toMatchObject({ code: "POLYFLEET_ERR_DEVICE_HTTP" });
      expect(r.errors[0]?.message).toContain("500");
    });

    it("malformedJson and truncatedJson: bad-response errors, counted", async () => {
      for (const f of ["malformedJson", "truncatedJson"]) {
        const d = fresh();
        await fault(d, [f]);
        const before = metrics.total(BAD_RESPONSES_METRIC);
        const r = await driver.poll(targetOf(d), pollOpts());
        assertContract(r);
        expect(r.reachable).toBe(true);
        expect(r.errors[0]?.code).toBe("POLYFLEET_ERR_DEVICE_BAD_RESPONSE");
        expect(metrics.total(BAD_RESPONSES_METRIC)).toBeGreaterThan(before);
      }
      expect(metrics.get(BAD_RESPONSES_METRIC, { reason: "invalid_json" })).toBeGreaterThan(0);
      expect(metrics.get(BAD_RESPONSES_METRIC, { reason: "truncated" })).toBeGreaterThan(0);
    });

    it("wrongCredentials: auth error, no secret in the message", async () => {
      const d = fresh();
      await fault(d, ["wrongCredentials"]);
      const r = await driver.poll(targetOf(d), pollOpts());
      expect(r.reachable).toBe(true);
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0]?.code).toBe("POLYFLEET_ERR_DEVICE_AUTH");
      expect(JSON.stringify(r)).not.toContain(d.admin.password);
    });

    it("sipUnregistered: lines unregistered, sip and status health down", async () => {
      const d = fresh();
      await fault(d, ["sipUnregistered"]);
      const r = await driver.poll(targetOf(d), pollOpts());
      expect(r.errors).toEqual([]);
      expect(r.lines.every((l) => !l.registered && l.state === "unregistered")).toBe(true);
      expect(health(r, "sipRegistration")).toBe("down");
      expect(health(r, "status")).toBe("down");
    });

    it("highCpu and highMemory: CPU ≥ 95 %, memory ≈ 96 %", async () => {
      const d = fresh();
      await fault(d, ["highCpu", "highMemory"]);
      const r = await driver.poll(targetOf(d), pollOpts());
      expect(r.cpuPct).toBeGreaterThanOrEqual(95);
      expect(r.memPct).toBeGreaterThan(95);
      expect(r.memPct).toBeLessThan(97);
      expect(r.memTotalBytes).toBe(512 * 1024 * 1024);
      expect(health(r, "status")).toBe("down");
    });

    it("rebootLoop: away, then back with a low uptime and no rate across the reboot", async () => {
      const d = fresh();
      const t = targetOf(d);
      await driver.poll(t, pollOpts());
      await fault(d, ["rebootLoop"]);
      const away = await driver.poll(t, pollOpts());
      expect(away.reachable).toBe(false);
      await sleep(1000);
      const back = await driver.poll(t, pollOpts());
      expect(back.reachable).toBe(true);
      expect(back.uptimeSec).toBeLessThan(10);
      expect(back.network.rxPacketsPerSec).toBeUndefined();
    });

    it("a dead phone does not hold up another phone's poll", async () => {
      const dead = fresh();
      const alive = fresh();
      await fault(dead, ["noAnswer"]);
      // A driver whose request deadline is far away: the dead phone's poll ends only when the test aborts
      // it, so "the healthy phone finished first" is an ordering fact, not a race against a timer.
      const patient = new PolyUcsDriver({ http, requestTimeoutMs: 60_000 });
      const stopDead = new AbortController();
      let deadSettled = false;
      const deadPoll = patient.poll(targetOf(dead), { signal: stopDead.signal }).finally(() => {
        deadSettled = true;
      });
      try {
        try {
          const r = await patient.poll(targetOf(alive), pollOpts());
          assertContract(r);
          expect(r.errors).toEqual([]);
          expect(r.reachable).toBe(true);
          expect(r.identity).toMatchObject({ model: alive.model, mac: alive.mac });
          expect(r.lines.length).toBeGreaterThan(0);
          // The healthy phone's complete reading arrived while the dead phone's poll was still waiting.
          expect(deadSettled).toBe(false);
        } finally {
          stopDead.abort();
        }
        // Aborted by its poll signal, the dead phone's poll resolves as a timeout (a value, not a throw).
        const d = await deadPoll;
        expect(d.reachable).toBe(false);
        expect(d.errors[0]?.code).toBe("POLYFLEET_ERR_DEVICE_TIMEOUT");
      } finally {
        await patient.close();
      }
    });
  });

  it("CPU time per UC poll (printed, not asserted)", async () => {
    const d = fresh((x) => x.model.startsWith("VVX"));
    const t = targetOf(d);
    const own = new UndiciHttpsClient();
    const quiet = new PolyUcsDriver({ http: own });
    try {
      for (let i = 0; i < 20; i++) await quiet.poll(t, pollOpts());
      const n = 200;
      const c0 = process.cpuUsage();
      const w0 = performance.now();
      for (let i = 0; i < n; i++) await quiet.poll(t, pollOpts());
      const c = process.cpuUsage(c0);
      const wall = performance.now() - w0;
      // Baseline in the same run: a bare undici client (keep-alive) doing the same 5 GETs + JSON.parse.
      const bare = new Client(`https://${d.address}:${d.httpsPort}`, {
        connect: { rejectUnauthorized: false },
      });
      const auth = `Basic ${Buffer.from(`Polycom:${d.admin.password}`).toString("base64")}`;
      const paths = [
        "/api/v2/mgmt/device/info",
        "/api/v1/mgmt/device/stats",
        "/api/v1/mgmt/network/stats",
        "/api/v2/mgmt/lineInfo",
        "/api/v1/mgmt/pollForStatus",
      ];
      const barePoll = async (): Promise<void> => {
        for (const path of paths) {
          const res = await bare.request({ path, method: "GET", headers: { authorization: auth } });
          JSON.parse(await res.body.text());
        }
      };
      for (let i = 0; i < 20; i++) await barePoll();
      const b0 = process.cpuUsage();
      for (let i = 0; i < n; i++) await barePoll();
      const b = process.cpuUsage(b0);
      await bare.close();
      // The simulator runs in this process: its share (server-side TLS, JSON) is in both figures.
      const ms = (u: NodeJS.CpuUsage) => ((u.user + u.system) / n / 1000).toFixed(3);
      console.log(
        `[poly-ucs cpu] ${n} polls: driver ${ms(c)} ms CPU/poll, bare undici same 5 GETs ${ms(b)} ms ` +
          `(simulator included in both; difference = driver overhead), ${(wall / n).toFixed(2)} ms wall/poll`,
      );
    } finally {
      await quiet.close();
      await own.close();
    }
  });
});
