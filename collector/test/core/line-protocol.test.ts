import type { Reading } from "@polyfleet/shared";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  encodePoint,
  encodeReading,
  encodeReadings,
  escapeTag,
  METRIC_FIELDS,
  quoteStringField,
} from "../../src/core/line-protocol.js";
import { expectedTagText, FLOAT_SYNTAX, parseLine } from "../adapters/influxdb/line-protocol-parser.js";

// Characters that stress the escaping rules, mixed into ordinary and non-ASCII text.
const NASTY = fc.constantFrom(",", "=", " ", "\\", '"', "\n", "\r", "#", "a", "Z", "0", "é", "日", "'", "\t");
const nastyText = fc.oneof(
  fc.string({ unit: NASTY, maxLength: 12 }),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: "grapheme", maxLength: 8 }),
);
const anyNumber = fc.oneof(
  fc.double(),
  fc.constantFrom(
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    -0,
    1e21,
    5e-324,
    1.7976931348623157e308,
  ),
  fc.integer(),
);
const optionalNumber = fc.option(anyNumber, { nil: undefined });
const topicId = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,20}$/);

const readingArb: fc.Arbitrary<Reading> = fc
  .record({
    agentId: topicId,
    siteId: topicId,
    seq: fc.integer({ min: 1 }),
    ts: fc.integer({ min: 0, max: 4_102_444_800_000 }),
    deviceId: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,30}$/),
    driver: fc.constantFrom("poly-ucs", "poly-videoos", "snmp-generic"),
    reachable: fc.boolean(),
    pollLatencyMs: anyNumber,
    family: fc.constantFrom("uc", "videoos", "snmp"),
    model: fc.option(nastyText, { nil: undefined }),
    cpuPct: optionalNumber,
    memPct: optionalNumber,
    uptimeSec: optionalNumber,
    rxPacketsPerSec: optionalNumber,
    txPacketsPerSec: optionalNumber,
    rxBytesPerSec: optionalNumber,
    txBytesPerSec: optionalNumber,
    packetLossPct: optionalNumber,
  })
  .map(
    (g): Reading => ({
      v: 1,
      kind: "reading",
      agentId: g.agentId,
      siteId: g.siteId,
      seq: g.seq,
      ts: g.ts,
      deviceId: g.deviceId,
      driver: g.driver,
      reachable: g.reachable,
      pollLatencyMs: g.pollLatencyMs,
      identity: {
        address: "10.0.0.1",
        family: g.family,
        ...(g.model === undefined ? {} : { model: g.model }),
      },
      firmware: [],
      health: [],
      peripherals: [],
      lines: [],
      ...(g.cpuPct === undefined ? {} : { cpuPct: g.cpuPct }),
      ...(g.memPct === undefined ? {} : { memPct: g.memPct }),
      ...(g.uptimeSec === undefined ? {} : { uptimeSec: g.uptimeSec }),
      network: {
        ...(g.rxPacketsPerSec === undefined ? {} : { rxPacketsPerSec: g.rxPacketsPerSec }),
        ...(g.txPacketsPerSec === undefined ? {} : { txPacketsPerSec: g.txPacketsPerSec }),
        ...(g.rxBytesPerSec === undefined ? {} : { rxBytesPerSec: g.rxBytesPerSec }),
        ...(g.txBytesPerSec === undefined ? {} : { txBytesPerSec: g.txBytesPerSec }),
        ...(g.packetLossPct === undefined ? {} : { packetLossPct: g.packetLossPct }),
      },
      errors: [],
    }),
  );

/** The fields a reading should yield: the finite ones, reachable as 0/1. */
function expectedFields(r: Reading): Record<string, number> {
  const src: Record<string, number | undefined> = {
    cpuPct: r.cpuPct,
    memPct: r.memPct,
    pollLatencyMs: r.pollLatencyMs,
    reachable: r.reachable ? 1 : 0,
    uptimeSec: r.uptimeSec,
    rxPacketsPerSec: r.network.rxPacketsPerSec,
    txPacketsPerSec: r.network.txPacketsPerSec,
    rxBytesPerSec: r.network.rxBytesPerSec,
    txBytesPerSec: r.network.txBytesPerSec,
    packetLossPct: r.network.packetLossPct,
  };
  const out: Record<string, number> = {};
  // -0 is written as 0.
  for (const [k, v] of Object.entries(src))
    if (v !== undefined && Number.isFinite(v)) out[k] = v === 0 ? 0 : v;
  return out;
}

function baseReading(over: Partial<Reading> = {}): Reading {
  return {
    v: 1,
    kind: "reading",
    agentId: "agent-1",
    siteId: "hq",
    seq: 1,
    ts: 1_700_000_000_123,
    deviceId: "64167f0a0b0c",
    driver: "poly-ucs",
    reachable: true,
    pollLatencyMs: 42.5,
    identity: { address: "10.0.0.5", family: "uc", model: "CCX 600" },
    firmware: [],
    health: [],
    peripherals: [],
    lines: [],
    cpuPct: 12.5,
    network: {},
    errors: [],
    ...over,
  };
}

describe("encodeReading", () => {
  it("writes the device measurement with sorted tags, the present fields and a ms timestamp", () => {
    const line = encodeReading(
      baseReading({ memPct: 40, network: { rxPacketsPerSec: 10, packetLossPct: 0.5 }, uptimeSec: 3600 }),
    );
    expect(line).toBe(
      "device,agent=agent-1,device=64167f0a0b0c,family=uc,model=CCX\\ 600,site=hq " +
        "cpuPct=12.5,memPct=40,pollLatencyMs=42.5,reachable=1,uptimeSec=3600,rxPacketsPerSec=10,packetLossPct=0.5 " +
        "1700000000123",
    );
  });

  it("writes reachable=0, leaves out the model tag when unknown and non-finite values", () => {
    const line = encodeReading(
      baseReading({
        reachable: false,
        identity: { address: "10.0.0.5", family: "snmp" },
        cpuPct: Number.NaN,
        memPct: Number.POSITIVE_INFINITY,
      }),
    );
    expect(line).toBe(
      "device,agent=agent-1,device=64167f0a0b0c,family=snmp,site=hq pollLatencyMs=42.5,reachable=0 1700000000123",
    );
  });

  it("escapes commas, spaces and equals in the model tag", () => {
    const line = encodeReading(
      baseReading({ identity: { address: "a", family: "videoos", model: "G7500, rev=2 b" } }),
    );
    expect(line).toContain(",model=G7500\\,\\ rev\\=2\\ b,");
    expect(parseLine(line).tags.model).toBe("G7500, rev=2 b");
  });

  it("round-trips generated readings: tags and fields decode back, no NaN/Infinity, never throws", () => {
    fc.assert(
      fc.property(readingArb, (r) => {
        const line = encodeReading(r);
        expect(line).not.toContain("\n");
        const p = parseLine(line);
        expect(p.measurement).toBe("device");
        const tags: Record<string, string> = {
          agent: r.agentId,
          device: r.deviceId,
          family: r.identity.family,
          site: r.siteId,
        };
        if (r.identity.model !== undefined && r.identity.model !== "")
          tags.model = expectedTagText(r.identity.model);
        expect(p.tags).toEqual(tags);
        expect(p.fields).toEqual(expectedFields(r));
        expect(p.ts).toBe(r.ts);
        // Every field token is plain float syntax: no NaN, Infinity or integer suffix.
        for (const name of Object.keys(p.fields)) {
          const m = new RegExp(`[ ,]${name}=([^, ]+)`).exec(line);
          expect(m?.[1]).toMatch(FLOAT_SYNTAX);
        }
        expect(Object.keys(p.fields).every((k) => (METRIC_FIELDS as readonly string[]).includes(k))).toBe(
          true,
        );
      }),
      { numRuns: 2000 },
    );
  });

  it("encodes a batch as newline-separated lines, one per reading", () => {
    fc.assert(
      fc.property(fc.array(readingArb, { maxLength: 20 }), (rs) => {
        const body = encodeReadings(rs);
        const lines = body === "" ? [] : body.split("\n");
        expect(lines).toEqual(rs.map((r) => encodeReading(r)));
      }),
    );
  });
});

describe("encodePoint", () => {
  const tagKey = fc.string({ unit: NASTY, minLength: 1, maxLength: 8 });
  const fieldValue = fc.oneof(anyNumber, fc.boolean(), nastyText);

  it("round-trips arbitrary tags and number, boolean and string fields; never throws", () => {
    fc.assert(
      fc.property(
        nastyText,
        fc.dictionary(tagKey, nastyText, { maxKeys: 6 }),
        fc.dictionary(tagKey, fieldValue, { maxKeys: 6 }),
        fc.integer({ min: 0, max: 4_102_444_800_000 }),
        (measurement, tags, fields, ts) => {
          const line = encodePoint(measurement, tags, fields, ts);
          const keptFields = Object.entries(fields).filter(
            ([k, v]) => k !== "time" && (typeof v !== "number" || Number.isFinite(v)),
          );
          if (measurement === "" || measurement.startsWith("#") || keptFields.length === 0) {
            expect(line).toBeUndefined();
            return;
          }
          expect(line).toBeDefined();
          if (line === undefined) return;
          const p = parseLine(line);
          expect(p.measurement).toBe(expectedTagText(measurement));
          const expTags: Record<string, string> = {};
          for (const [k, v] of Object.entries(tags)) {
            if (k !== "time" && v !== "") expTags[expectedTagText(k)] = expectedTagText(v);
          }
          const expFields: Record<string, number | boolean | string> = {};
          for (const [k, v] of keptFields) expFields[expectedTagText(k)] = v === 0 ? 0 : v;
          // Keys that collapse to the same text after the backslash/newline rule are not comparable.
          fc.pre(
            Object.keys(expTags).length ===
              Object.entries(tags).filter(([k, v]) => k !== "time" && v !== "").length,
          );
          fc.pre(Object.keys(expFields).length === keptFields.length);
          expect(p.tags).toEqual(expTags);
          expect(p.fields).toEqual(expFields);
          expect(p.ts).toBe(ts);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("quotes string fields, escaping quotes and backslashes only", () => {
    expect(quoteStringField('a "b" \\ c\nd')).toBe('"a \\"b\\" \\\\ c\nd"');
  });

  it("writes a backslash as is unless it would merge with an escape", () => {
    expect(escapeTag("a\\b")).toBe("a\\b");
    expect(escapeTag("a\\")).toBe("a/");
    expect(escapeTag("a\\,b")).toBe("a/\\,b");
    expect(escapeTag("line1\nline2")).toBe("line1\\ line2");
  });

  it("truncates the timestamp to an integer and skips empty tags", () => {
    expect(encodePoint("m", { a: "", b: "x" }, { f: 1.5 }, 1000.9)).toBe("m,b=x f=1.5 1000");
  });
});
