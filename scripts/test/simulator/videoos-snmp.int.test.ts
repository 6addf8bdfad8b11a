import { execFile } from "node:child_process";
import dgram from "node:dgram";
import { createRequire } from "node:module";
import { promisify } from "node:util";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeviceSim } from "../../src/simulator/device.js";
import { startDeviceSnmp } from "../../src/simulator/videoos/snmp-agent.js";
import { makeVideoosDevice, manualClock } from "./videoos-helpers.js";

const run = promisify(execFile);
const require = createRequire(import.meta.url);
// biome-ignore lint/suspicious/noExplicitAny: net-snmp has no type declarations; the test uses a few calls
const snmp: any = require("net-snmp");

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", r));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const V3 = [
  "-v3",
  "-l",
  "authPriv",
  "-u",
  "polyfleet",
  "-A",
  "authpass123",
  "-x",
  "AES",
  "-X",
  "privpass123",
];

async function snmpCmd(cmd: "snmpget" | "snmpwalk", port: number, auth: string[], oids: string[]) {
  try {
    const { stdout } = await run(
      `/usr/bin/${cmd}`,
      [...auth, "-On", "-t", "1", "-r", "1", `127.0.0.1:${port}`, ...oids],
      {
        timeout: 20_000,
      },
    );
    return { ok: true as const, stdout };
  } catch (err) {
    return { ok: false as const, stdout: String((err as { stdout?: string }).stdout ?? ""), err };
  }
}

/** Parses `-On` output lines `.1.3.6... = TYPE: value` into a map of oid -> value text. */
function parse(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of stdout.split("\n")) {
    const m = /^\.?([\d.]+) = (?:[\w-]+: )?(.*)$/.exec(line.trim());
    if (m && !m[2]!.startsWith("No more variables")) out.set(m[1]!, m[2]!.replace(/^"|"$/g, ""));
  }
  return out;
}

const E = "1.3.6.1.4.1.13885.101.1";

describe("VideoOS SNMP agent against the Net-SNMP tools", () => {
  const clock = manualClock();
  let device: DeviceSim;
  let port: number;
  let agent: { close(): Promise<void> };
  const logs: string[] = [];
  const v3 = () => [...V3, "-a", "SHA"];

  beforeAll(async () => {
    port = await freeUdpPort();
    device = makeVideoosDevice({ snmpPort: port, clock });
    agent = await startDeviceSnmp(device, { log: (m) => logs.push(m) });
  });
  afterAll(async () => {
    await agent.close();
  });

  it("answers v3 authPriv (SHA/AES) with the system group", async () => {
    const r = await snmpCmd("snmpwalk", port, v3(), ["1.3.6.1.2.1.1"]);
    expect(r.ok, String(r.ok ? "" : r.err)).toBe(true);
    const v = parse(r.stdout);
    expect(v.get("1.3.6.1.2.1.1.1.0")).toMatch(
      /^Videoconferencing Device, Poly StudioX30, VideoOS 3\.12\.0-366027$/,
    );
    expect(v.get("1.3.6.1.2.1.1.2.0")).toBe(".1.3.6.1.4.1.13885.101");
    expect(v.get("1.3.6.1.2.1.1.4.0")).toBe("IT Administrator");
    expect(v.get("1.3.6.1.2.1.1.5.0")).toBe("StudioX30-A1B2C3FC");
    const ticks = Number(/\((\d+)\)/.exec(v.get("1.3.6.1.2.1.1.3.0") ?? "")?.[1]);
    expect(ticks).toBe(Math.floor(device.uptimeSec() * 100));
  });

  it("refuses v2c by default and answers once snmp.version2.enable is true", async () => {
    const v2 = ["-v2c", "-c", "simcommunity"];
    expect((await snmpCmd("snmpget", port, v2, ["1.3.6.1.2.1.1.5.0"])).ok).toBe(false);
    device.config.set("snmp.version2.enable", "true");
    try {
      const r = await snmpCmd("snmpget", port, v2, ["1.3.6.1.2.1.1.5.0"]);
      expect(r.ok).toBe(true);
      expect(parse(r.stdout).get("1.3.6.1.2.1.1.5.0")).toBe("StudioX30-A1B2C3FC");
      expect((await snmpCmd("snmpget", port, ["-v2c", "-c", "wrong"], ["1.3.6.1.2.1.1.5.0"])).ok).toBe(false);
    } finally {
      device.config.set("snmp.version2.enable", "false");
    }
  });

  it("walks POLYCOM-ENDPOINT-MIB with values that follow faults", async () => {
    const r = await snmpCmd("snmpwalk", port, v3(), ["1.3.6.1.4.1.13885.101"]);
    expect(r.ok).toBe(true);
    const v = parse(r.stdout);
    expect(v.get(`${E}.1.1.0`)).toBe("3.12.0-366027");
    expect(v.get(`${E}.1.4.0`)).toBe("StudioX30");
    expect(v.get(`${E}.1.5.0`)).toBe("8L2138A1B2C3FC");
    expect(v.get(`${E}.1.6.0`)).toBe("2");
    expect(v.get(`${E}.2.8.1.0`)).toBe("2");
    expect(v.get(`${E}.2.8.3.1.2.1`)).toBe("2");
    expect(v.get(`${E}.3.1.0`)).toBe("2");
    expect(v.get(`${E}.3.5.1.0`)).toBe("2");
    expect(v.get(`${E}.3.6.1.0`)).toBe("2");
    expect(v.get(`${E}.3.10.1.0`)).toBe("2");
    expect(v.get(`${E}.3.10.2.1.3.1`)).toBe("00:e0:db:a1:b2:c3");
    expect(v.get(`${E}.5.1.0`)).toBe("0");
    expect(v.get(`${E}.6.10.1.0`)).toBe("1");
    expect(v.get(`${E}.6.11.1.0`)).toBe("1");

    device.setFaults(["cameraDown", "sipUnregistered"]);
    device.setCall(true);
    try {
      const g = await snmpCmd("snmpget", port, v3(), [
        `${E}.3.1.0`,
        `${E}.3.6.1.0`,
        `${E}.3.6.2.1.3.1`,
        `${E}.2.8.1.0`,
        `${E}.2.8.3.1.2.1`,
        `${E}.5.1.0`,
      ]);
      const w = parse(g.stdout);
      expect([...w.values()]).toEqual(["3", "3", "3", "3", "3", "1"]);
    } finally {
      device.setFaults([]);
      device.setCall(false);
    }
  });

  it("ifTable counters move with time", async () => {
    const oids = [
      "1.3.6.1.2.1.2.1.0",
      "1.3.6.1.2.1.2.2.1.2.1",
      "1.3.6.1.2.1.2.2.1.10.1",
      "1.3.6.1.2.1.2.2.1.16.1",
    ];
    const a = parse((await snmpCmd("snmpget", port, v3(), oids)).stdout);
    expect(a.get("1.3.6.1.2.1.2.1.0")).toBe("1");
    expect(a.get("1.3.6.1.2.1.2.2.1.2.1")).toBe("eth0");
    clock.advance(60_000);
    const b = parse((await snmpCmd("snmpget", port, v3(), oids)).stdout);
    expect(Number(b.get("1.3.6.1.2.1.2.2.1.10.1"))).not.toBe(Number(a.get("1.3.6.1.2.1.2.2.1.10.1")));
    expect(Number(b.get("1.3.6.1.2.1.2.2.1.16.1"))).not.toBe(Number(a.get("1.3.6.1.2.1.2.2.1.16.1")));
    expect(Number(b.get("1.3.6.1.2.1.2.2.1.10.1"))).toBe(device.packetCounters().rxBytes % 2 ** 32);
  });

  it("does not answer while the device is down or under noAnswer", async () => {
    device.reboot("test");
    expect((await snmpCmd("snmpget", port, v3(), ["1.3.6.1.2.1.1.3.0"])).ok).toBe(false);
    clock.advance(6000);
    const r = await snmpCmd("snmpget", port, v3(), ["1.3.6.1.2.1.1.3.0"]);
    expect(r.ok).toBe(true);
    device.setFaults(["noAnswer"]);
    expect((await snmpCmd("snmpget", port, v3(), ["1.3.6.1.2.1.1.3.0"])).ok).toBe(false);
    device.setFaults([]);
  });

  it("survives 200 random and truncated datagrams", async () => {
    const good = await new Promise<Buffer>((resolve) => {
      // Capture a real v2c request to truncate/mutate.
      const s = dgram.createSocket("udp4");
      s.bind(0, "127.0.0.1", () => {
        const p = s.address().port;
        s.on("message", (m) => {
          s.close();
          resolve(m);
        });
        void run("/usr/bin/snmpget", [
          "-v2c",
          "-c",
          "simcommunity",
          "-t",
          "1",
          "-r",
          "0",
          `127.0.0.1:${p}`,
          "1.3.6.1.2.1.1.5.0",
        ]).catch(() => undefined);
      });
    });
    const datagrams = fc.sample(
      fc.oneof(
        fc.uint8Array({ minLength: 0, maxLength: 300 }).map((a) => Buffer.from(a)),
        fc.nat({ max: good.length }).map((n) => good.subarray(0, n)),
        fc.tuple(fc.nat({ max: good.length - 1 }), fc.integer({ min: 0, max: 255 })).map(([i, b]) => {
          const c = Buffer.from(good);
          c[i] = b;
          return c;
        }),
        fc
          .uint8Array({ maxLength: 60 })
          .map((a) => Buffer.concat([Buffer.from([0x30, 0x82, 0xff, 0xff, 0x02, 0x01, 0x03]), a])),
      ),
      { numRuns: 200, seed: 1234 },
    );
    device.config.set("snmp.version2.enable", "true");
    const s = dgram.createSocket("udp4");
    try {
      for (const d of datagrams) {
        await new Promise<void>((r) => s.send(d, port, "127.0.0.1", () => r()));
      }
      await new Promise((r) => setTimeout(r, 200));
      const r = await snmpCmd("snmpget", port, v3(), ["1.3.6.1.2.1.1.5.0"]);
      expect(r.ok).toBe(true);
    } finally {
      s.close();
      device.config.set("snmp.version2.enable", "false");
    }
  });

  it("sends v3 and v2c traps when a fault is set and notifications are on", async () => {
    const trapPort = await freeUdpPort();
    const received: { pdu: { varbinds: { oid: string; value: unknown }[] } }[] = [];
    const receiver = snmp.createReceiver(
      { port: trapPort, address: "127.0.0.1", disableAuthorization: false },
      (err: unknown, n: (typeof received)[number]) => {
        if (!err) received.push(n);
      },
    );
    receiver.getAuthorizer().addCommunity("simcommunity");
    receiver.getAuthorizer().addUser({
      name: "polyfleet",
      level: snmp.SecurityLevel.authPriv,
      authProtocol: snmp.AuthProtocols.sha,
      authKey: "authpass123",
      privProtocol: snmp.PrivProtocols.aes,
      privKey: "privpass123",
    });
    try {
      // Off by default.
      device.config.set("snmp.trapTarget.1.address", "127.0.0.1");
      device.config.set("snmp.trapTarget.1.port", String(trapPort));
      device.setFaults(["cameraDown"]);
      await new Promise((r) => setTimeout(r, 200));
      expect(received).toHaveLength(0);
      device.setFaults([]);

      device.config.set("snmp.notification.enabled", "true");
      device.setFaults(["cameraDown"]);
      await expect.poll(() => received.length, { timeout: 5000 }).toBe(1);
      const vb = new Map(received[0]!.pdu.varbinds.map((v) => [v.oid, v.value]));
      expect(vb.get("1.3.6.1.6.3.1.1.4.1.0")).toBe("1.3.6.1.4.1.13885.101.0.76");
      expect(vb.get(`${E}.99.3.0`)).toBe(1);
      expect(String(vb.get(`${E}.99.6.0`))).toContain("camera");
      expect(String(vb.get(`${E}.99.1.0`))).toBe("StudioX30-A1B2C3FC");

      device.config.set("snmp.trapTarget.1.protocolVersion", "v2c");
      device.setFaults([]);
      await expect.poll(() => received.length, { timeout: 5000 }).toBe(2);
      const vb2 = new Map(received[1]!.pdu.varbinds.map((v) => [v.oid, v.value]));
      expect(vb2.get("1.3.6.1.6.3.1.1.4.1.0")).toBe("1.3.6.1.4.1.13885.101.0.77");
      expect(vb2.get(`${E}.99.3.0`)).toBe(2);
    } finally {
      device.config.set("snmp.notification.enabled", "false");
      device.config.set("snmp.trapTarget.1.protocolVersion", "v3");
      receiver.close();
    }
  });
});

describe("VideoOS SNMP agent: SHA-256 user, packet loss, many agents", () => {
  it("a SHA-256 user works with snmpget -a SHA-256", async () => {
    const port = await freeUdpPort();
    const device = makeVideoosDevice({ snmpPort: port, authProtocol: "sha256", model: "G7500" });
    const agent = await startDeviceSnmp(device);
    try {
      const r = await snmpCmd("snmpget", port, [...V3, "-a", "SHA-256"], ["1.3.6.1.4.1.13885.101.1.1.4.0"]);
      expect(r.ok, String(r.ok ? "" : r.err)).toBe(true);
      expect(parse(r.stdout).get("1.3.6.1.4.1.13885.101.1.1.4.0")).toBe("G7500");
    } finally {
      await agent.close();
    }
  });

  it("rejects a port that is taken", async () => {
    const port = await freeUdpPort();
    const a = await startDeviceSnmp(makeVideoosDevice({ snmpPort: port }));
    try {
      await expect(startDeviceSnmp(makeVideoosDevice({ snmpPort: port }))).rejects.toThrow();
    } finally {
      await a.close();
    }
  });

  it("packetLoss drops a share of requests", async () => {
    const port = await freeUdpPort();
    const device = makeVideoosDevice({ snmpPort: port });
    device.setFaults(["packetLoss"]);
    device.config.set("snmp.version2.enable", "true");
    const agent = await startDeviceSnmp(device, { packetLossRatio: 0.5 });
    const session = snmp.createSession("127.0.0.1", "simcommunity", {
      port,
      version: snmp.Version2c,
      timeout: 150,
      retries: 0,
    });
    try {
      let answered = 0;
      for (let i = 0; i < 40; i++) {
        const ok = await new Promise<boolean>((r) =>
          session.get(["1.3.6.1.2.1.1.5.0"], (err: unknown) => r(!err)),
        );
        if (ok) answered++;
      }
      expect(answered).toBeGreaterThan(5);
      expect(answered).toBeLessThan(35);
    } finally {
      session.close();
      await agent.close();
    }
  });

  it("300 agents start, answer and close", async () => {
    const agents: { close(): Promise<void> }[] = [];
    const ports: number[] = [];
    try {
      for (let i = 0; i < 300; i++) {
        const port = await freeUdpPort();
        ports.push(port);
        agents.push(await startDeviceSnmp(makeVideoosDevice({ snmpPort: port, index: i })));
      }
      const r = await snmpCmd("snmpget", ports[299]!, [...V3, "-a", "SHA"], ["1.3.6.1.2.1.1.5.0"]);
      expect(r.ok).toBe(true);
    } finally {
      await Promise.all(agents.map((a) => a.close()));
    }
  });
});
