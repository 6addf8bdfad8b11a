import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parsePingOutput, parseTracerouteOutput } from "../../src/core/tool-parsers.js";

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join("."));
/** Milliseconds as ping prints them: three decimals. */
const ms = fc.integer({ min: 0, max: 5_000_000 }).map((n) => n / 1000);

interface PingCase {
  target: string;
  address: string;
  transmitted: number;
  received: number;
  duplicates: number;
  corrupted: number;
  errors: number;
  lossPercent: number;
  timeMs: number;
  rtt: [number, number, number, number];
  ttl: number;
  replyTimes: number[];
}

const pingCase: fc.Arbitrary<PingCase> = fc
  .record({
    target: fc.oneof(ipv4, fc.constantFrom("phone-1.example.net", "localhost", "studio.site.lan")),
    address: ipv4,
    transmitted: fc.integer({ min: 1, max: 30 }),
    receivedShare: fc.double({ min: 0, max: 1, noNaN: true }),
    duplicates: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 5 })),
    corrupted: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 5 })),
    errors: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 5 })),
    timeMs: fc.nat(100_000),
    rtt: fc.tuple(ms, ms, ms, ms),
    ttl: fc.integer({ min: 1, max: 255 }),
    replyTimes: fc.array(ms, { maxLength: 30 }),
  })
  .map((c) => {
    const received = Math.floor(c.transmitted * c.receivedShare);
    const [a, b, d, m] = c.rtt;
    const sorted = [a, b, d].sort((x, y) => x - y) as [number, number, number];
    // ping prints loss as %g of the exact ratio; a few significant digits are what reaches the parser.
    const lossPercent = Number((((c.transmitted - received) / c.transmitted) * 100).toPrecision(6));
    return {
      ...c,
      received,
      lossPercent,
      rtt: [sorted[0], sorted[1], sorted[2], m] as [number, number, number, number],
      replyTimes: c.replyTimes.slice(0, received),
    };
  });

/** Renders what iputils `ping -n` prints for the case (see iputils ping_common.c finish()). */
function renderPing(c: PingCase): string {
  const lines = [`PING ${c.target} (${c.address}) 56(84) bytes of data.`];
  c.replyTimes.forEach((t, i) => {
    lines.push(`64 bytes from ${c.address}: icmp_seq=${i + 1} ttl=${c.ttl} time=${t.toFixed(3)} ms`);
  });
  lines.push("", `--- ${c.target} ping statistics ---`);
  let stats = `${c.transmitted} packets transmitted, ${c.received} received`;
  if (c.duplicates) stats += `, +${c.duplicates} duplicates`;
  if (c.corrupted) stats += `, +${c.corrupted} corrupted`;
  if (c.errors) stats += `, +${c.errors} errors`;
  stats += `, ${c.lossPercent}% packet loss, time ${c.timeMs}ms`;
  lines.push(stats);
  if (c.received > 0) lines.push(`rtt min/avg/max/mdev = ${c.rtt.map((v) => v.toFixed(3)).join("/")} ms`);
  return `${lines.join("\n")}\n`;
}

describe("parsePingOutput", () => {
  it("parses the real output of iputils ping to loopback", () => {
    const out = [
      "PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.",
      "64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.134 ms",
      "64 bytes from 127.0.0.1: icmp_seq=2 ttl=64 time=0.036 ms",
      "",
      "--- 127.0.0.1 ping statistics ---",
      "2 packets transmitted, 2 received, 0% packet loss, time 1014ms",
      "rtt min/avg/max/mdev = 0.036/0.085/0.134/0.049 ms",
    ].join("\n");
    expect(parsePingOutput(out)).toEqual({
      address: "127.0.0.1",
      transmitted: 2,
      received: 2,
      duplicates: 0,
      corrupted: 0,
      errors: 0,
      lossPercent: 0,
      timeMs: 1014,
      rtt: { minMs: 0.036, avgMs: 0.085, maxMs: 0.134, mdevMs: 0.049 },
      replies: [
        { seq: 1, ttl: 64, timeMs: 0.134 },
        { seq: 2, ttl: 64, timeMs: 0.036 },
      ],
    });
  });

  it("parses IPv6 output, total loss without an rtt line, and busybox's format", () => {
    const v6 = parsePingOutput(
      "PING ::1(::1) 56 data bytes\n64 bytes from ::1: icmp_seq=1 ttl=64 time=0.185 ms\n\n--- ::1 ping statistics ---\n1 packets transmitted, 1 received, 0% packet loss, time 0ms\nrtt min/avg/max/mdev = 0.185/0.185/0.185/0.000 ms\n",
    );
    expect(v6?.address).toBe("::1");
    expect(v6?.replies).toEqual([{ seq: 1, ttl: 64, timeMs: 0.185 }]);
    const lost = parsePingOutput(
      "PING 10.9.9.9 (10.9.9.9) 56(84) bytes of data.\n\n--- 10.9.9.9 ping statistics ---\n3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2040ms, pipe 3\n",
    );
    expect(lost).toMatchObject({
      transmitted: 3,
      received: 0,
      errors: 3,
      lossPercent: 100,
      rtt: null,
      replies: [],
    });
    const busybox = parsePingOutput(
      "PING 10.0.0.1 (10.0.0.1): 56 data bytes\n64 bytes from 10.0.0.1: seq=0 ttl=64 time=0.081 ms\n\n--- 10.0.0.1 ping statistics ---\n3 packets transmitted, 3 packets received, 0% packet loss\nround-trip min/avg/max = 0.081/0.100/0.120 ms\n",
    );
    expect(busybox).toMatchObject({
      transmitted: 3,
      received: 3,
      timeMs: null,
      rtt: { minMs: 0.081, avgMs: 0.1, maxMs: 0.12, mdevMs: null },
    });
  });

  it("returns null when there is no statistics line (unknown host, usage error)", () => {
    expect(parsePingOutput("")).toBeNull();
    expect(parsePingOutput("ping: nonexist.invalid: Name or service not known\n")).toBeNull();
  });

  it("recovers every field of generated iputils outputs (property)", () => {
    fc.assert(
      fc.property(pingCase, (c) => {
        const parsed = parsePingOutput(renderPing(c));
        expect(parsed).not.toBeNull();
        expect(parsed).toEqual({
          address: c.address,
          transmitted: c.transmitted,
          received: c.received,
          duplicates: c.duplicates,
          corrupted: c.corrupted,
          errors: c.errors,
          lossPercent: c.lossPercent,
          timeMs: c.timeMs,
          rtt:
            c.received > 0 ? { minMs: c.rtt[0], avgMs: c.rtt[1], maxMs: c.rtt[2], mdevMs: c.rtt[3] } : null,
          replies: c.replyTimes.map((t, i) => ({ seq: i + 1, ttl: c.ttl, timeMs: t })),
        });
      }),
      { numRuns: 300 },
    );
  });

  it("never throws on arbitrary text, and what it returns is well-formed (property)", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string({ unit: "binary" }),
          pingCase.map(renderPing).chain((s) => fc.nat(s.length).map((n) => s.slice(0, n))),
        ),
        (text) => {
          const r = parsePingOutput(text);
          if (r !== null) {
            expect(Number.isInteger(r.transmitted)).toBe(true);
            expect(Number.isFinite(r.lossPercent)).toBe(true);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

interface HopCase {
  address: string | null;
  rttMs: number;
  annotation: string | null;
}

const hopCase: fc.Arbitrary<HopCase> = fc.record({
  address: fc.option(ipv4, { freq: 3 }),
  rttMs: ms,
  annotation: fc.option(fc.constantFrom("!H", "!N", "!P", "!X", "!S"), { freq: 5 }),
});

/** Renders what Linux `traceroute -n -q 1` prints for the hops. */
function renderTraceroute(target: string, destination: string, maxHops: number, hops: HopCase[]): string {
  const lines = [`traceroute to ${target} (${destination}), ${maxHops} hops max, 60 byte packets`];
  hops.forEach((h, i) => {
    const n = String(i + 1).padStart(2, " ");
    if (h.address === null) lines.push(`${n}  *`);
    else lines.push(`${n}  ${h.address}  ${h.rttMs.toFixed(3)} ms${h.annotation ? ` ${h.annotation}` : ""}`);
  });
  return `${lines.join("\n")}\n`;
}

describe("parseTracerouteOutput", () => {
  it("parses a one-hop route to loopback", () => {
    const r = parseTracerouteOutput(
      "traceroute to 127.0.0.1 (127.0.0.1), 5 hops max, 60 byte packets\n 1  127.0.0.1  0.011 ms\n",
    );
    expect(r).toEqual({
      destination: "127.0.0.1",
      maxHops: 5,
      reached: true,
      hops: [
        {
          hop: 1,
          address: "127.0.0.1",
          rttMs: 0.011,
          probes: [{ address: "127.0.0.1", rttMs: 0.011, annotation: null }],
        },
      ],
    });
  });

  it("parses several probes per hop, silent hops, annotations and resolved names", () => {
    const r = parseTracerouteOutput(
      [
        "traceroute to example.net (192.0.2.10), 30 hops max, 60 byte packets",
        " 1  gw.lan (10.0.0.1)  0.512 ms  0.480 ms  0.470 ms",
        " 2  * * *",
        " 3  198.51.100.1  5.1 ms * 198.51.100.2  6.2 ms",
        " 4  192.0.2.10  9.000 ms !X",
      ].join("\n"),
    );
    expect(r.destination).toBe("192.0.2.10");
    expect(r.hops.map((h) => h.hop)).toEqual([1, 2, 3, 4]);
    expect(r.hops[0]).toMatchObject({ address: "10.0.0.1", rttMs: 0.512 });
    expect(r.hops[0]?.probes).toHaveLength(3);
    expect(r.hops[1]).toMatchObject({ address: null, rttMs: null });
    expect(r.hops[1]?.probes).toHaveLength(3);
    expect(r.hops[2]?.probes.map((p) => p.address)).toEqual(["198.51.100.1", null, "198.51.100.2"]);
    expect(r.hops[3]?.probes[0]?.annotation).toBe("!X");
    expect(r.reached).toBe(true);
  });

  it("finds no hops in error output", () => {
    const r = parseTracerouteOutput(
      'nonexist.invalid: Name or service not known\nCannot handle "host" cmdline arg `nonexist.invalid\' on position 1 (argc 9)\n',
    );
    expect(r).toEqual({ destination: null, maxHops: null, hops: [], reached: false });
  });

  it("recovers every hop of generated outputs (property)", () => {
    fc.assert(
      fc.property(
        ipv4,
        fc.integer({ min: 1, max: 64 }),
        fc.array(hopCase, { minLength: 0, maxLength: 64 }),
        fc.boolean(),
        (destination, maxHops, hops, endsAtDestination) => {
          const route = hops.slice(0, maxHops);
          if (endsAtDestination && route.length > 0) {
            route[route.length - 1] = { address: destination, rttMs: 1.5, annotation: null };
          }
          const r = parseTracerouteOutput(renderTraceroute(destination, destination, maxHops, route));
          expect(r.destination).toBe(destination);
          expect(r.maxHops).toBe(maxHops);
          expect(r.hops).toEqual(
            route.map((h, i) => ({
              hop: i + 1,
              address: h.address,
              rttMs: h.address === null ? null : h.rttMs,
              probes: [
                h.address === null
                  ? { address: null, rttMs: null, annotation: null }
                  : { address: h.address, rttMs: h.rttMs, annotation: h.annotation },
              ],
            })),
          );
          expect(r.reached).toBe(route.length > 0 && route[route.length - 1]?.address === destination);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("never throws on arbitrary text (property)", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string({ unit: "binary" }),
          fc
            .array(fc.constantFrom(" 1 ", "*", "ms", "1.5", "!H", "(", ")", "\n", "10.0.0.1"))
            .map((a) => a.join(" ")),
        ),
        (text) => {
          const r = parseTracerouteOutput(text);
          for (const h of r.hops) expect(Number.isInteger(h.hop)).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });
});
