import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { alertFingerprint } from "../../../src/core/alerts/fingerprint.js";
import { AlertHarness, T0 } from "./harness.js";

const WINDOW = 120;
const THRESHOLD = 4;

describe("alert engine properties", () => {
  it("a flapping device never gets two notifications within one flap window; alerts never resolve before they fire", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ gap: fc.integer({ min: 1, max: 90 }), up: fc.boolean() }), {
          minLength: 1,
          maxLength: 60,
        }),
        fc.integer({ min: 0, max: 20 }),
        (series, waitSec) => {
          const h = new AlertHarness({
            grouping: { waitSec, intervalSec: 0 },
            flap: { windowSec: WINDOW, threshold: THRESHOLD },
          });
          let t = 0;
          let up = true;
          const changes: number[] = [];
          for (const s of series) {
            t += s.gap;
            h.advanceTo(t);
            if (s.up !== up) {
              changes.push(t);
              up = s.up;
            }
            h.event({ type: "device.reachability", deviceId: "d1", reachable: s.up, missedPolls: 3 });
          }
          h.advanceTo(t + 3 * WINDOW);
          const sent = h.notifications.map((n) => n.ts);
          for (let i = 1; i < sent.length; i++) {
            const gap = (sent[i]! - sent[i - 1]!) / 1000;
            if (gap >= WINDOW) continue;
            // Two notifications closer than a window: the device was not flapping at the second one,
            // i.e. fewer than THRESHOLD input changes in the window before it (the harness ticks, and so
            // notifies, before it applies the inputs of the same second).
            const at = (sent[i]! - T0) / 1000;
            const inWindow = changes.filter((c) => c > at - WINDOW && c < at).length;
            expect(inWindow).toBeLessThan(THRESHOLD);
          }
          // Lifecycle order per alert id.
          const byId = new Map<string, string[]>();
          for (const a of h.changed) byId.set(a.id, [...(byId.get(a.id) ?? []), a.state]);
          for (const states of byId.values()) {
            expect(states[0]).toBe("firing");
            const r = states.indexOf("resolved");
            if (r >= 0) expect(r).toBe(states.length - 1);
          }
          for (const a of h.changed)
            if (a.endsAt !== undefined) expect(a.endsAt).toBeGreaterThanOrEqual(a.startsAt);
          // The final state follows the input: down -> one active alert, up -> none.
          expect(h.engine.active().length).toBe(up ? 0 : 1);
          // At most one alert open per condition at any time (dedup).
          const open = new Set<string>();
          for (const a of h.changed) {
            if (a.state === "resolved") open.delete(a.fingerprint);
            else if (a.state === "firing" && a.startsAt === a.updatedAt) {
              expect(open.has(a.fingerprint)).toBe(false);
              open.add(a.fingerprint);
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it("fingerprints depend only on identity labels", () => {
    fc.assert(
      fc.property(
        fc.record({ rule: fc.string(), siteId: fc.string(), deviceId: fc.string(), item: fc.string() }),
        fc.dictionary(fc.constantFrom("model", "address", "severity", "team"), fc.string()),
        (identity, extra) => {
          const a = alertFingerprint(identity);
          expect(a).toMatch(/^[0-9a-f]{16}$/);
          expect(alertFingerprint({ ...extra, ...identity })).toBe(a);
        },
      ),
    );
    expect(alertFingerprint({ rule: "r", deviceId: "d1" })).not.toBe(
      alertFingerprint({ rule: "r", deviceId: "d2" }),
    );
    expect(alertFingerprint({ rule: "r", deviceId: "ab", item: "" })).not.toBe(
      alertFingerprint({ rule: "r", deviceId: "a", item: "b" }),
    );
  });

  it("any series of readings keeps one alert per condition and the active set matches the last input", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            gap: fc.integer({ min: 1, max: 400 }),
            device: fc.constantFrom("d1", "d2", "d3"),
            cpu: fc.integer({ min: 0, max: 100 }),
            camera: fc.boolean(),
          }),
          { minLength: 1, maxLength: 40 },
        ),
        (series) => {
          const h = new AlertHarness({
            grouping: { waitSec: 0, intervalSec: 0 },
            flap: { windowSec: 10, threshold: 100 },
          });
          let t = 0;
          const last = new Map<string, { cpu: number; camera: boolean; since: number; cpuSince: number }>();
          for (const s of series) {
            t += s.gap;
            h.advanceTo(t);
            const prev = last.get(s.device);
            const cpuOn = s.cpu > 90;
            const cpuSince = prev !== undefined && prev.cpu > 90 === cpuOn ? prev.cpuSince : t;
            last.set(s.device, { cpu: s.cpu, camera: s.camera, since: t, cpuSince });
            h.reading({
              device: s.device,
              cpuPct: s.cpu,
              health: [{ name: "camera", state: s.camera ? "down" : "up" }],
            });
          }
          h.advanceTo(t);
          const keys = h.engine
            .active()
            .map((a) => `${a.rule}:${a.deviceId}`)
            .sort();
          const want: string[] = [];
          for (const [d, v] of last) {
            if (v.camera) want.push(`status-item-down:${d}`);
            if (v.cpu > 90 && t - v.cpuSince >= 300) want.push(`cpu-high:${d}`);
          }
          expect(keys).toEqual(want.sort());
        },
      ),
      { numRuns: 150 },
    );
  });
});
