import { PolyfleetError } from "@polyfleet/shared";
import { describe, expect, it } from "vitest";
import { createPingHandler } from "../../../src/adapters/tools/ping.js";
import { createTracerouteHandler } from "../../../src/adapters/tools/traceroute.js";
import type { CommandContext } from "../../../src/ports/command.js";

const ctx = (signal = new AbortController().signal): CommandContext => ({
  commandId: "cmd-tool-0001",
  signal,
});
/** A random loopback address, so parallel test files do not share one. */
const loopback = (): string =>
  `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;

describe("ping (system iputils ping)", () => {
  it("pings a loopback address and reports counts, loss and round trips", async () => {
    const target = loopback();
    const r = await createPingHandler()({ type: "ping", target, count: 3, timeoutMs: 5000 }, ctx());
    expect(r).toMatchObject({
      target,
      address: target,
      transmitted: 3,
      received: 3,
      lossPercent: 0,
      reachable: true,
      timedOut: false,
    });
    const rtt = r.rtt as { minMs: number; avgMs: number; maxMs: number };
    expect(rtt.minMs).toBeLessThanOrEqual(rtt.avgMs);
    expect(rtt.avgMs).toBeLessThanOrEqual(rtt.maxMs);
    expect((r.replies as unknown[]).length).toBe(3);
  });

  it("pings ::1", async () => {
    const r = await createPingHandler()({ type: "ping", target: "::1", count: 1, timeoutMs: 5000 }, ctx());
    expect(r).toMatchObject({ address: "::1", received: 1 });
  });

  it("stops at the time limit and still reports what came back", async () => {
    const r = await createPingHandler()(
      { type: "ping", target: "127.0.0.1", count: 20, timeoutMs: 1000 },
      ctx(),
    );
    expect(r.timedOut).toBe(true);
    expect(r.transmitted as number).toBeGreaterThan(0);
    expect(r.transmitted as number).toBeLessThan(20);
    expect(r.received).toBe(r.transmitted);
  });

  it("fails with the tool's own message for a host that does not resolve", async () => {
    const err = await createPingHandler()(
      { type: "ping", target: "no-such-host.invalid", count: 1, timeoutMs: 3000 },
      ctx(),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolyfleetError);
    expect(err).toMatchObject({ code: "POLYFLEET_ERR_COMMAND_FAILED" });
    expect((err as Error).message).toContain("no-such-host.invalid");
  });

  it("reports a missing ping binary as POLYFLEET_ERR_TOOL_UNAVAILABLE naming the package", async () => {
    const err = await createPingHandler({ bin: "/nonexistent/bin/ping" })(
      { type: "ping", target: "127.0.0.1", count: 1, timeoutMs: 1000 },
      ctx(),
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "POLYFLEET_ERR_TOOL_UNAVAILABLE" });
    expect((err as Error).message).toContain("iputils-ping");
  });

  it("never reads the target as an option", async () => {
    // The schema already refuses a leading `-`; the handler still passes targets after `--`.
    const err = await createPingHandler()(
      { type: "ping", target: "-V", count: 1, timeoutMs: 1000 },
      ctx(),
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "POLYFLEET_ERR_COMMAND_FAILED" });
    expect((err as Error).message).not.toContain("iputils");
  });
});

describe("traceroute (system traceroute)", () => {
  it("traces a loopback address in one hop", async () => {
    const target = loopback();
    const r = await createTracerouteHandler()(
      { type: "traceroute", target, maxHops: 5, timeoutMs: 10_000 },
      ctx(),
    );
    expect(r).toMatchObject({ target, destination: target, reached: true, timedOut: false });
    expect(r.hops).toEqual([{ hop: 1, address: target, rttMs: expect.any(Number), annotation: null }]);
  });

  it("fails with the tool's own message for a host that does not resolve", async () => {
    const err = await createTracerouteHandler()(
      { type: "traceroute", target: "no-such-host.invalid", maxHops: 3, timeoutMs: 3000 },
      ctx(),
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "POLYFLEET_ERR_COMMAND_FAILED" });
    expect((err as Error).message).toContain("no-such-host.invalid");
  });

  it("reports a missing traceroute binary as POLYFLEET_ERR_TOOL_UNAVAILABLE naming the package", async () => {
    const err = await createTracerouteHandler({ bin: "/nonexistent/traceroute" })(
      { type: "traceroute", target: "127.0.0.1", maxHops: 3, timeoutMs: 3000 },
      ctx(),
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "POLYFLEET_ERR_TOOL_UNAVAILABLE" });
    expect((err as Error).message).toContain("traceroute");
  });

  it("stops when the command is aborted", async () => {
    const ac = new AbortController();
    ac.abort();
    const r = await createTracerouteHandler()(
      { type: "traceroute", target: "127.0.0.1", maxHops: 3, timeoutMs: 3000 },
      ctx(ac.signal),
    ).catch((e: unknown) => e);
    // Aborted before it started: no route, so it fails with a clear message rather than hanging.
    expect(r).toMatchObject({ code: "POLYFLEET_ERR_COMMAND_FAILED" });
  });
});
