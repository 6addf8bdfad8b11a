import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PolyUcsDriver } from "../../../src/adapters/drivers/poly-ucs.js";
import { PolyVideoOsDriver } from "../../../src/adapters/drivers/poly-videoos.js";
import { UndiciHttpsClient } from "../../../src/adapters/http/https-client.js";
import { Scheduler } from "../../../src/adapters/scheduler/scheduler.js";
import { NetSnmpClient } from "../../../src/adapters/snmp/net-snmp-client.js";
import { PromRegistry } from "../../../src/core/prom-registry.js";
import { SYSTEM_CLOCK } from "../../../src/ports/clock.js";
import type { DeviceDriver, DeviceTarget, PollOptions, ReadingBody } from "../../../src/ports/driver.js";
import { fleetCredentials, type SimFleet, startFleet } from "../discovery/sim-fleet.js";
import { MemorySink } from "./fakes.js";

/** Wraps a real driver to record when each poll of each device started. */
function recording(inner: DeviceDriver, starts: Map<string, number[]>): DeviceDriver {
  return {
    name: inner.name,
    identify: (t, o) => inner.identify(t, o),
    poll(t: DeviceTarget, o: PollOptions): Promise<ReadingBody> {
      const list = starts.get(t.deviceId) ?? [];
      list.push(Date.now());
      starts.set(t.deviceId, list);
      return inner.poll(t, o);
    },
    reboot: (t, o) => inner.reboot(t, o),
    forget: (id) => inner.forget(id),
    close: () => inner.close(),
  };
}

describe("Scheduler against the simulator (real timers)", () => {
  let fleet: SimFleet;
  beforeAll(async () => {
    fleet = await startFleet([
      "--devices",
      "40",
      "--fault",
      "noAnswer=6",
      "--fault",
      "slow=3",
      "--slow-ms",
      "4000",
    ]);
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it("keeps polling healthy devices on time while dead and slow ones time out and turn unreachable", async () => {
    const metrics = new PromRegistry();
    const http = new UndiciHttpsClient({ metrics, timeoutMs: 3000 });
    const snmp = new NetSnmpClient({ metrics, timeoutMs: 800, retries: 0 });
    const sink = new MemorySink();
    const starts = new Map<string, number[]>();
    const intervalMs = 2000;
    const scheduler = new Scheduler(
      {
        drivers: {
          "poly-ucs": recording(new PolyUcsDriver({ http, metrics, requestTimeoutMs: 3000 }), starts),
          "poly-videoos": recording(
            new PolyVideoOsDriver({ http, snmp, metrics, requestTimeoutMs: 3000 }),
            starts,
          ),
        },
        sink,
        clock: SYSTEM_CLOCK,
        metrics,
      },
      // Few slots on purpose: the 9 dead or slow devices could fill them if a timeout did not free a slot.
      {
        intervalMs,
        jitterPct: 10,
        timeoutMs: 1000,
        concurrency: 6,
        missesBeforeUnreachable: 2,
        lateThresholdMs: 500,
      },
    );
    const creds = fleetCredentials(fleet.manifest);
    for (const d of fleet.manifest.devices) {
      scheduler.upsert({
        driver: d.family === "uc" ? "poly-ucs" : "poly-videoos",
        target: {
          deviceId: d.mac,
          address: d.address,
          httpsPort: d.httpsPort,
          snmpPort: d.snmpPort ?? fleet.snmpPort,
          credentials: creds,
          tags: [],
        },
      });
    }
    const started = Date.now();
    scheduler.start();
    try {
      await new Promise((r) => setTimeout(r, 12_000));
    } finally {
      await scheduler.stop();
      await http.close();
      await snmp.close();
    }
    const healthy = fleet.manifest.devices.filter((d) => d.faults.length === 0);
    const troubled = fleet.manifest.devices.filter(
      (d) => d.faults.includes("noAnswer") || d.faults.includes("slow"),
    );
    // The fault picks may overlap (a device both silent and slow).
    expect(troubled.length).toBeGreaterThanOrEqual(6);
    const late: string[] = [];
    for (const d of healthy) {
      const readings = sink.readings.filter((r) => r.deviceId === d.mac);
      expect(readings.length, d.address).toBeGreaterThanOrEqual(4);
      expect(
        readings.every((r) => r.reachable),
        d.address,
      ).toBe(true);
      // Cadence: consecutive polls of a healthy device are one jittered interval apart, never held back by
      // the dead ones (a generous 500 ms for the event loop of one process running 40 devices and the agent).
      const s = starts.get(d.mac) ?? [];
      expect(s[0]).toBeLessThan(started + intervalMs + 500);
      for (let i = 1; i < s.length; i++) {
        const gap = (s[i] as number) - (s[i - 1] as number);
        if (gap > intervalMs * 1.1 + 500) late.push(`${d.address} gap ${gap}`);
      }
    }
    expect(late).toEqual([]);
    for (const d of troubled) {
      const readings = sink.readings.filter((r) => r.deviceId === d.mac);
      expect(readings.length).toBeGreaterThanOrEqual(2);
      expect(readings.every((r) => !r.reachable && r.errors.some((e) => /TIMEOUT/.test(e.code)))).toBe(true);
    }
    const down = sink.eventsOf("device.reachability").filter((e) => !e.reachable);
    expect(down.map((e) => e.deviceId).sort()).toEqual(troubled.map((d) => d.mac).sort());
    expect(down.every((e) => e.missedPolls === 2)).toBe(true);
    expect(sink.eventsOf("device.reachability").filter((e) => e.reachable)).toHaveLength(0);
    const stats = scheduler.cycleStats();
    expect(stats.reduce((n, c) => n + c.timedOut, 0)).toBeGreaterThanOrEqual(2 * troubled.length);
    expect(
      metrics.get("polyfleet_agent_devices", { driver: "poly-ucs", state: "unreachable" }) +
        metrics.get("polyfleet_agent_devices", { driver: "poly-videoos", state: "unreachable" }),
    ).toBe(troubled.length);
  });
});
