import { describe, expect, it } from "vitest";
import { AlertHarness, keyOf, runCase, type Step } from "./harness.js";

const FAST = { waitSec: 0, intervalSec: 0 };
const camDown = [{ name: "camera", state: "down" as const }];
const camUp = [{ name: "camera", state: "up" as const }];
/**
 * The shortest flap window (10 s) and a threshold that is never reached: for cases about something else,
 * so that flap damping (one notification per device per window) does not hold their notifications back.
 */
const NO_DAMP = { windowSec: 10, threshold: 100 };

describe("built-in rules", () => {
  it("agent offline fires after 60 s, resolves when the agent is back", () => {
    runCase({
      name: "agent-offline",
      rules: { grouping: FAST, flap: NO_DAMP },
      steps: [
        { at: 0, inputs: [{ agent: { agentId: "agent1", status: "online" } }], expectActive: [] },
        { at: 10, inputs: [{ agent: { agentId: "agent1", status: "offline", hostname: "pi-hq" } }] },
        { at: 69, expectActive: [], expectNotifications: [] },
        {
          at: 70,
          expectActive: [
            {
              key: "agent-offline:agent1",
              state: "firing",
              severity: "critical",
              labels: { rule: "agent-offline", siteId: "hq", agentId: "agent1", hostname: "pi-hq" },
            },
          ],
          expectNotifications: [{ reason: "firing", alerts: ["agent-offline:agent1"], at: 70 }],
        },
        {
          at: 100,
          inputs: [{ agent: { agentId: "agent1", status: "online" } }],
          expectActive: [],
          expectNotifications: [{ reason: "resolved", alerts: ["agent-offline:agent1"], at: 100 }],
        },
      ],
    });
  });

  it("device unreachable from the agent's reachability / lost events; a reachable reading clears it", () => {
    const h = runCase({
      name: "device-unreachable",
      rules: { grouping: FAST, flap: NO_DAMP },
      devices: [{ deviceId: "d1", model: "CCX 600", address: "10.1.1.5" }],
      steps: [
        { at: 0, inputs: [{ reading: { device: "d1" } }], expectActive: [] },
        // An unreachable reading alone changes nothing: the agent debounces misses into an event.
        { at: 30, inputs: [{ reading: { device: "d1", reachable: false } }], expectActive: [] },
        {
          at: 90,
          inputs: [
            { event: { type: "device.reachability", deviceId: "d1", reachable: false, missedPolls: 3 } },
          ],
          expectActive: [
            {
              key: "device-unreachable:d1",
              severity: "major",
              labels: {
                deviceId: "d1",
                model: "CCX 600",
                address: "10.1.1.5",
                agentId: "agent1",
                siteId: "hq",
              },
            },
          ],
          expectNotifications: [{ reason: "firing", alerts: ["device-unreachable:d1"] }],
        },
        {
          at: 200,
          inputs: [
            {
              event: {
                type: "device.lost",
                deviceId: "d1",
                address: "10.1.1.5",
                missedPolls: 9,
                reason: "gone",
              },
            },
          ],
          expectActive: [{ key: "device-unreachable:d1" }],
          expectNotifications: [],
        },
        {
          at: 300,
          inputs: [{ reading: { device: "d1" } }],
          expectActive: [],
          expectNotifications: [{ reason: "resolved", alerts: ["device-unreachable:d1"] }],
        },
      ],
    });
    const d1 = h.changed.filter((a) => a.rule === "device-unreachable");
    expect(d1.map((a) => a.state)).toEqual(["firing", "resolved"]);
    expect(d1[1]?.endsAt).toBe(d1[1]?.updatedAt);
    expect(d1[0]?.summary).toBe("CCX 600 d1 at 10.1.1.5 is unreachable");
  });

  it("status items down (camera, microphone, provisioning, SIP server) each raise one alert", () => {
    runCase({
      name: "status-item-down",
      rules: { grouping: FAST },
      steps: [
        {
          at: 0,
          inputs: [
            {
              reading: {
                device: "d1",
                health: [
                  { name: "camera", state: "down" },
                  { name: "microphone", state: "down" },
                  { name: "provisioning", state: "down" },
                  { name: "sipserver", state: "down" },
                  { name: "lan", state: "up" },
                  { name: "calendar", state: "off" },
                ],
              },
            },
          ],
          expectActive: [
            { key: "status-item-down:d1:camera", labels: { item: "camera" } },
            { key: "status-item-down:d1:microphone" },
            { key: "status-item-down:d1:provisioning" },
            { key: "status-item-down:d1:sipserver" },
          ],
        },
        {
          at: 60,
          inputs: [
            {
              reading: {
                device: "d1",
                health: [
                  { name: "camera", state: "up" },
                  { name: "microphone", state: "down" },
                  { name: "sipserver", state: "down" },
                ],
              },
            },
          ],
          // provisioning is absent from a reachable reading: no longer down.
          expectActive: [{ key: "status-item-down:d1:microphone" }, { key: "status-item-down:d1:sipserver" }],
        },
      ],
    });
  });

  it("a file rule narrows status items by substring and replaces the built-in by name", () => {
    runCase({
      name: "status-item-down override",
      rules: {
        grouping: FAST,
        rules: [
          { name: "status-item-down", kind: "healthDown", severity: "critical", items: ["cam", "SIP"] },
        ],
      },
      steps: [
        {
          at: 0,
          inputs: [
            {
              reading: {
                device: "d1",
                health: [
                  { name: "Camera1", state: "down" },
                  { name: "microphone", state: "down" },
                  { name: "sipServer", state: "down" },
                ],
              },
            },
          ],
          expectActive: [
            { key: "status-item-down:d1:Camera1", severity: "critical" },
            { key: "status-item-down:d1:sipServer", severity: "critical" },
          ],
        },
      ],
    });
  });

  it("peripheral missing and SIP line unregistered (for 60 s)", () => {
    runCase({
      name: "peripheral + line",
      rules: { grouping: FAST },
      steps: [
        {
          at: 0,
          inputs: [
            {
              reading: {
                device: "d1",
                peripherals: [
                  { id: "cam-1", category: "camera", name: "EagleEye Cube", state: "missing" },
                  { id: "mic-1", category: "microphone", name: "Mic", state: "connected" },
                ],
                lines: [
                  { line: 1, address: "1001@sip.example", registered: false, state: "unregistered" },
                  { line: 2, address: "1002@sip.example", registered: true, state: "registered" },
                ],
              },
            },
          ],
          expectActive: [
            {
              key: "peripheral-missing:d1:cam-1",
              severity: "minor",
              labels: { peripheral: "EagleEye Cube", category: "camera" },
            },
          ],
        },
        { at: 59, expectActive: [{ key: "peripheral-missing:d1:cam-1" }] },
        {
          at: 60,
          expectActive: [
            { key: "peripheral-missing:d1:cam-1" },
            { key: "sip-line-unregistered:d1:1", labels: { lineAddress: "1001@sip.example" } },
          ],
        },
        {
          at: 90,
          inputs: [
            {
              reading: {
                device: "d1",
                peripherals: [{ id: "cam-1", category: "camera", name: "EagleEye Cube", state: "connected" }],
                lines: [{ line: 1, address: "1001@sip.example", registered: true, state: "registered" }],
              },
            },
          ],
          expectActive: [],
        },
      ],
    });
  });

  it("CPU > 90 for 5 min: no fire before, fire after; a dip below resets the duration", () => {
    const steps: Step[] = [];
    // CPU 95 from t=0, read every 30 s; a dip to 50 at t=120 restarts the 300 s.
    for (let t = 0; t <= 480; t += 30) {
      steps.push({ at: t, inputs: [{ reading: { device: "d1", cpuPct: t === 120 ? 50 : 95 } }] });
    }
    runCase({
      name: "cpu-high",
      rules: { grouping: FAST },
      steps: (
        [
          ...steps.slice(0, 16), // up to t=450
          { at: 449, expectActive: [] },
          {
            at: 450,
            expectActive: [{ key: "cpu-high:d1", severity: "warning", labels: { metric: "cpuPct" } }],
          },
          ...steps.slice(16),
          { at: 500, inputs: [{ reading: { device: "d1", cpuPct: 20 } }], expectActive: [] },
        ] as Step[]
      ).sort((a, b) => a.at - b.at),
    });
  });

  it("memory and packet loss thresholds use their own durations", () => {
    runCase({
      name: "memory + packet loss",
      rules: { grouping: FAST },
      steps: [
        { at: 0, inputs: [{ reading: { device: "d1", memPct: 96, packetLossPct: 12 } }] },
        { at: 119, expectActive: [] },
        { at: 120, expectActive: [{ key: "packet-loss-high:d1", labels: { metric: "packetLossPct" } }] },
        { at: 300, expectActive: [{ key: "packet-loss-high:d1" }, { key: "memory-high:d1" }] },
        { at: 310, inputs: [{ reading: { device: "d1", memPct: 40, packetLossPct: 0 } }], expectActive: [] },
      ],
    });
  });

  it("firmware out of compliance against the baseline (model -> versions)", () => {
    const h = runCase({
      name: "firmware",
      rules: { grouping: FAST },
      devices: [
        { deviceId: "d1", model: "G7500", softwareVersion: "4.0.1" },
        { deviceId: "d2", model: "G7500", softwareVersion: "4.1.0" },
        { deviceId: "d3", model: "CCX 400", softwareVersion: "8.0.0" },
      ],
      steps: [
        {
          at: 0,
          inputs: [
            { reading: { device: "d1" } },
            { reading: { device: "d2" } },
            { reading: { device: "d3" } },
          ],
          expectActive: [],
        },
        // Setting the baseline re-evaluates known devices at once; d3's model is not in it.
        {
          at: 10,
          inputs: [{ baseline: { G7500: ["4.1.0", "4.1.1"] } }],
          expectActive: [{ key: "firmware-noncompliant:d1", severity: "minor" }],
        },
        { at: 20, inputs: [{ reading: { device: "d1", softwareVersion: "4.1.1" } }], expectActive: [] },
      ],
    });
    expect(h.changed.find((a) => a.rule === "firmware-noncompliant")?.summary).toContain("runs 4.0.1");
  });

  it("agent outbox dropping data raises at once and resolves after 15 quiet minutes", () => {
    const drop = (total: number) => ({
      event: {
        type: "outbox.dropped" as const,
        agentId: "agent1",
        dropped: 10,
        fromSeq: 1,
        toSeq: 10,
        totalDropped: total,
      },
    });
    runCase({
      name: "outbox-dropping",
      rules: { grouping: FAST },
      steps: [
        { at: 0, inputs: [drop(10)], expectActive: [{ key: "outbox-dropping:agent1", severity: "major" }] },
        { at: 600, inputs: [drop(20)], expectActive: [{ key: "outbox-dropping:agent1" }] },
        { at: 1499, expectActive: [{ key: "outbox-dropping:agent1" }] },
        {
          at: 1500,
          expectActive: [],
          expectNotifications: [
            { reason: "firing", alerts: ["outbox-dropping:agent1"] },
            { reason: "resolved", alerts: ["outbox-dropping:agent1"] },
          ],
        },
      ],
    });
  });

  it("Poly traps: problem raises, its paired resolution clears; info is recorded only", () => {
    const trap = (name: string, n: number, kind: "problem" | "resolution" | "info", severity = "major") => ({
      event: {
        type: "trap" as const,
        deviceId: "d1",
        source: "10.0.0.2",
        trapOid: `1.3.6.1.4.1.13885.101.0.${n}`,
        name,
        kind,
        severity: severity as "major",
        varbinds: [],
      },
    });
    runCase({
      name: "traps",
      rules: { grouping: FAST, flap: NO_DAMP },
      steps: [
        {
          at: 0,
          inputs: [
            trap("primaryCameraDown", 76, "problem"),
            trap("sipRegistrationFailed", 72, "problem"),
            trap("callConnected", 78, "info", "info"),
          ],
          expectActive: [
            { key: "poly-trap:d1:primaryCameraDown", severity: "major" },
            { key: "poly-trap:d1:sipRegistrationFailed" },
          ],
        },
        // The same problem again is the same alert.
        { at: 5, inputs: [trap("primaryCameraDown", 76, "problem")] },
        {
          at: 10,
          inputs: [trap("primaryCameraOK", 77, "resolution", "info")],
          expectActive: [{ key: "poly-trap:d1:sipRegistrationFailed" }],
        },
        // A resolution that pairs with nothing open changes nothing.
        {
          at: 20,
          inputs: [trap("jitterOK", 82, "resolution", "info")],
          expectActive: [{ key: "poly-trap:d1:sipRegistrationFailed" }],
        },
        {
          at: 30,
          inputs: [trap("sipRegistrationOK", 73, "resolution", "info")],
          expectActive: [],
          expectNotifications: [
            {
              reason: "firing",
              alerts: ["poly-trap:d1:primaryCameraDown", "poly-trap:d1:sipRegistrationFailed"],
            },
            { reason: "resolved", alerts: ["poly-trap:d1:primaryCameraDown"] },
            { reason: "resolved", alerts: ["poly-trap:d1:sipRegistrationFailed"] },
          ],
        },
      ],
    });
  });

  it("a trap without a device id is keyed by its source; linkDown/linkUp pair", () => {
    const h = new AlertHarness({ grouping: FAST });
    const ev = (name: string, n: number, kind: "problem" | "resolution") => ({
      type: "trap" as const,
      source: "10.9.9.9",
      trapOid: `1.3.6.1.6.3.1.1.5.${n}`,
      name,
      kind,
      severity: (kind === "problem" ? "major" : "info") as "major",
      varbinds: [],
    });
    h.event(ev("linkDown", 3, "problem"));
    const a = h.engine.active();
    expect(a.map(keyOf)).toEqual(["poly-trap:10.9.9.9:linkDown"]);
    expect(a[0]?.labels).toMatchObject({ source: "10.9.9.9", address: "10.9.9.9" });
    expect(a[0]?.deviceId).toBeUndefined();
    h.event(ev("linkUp", 4, "resolution"));
    expect(h.engine.active()).toEqual([]);
  });

  it("builtins: false drops the built-in rules", () => {
    runCase({
      name: "no builtins",
      rules: {
        builtins: false,
        grouping: FAST,
        rules: [{ name: "cams", kind: "healthDown", severity: "minor", items: ["camera"] }],
      },
      steps: [
        {
          at: 0,
          inputs: [
            { reading: { device: "d1", health: camDown, cpuPct: 99 } },
            { event: { type: "device.reachability", deviceId: "d2", reachable: false, missedPolls: 3 } },
          ],
          expectActive: [{ key: "cams:d1:camera" }],
        },
      ],
    });
  });
});

describe("lifecycle", () => {
  it("dedup: a condition that stays true keeps one alert; a new occurrence after resolution is a new alert", () => {
    const h = runCase({
      name: "dedup",
      rules: { grouping: FAST, flap: NO_DAMP },
      steps: [
        ...Array.from({ length: 20 }, (_, i) => ({
          at: i * 10,
          inputs: [{ reading: { device: "d1", health: camDown } }],
        })),
        { at: 200, expectActive: [{ key: "status-item-down:d1:camera" }] },
        { at: 210, inputs: [{ reading: { device: "d1", health: camUp } }], expectActive: [] },
        { at: 220, inputs: [{ reading: { device: "d1", health: camDown } }] },
      ],
    });
    const ids = new Set(h.changed.map((a) => a.id));
    expect(ids.size).toBe(2);
    const firsts = h.changed.filter((a) => a.state === "firing");
    expect(firsts.length).toBe(2);
    expect(firsts[0]?.fingerprint).toBe(firsts[1]?.fingerprint);
    expect(h.notifications.filter((n) => n.reason === "firing").length).toBe(2);
  });

  it("ack: firing -> acknowledged with who/when/comment, then resolved; errors as values", () => {
    const h = runCase({
      name: "ack",
      rules: { grouping: { waitSec: 0, intervalSec: 60 }, flap: NO_DAMP },
      steps: [
        { at: 0, inputs: [{ reading: { device: "d1", health: camDown } }] },
        {
          at: 30,
          inputs: [{ ack: { alert: "status-item-down:d1:camera", by: "alice", comment: "tech on site" } }],
          expectActive: [{ key: "status-item-down:d1:camera", state: "acknowledged", ackBy: "alice" }],
        },
        {
          at: 31,
          inputs: [
            { ack: { alert: "status-item-down:d1:camera", expectError: "POLYFLEET_ERR_ALERT_STATE" } },
          ],
        },
        { at: 32, inputs: [{ ack: { alert: "nope", expectError: "POLYFLEET_ERR_NOT_FOUND" } }] },
        {
          at: 90,
          inputs: [{ reading: { device: "d1", health: camUp } }],
          expectActive: [],
        },
        {
          at: 120,
          expectNotifications: [
            { reason: "firing", alerts: ["status-item-down:d1:camera"], at: 0 },
            { reason: "acknowledged", alerts: ["status-item-down:d1:camera"], at: 60 },
            { reason: "resolved", alerts: ["status-item-down:d1:camera"], at: 120 },
          ],
        },
      ],
    });
    const versions = h.changed.filter((a) => a.rule === "status-item-down");
    expect(versions.map((a) => a.state)).toEqual(["firing", "acknowledged", "resolved"]);
    expect(versions[1]?.ack).toEqual({ by: "alice", at: versions[1]?.updatedAt, comment: "tech on site" });
    expect(versions[2]?.ack?.by).toBe("alice");
    const resolvedId = versions[2]?.id ?? "";
    expect(h.engine.ack(resolvedId, "bob", "late")).toMatchObject({ code: "POLYFLEET_ERR_NOT_FOUND" });
  });

  it("grouping: several devices of one site in one notification after waitSec, then at most every intervalSec", () => {
    const unreachable = (d: string) => ({
      event: { type: "device.reachability" as const, deviceId: d, reachable: false, missedPolls: 3 },
    });
    runCase({
      name: "grouping",
      rules: { grouping: { waitSec: 10, intervalSec: 120 } },
      devices: [
        { deviceId: "d1", siteId: "hq" },
        { deviceId: "d2", siteId: "hq" },
        { deviceId: "d3", siteId: "hq" },
        { deviceId: "b1", siteId: "branch" },
      ],
      steps: [
        { at: 0, inputs: [unreachable("d1")] },
        { at: 5, inputs: [unreachable("d2"), unreachable("b1")] },
        { at: 9, expectNotifications: [] },
        {
          at: 15,
          expectNotifications: [
            { reason: "firing", alerts: ["device-unreachable:d1", "device-unreachable:d2"], at: 10 },
            { reason: "firing", alerts: ["device-unreachable:b1"], at: 15 },
          ],
        },
        // d3 joins the hq group at 20: sent at the group's next interval (10 + 120).
        { at: 20, inputs: [unreachable("d3")] },
        { at: 129, expectNotifications: [] },
        { at: 130, expectNotifications: [{ reason: "firing", alerts: ["device-unreachable:d3"], at: 130 }] },
      ],
    });
  });

  it("inhibition: an offline agent suppresses its devices' unreachable alerts (recorded, flagged, not notified)", () => {
    const h = runCase({
      name: "inhibition",
      rules: { grouping: FAST, flap: NO_DAMP },
      devices: [
        { deviceId: "d1", agentId: "agent1" },
        { deviceId: "d2", agentId: "agent2" },
      ],
      steps: [
        {
          at: 0,
          inputs: [
            { agent: { agentId: "agent1", status: "offline" } },
            { event: { type: "device.reachability", deviceId: "d1", reachable: false, missedPolls: 3 } },
          ],
          // Before the agent alert fires (forSec 60) the device alert is not inhibited.
          expectActive: [{ key: "device-unreachable:d1", silenced: false }],
          expectNotifications: [{ reason: "firing", alerts: ["device-unreachable:d1"] }],
        },
        {
          at: 60,
          expectActive: [
            { key: "agent-offline:agent1" },
            { key: "device-unreachable:d1", silenced: true, labels: { inhibitedBy: "a2" } },
          ],
          expectNotifications: [{ reason: "firing", alerts: ["agent-offline:agent1"] }],
        },
        {
          at: 70,
          inputs: [
            { event: { type: "device.reachability", deviceId: "d2", reachable: false, missedPolls: 3 } },
          ],
          expectActive: [
            { key: "agent-offline:agent1" },
            { key: "device-unreachable:d1", silenced: true },
            { key: "device-unreachable:d2", silenced: false },
          ],
          expectNotifications: [{ reason: "firing", alerts: ["device-unreachable:d2"] }],
        },
        // A new unreachable alert while the agent is offline: inhibited from the start, never notified.
        {
          at: 80,
          inputs: [
            { event: { type: "device.reachability", deviceId: "d3", reachable: false, missedPolls: 3 } },
          ],
          expectNotifications: [],
        },
        {
          at: 100,
          inputs: [{ agent: { agentId: "agent1", status: "online" } }],
          expectActive: [
            { key: "device-unreachable:d1", silenced: false },
            { key: "device-unreachable:d2" },
            { key: "device-unreachable:d3", silenced: false },
          ],
          // d3 was never announced: it is now; d1 was, before the inhibition.
          expectNotifications: [
            { reason: "firing", alerts: ["device-unreachable:d3"] },
            { reason: "resolved", alerts: ["agent-offline:agent1"] },
          ],
        },
      ],
    });
    const d1 = h.changed.filter((a) => a.deviceId === "d1");
    expect(d1.some((a) => a.labels.inhibitedBy !== undefined)).toBe(true);
    expect(d1.at(-1)?.labels.inhibitedBy).toBeUndefined();
  });

  it("escalation: unacknowledged past the configured ages raises the level and notifies; ack stops it", () => {
    const h = runCase({
      name: "escalation",
      rules: {
        grouping: { waitSec: 0, intervalSec: 3600 },
        escalation: [
          { afterSec: 600, level: 1, notify: ["email"] },
          { afterSec: 1800, level: 2 },
        ],
      },
      steps: [
        {
          at: 0,
          inputs: [
            { reading: { device: "d1", health: camDown } },
            { reading: { device: "d2", health: camDown } },
          ],
        },
        { at: 300, inputs: [{ ack: { alert: "status-item-down:d2:camera" } }] },
        {
          at: 599,
          expectActive: [
            { key: "status-item-down:d1:camera", escalationLevel: 0 },
            { key: "status-item-down:d2:camera", state: "acknowledged" },
          ],
        },
        {
          at: 600,
          expectActive: [
            { key: "status-item-down:d1:camera", escalationLevel: 1 },
            { key: "status-item-down:d2:camera", escalationLevel: 0 },
          ],
        },
        {
          at: 1800,
          expectActive: [
            { key: "status-item-down:d1:camera", escalationLevel: 2 },
            { key: "status-item-down:d2:camera" },
          ],
          expectNotifications: [
            { reason: "firing", alerts: ["status-item-down:d1:camera", "status-item-down:d2:camera"], at: 0 },
            { reason: "escalated", alerts: ["status-item-down:d1:camera"], at: 600, escalationLevel: 1 },
            // An escalation flushes its group at once, with what else was pending (d2's ack).
            { reason: "acknowledged", alerts: ["status-item-down:d2:camera"], at: 600 },
            { reason: "escalated", alerts: ["status-item-down:d1:camera"], at: 1800, escalationLevel: 2 },
          ],
        },
        {
          at: 5000,
          expectActive: [
            { key: "status-item-down:d1:camera", escalationLevel: 2 },
            { key: "status-item-down:d2:camera" },
          ],
        },
      ],
    });
    expect(h.notifications.filter((n) => n.reason === "escalated").length).toBe(2);
  });

  it("restore after a restart: no duplicate alert, no repeated notification; a cleared condition resolves", () => {
    const h = runCase({
      name: "restore",
      rules: { grouping: FAST, flap: NO_DAMP },
      steps: [
        {
          at: 0,
          inputs: [
            { reading: { device: "d1", health: camDown, cpuPct: 99 } },
            { event: { type: "device.reachability", deviceId: "d2", reachable: false, missedPolls: 3 } },
          ],
        },
        {
          at: 400,
          expectActive: [
            { key: "status-item-down:d1:camera" },
            { key: "cpu-high:d1" },
            { key: "device-unreachable:d2" },
          ],
          expectNotifications: [
            { reason: "firing", alerts: ["status-item-down:d1:camera"] },
            { reason: "firing", alerts: ["device-unreachable:d2"] },
            { reason: "firing", alerts: ["cpu-high:d1"] },
          ],
        },
        {
          at: 401,
          inputs: [{ restart: true }, { reading: { device: "d1", health: camDown, cpuPct: 99 } }],
          expectActive: [
            { key: "status-item-down:d1:camera" },
            { key: "cpu-high:d1" },
            { key: "device-unreachable:d2" },
          ],
        },
        { at: 700, expectNotifications: [] },
        {
          at: 710,
          inputs: [{ reading: { device: "d2" } }, { reading: { device: "d1", health: camDown, cpuPct: 10 } }],
          expectActive: [{ key: "status-item-down:d1:camera" }],
          expectNotifications: [
            { reason: "resolved", alerts: ["device-unreachable:d2"] },
            { reason: "resolved", alerts: ["cpu-high:d1"] },
          ],
        },
      ],
    });
    // Exactly one alert id per condition over the whole run.
    const firing = h.changed.filter((a) => a.state === "firing" && a.updatedAt === a.startsAt);
    expect(firing.length).toBe(3);
  });

  it("restore resolves alerts of rules that no longer exist, without notification", () => {
    const h = new AlertHarness({ grouping: FAST });
    h.engine.restore([
      {
        v: 1,
        id: "old1",
        fingerprint: "x",
        rule: "gone-rule",
        severity: "minor",
        state: "firing",
        summary: "old",
        deviceId: "d1",
        labels: { rule: "gone-rule", deviceId: "d1" },
        startsAt: 1,
        updatedAt: 1,
        flapping: false,
        escalationLevel: 0,
        silenced: false,
      },
    ]);
    h.drain();
    expect(h.changed.map((a) => [a.id, a.state])).toEqual([["old1", "resolved"]]);
    h.advanceTo(60);
    expect(h.notifications).toEqual([]);
  });
});

describe("flap damping", () => {
  const down = (d: string) => ({
    event: { type: "device.reachability" as const, deviceId: d, reachable: false, missedPolls: 3 },
  });
  const up = (d: string) => ({
    event: { type: "device.reachability" as const, deviceId: d, reachable: true, missedPolls: 0 },
  });

  it("a device flapping every 20 s for 10 minutes: one notification per window from the first, alert shows flapping", () => {
    const steps: Step[] = [];
    for (let t = 0; t < 600; t += 20) {
      steps.push({ at: t, inputs: [(t / 20) % 2 === 0 ? down("d1") : up("d1")] });
    }
    // The 4th change (down, up, down, up at 60 s) reaches the threshold: the open alert shows flapping at once.
    const s60 = steps.find((s) => s.at === 60);
    if (s60 !== undefined) s60.expectActive = [{ key: "device-unreachable:d1", flapping: true }];
    // Within the first window only the first change was notified, at once (no added latency).
    steps.push({
      at: 599,
      expectNotifications: [{ reason: "firing", alerts: ["device-unreachable:d1"], at: 0 }],
    });
    const h = runCase({
      name: "flap",
      rules: { flap: { windowSec: 600, threshold: 4 }, grouping: { waitSec: 0, intervalSec: 0 } },
      steps: [
        ...steps,
        // Everything in between, merged into one `flapping` notification at the window's end.
        // (The first alert's resolution, before the threshold, and the alert held open since.)
        {
          at: 600,
          inputs: [down("d1")],
          expectActive: [{ key: "device-unreachable:d1", flapping: true }],
          expectNotifications: [
            { reason: "flapping", alerts: ["device-unreachable:d1", "device-unreachable:d1"], at: 600 },
          ],
        },
        { at: 601, inputs: [{ reading: { device: "d1" } }] },
      ],
    });
    h.advanceTo(2400);
    const notes = h.notifications.filter((n) => n.alertIds.some((id) => h.store.get(id)?.deviceId === "d1"));
    for (let i = 1; i < notes.length; i++) {
      expect(notes[i]!.ts - notes[i - 1]!.ts).toBeGreaterThanOrEqual(600_000);
    }
    // The first firing; the coalesced flapping one; then the final resolution (a window after the last).
    expect(notes.map((n) => [n.reason, (n.ts - notes[0]!.ts) / 1000])).toEqual([
      ["firing", 0],
      ["flapping", 600],
      ["resolved", 1200],
    ]);
    // While flapping the alert is held open: far fewer alerts than down phases (16).
    const ids = new Set(h.changed.filter((a) => a.deviceId === "d1").map((a) => a.id));
    expect(ids.size).toBeLessThanOrEqual(2);
    expect(h.engine.active()).toEqual([]);
    const last = h.changed.filter((a) => a.deviceId === "d1").at(-1);
    expect(last).toMatchObject({ state: "resolved", flapping: false });
  });

  it("below the threshold: changes within the window are held and merged into one notification (latest state's reason)", () => {
    const h = runCase({
      name: "flap below threshold",
      rules: { flap: { windowSec: 300, threshold: 4 }, grouping: { waitSec: 0, intervalSec: 0 } },
      steps: [
        // A genuine outage is notified at once.
        {
          at: 0,
          inputs: [down("d1")],
          expectNotifications: [{ reason: "firing", alerts: ["device-unreachable:d1"], at: 0 }],
        },
        // Resolved, then down again: the alert transitions happen (a new alert), the notifications wait.
        { at: 30, inputs: [up("d1")], expectActive: [] },
        {
          at: 60,
          inputs: [down("d1")],
          expectActive: [{ key: "device-unreachable:d1", flapping: false }],
        },
        { at: 299, expectNotifications: [] },
        // One notification at the window's end: the latest state (firing, the new alert) and the old alert's
        // resolution, both in it.
        {
          at: 300,
          expectNotifications: [
            { reason: "firing", alerts: ["device-unreachable:d1", "device-unreachable:d1"], at: 300 },
          ],
        },
        // The device recovers: a window after the last notification, resolved.
        { at: 320, inputs: [up("d1")], expectActive: [] },
        { at: 599, expectNotifications: [] },
        {
          at: 600,
          expectNotifications: [{ reason: "resolved", alerts: ["device-unreachable:d1"], at: 600 }],
        },
      ],
    });
    const d1 = h.changed.filter((a) => a.deviceId === "d1").map((a) => [a.id, a.state]);
    expect(d1).toEqual([
      ["a1", "firing"],
      ["a1", "resolved"],
      ["a2", "firing"],
      ["a2", "resolved"],
    ]);
    expect(h.notifications[1]?.alertIds.sort()).toEqual(["a1", "a2"]);
  });

  it("damping is per device: other devices are not held; a device's changes in other groups merge into its one notification", () => {
    runCase({
      name: "flap per device",
      rules: { flap: { windowSec: 300, threshold: 4 }, grouping: { waitSec: 0, intervalSec: 0 } },
      steps: [
        {
          at: 0,
          inputs: [down("d1")],
          expectNotifications: [{ reason: "firing", alerts: ["device-unreachable:d1"], at: 0 }],
        },
        // d1 comes back with its camera down (another rule, so another group): held for d1's window.
        { at: 30, inputs: [{ reading: { device: "d1", health: camDown } }] },
        // d2 goes down meanwhile: notified at once.
        {
          at: 40,
          inputs: [down("d2")],
          expectNotifications: [{ reason: "firing", alerts: ["device-unreachable:d2"], at: 40 }],
        },
        {
          at: 300,
          expectActive: [{ key: "status-item-down:d1:camera" }, { key: "device-unreachable:d2" }],
          // One notification for d1, under the group and reason of its latest change.
          expectNotifications: [
            {
              reason: "firing",
              alerts: ["device-unreachable:d1", "status-item-down:d1:camera"],
              at: 300,
            },
          ],
        },
      ],
    });
  });

  it("escalations are not damped", () => {
    runCase({
      name: "flap escalation",
      rules: {
        flap: { windowSec: 3600, threshold: 4 },
        grouping: { waitSec: 0, intervalSec: 0 },
        escalation: [{ afterSec: 120, level: 1 }],
      },
      steps: [
        { at: 0, inputs: [down("d1")] },
        {
          at: 120,
          expectNotifications: [
            { reason: "firing", alerts: ["device-unreachable:d1"], at: 0 },
            { reason: "escalated", alerts: ["device-unreachable:d1"], at: 120, escalationLevel: 1 },
          ],
        },
        // An escalation does not start a window: the resolution still waits for the firing's window.
        { at: 200, inputs: [up("d1")] },
        { at: 3599, expectNotifications: [] },
        { at: 3600, expectNotifications: [{ reason: "resolved", alerts: ["device-unreachable:d1"] }] },
      ],
    });
  });
});

describe("silences and maintenance windows", () => {
  it("silence by regex matcher: recorded silenced, not notified; on expiry a still-firing alert is announced", () => {
    runCase({
      name: "silence",
      rules: { grouping: FAST, flap: NO_DAMP },
      steps: [
        {
          at: 0,
          inputs: [
            { silences: [{ matchers: [{ label: "item", op: "=~", value: "cam.*" }], endsAt: 300 }] },
            {
              reading: {
                device: "d1",
                health: [
                  { name: "camera", state: "down" },
                  { name: "microphone", state: "down" },
                ],
              },
            },
          ],
          expectActive: [
            { key: "status-item-down:d1:camera", silenced: true },
            { key: "status-item-down:d1:microphone", silenced: false },
          ],
          expectNotifications: [{ reason: "firing", alerts: ["status-item-down:d1:microphone"] }],
        },
        { at: 299, expectNotifications: [] },
        {
          at: 300,
          expectActive: [
            { key: "status-item-down:d1:camera", silenced: false },
            { key: "status-item-down:d1:microphone" },
          ],
          expectNotifications: [{ reason: "firing", alerts: ["status-item-down:d1:camera"] }],
        },
      ],
    });
  });

  it("negative matchers (!=, !~) and a silence that starts later", () => {
    runCase({
      name: "silence negative",
      rules: { grouping: FAST },
      devices: [
        { deviceId: "d1", siteId: "hq" },
        { deviceId: "d2", siteId: "branch" },
      ],
      steps: [
        {
          at: 0,
          inputs: [
            {
              silences: [
                {
                  matchers: [
                    { label: "siteId", op: "!=", value: "hq" },
                    { label: "rule", op: "!~", value: "agent-.*" },
                  ],
                  startsAt: 100,
                  endsAt: 1000,
                },
              ],
            },
            { reading: { device: "d1", health: camDown } },
            { reading: { device: "d2", health: camDown } },
          ],
          expectActive: [
            { key: "status-item-down:d1:camera", silenced: false },
            { key: "status-item-down:d2:camera", silenced: false },
          ],
        },
        {
          at: 100,
          expectActive: [
            { key: "status-item-down:d1:camera", silenced: false },
            { key: "status-item-down:d2:camera", silenced: true },
          ],
        },
      ],
    });
  });

  it("weekly window across midnight in a timezone silences matching devices only inside it", () => {
    // Saturday 23:30 in New York (UTC-5 in January) for 120 min: Sun 04:30Z .. 06:30Z.
    const sat = Date.UTC(2024, 0, 6, 0, 0);
    const secOf = (iso: string) => (Date.parse(iso) - Date.UTC(2024, 0, 1)) / 1000;
    void sat;
    runCase({
      name: "weekly window",
      rules: { grouping: FAST },
      devices: [
        { deviceId: "d1", model: "G7500" },
        { deviceId: "d2", model: "CCX 600" },
      ],
      steps: [
        {
          at: secOf("2024-01-07T04:00:00Z"),
          inputs: [
            {
              windows: [
                {
                  matchers: [{ label: "model", op: "=", value: "G7500" }],
                  schedule: {
                    type: "weekly",
                    days: [6],
                    start: "23:30",
                    durationMin: 120,
                    timezone: "America/New_York",
                  },
                },
              ],
            },
            { reading: { device: "d1", health: camDown } },
            { reading: { device: "d2", health: camDown } },
          ],
          expectActive: [
            { key: "status-item-down:d1:camera", silenced: false },
            { key: "status-item-down:d2:camera", silenced: false },
          ],
        },
        {
          at: secOf("2024-01-07T04:30:00Z"),
          expectActive: [
            { key: "status-item-down:d1:camera", silenced: true },
            { key: "status-item-down:d2:camera", silenced: false },
          ],
        },
        // Past local midnight (Sunday 00:15 New York) still inside.
        {
          at: secOf("2024-01-07T05:15:00Z"),
          expectActive: [
            { key: "status-item-down:d1:camera", silenced: true },
            { key: "status-item-down:d2:camera" },
          ],
        },
        {
          at: secOf("2024-01-07T06:29:59Z"),
          expectActive: [
            { key: "status-item-down:d1:camera", silenced: true },
            { key: "status-item-down:d2:camera" },
          ],
        },
        {
          at: secOf("2024-01-07T06:30:00Z"),
          expectActive: [
            { key: "status-item-down:d1:camera", silenced: false },
            { key: "status-item-down:d2:camera" },
          ],
        },
      ],
    });
  });
});

describe("fingerprints and summaries", () => {
  it("fingerprint is stable across engines and ignores non-identity labels", () => {
    const a = new AlertHarness({ grouping: FAST }, [{ deviceId: "d1", model: "G7500" }]);
    const b = new AlertHarness({ grouping: FAST }, [
      { deviceId: "d1", model: "G7500 v2", address: "10.9.9.9" },
    ]);
    for (const h of [a, b]) h.reading({ device: "d1", health: camDown });
    expect(a.engine.active()[0]?.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(a.engine.active()[0]?.fingerprint).toBe(b.engine.active()[0]?.fingerprint);
    expect(a.engine.active()[0]?.id).toBe(b.engine.active()[0]?.id); // ids come from the injected newId
  });

  it("summary templates fill the placeholders", () => {
    const h = new AlertHarness(
      {
        grouping: FAST,
        rules: [
          {
            name: "cpu-high",
            kind: "threshold",
            severity: "major",
            metric: "cpuPct",
            value: 80,
            summary: "{{deviceId}} {{model}} {{address}} {{siteId}} {{value}} {{item}}",
            labels: { team: "av" },
          },
        ],
      },
      [{ deviceId: "d1", model: "G7500", address: "10.2.3.4", siteId: "hq" }],
    );
    h.reading({ device: "d1", cpuPct: 85.26 });
    expect(h.engine.active()[0]).toMatchObject({
      summary: "d1 G7500 10.2.3.4 hq 85.3 unknown",
      severity: "major",
      labels: { team: "av", rule: "cpu-high", metric: "cpuPct" },
    });
  });
});
