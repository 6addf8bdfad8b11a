import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { alertFingerprint } from "../../../src/core/alerts/fingerprint.js";
import { AlertHarness } from "./harness.js";

const WINDOW = 120;
const THRESHOLD = 4;

describe("alert engine properties", () => {
  it("any up/down series: a device's notifications are never less than a flap window apart, its final state is always notified; alerts never resolve before they fire", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ gap: fc.integer({ min: 1, max: 90 }), up: fc.boolean() }), {
          minLength: 1,
          maxLength: 60,
        }),
        fc.integer({ min: 0, max: 20 }),
        fc.integer({ min: 0, max: 200 }),
        (series, waitSec, intervalSec) => {
          const h = new AlertHarness({
            grouping: { waitSec, intervalSec },
            flap: { windowSec: WINDOW, threshold: THRESHOLD },
          });
          let t = 0;
          let up = true;
          for (const s of series) {
            t += s.gap;
            h.advanceTo(t);
            up = s.up;
            h.event({ type: "device.reachability", deviceId: "d1", reachable: s.up, missedPolls: 3 });
          }
          // Long enough for a held notification, the end of flapping and its own (damped) notification.
          h.advanceTo(t + 4 * WINDOW + waitSec + intervalSec);
          // Strict damping, whatever the input (no escalation is configured): one notification per window.
          const sent = h.notifications;
          for (let i = 1; i < sent.length; i++) {
            expect((sent[i]!.ts - sent[i - 1]!.ts) / 1000).toBeGreaterThanOrEqual(WINDOW);
          }
          // The final state is notified: every alert ever named was named again at or after its last state
          // change (firing: its start; resolved: its end), and the last notification says so.
          const lastNamed = new Map<string, number>();
          for (const n of sent) for (const id of n.alertIds) lastNamed.set(id, n.ts);
          for (const [id, ts] of lastNamed) {
            const a = h.store.get(id);
            expect(a).toBeDefined();
            expect(ts).toBeGreaterThanOrEqual(a?.endsAt ?? a?.startsAt ?? Number.POSITIVE_INFINITY);
          }
          const active = h.engine.active();
          const last = sent.at(-1);
          if (!up) {
            // Down: the open alert is announced (firing, or flapping if it flapped since the last one).
            expect(active.length).toBe(1);
            expect(last?.alertIds).toContain(active[0]?.id);
            expect(["firing", "flapping"]).toContain(last?.reason);
          } else if (last !== undefined) {
            // Up: everything the last notification names is resolved.
            expect(["resolved", "flapping"]).toContain(last.reason);
            for (const id of last.alertIds) expect(h.store.get(id)?.state).toBe("resolved");
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
