import type { PollError } from "@polyfleet/shared";
import { describe, expect, it } from "vitest";
import { Discovery, type DiscoveryOptions } from "../../../src/adapters/discovery/discovery.js";
import type { HttpsProbeResult, HttpsProber } from "../../../src/adapters/discovery/https-prober.js";
import type { HttpsFingerprint } from "../../../src/core/classify.js";
import type { ResolvedCredential } from "../../../src/ports/credentials.js";
import type { DeviceDriver, DeviceTarget, DriverName, IdentifyResult } from "../../../src/ports/driver.js";
import type { SnmpBulkResult, SnmpClient, SnmpResult, SnmpTarget, Varbind } from "../../../src/ports/snmp.js";
import { FakeClock, MemorySink } from "../scheduler/fakes.js";

type Answer = Omit<HttpsFingerprint, "port" | "path"> | "refused" | "hang";

const UC: Answer = {
  status: 401,
  server: "Polycom SoundPoint IP Telephone HTTPd",
  wwwAuthenticate: 'Basic realm="API Authentication"',
  bodyStart: "<html>401</html>",
};
const VIDEO: Answer = {
  status: 401,
  server: "Poly",
  contentType: "application/json",
  bodyStart: '{"success":false}',
};

class FakeProber implements HttpsProber {
  inFlight = 0;
  maxInFlight = 0;
  readonly paths: string[] = [];
  constructor(private readonly answers: (address: string) => Answer) {}
  probe(
    address: string,
    port: number,
    path: string,
    opts: { signal: AbortSignal },
  ): Promise<HttpsProbeResult> {
    this.paths.push(`${address}${path}`);
    const a = this.answers(address);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const done = (r: HttpsProbeResult): HttpsProbeResult => {
      this.inFlight--;
      return r;
    };
    const timeout: HttpsProbeResult = {
      ok: false,
      error: { code: "POLYFLEET_ERR_DEVICE_TIMEOUT", message: "t" },
    };
    if (a === "hang") {
      return new Promise((resolve) => opts.signal.addEventListener("abort", () => resolve(done(timeout))));
    }
    if (a === "refused") {
      return Promise.resolve(
        done({ ok: false, error: { code: "POLYFLEET_ERR_DEVICE_UNREACHABLE", message: "refused" } }),
      );
    }
    // VideoOS answers its JSON 401 wherever it is asked (authentication runs before routing).
    return Promise.resolve(done({ ok: true, fingerprint: { ...a, port, path } }));
  }
}

class FakeSnmp implements SnmpClient {
  readonly calls: { address: string; credential: string; signal: AbortSignal | undefined }[] = [];
  constructor(
    private readonly answer: (
      t: SnmpTarget,
    ) => { sysObjectId: string; sysDescr: string } | PollError | "hang",
  ) {}
  get(t: SnmpTarget, _oids: string[], opts?: { signal?: AbortSignal }): Promise<SnmpResult<Varbind[]>> {
    this.calls.push({ address: t.address, credential: t.credential.name, signal: opts?.signal });
    const a = this.answer(t);
    if (a === "hang") {
      return new Promise((resolve) =>
        opts?.signal?.addEventListener("abort", () =>
          resolve({ ok: false, error: { code: "POLYFLEET_ERR_SNMP_TIMEOUT", message: "t" } }),
        ),
      );
    }
    if ("code" in a) return Promise.resolve({ ok: false, error: a });
    return Promise.resolve({
      ok: true,
      value: [
        { oid: "1.3.6.1.2.1.1.2.0", type: "OID", value: a.sysObjectId },
        { oid: "1.3.6.1.2.1.1.1.0", type: "OctetString", value: a.sysDescr },
      ],
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

function macOf(address: string): string {
  return `0004f2${Number(address.split(".")[3]).toString(16).padStart(6, "0")}`;
}

class FakeIdentifyDriver implements DeviceDriver {
  readonly targets: DeviceTarget[] = [];
  constructor(
    readonly name: DriverName,
    private readonly model: string,
  ) {}
  identify(target: DeviceTarget): Promise<IdentifyResult> {
    this.targets.push(target);
    const family = this.name === "poly-ucs" ? "uc" : this.name === "poly-videoos" ? "videoos" : "snmp";
    return Promise.resolve({
      ok: true,
      driver: this.name,
      via: ["https"],
      identity: { address: target.address, family, model: this.model, mac: macOf(target.address) },
    });
  }
  poll(): never {
    throw new Error("not used");
  }
  reboot(): never {
    throw new Error("not used");
  }
  forget(): void {}
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const CREDS: ResolvedCredential[] = [
  { name: "phones", type: "http", user: "Polycom", password: "pw" },
  { name: "v2", type: "snmpv2c", community: "nope" },
  {
    name: "v3",
    type: "snmpv3",
    user: "u",
    level: "authPriv",
    authProtocol: "sha256",
    authKey: "a",
    privProtocol: "aes128",
    privKey: "p",
  },
];

function setup(
  answers: (address: string) => Answer,
  snmpAnswer: ConstructorParameters<typeof FakeSnmp>[0],
  opts: Partial<DiscoveryOptions> = {},
) {
  const clock = new FakeClock();
  const sink = new MemorySink();
  const prober = new FakeProber(answers);
  const snmp = new FakeSnmp(snmpAnswer);
  const drivers = {
    "poly-ucs": new FakeIdentifyDriver("poly-ucs", "VVX 350"),
    "poly-videoos": new FakeIdentifyDriver("poly-videoos", "StudioX50"),
    "snmp-generic": new FakeIdentifyDriver("snmp-generic", "Linux"),
  };
  const written: string[] = [];
  const discovery = new Discovery(
    {
      sink,
      snmp,
      drivers,
      clock,
      https: prober,
      progressOut: { isTTY: false, write: (s: string) => written.push(s) },
      newScanId: () => "scan-1",
    },
    {
      ranges: ["10.9.8.0/28"],
      httpsPorts: [443],
      snmpPorts: [161],
      concurrency: 4,
      timeoutMs: 1000,
      credentials: CREDS,
      progressIntervalMs: 1000,
      ...opts,
    },
  );
  return { clock, sink, prober, snmp, drivers, discovery, written };
}

// .1-.3 UC phones, .4 VideoOS (HTTPS + SNMP), .5 a generic SNMP agent, the rest refuse.
const siteHttps = (a: string): Answer => {
  const last = Number(a.split(".")[3]);
  if (last <= 3) return UC;
  if (last === 4) return VIDEO;
  return "refused";
};
const siteSnmp = (t: SnmpTarget) => {
  const last = Number(t.address.split(".")[3]);
  if (t.credential.name === "v2") return { code: "POLYFLEET_ERR_SNMP_AUTH", message: "wrong community" };
  if (last === 4)
    return {
      sysObjectId: "1.3.6.1.4.1.13885.101",
      sysDescr: "Videoconferencing Device, Poly StudioX50, VideoOS 4.1.0-1",
    };
  if (last === 5) return { sysObjectId: "1.3.6.1.4.1.8072.3.2.10", sysDescr: "Linux gw" };
  return "hang" as const;
};

async function runToEnd(clock: FakeClock, p: Promise<unknown>): Promise<void> {
  let done = false;
  void p.finally(() => {
    done = true;
  });
  for (let i = 0; i < 200 && !done; i++) await clock.advance(250);
  expect(done).toBe(true);
}

describe("Discovery", () => {
  it("classifies, identifies, announces new devices and reports progress", async () => {
    const { clock, sink, prober, discovery, drivers, snmp } = setup(siteHttps, siteSnmp);
    const p = discovery.run();
    await runToEnd(clock, p);
    const r = await p;
    expect(r.total).toBe(14);
    expect(r.scanned).toBe(14);
    expect(r.cancelled).toBe(false);
    const by = new Map(r.found.map((d) => [d.address, d]));
    expect([...by.keys()].sort()).toEqual(["10.9.8.1", "10.9.8.2", "10.9.8.3", "10.9.8.4", "10.9.8.5"]);
    expect(by.get("10.9.8.1")).toMatchObject({
      driver: "poly-ucs",
      deviceId: macOf("10.9.8.1"),
      identified: true,
      isNew: true,
    });
    expect(by.get("10.9.8.1")?.identity.model).toBe("VVX 350");
    expect(by.get("10.9.8.4")).toMatchObject({ driver: "poly-videoos", via: ["https", "snmp"] });
    expect(by.get("10.9.8.4")?.classification.snmpCredentialName).toBe("v3");
    expect(by.get("10.9.8.5")).toMatchObject({ driver: "snmp-generic", via: ["snmp", "https"] });
    // The driver gets the credential that answered SNMP first, then the others.
    expect(drivers["poly-videoos"].targets[0]?.credentials.map((c) => c.name)).toEqual([
      "v3",
      "phones",
      "v2",
    ]);
    expect(drivers["poly-videoos"].targets[0]?.deviceId).toBe("ip-10.9.8.4");
    // The second probe is sent only to devices that were not recognised as phones.
    expect(prober.paths.filter((x) => x.startsWith("10.9.8.1/"))).toEqual([
      "10.9.8.1/api/v1/mgmt/device/info",
    ]);
    expect(prober.paths).toContain("10.9.8.4/rest/system");
    // Phones found over HTTPS stop their SNMP probe at once.
    const phoneSnmp = snmp.calls.filter((c) => c.address === "10.9.8.2");
    expect(phoneSnmp.map((c) => c.credential)).toEqual(["v2", "v3"]);
    expect(phoneSnmp.at(-1)?.signal?.aborted).toBe(true);
    const discovered = sink.eventsOf("device.discovered");
    expect(discovered.map((e) => e.deviceId).sort()).toEqual(r.found.map((d) => d.deviceId).sort());
    const progress = sink.eventsOf("discovery.progress");
    expect(progress[0]).toMatchObject({ scanId: "scan-1", scanned: 0, total: 14, done: false });
    expect(progress.at(-1)).toMatchObject({ scanId: "scan-1", scanned: 14, total: 14, found: 5, done: true });
    expect(progress.length).toBeLessThanOrEqual(2 + Math.ceil(r.durationMs / 1000));
    expect(prober.maxInFlight).toBeLessThanOrEqual(4);
  });

  it("stops trying SNMP credentials after a timeout but moves on after an auth failure", async () => {
    const { clock, snmp, discovery } = setup(() => "refused", siteSnmp);
    await runToEnd(clock, discovery.run());
    // .5: v2 refused (auth) → v3 asked. .6: v2 refused, v3 timed out: nothing more to try anyway.
    expect(snmp.calls.filter((c) => c.address === "10.9.8.5").map((c) => c.credential)).toEqual(["v2", "v3"]);
    const timeoutsFirst = setup(
      () => "refused",
      () => "hang",
    );
    await runToEnd(timeoutsFirst.clock, timeoutsFirst.discovery.run());
    expect(timeoutsFirst.snmp.calls.filter((c) => c.address === "10.9.8.7").map((c) => c.credential)).toEqual(
      ["v2"],
    );
  });

  it("bounds hanging probes by the timeout and the work in flight by the concurrency", async () => {
    const { clock, prober, discovery } = setup(
      () => "hang",
      () => "hang",
      { concurrency: 3, timeoutMs: 1000 },
    );
    const p = discovery.run();
    await clock.advance(999);
    expect(prober.inFlight).toBe(3);
    await runToEnd(clock, p);
    const r = await p;
    expect(r.scanned).toBe(14);
    expect(r.found).toHaveLength(0);
    // 14 addresses, 3 at a time, each waiting its 1 s: 5 rounds on the (fake) clock.
    expect(r.durationMs).toBe(5000);
    expect(prober.maxInFlight).toBe(3);
  });

  it("announces only new devices on a rescan and reports known devices gone from the ranges as lost", async () => {
    let gone = false;
    const { clock, sink, discovery } = setup(
      (a) => (gone && a === "10.9.8.2" ? "refused" : siteHttps(a)),
      siteSnmp,
    );
    discovery.setKnown([{ deviceId: "elsewhere", address: "192.168.1.5" }]);
    await runToEnd(clock, discovery.run());
    expect(sink.eventsOf("device.discovered")).toHaveLength(5);
    gone = true;
    const p = discovery.run();
    await runToEnd(clock, p);
    const r = await p;
    expect(r.found.every((d) => !d.isNew)).toBe(true);
    expect(sink.eventsOf("device.discovered")).toHaveLength(5);
    expect(r.lost).toEqual([{ deviceId: macOf("10.9.8.2"), address: "10.9.8.2" }]);
    expect(sink.eventsOf("device.lost")).toEqual([
      expect.objectContaining({ deviceId: macOf("10.9.8.2"), address: "10.9.8.2", missedPolls: 0 }),
    ]);
    expect(discovery.known().map((k) => k.deviceId)).toContain("elsewhere");
  });

  it("can be cancelled: aborts probes in flight and concludes nothing about lost devices", async () => {
    const { clock, sink, discovery } = setup((a) => (a === "10.9.8.9" ? "hang" : siteHttps(a)), siteSnmp, {
      concurrency: 1,
    });
    discovery.setKnown([{ deviceId: "old", address: "10.9.8.14" }]);
    const ctl = new AbortController();
    const p = discovery.run({ signal: ctl.signal });
    expect(discovery.run()).toBe(p);
    for (let i = 0; i < 100 && sink.eventsOf("device.discovered").length < 5; i++) await clock.advance(100);
    await clock.advance(100);
    ctl.abort();
    await clock.advance(0);
    const r = await p;
    expect(r.cancelled).toBe(true);
    expect(r.scanned).toBeLessThan(14);
    expect(r.lost).toEqual([]);
    expect(sink.eventsOf("device.lost")).toEqual([]);
    expect(sink.eventsOf("discovery.progress").at(-1)?.done).toBe(true);
    expect(discovery.running).toBe(false);
  });

  it("draws a progress bar instead of events on a terminal", async () => {
    const { clock, sink, discovery, written } = setup(siteHttps, siteSnmp, { progress: "tty" });
    await runToEnd(clock, discovery.run());
    expect(sink.eventsOf("discovery.progress")).toHaveLength(0);
    expect(written[0]).toMatch(/^\r\[/);
    expect(written.at(-1)).toMatch(/14\/14 scanned, 5 found.*\n$/);
  });

  it("refuses a range that is too wide before probing", async () => {
    const { discovery, prober } = setup(siteHttps, siteSnmp);
    await expect(discovery.run({ ranges: ["10.0.0.0/8"] })).rejects.toMatchObject({
      code: "POLYFLEET_ERR_DISCOVERY_RANGE_TOO_LARGE",
    });
    expect(prober.paths).toHaveLength(0);
    expect(discovery.running).toBe(false);
  });
});
