import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Discovery, type DiscoveryOptions } from "../../../src/adapters/discovery/discovery.js";
import { NodeHttpsProber } from "../../../src/adapters/discovery/https-prober.js";
import { PolyUcsDriver } from "../../../src/adapters/drivers/poly-ucs.js";
import { PolyVideoOsDriver } from "../../../src/adapters/drivers/poly-videoos.js";
import { SnmpGenericDriver } from "../../../src/adapters/drivers/snmp-generic.js";
import { UndiciHttpsClient } from "../../../src/adapters/http/https-client.js";
import { NetSnmpClient } from "../../../src/adapters/snmp/net-snmp-client.js";
import { classifyHttps, UC_PROBE_PATH, VIDEOOS_PROBE_PATH } from "../../../src/core/classify.js";
import { PromRegistry } from "../../../src/core/prom-registry.js";
import { SYSTEM_CLOCK } from "../../../src/ports/clock.js";
import { MemorySink } from "../scheduler/fakes.js";
import { fleetCredentials, type SimFleet, startFleet } from "./sim-fleet.js";

const squash = (s: string | undefined) => (s ?? "").replace(/[\s_-]/g, "").toLowerCase();

function build(fleet: SimFleet, opts: Partial<DiscoveryOptions> = {}) {
  const metrics = new PromRegistry();
  const snmp = new NetSnmpClient({ metrics, timeoutMs: 1000, retries: 0 });
  const http = new UndiciHttpsClient({ metrics, timeoutMs: 3000 });
  const sink = new MemorySink();
  const discovery = new Discovery(
    {
      sink,
      snmp,
      metrics,
      clock: SYSTEM_CLOCK,
      drivers: {
        "poly-ucs": new PolyUcsDriver({ http, metrics, requestTimeoutMs: 3000 }),
        "poly-videoos": new PolyVideoOsDriver({ http, snmp, metrics, requestTimeoutMs: 3000 }),
        "snmp-generic": new SnmpGenericDriver({ client: snmp }),
      },
      progressOut: { isTTY: false, write: () => true },
    },
    {
      ranges: [fleet.subnet],
      httpsPorts: [fleet.httpsPort],
      snmpPorts: [fleet.snmpPort],
      concurrency: 64,
      timeoutMs: 1500,
      credentials: fleetCredentials(fleet.manifest),
      progressIntervalMs: 200,
      progress: "events",
      ...opts,
    },
  );
  return {
    sink,
    discovery,
    metrics,
    async close() {
      await snmp.close();
      await http.close();
    },
  };
}

describe("Discovery against the simulator: a full /24", () => {
  let fleet: SimFleet;
  beforeAll(async () => {
    fleet = await startFleet(["--devices", "254", "--rest-disabled-pct", "0"]);
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it("the simulator's answers match the fingerprints classify.ts expects", async () => {
    const prober = new NodeHttpsProber();
    const uc = fleet.manifest.devices.find((d) => d.family === "uc");
    const video = fleet.manifest.devices.find((d) => d.family === "videoos");
    if (!uc || !video) throw new Error("fleet has no UC phone or no video bar");
    const signal = AbortSignal.timeout(5000);
    const a = await prober.probe(uc.address, fleet.httpsPort, UC_PROBE_PATH, { signal });
    expect(a.ok && a.fingerprint.status).toBe(401);
    expect(a.ok && classifyHttps(a.fingerprint)?.family).toBe("uc");
    const b = await prober.probe(video.address, fleet.httpsPort, VIDEOOS_PROBE_PATH, { signal });
    expect(b.ok && b.fingerprint.status).toBe(401);
    expect(b.ok && classifyHttps(b.fingerprint)?.family).toBe("videoos");
    const none = await prober.probe("127.0.0.1", 1, UC_PROBE_PATH, { signal });
    expect(none).toMatchObject({ ok: false, error: { code: "POLYFLEET_ERR_DEVICE_UNREACHABLE" } });
  });

  it("finds every device with the right family, driver, model and MAC, and reports progress", async () => {
    const env = build(fleet);
    try {
      const r = await env.discovery.run();
      expect(r.total).toBe(254);
      expect(r.scanned).toBe(254);
      expect(r.found).toHaveLength(254);
      const byAddress = new Map(r.found.map((d) => [d.address, d]));
      const wrong: string[] = [];
      for (const dev of fleet.manifest.devices) {
        const d = byAddress.get(dev.address);
        const driver = dev.family === "uc" ? "poly-ucs" : "poly-videoos";
        if (
          !d ||
          d.driver !== driver ||
          d.identity.family !== dev.family ||
          !d.identified ||
          d.deviceId !== dev.mac ||
          squash(d.identity.model) !== squash(dev.model)
        ) {
          wrong.push(
            `${dev.address} ${dev.model}: ${JSON.stringify(d?.identity)} ${d?.driver} ${JSON.stringify(d?.identifyError)}`,
          );
        }
      }
      expect(wrong).toEqual([]);
      // VideoOS devices were seen over SNMP as well (sysObjectID under 13885).
      const videos = r.found.filter((d) => d.driver === "poly-videoos");
      expect(videos.length).toBeGreaterThan(0);
      expect(videos.every((d) => d.via.includes("snmp") && d.via.includes("https"))).toBe(true);
      expect(env.sink.eventsOf("device.discovered")).toHaveLength(254);
      const progress = env.sink.eventsOf("discovery.progress");
      expect(progress.length).toBeGreaterThanOrEqual(2);
      expect(progress.at(-1)).toMatchObject({ scanned: 254, total: 254, found: 254, done: true });
      expect(progress.slice(0, -1).every((p) => !p.done)).toBe(true);
      // A rescan announces nothing new and loses nothing.
      const again = await env.discovery.run();
      expect(again.found).toHaveLength(254);
      expect(env.sink.eventsOf("device.discovered")).toHaveLength(254);
      expect(env.sink.eventsOf("device.lost")).toHaveLength(0);
    } finally {
      await env.close();
    }
  });
});

describe("Discovery against the simulator: dead devices and empty addresses", () => {
  let fleet: SimFleet;
  beforeAll(async () => {
    fleet = await startFleet(["--devices", "60", "--fault", "noAnswer=6"]);
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it("finds every answering device; the silent ones cost no more than the timeout budget", async () => {
    const timeoutMs = 800;
    const concurrency = 32;
    const env = build(fleet, { timeoutMs, concurrency, identifyTimeoutMs: 3000 });
    try {
      const r = await env.discovery.run();
      const answering = fleet.manifest.devices.filter((d) => !d.faults.includes("noAnswer"));
      const silent = fleet.manifest.devices.filter((d) => d.faults.includes("noAnswer"));
      expect(silent).toHaveLength(6);
      expect(r.scanned).toBe(254);
      expect(r.found.map((d) => d.address).sort()).toEqual(answering.map((d) => d.address).sort());
      // Each address costs at most two HTTPS probes or one SNMP wait per credential, plus one identify;
      // with `concurrency` workers the scan is bounded by that budget (it would never end if a silent
      // device could hold a worker).
      const snmpCreds = fleetCredentials(fleet.manifest).filter((c) => c.type !== "http").length;
      const perAddress = Math.max(2, snmpCreds) * timeoutMs + 3000;
      const budget = Math.ceil(254 / concurrency) * perAddress;
      expect(r.durationMs).toBeLessThan(budget);
      expect(env.metrics.get("polyfleet_agent_discovery_addresses_total")).toBe(254);
    } finally {
      await env.close();
    }
  });

  it("stops when cancelled", async () => {
    const env = build(fleet, { timeoutMs: 1500, concurrency: 4 });
    try {
      const ctl = new AbortController();
      const p = env.discovery.run({ signal: ctl.signal });
      setTimeout(() => ctl.abort(), 300);
      const r = await p;
      expect(r.cancelled).toBe(true);
      expect(r.scanned).toBeLessThan(254);
      expect(env.sink.eventsOf("device.lost")).toHaveLength(0);
    } finally {
      await env.close();
    }
  });
});
