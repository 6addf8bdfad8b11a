import { describe, expect, it } from "vitest";
import { MODELS } from "../../src/simulator/catalog.js";
import { DEFAULT_TIMING, DeviceSim, type SimTrap } from "../../src/simulator/device.js";

function setup(model = "VVX 350") {
  const clock = {
    t: 1_700_000_000_000,
    now() {
      return this.t;
    },
  };
  const spec = MODELS.find((m) => m.model === model);
  if (!spec) throw new Error(model);
  const device = new DeviceSim(
    {
      id: "64167f000001",
      index: 0,
      address: "127.0.10.1",
      httpsPort: 8443,
      snmpPort: spec.family === "videoos" ? 1161 : null,
      spec,
      serial: "64167F000001",
      mac: "64167f000001",
      firmware: { version: "5.9.3.2857", date: "02-Jul-19 06:14" },
      admin: { user: "Polycom", password: "pw" },
      snmp: null,
      restEnabled: true,
      seed: 42,
    },
    clock,
    DEFAULT_TIMING,
  );
  return { clock, device };
}

describe("DeviceSim", () => {
  it("uptime moves with the clock and a reboot resets it after the device is away", () => {
    const { clock, device } = setup();
    const before = device.uptimeSec();
    expect(before).toBeGreaterThan(3600);
    clock.t += 10_000;
    expect(device.uptimeSec()).toBeCloseTo(before + 10, 5);
    device.reboot("test");
    expect(device.isUp()).toBe(false);
    clock.t += DEFAULT_TIMING.rebootDownMs;
    expect(device.isUp()).toBe(true);
    expect(device.uptimeSec()).toBe(0);
    clock.t += 2500;
    expect(device.uptimeSec()).toBe(2.5);
  });

  it("counters grow with time and restart from zero after a reboot", () => {
    const { clock, device } = setup();
    const a = device.packetCounters();
    clock.t += 60_000;
    const b = device.packetCounters();
    expect(b.rx).toBeGreaterThan(a.rx);
    expect(b.tx).toBeGreaterThan(a.tx);
    device.reboot("test");
    clock.t += DEFAULT_TIMING.rebootDownMs + 1000;
    expect(device.packetCounters().rx).toBeLessThan(100);
  });

  it("comes back with the new firmware only after the reboot window", () => {
    const { clock, device } = setup();
    device.reboot("update", { version: "5.9.8.5760", date: "09-Nov-22 14:40" });
    expect(device.firmware.version).toBe("5.9.3.2857");
    clock.t += DEFAULT_TIMING.rebootDownMs;
    expect(device.isUp()).toBe(true);
    expect(device.firmware.version).toBe("5.9.8.5760");
  });

  it("updateBootsOldVersion comes back on the old version; updateNeverReturns never comes back", () => {
    const a = setup();
    a.device.setFaults(["updateBootsOldVersion"]);
    a.device.reboot("update", { version: "5.9.8.5760", date: "x" });
    a.clock.t += 60_000;
    expect(a.device.isUp()).toBe(true);
    expect(a.device.firmware.version).toBe("5.9.3.2857");

    const b = setup();
    b.device.setFaults(["updateNeverReturns"]);
    b.device.reboot("update", { version: "5.9.8.5760", date: "x" });
    b.clock.t += 3_600_000;
    expect(b.device.isUp()).toBe(false);
    b.device.setFaults([]);
    expect(b.device.isUp()).toBe(true);
  });

  it("flapping alternates up and away each half period", () => {
    const { clock, device } = setup();
    device.setFaults(["flapping"]);
    const seen: boolean[] = [];
    for (let i = 0; i < 4; i++) {
      seen.push(device.isUp());
      clock.t += DEFAULT_TIMING.flapPeriodMs / 2;
    }
    expect(seen).toEqual([true, false, true, false]);
  });

  it("a reboot loop keeps rebooting: away, then up with a small uptime, then away again", () => {
    const { clock, device } = setup();
    device.setFaults(["rebootLoop"]);
    expect(device.isUp()).toBe(false);
    clock.t += DEFAULT_TIMING.rebootDownMs + 1000;
    expect(device.isUp()).toBe(true);
    expect(device.uptimeSec()).toBeCloseTo(1, 5);
    clock.t += DEFAULT_TIMING.rebootLoopUpMs;
    expect(device.isUp()).toBe(false);
  });

  it("raises and clears traps for faults that have problem/resolution pairs", () => {
    const { device } = setup("StudioX30");
    const traps: SimTrap[] = [];
    device.events.on("trap", (t: SimTrap) => traps.push(t));
    device.setFaults(["cameraDown", "sipUnregistered"]);
    device.setFaults(["sipUnregistered"]);
    expect(traps.map((t) => [t.trap, t.kind])).toEqual([
      [76, "problem"],
      [72, "problem"],
      [77, "resolution"],
    ]);
  });

  it("reports high CPU and memory under those faults", () => {
    const { device } = setup();
    expect(device.cpu().current).toBeLessThan(60);
    device.setFaults(["highCpu", "highMemory"]);
    expect(device.cpu().current).toBeGreaterThanOrEqual(95);
    const m = device.memory();
    expect((m.used - m.sreclaim) / m.total).toBeGreaterThan(0.9);
  });
});
