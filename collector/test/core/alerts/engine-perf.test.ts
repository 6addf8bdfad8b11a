import { describe, expect, it } from "vitest";
import { AlertHarness } from "./harness.js";

describe("onReading cost", () => {
  it("prints µs per onReading over 100,000 readings (not asserted)", () => {
    const h = new AlertHarness({});
    h.engine.setBaseline({ G7500: ["4.1.0"] });
    const devices = 1000;
    const inputs = Array.from({ length: devices }, (_, i) =>
      h.readingOf({
        device: `d${i}`,
        cpuPct: 20 + (i % 50),
        memPct: 40,
        packetLossPct: 0.5,
        health: [
          { name: "camera", state: "up" },
          { name: "microphone", state: "up" },
          { name: "sipserver", state: "up" },
          { name: "provisioning", state: i % 100 === 0 ? "down" : "up" },
        ],
        peripherals: [{ id: "cam", category: "camera", name: "Cam", state: "connected" }],
        lines: [{ line: 1, address: "1@x", registered: true, state: "registered" }],
      }),
    );
    for (const x of inputs) h.engine.onReading(x.reading, x.device); // warm up
    const n = 100_000;
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      const x = inputs[i % devices]!;
      h.engine.onReading(x.reading, x.device);
    }
    const us = ((performance.now() - start) * 1000) / n;
    console.log(`alert engine: ${us.toFixed(3)} µs per onReading (${n} readings, ${devices} devices)`);
    expect(h.engine.active().length).toBe(devices / 100);
  });
});
