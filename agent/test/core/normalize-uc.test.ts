import { polyUc, Reading } from "@polyfleet/shared";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  normalizeUcReading,
  parseUcBootBlock,
  parseUcUptimeText,
  parseUcVersion,
  type UcAnswers,
} from "../../src/core/normalize-uc.js";
import type { ReadingBody } from "../../src/ports/driver.js";

const valid = (r: ReadingBody) =>
  Reading.safeParse({ ...r, v: 1, agentId: "a", siteId: "s", seq: 1, ts: 1, kind: "reading" });

const numStr = fc.oneof(
  fc.nat({ max: 2 ** 40 }).map(String),
  fc.integer({ min: -5, max: 5 }).map(String),
  fc.constant("12.5"),
);
const str = fc.string({ maxLength: 40 });
const infoV2 = fc.record({
  ModelNumber: str,
  DeviceType: str,
  DeviceVendor: str,
  MACAddress: fc.stringMatching(/^[0-9a-f]{12}$/),
  Firmware: fc.record({
    Application: fc.oneof(str, fc.constant("5.9.7.4477 18-Feb-21 11:02"), fc.constant("8.2.1.0034A rel")),
    Updater: str,
    BootBlock: fc.oneof(str, fc.constant("3.0.6.0002 (48830-001)"), fc.constant("(")),
  }),
  UpTime: fc.record({ Days: numStr, Hours: numStr, Minutes: numStr, Seconds: numStr }),
  IPAddress: str,
  AppState: fc.oneof(str, fc.constant("AppStateCall")),
});
const stats = fc.record({
  CPU: fc.record({ Current: numStr, Average: numStr }),
  Memory: fc.record({
    Total: numStr,
    Used: numStr,
    Free: numStr,
    SReclaim: fc.option(numStr, { nil: undefined }),
  }),
});
const netStats = fc.record({
  RxPackets: numStr,
  TxPackets: numStr,
  UpTime: fc
    .tuple(fc.nat(999), fc.nat(23), fc.nat(59), fc.nat(59))
    .map(([d, h, m, s]) => `${d} day ${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`),
});
const linesV2 = fc.array(
  fc.record({
    LineNumber: fc.option(numStr, { nil: undefined }),
    RegistrationStatus: fc.constantFrom("registered", "unregistered") as fc.Arbitrary<
      "registered" | "unregistered"
    >,
    Username: fc.option(str, { nil: undefined }),
    CallServers: fc.array(fc.oneof(fc.constant(null), fc.record({ Address: str }), fc.anything()), {
      maxLength: 2,
    }),
  }),
  { maxLength: 4 },
);
const session = fc.array(
  fc.record({
    Streams: fc.array(
      fc.record({
        Category: str,
        PacketsLost: fc.option(numStr, { nil: undefined }),
        PacketsExpected: fc.option(numStr, { nil: undefined }),
      }),
      { maxLength: 3 },
    ),
  }),
  { maxLength: 2 },
);
const mrpair = fc.record({
  ConnectedDeviceList: fc.array(
    fc.record({
      ComponentList: fc.array(
        fc.record({
          componentType: str,
          componentName: str,
          componentSerialNumber: fc.option(str, { nil: undefined }),
        }),
        { maxLength: 4 },
      ),
    }),
    { maxLength: 2 },
  ),
});

describe("UC parsing helpers", () => {
  it("parses the application version and build date", () => {
    expect(parseUcVersion("5.9.7.4477 18-Feb-21 11:02")).toEqual({
      version: "5.9.7.4477",
      build: "18-Feb-21 11:02",
    });
    expect(parseUcVersion("8.2.1.0034A")).toEqual({ version: "8.2.1.0034A" });
    expect(parseUcVersion("odd")).toEqual({ version: "odd" });
    expect(parseUcVersion("  ")).toBeUndefined();
  });
  it("keeps the raw part-number tail of the BootBlock", () => {
    expect(parseUcBootBlock("3.0.6.0002 (65290-001)")).toEqual({
      version: "3.0.6.0002",
      partNumber: "65290-001",
    });
  });
  it("parses uptime texts", () => {
    expect(parseUcUptimeText("0 Day 22:02:09")).toBe(22 * 3600 + 2 * 60 + 9);
    expect(parseUcUptimeText("3 days 4:05:06")).toBe(3 * 86400 + 4 * 3600 + 5 * 60 + 6);
    expect(parseUcUptimeText("garbage")).toBeUndefined();
  });
});

describe("normalizeUcReading", () => {
  const base = {
    deviceId: "64167fa1b2c3",
    address: "10.0.0.5",
    reachable: true,
    pollLatencyMs: 12,
    nowMs: 1_000_000,
    errors: [],
  };
  const info = {
    v: 2 as const,
    data: polyUc.UcDeviceInfoV2.parse({
      Status: "2000",
      data: {
        ModelNumber: "VVX 350",
        DeviceType: "HardwareEndpoint",
        DeviceVendor: "Polycom",
        MACAddress: "64167fa1b2c3",
        Firmware: {
          Application: "5.9.7.4477 18-Feb-21 11:02",
          Updater: "5.9.7.4477",
          BootBlock: "3.0.6.0002 (48830-001)",
        },
        UpTime: { Days: "1", Hours: "2", Minutes: "3", Seconds: "4" },
        IPAddress: "10.0.0.5",
        AppState: "AppStateMenu",
      },
    }).data,
  };

  it("maps identity, firmware, memory as Centreon does, CPU average", () => {
    const { reading } = normalizeUcReading({
      ...base,
      answers: {
        info,
        stats: {
          CPU: { Current: "40", Average: "12" },
          Memory: { Total: "1000", Used: "600", Free: "400", SReclaim: "100" },
        },
      },
    });
    expect(reading.identity).toEqual({
      address: "10.0.0.5",
      family: "uc",
      vendor: "Polycom",
      model: "VVX 350",
      mac: "64167fa1b2c3",
      serial: "64167FA1B2C3",
      partNumber: "48830-001",
    });
    expect(reading.firmware).toEqual([
      { component: "application", version: "5.9.7.4477", build: "18-Feb-21 11:02" },
      { component: "updater", version: "5.9.7.4477" },
      { component: "bootBlock", version: "3.0.6.0002" },
    ]);
    expect(reading.cpuPct).toBe(12);
    expect(reading.memPct).toBe(50);
    expect(reading.uptimeSec).toBe(86400 + 7200 + 180 + 4);
    expect(reading.inCall).toBe(false);
    expect(valid(reading).success).toBe(true);
  });

  it("derives rates between polls and marks vanished peripherals missing", () => {
    const mr = (withCamera: boolean): UcAnswers["mrpair"] => ({
      ConnectedDeviceList: [
        {
          ComponentList: [
            { componentType: "displayUI", componentName: "Trio Visual+", componentSerialNumber: "S1" },
            ...(withCamera
              ? [{ componentType: "cameraSrc", componentName: "EagleEye Mini", componentSerialNumber: "S1C" }]
              : []),
          ],
        },
      ],
    });
    const first = normalizeUcReading({
      ...base,
      answers: {
        info,
        networkStats: { RxPackets: "1000", TxPackets: "500", UpTime: "1 day 2:03:04" },
        mrpair: mr(true),
      },
    });
    expect(first.reading.network.rxPacketsPerSec).toBeUndefined();
    const second = normalizeUcReading({
      ...base,
      nowMs: base.nowMs + 10_000,
      previous: first.next,
      answers: {
        info,
        networkStats: { RxPackets: "1300", TxPackets: "600", UpTime: "1 day 2:03:14" },
        mrpair: mr(false),
      },
    });
    expect(second.reading.network).toMatchObject({ rxPacketsPerSec: 30, txPacketsPerSec: 10 });
    expect(second.reading.peripherals.find((p) => p.category === "cameraSrc")?.state).toBe("missing");
  });

  it("keeps the last identity when the device did not answer", () => {
    const first = normalizeUcReading({ ...base, answers: { info } });
    const down = normalizeUcReading({
      ...base,
      reachable: false,
      previous: first.next,
      answers: {},
      errors: [{ code: "POLYFLEET_ERR_DEVICE_TIMEOUT", message: "no answer" }],
    });
    expect(down.reading.reachable).toBe(false);
    expect(down.reading.identity.model).toBe("VVX 350");
    expect(down.reading.errors).toHaveLength(1);
    expect(valid(down.reading).success).toBe(true);
  });

  it("never throws on schema-valid answers, and its output fits the Reading contract (property)", () => {
    fc.assert(
      fc.property(
        fc.option(infoV2, { nil: undefined }),
        fc.option(stats, { nil: undefined }),
        fc.option(netStats, { nil: undefined }),
        fc.option(linesV2, { nil: undefined }),
        fc.option(fc.record({ State: str, StateData: fc.option(fc.anything(), { nil: undefined }) }), {
          nil: undefined,
        }),
        fc.option(session, { nil: undefined }),
        fc.option(mrpair, { nil: undefined }),
        fc.option(netStats, { nil: undefined }),
        (i, s, n, l, p, ss, mr, prevNet) => {
          const parse = <T>(
            schema: { safeParse(v: unknown): { success: boolean; data?: unknown } },
            data: unknown,
          ): T | undefined => {
            const r = schema.safeParse({ Status: "2000", data });
            return r.success ? (r.data as { data: T }).data : undefined;
          };
          const answers: UcAnswers = {};
          const pi = i && parse<NonNullable<UcAnswers["info"]>["data"]>(polyUc.UcDeviceInfoV2, i);
          if (pi) answers.info = { v: 2, data: pi as never };
          answers.stats = s && parse(polyUc.UcDeviceStats, s);
          answers.networkStats = n && parse(polyUc.UcNetworkStats, n);
          const pl = l && parse(polyUc.UcLineInfoV2, l);
          if (pl) answers.lines = { v: 2, data: pl as never };
          answers.pollForStatus = p && parse(polyUc.UcPollForStatus, p);
          answers.sessionStats = ss && parse(polyUc.UcSessionStats, ss);
          answers.mrpair = mr && parse(polyUc.UcMrPair, mr);
          const prev =
            prevNet && parse<{ RxPackets: string; TxPackets: string }>(polyUc.UcNetworkStats, prevNet);
          const { reading } = normalizeUcReading({
            ...base,
            answers,
            previous: prev
              ? {
                  counters: {
                    atMs: base.nowMs - 30_000,
                    values: { rx: Number(prev.RxPackets), tx: Number(prev.TxPackets) },
                  },
                }
              : undefined,
          });
          for (const v of Object.values(reading.network)) expect(v).toBeGreaterThanOrEqual(0);
          const c = valid(reading);
          // The only contract rules the device can break are out of our hands (e.g. an empty model string
          // is allowed); everything else must validate.
          if (!c.success) throw new Error(JSON.stringify(c.error.issues));
        },
      ),
      { numRuns: 300 },
    );
  });
});
