import { describe, expect, it } from "vitest";
import { Scheduler, type SchedulerOptions } from "../../../src/adapters/scheduler/scheduler.js";
import { PromRegistry } from "../../../src/core/prom-registry.js";
import type { DeviceDriver } from "../../../src/ports/driver.js";
import { FakeClock, FakeDriver, MemorySink, reading, seeded, target } from "./fakes.js";

function setup(opts: Partial<SchedulerOptions> = {}) {
  const clock = new FakeClock();
  const sink = new MemorySink();
  const metrics = new PromRegistry();
  const ucs = new FakeDriver("poly-ucs", clock);
  const snmp = new FakeDriver("snmp-generic", clock);
  const scheduler = new Scheduler(
    { drivers: { "poly-ucs": ucs, "snmp-generic": snmp }, sink, clock, metrics },
    {
      intervalMs: 10_000,
      jitterPct: 10,
      timeoutMs: 1000,
      concurrency: 16,
      missesBeforeUnreachable: 3,
      random: seeded(42),
      ...opts,
    },
  );
  return { clock, sink, metrics, ucs, snmp, scheduler };
}

function gaps(xs: number[]): number[] {
  return xs.slice(1).map((x, i) => x - (xs[i] as number));
}

describe("Scheduler", () => {
  it("polls each device at its interval within ±jitter, first polls inside the first interval", async () => {
    const { clock, scheduler, ucs, sink } = setup();
    const t0 = clock.now();
    for (let i = 0; i < 20; i++) scheduler.upsert({ target: target(i), driver: "poly-ucs" });
    scheduler.start();
    await clock.advance(200_000);
    for (let i = 0; i < 20; i++) {
      const starts = ucs.startsOf(`dev-${i}`);
      expect(starts[0]).toBeGreaterThanOrEqual(t0);
      expect(starts[0]).toBeLessThan(t0 + 10_000);
      expect(starts.length).toBeGreaterThanOrEqual(18);
      for (const g of gaps(starts)) {
        expect(g).toBeGreaterThanOrEqual(9000);
        expect(g).toBeLessThanOrEqual(11_000);
      }
    }
    // Jitter really varies the gaps (not a fixed interval).
    expect(new Set(gaps(ucs.startsOf("dev-0"))).size).toBeGreaterThan(3);
    expect(sink.readings.length).toBe(ucs.calls.length);
    await scheduler.stop();
  });

  it("honours a per-device interval", async () => {
    const { clock, scheduler, ucs } = setup({ jitterPct: 0 });
    scheduler.upsert({ target: target(1), driver: "poly-ucs", intervalMs: 30_000 });
    scheduler.upsert({ target: target(2), driver: "poly-ucs" });
    scheduler.start();
    await clock.advance(120_000);
    expect(gaps(ucs.startsOf("dev-1")).every((g) => g === 30_000)).toBe(true);
    expect(gaps(ucs.startsOf("dev-2")).every((g) => g === 10_000)).toBe(true);
  });

  it("spreads the first polls of 2,000 devices over the interval", async () => {
    const { clock, scheduler, ucs } = setup({ intervalMs: 30_000, concurrency: 10_000 });
    const t0 = clock.now();
    for (let i = 0; i < 2000; i++) scheduler.upsert({ target: target(i), driver: "poly-ucs" });
    scheduler.start();
    await clock.advance(30_000);
    const firsts = new Map<string, number>();
    for (const c of ucs.calls) if (!firsts.has(c.deviceId)) firsts.set(c.deviceId, c.startedAt);
    expect(firsts.size).toBe(2000);
    const perSecond = new Array<number>(30).fill(0);
    for (const t of firsts.values()) {
      const s = Math.floor((t - t0) / 1000);
      perSecond[s] = (perSecond[s] ?? 0) + 1;
    }
    // 66.7 per second on average; an even spread keeps every second close to it.
    expect(Math.max(...perSecond)).toBeLessThanOrEqual(70);
    expect(Math.min(...perSecond)).toBeGreaterThanOrEqual(63);
  });

  it("never runs more polls at once than the concurrency bound, and still polls everyone", async () => {
    const { clock, scheduler, ucs } = setup({ concurrency: 5, intervalMs: 10_000, timeoutMs: 5000 });
    ucs.behaviour = () => ({ kind: "answer", latencyMs: 900 });
    let maxSeen = 0;
    for (let i = 0; i < 40; i++) scheduler.upsert({ target: target(i), driver: "poly-ucs" });
    scheduler.start();
    for (let s = 0; s < 600; s++) {
      await clock.advance(100);
      maxSeen = Math.max(maxSeen, scheduler.inFlight);
    }
    expect(ucs.maxInFlight).toBe(5);
    expect(maxSeen).toBeLessThanOrEqual(5);
    for (let i = 0; i < 40; i++) expect(ucs.startsOf(`dev-${i}`).length).toBeGreaterThanOrEqual(4);
    const stats = scheduler.cycleStats();
    // 40 polls of 0.9 s need 7.2 slot-seconds of 5 × 10: some wait, so lateness is measured.
    expect(stats.some((c) => c.maxLatenessMs > 0)).toBe(true);
  });

  it("times out a hanging device, frees its slot, and does not delay the others", async () => {
    const { clock, scheduler, ucs, sink, metrics } = setup({ concurrency: 1, timeoutMs: 1000, jitterPct: 0 });
    ucs.behaviour = (t) =>
      t.deviceId === "dev-0" ? { kind: "hangUntilAbort" } : { kind: "answer", latencyMs: 20 };
    for (let i = 0; i < 6; i++) scheduler.upsert({ target: target(i), driver: "poly-ucs" });
    scheduler.start();
    await clock.advance(60_000);
    const hung = sink.readings.filter((r) => r.deviceId === "dev-0");
    expect(hung.length).toBeGreaterThan(2);
    expect(hung.every((r) => !r.reachable && r.errors[0]?.code === "POLYFLEET_ERR_DEVICE_TIMEOUT")).toBe(
      true,
    );
    expect(ucs.calls.filter((c) => c.deviceId === "dev-0").every((c) => c.aborted)).toBe(true);
    // With one slot, a healthy device can at worst wait for the dead one's timeout.
    for (const c of scheduler.cycleStats()) expect(c.maxLatenessMs).toBeLessThanOrEqual(1000);
    for (let i = 1; i < 6; i++) {
      expect(sink.readings.filter((r) => r.deviceId === `dev-${i}`).every((r) => r.reachable)).toBe(true);
    }
    expect(metrics.get("polyfleet_agent_polls_total", { driver: "poly-ucs", result: "timeout" })).toBe(
      hung.length,
    );
    expect(
      metrics.get("polyfleet_agent_poll_failures_total", {
        driver: "poly-ucs",
        reason: "POLYFLEET_ERR_DEVICE_TIMEOUT",
      }),
    ).toBe(hung.length);
    expect(scheduler.inFlight).toBe(0);
  });

  it("a device whose driver ignores the abort is skipped while its poll still runs, never polled twice at once", async () => {
    const { clock, scheduler, ucs, sink, metrics } = setup({ concurrency: 2, timeoutMs: 1000 });
    ucs.behaviour = (t) => (t.deviceId === "dev-0" ? { kind: "hang" } : { kind: "answer", latencyMs: 10 });
    for (let i = 0; i < 4; i++) scheduler.upsert({ target: target(i), driver: "poly-ucs" });
    scheduler.start();
    await clock.advance(100_000);
    expect(ucs.calls.filter((c) => c.deviceId === "dev-0")).toHaveLength(1);
    expect(ucs.maxPerDevice).toBe(1);
    const skipped = metrics.get("polyfleet_agent_poll_skipped_total", { driver: "poly-ucs" });
    expect(skipped).toBeGreaterThanOrEqual(5);
    expect(scheduler.cycleStats().reduce((s, c) => s + c.skipped, 0)).toBe(skipped);
    // Its slot came back at the timeout: the others kept their cadence.
    for (let i = 1; i < 4; i++)
      expect(sink.readings.filter((r) => r.deviceId === `dev-${i}`).length).toBeGreaterThanOrEqual(9);
    expect(scheduler.device("dev-0")?.running).toBe(true);
    expect(scheduler.inFlight).toBe(0);
  });

  it("marks a device unreachable exactly at the N-th consecutive miss and reachable again on the first success", async () => {
    const { clock, scheduler, ucs, sink, metrics } = setup({ missesBeforeUnreachable: 3, jitterPct: 0 });
    let failing = true;
    ucs.behaviour = () => ({ kind: "answer", latencyMs: 5, reachable: !failing });
    scheduler.upsert({ target: target(0), driver: "poly-ucs" });
    scheduler.start();
    const readingsAtEvent: number[] = [];
    let seen = 0;
    for (let s = 0; s < 300 && sink.eventsOf("device.reachability").length === 0; s++) {
      await clock.advance(1000);
      if (sink.eventsOf("device.reachability").length > seen) readingsAtEvent.push(sink.readings.length);
      seen = sink.eventsOf("device.reachability").length;
    }
    expect(readingsAtEvent).toEqual([3]);
    expect(sink.eventsOf("device.reachability")[0]).toMatchObject({
      deviceId: "dev-0",
      reachable: false,
      missedPolls: 3,
    });
    expect(metrics.get("polyfleet_agent_devices", { driver: "poly-ucs", state: "unreachable" })).toBe(1);
    // More misses: no second event.
    await clock.advance(200_000);
    expect(sink.eventsOf("device.reachability")).toHaveLength(1);
    failing = false;
    const before = sink.readings.length;
    await clock.advance(300_000);
    const ev = sink.eventsOf("device.reachability");
    expect(ev).toHaveLength(2);
    expect(ev[1]).toMatchObject({ reachable: true });
    expect(sink.readings[before]?.reachable).toBe(true);
    expect(metrics.get("polyfleet_agent_devices", { driver: "poly-ucs", state: "reachable" })).toBe(1);
    expect(metrics.get("polyfleet_agent_devices", { driver: "poly-ucs", state: "unreachable" })).toBe(0);
  });

  it("does not flap on isolated failures", async () => {
    const { clock, scheduler, ucs, sink } = setup({ missesBeforeUnreachable: 2 });
    ucs.behaviour = (_t, n) => ({ kind: "answer", latencyMs: 5, reachable: n % 2 === 0 });
    scheduler.upsert({ target: target(0), driver: "poly-ucs" });
    scheduler.start();
    await clock.advance(300_000);
    expect(sink.readings.filter((r) => !r.reachable).length).toBeGreaterThan(10);
    expect(sink.eventsOf("device.reachability")).toHaveLength(0);
  });

  it("backs off a failing device past the miss threshold, up to the cap", async () => {
    const { clock, scheduler, ucs } = setup({
      jitterPct: 0,
      missesBeforeUnreachable: 2,
      backoffMaxMs: 80_000,
    });
    ucs.behaviour = () => ({ kind: "answer", latencyMs: 5, reachable: false });
    scheduler.upsert({ target: target(0), driver: "poly-ucs" });
    scheduler.start();
    await clock.advance(1_000_000);
    expect(gaps(ucs.startsOf("dev-0")).slice(0, 7)).toEqual([
      10_000, 20_000, 40_000, 80_000, 80_000, 80_000, 80_000,
    ]);
  });

  it("appends device.lost once after the absence limit", async () => {
    const { clock, scheduler, ucs, sink } = setup({ lostAfterMs: 60_000, missesBeforeUnreachable: 2 });
    ucs.behaviour = () => ({ kind: "answer", latencyMs: 5, reachable: false });
    scheduler.upsert({ target: target(0), driver: "poly-ucs" });
    scheduler.start();
    await clock.advance(600_000);
    const lost = sink.eventsOf("device.lost");
    expect(lost).toHaveLength(1);
    expect(lost[0]).toMatchObject({ deviceId: "dev-0", address: target(0).address });
    expect(scheduler.device("dev-0")?.state).toBe("lost");
  });

  it("adds, updates and removes devices at run time", async () => {
    const { clock, scheduler, ucs, snmp } = setup({ jitterPct: 0 });
    scheduler.upsert({ target: target(0), driver: "poly-ucs" });
    scheduler.start();
    await clock.advance(25_000);
    scheduler.upsert({ target: target(1), driver: "poly-ucs" });
    await clock.advance(20_000);
    expect(ucs.startsOf("dev-1").length).toBeGreaterThanOrEqual(1);
    // Switching the driver moves the device and makes the old driver forget it.
    scheduler.upsert({ target: target(1), driver: "snmp-generic" });
    await clock.advance(20_000);
    expect(snmp.startsOf("dev-1").length).toBeGreaterThanOrEqual(1);
    expect(ucs.forgotten).toContain("dev-1");
    expect(scheduler.remove("dev-0")).toBe(true);
    expect(ucs.forgotten).toContain("dev-0");
    const n = ucs.startsOf("dev-0").length;
    await clock.advance(60_000);
    expect(ucs.startsOf("dev-0").length).toBe(n);
    expect(scheduler.has("dev-0")).toBe(false);
    expect(scheduler.size).toBe(1);
    expect(scheduler.remove("dev-0")).toBe(false);
    expect(() => scheduler.upsert({ target: target(3), driver: "poly-videoos" })).toThrow(/no driver/);
  });

  it("removing a device mid-poll frees its slot and drops its answer", async () => {
    const { clock, scheduler, ucs, sink } = setup({ concurrency: 1, timeoutMs: 5000 });
    ucs.behaviour = () => ({ kind: "answer", latencyMs: 3000 });
    scheduler.upsert({ target: target(0), driver: "poly-ucs" });
    scheduler.start();
    for (let s = 0; s < 100 && ucs.inFlight === 0; s++) await clock.advance(100);
    expect(scheduler.inFlight).toBe(1);
    scheduler.remove("dev-0");
    expect(scheduler.inFlight).toBe(0);
    await clock.advance(5000);
    expect(sink.readings).toHaveLength(0);
  });

  it("turns a driver that throws into a failed reading and keeps polling", async () => {
    const { clock, scheduler, ucs, sink } = setup({ jitterPct: 0 });
    ucs.behaviour = (_t, n) => (n === 0 ? { kind: "throw" } : { kind: "answer", latencyMs: 5 });
    scheduler.upsert({ target: target(0), driver: "poly-ucs" });
    scheduler.start();
    await clock.advance(30_000);
    expect(sink.readings[0]).toMatchObject({
      reachable: false,
      errors: [{ code: "POLYFLEET_ERR_INTERNAL" }],
    });
    expect(sink.readings.slice(1).every((r) => r.reachable)).toBe(true);
    expect(sink.readings.length).toBeGreaterThanOrEqual(3);
  });

  it("keeps going when the sink throws", async () => {
    const { clock, scheduler, ucs, sink } = setup();
    let n = 0;
    sink.appendReading = () => {
      n++;
      throw new Error("disk full");
    };
    for (let i = 0; i < 3; i++) scheduler.upsert({ target: target(i), driver: "poly-ucs" });
    scheduler.start();
    await clock.advance(50_000);
    expect(n).toBeGreaterThanOrEqual(12);
    expect(ucs.calls.length).toBe(n);
  });

  it("reports cycles: due = started + skipped, done = ok + failed + timedOut, and the metrics agree", async () => {
    const { clock, scheduler, ucs, metrics } = setup({ concurrency: 3, timeoutMs: 800 });
    ucs.behaviour = (t, n) =>
      t.deviceId === "dev-0"
        ? { kind: "hangUntilAbort" }
        : { kind: "answer", latencyMs: 50, reachable: n % 3 !== 1 };
    for (let i = 0; i < 12; i++) scheduler.upsert({ target: target(i), driver: "poly-ucs" });
    scheduler.start();
    await clock.advance(95_000);
    await scheduler.stop();
    const stats = scheduler.cycleStats();
    expect(stats.length).toBeGreaterThanOrEqual(9);
    for (const c of stats.slice(0, -1)) {
      expect(c.due).toBe(c.started + c.skipped);
      expect(c.done).toBe(c.ok + c.failed + c.timedOut);
      expect(c.endMs - c.startMs).toBe(10_000);
    }
    const sum = (k: "ok" | "failed" | "timedOut") => stats.reduce((s, c) => s + c[k], 0);
    expect(metrics.get("polyfleet_agent_polls_total", { driver: "poly-ucs", result: "ok" })).toBe(sum("ok"));
    expect(metrics.get("polyfleet_agent_polls_total", { driver: "poly-ucs", result: "failed" })).toBe(
      sum("failed"),
    );
    expect(metrics.get("polyfleet_agent_polls_total", { driver: "poly-ucs", result: "timeout" })).toBe(
      sum("timedOut"),
    );
    expect(metrics.render()).toContain('polyfleet_agent_poll_duration_seconds_count{driver="poly-ucs"}');
    // After stop nothing fires any more.
    const calls = ucs.calls.length;
    await clock.advance(60_000);
    expect(ucs.calls.length).toBe(calls);
  });

  it("counts the errors of a device that answered (auth refused, HTTP 500) as partial failures by reason", async () => {
    const clock = new FakeClock();
    const sink = new MemorySink();
    const metrics = new PromRegistry();
    const answering: DeviceDriver = {
      name: "poly-ucs",
      identify: () =>
        Promise.resolve({ ok: false, error: { code: "POLYFLEET_ERR_DEVICE_AUTH", message: "401" } }),
      poll: (t) =>
        Promise.resolve({
          ...reading(t, "poly-ucs", true, 5),
          errors: [
            { code: "POLYFLEET_ERR_DEVICE_AUTH", message: "401 on device/info" },
            { code: "POLYFLEET_ERR_DEVICE_AUTH", message: "401 on device/stats" },
            { code: "POLYFLEET_ERR_DEVICE_HTTP", message: "500 on lineInfo" },
          ],
        }),
      reboot: () => Promise.resolve({ ok: true }),
      forget: () => {},
      close: () => Promise.resolve(),
    };
    const scheduler = new Scheduler(
      { drivers: { "poly-ucs": answering }, sink, clock, metrics },
      {
        intervalMs: 10_000,
        jitterPct: 0,
        timeoutMs: 1000,
        concurrency: 4,
        missesBeforeUnreachable: 3,
        random: seeded(1),
      },
    );
    scheduler.upsert({ target: target(1), driver: "poly-ucs" });
    scheduler.start();
    await clock.advance(25_000);
    const polls = metrics.get("polyfleet_agent_polls_total", { driver: "poly-ucs", result: "ok" });
    expect(polls).toBeGreaterThanOrEqual(2);
    const partial = (reason: string) =>
      metrics.get("polyfleet_agent_poll_partial_failures_total", { driver: "poly-ucs", reason });
    expect(partial("POLYFLEET_ERR_DEVICE_AUTH")).toBe(polls);
    expect(partial("POLYFLEET_ERR_DEVICE_HTTP")).toBe(polls);
    expect(metrics.total("polyfleet_agent_poll_failures_total")).toBe(0);
    await scheduler.stop();
  });
});
