import { Mac, polyVideoOs, Reading } from "@polyfleet/shared";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  normalizeVideoOsMac,
  normalizeVideoOsReading,
  VIDEOOS_SNMP_OIDS,
  type VideoOsAnswers,
  videoOsCodecMac,
  videoOsHealthState,
  videoOsSnmpValues,
} from "../../src/core/normalize-videoos.js";
import type { ReadingBody } from "../../src/ports/driver.js";

const valid = (r: ReadingBody) =>
  Reading.safeParse({ ...r, v: 1, agentId: "a", siteId: "s", seq: 1, ts: 1, kind: "reading" });
const base = {
  deviceId: "00e0db112233",
  address: "10.0.0.9",
  reachable: true,
  pollLatencyMs: 5,
  nowMs: 5_000_000,
  errors: [],
};

const system = polyVideoOs.VideoOsSystem.parse({
  model: "StudioX50",
  serialNumber: "8L2212112233FC",
  softwareVersion: "3.12.0",
  build: "366027",
  systemName: "Room 1",
  state: "READY",
  rebootNeeded: false,
  uptime: 1234.5,
  lanStatus: { duplex: "FULL", speedMbps: 1000, state: "LAN_UP" },
});
const peripherals = polyVideoOs.VideoOsPeripherals.parse([
  {
    uid: "local-system",
    deviceCategory: "SYSTEM",
    deviceType: "CODEC",
    deviceState: "CONNECTED",
    productName: "StudioX50",
    macAddress: "00:e0:db:11:22:33",
  },
  {
    uid: "100003",
    deviceCategory: "MODULE",
    deviceType: "TOUCHCONTROL",
    deviceState: "PAIRED",
    productName: "Poly TC8",
    softwareVersion: "3.12.0-210716",
    serialNumber: "8L22FD",
  },
  {
    uid: "local-camera",
    deviceCategory: "CAMERA",
    deviceType: "CAMERA",
    deviceState: "DISCONNECTED",
    productName: "StudioX50 Camera",
  },
]);
const status = polyVideoOs.VideoOsSystemStatus.parse([
  { name: "system.status.mr.audio", stateList: ["down"] },
  { name: "system.status.mr.camera", stateList: ["up"] },
  { name: "system.status.provisioning", stateList: ["off"] },
  { name: "system.status.weird", stateList: ["sideways"] },
]);

describe("videoOsHealthState", () => {
  it("maps state lists, any down wins", () => {
    expect(videoOsHealthState(["up"])).toBe("up");
    expect(videoOsHealthState(["up", "down"])).toBe("down");
    expect(videoOsHealthState(["off"])).toBe("off");
    expect(videoOsHealthState([])).toBe("unknown");
  });
});

describe("normalizeVideoOsMac / videoOsCodecMac", () => {
  it("accepts the usual MAC spellings and gives the shared Mac form", () => {
    expect(normalizeVideoOsMac("00:E0:DB:11:22:33")).toBe("00e0db112233");
    expect(normalizeVideoOsMac("00-e0-db-11-22-33")).toBe("00e0db112233");
    expect(normalizeVideoOsMac("00e0db112233")).toBe("00e0db112233");
    expect(normalizeVideoOsMac(" 00e0.db11.2233 ")).toBe("00e0db112233");
  });

  it("rejects what is not one MAC", () => {
    for (const bad of [
      undefined,
      "",
      "00:e0:db:11:22",
      "00:e0:db:11:22:33:44",
      "00:e0-db:11:22:33",
      "mac 00e0db112233",
      "00:e0:db:11:22:3g",
      "00:00:00:00:00:00",
      "ff:ff:ff:ff:ff:ff",
    ]) {
      expect(normalizeVideoOsMac(bad)).toBeUndefined();
    }
  });

  it("any six bytes, with any one separator, come back as 12 lowercase hex (property)", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 6, maxLength: 6 }),
        fc.constantFrom(":", "-", ""),
        fc.boolean(),
        (bytes, sep, upper) => {
          const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0"));
          const raw = hex.join(sep);
          const out = normalizeVideoOsMac(upper ? raw.toUpperCase() : raw);
          const joined = hex.join("");
          if (joined === "000000000000" || joined === "ffffffffffff") expect(out).toBeUndefined();
          else {
            expect(out).toBe(joined);
            expect(Mac.safeParse(out).success).toBe(true);
          }
        },
      ),
    );
  });

  it("takes the codec's entry, not a peripheral's", () => {
    expect(videoOsCodecMac(peripherals)).toBe("00e0db112233");
    const list = polyVideoOs.VideoOsPeripherals.parse([
      {
        uid: "100003",
        deviceCategory: "MODULE",
        deviceType: "TOUCHCONTROL",
        deviceState: "PAIRED",
        productName: "Poly TC8",
        macAddress: "00:e0:db:11:22:34",
      },
      {
        uid: "local-system",
        deviceCategory: "SYSTEM",
        deviceType: "CODEC",
        deviceState: "CONNECTED",
        productName: "G7500",
        macAddress: "",
      },
      {
        uid: "codec-2",
        deviceCategory: "SYSTEM",
        deviceType: "codec",
        deviceState: "CONNECTED",
        productName: "G7500",
        macAddress: "64-16-7F-0A-1B-2C",
      },
    ]);
    // The local-system entry has no usable MAC; the next CODEC entry does. The TC8's is never taken.
    expect(videoOsCodecMac(list)).toBe("64167f0a1b2c");
    expect(videoOsCodecMac(list.slice(0, 2))).toBeUndefined();
  });

  it("keeps the MAC from the previous poll when the device list did not answer", () => {
    const first = normalizeVideoOsReading({ ...base, answers: { system, peripherals } });
    expect(first.reading.identity.mac).toBe("00e0db112233");
    const second = normalizeVideoOsReading({ ...base, answers: { system }, previous: first.next });
    expect(second.reading.identity.mac).toBe("00e0db112233");
  });
});

describe("normalizeVideoOsReading", () => {
  it("maps identity, firmware, status items, peripherals and in-call state", () => {
    const { reading } = normalizeVideoOsReading({
      ...base,
      answers: { system, status, peripherals, conferences: [{ isActive: true }] },
    });
    expect(reading.identity).toEqual({
      address: "10.0.0.9",
      family: "videoos",
      vendor: "Poly",
      model: "StudioX50",
      serial: "8L2212112233FC",
      systemName: "Room 1",
      mac: "00e0db112233",
    });
    expect(reading.firmware).toEqual([
      { component: "system", version: "3.12.0", build: "366027" },
      { component: "Poly TC8", version: "3.12.0-210716" },
    ]);
    expect(reading.health).toEqual([
      { name: "microphone", state: "down" },
      { name: "camera", state: "up" },
      { name: "provisioning", state: "off" },
      { name: "weird", state: "unknown", detail: "sideways" },
    ]);
    expect(reading.peripherals.map((p) => [p.id, p.state])).toEqual([
      ["100003", "paired"],
      ["local-camera", "missing"],
    ]);
    expect(reading.inCall).toBe(true);
    expect(reading.uptimeSec).toBe(1234.5);
    expect(reading.network.linkSpeedMbps).toBe(1000);
    expect(valid(reading).success).toBe(true);
  });

  it("reads SNMP values by OID, ignoring unknown and non-numeric ones", () => {
    const v = videoOsSnmpValues([
      { oid: VIDEOOS_SNMP_OIDS.ifInOctets, type: "Counter32", value: 5 },
      { oid: `.${VIDEOOS_SNMP_OIDS.ifOutOctets}`, type: "Counter32", value: 7n },
      { oid: VIDEOOS_SNMP_OIDS.hardwareCameraStatus, type: "Integer", value: "x" },
      { oid: "1.2.3", type: "Integer", value: 1 },
    ]);
    expect(v).toEqual({ ifInOctets: 5, ifOutOctets: 7 });
  });

  it("never throws on schema-valid answers and fits the Reading contract (property)", () => {
    const str = fc.string({ maxLength: 20 });
    const sys = fc.record({
      model: str,
      serialNumber: str,
      softwareVersion: fc.tuple(fc.nat(20), fc.nat(20), fc.nat(20)).map((p) => p.join(".")),
      build: fc.nat().map(String),
      systemName: str,
      state: str,
      rebootNeeded: fc.boolean(),
      uptime: fc.double({ min: 0, max: 1e9, noNaN: true }),
    });
    const periph = fc.array(
      fc.record({
        uid: str,
        deviceCategory: str,
        deviceType: str,
        deviceState: str,
        productName: str,
        softwareVersion: fc.option(str, { nil: undefined }),
        macAddress: fc.option(str, { nil: undefined }),
      }),
      { maxLength: 4 },
    );
    const stat = fc.array(fc.record({ name: str, stateList: fc.array(str, { maxLength: 3 }) }), {
      maxLength: 5,
    });
    const snmp = fc.dictionary(
      fc.constantFrom(...Object.keys(VIDEOOS_SNMP_OIDS)),
      fc.nat({ max: 2 ** 32 - 1 }),
    );
    fc.assert(
      fc.property(
        fc.option(sys, { nil: undefined }),
        fc.option(periph, { nil: undefined }),
        fc.option(stat, { nil: undefined }),
        fc.option(snmp, { nil: undefined }),
        fc.option(snmp, { nil: undefined }),
        fc.option(periph, { nil: undefined }),
        (s, p, st, sn, prevSn, prevP) => {
          const parse = <T>(
            schema: { safeParse(v: unknown): { success: boolean; data?: unknown } },
            v: unknown,
          ) => {
            const r = schema.safeParse(v);
            return r.success ? (r.data as T) : undefined;
          };
          const first = normalizeVideoOsReading({
            ...base,
            answers: { snmp: prevSn, peripherals: prevP && parse(polyVideoOs.VideoOsPeripherals, prevP) },
          });
          const answers: VideoOsAnswers = {
            system: s && parse(polyVideoOs.VideoOsSystem, s),
            peripherals: p && parse(polyVideoOs.VideoOsPeripherals, p),
            status: st && parse(polyVideoOs.VideoOsSystemStatus, st),
            snmp: sn,
          };
          const { reading } = normalizeVideoOsReading({
            ...base,
            nowMs: base.nowMs + 30_000,
            answers,
            previous: first.next,
          });
          for (const v of Object.values(reading.network)) expect(v).toBeGreaterThanOrEqual(0);
          const c = valid(reading);
          if (!c.success) throw new Error(JSON.stringify(c.error.issues));
        },
      ),
      { numRuns: 300 },
    );
  });
});
