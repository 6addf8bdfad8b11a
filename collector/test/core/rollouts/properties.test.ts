/**
 * Property: whatever the agents answer (success, failures of every class, silence, lies about the version,
 * lost events, slow answers), whatever the devices do (calls, unreachability) and whatever operators and
 * crashes do in between (pause, resume, cancel, retry, restarts with unstored events), the invariants hold:
 * no device is dispatched while an update is out on it (across two rollouts), nothing is dispatched outside a
 * running rollout's started waves, a device is succeeded only while it runs the target version, counts match
 * the devices, every dispatch is stored before it is sent (attempts = commands sent), no command id repeats,
 * and every stored record passes its contract.
 * The harness checks the first four on every drain.
 */
import { type Alert, PolyfleetError, Rollout, RolloutDevice } from "@polyfleet/shared";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Behaviour, fleet, release, Sim, T0 } from "./harness.js";

const HOUR = 3_600_000;
const ACTIONS = ["pause", "resume", "cancel", "retryFailed", "restart", "crash", "alert"] as const;
const FAIL_CODES = [
  "POLYFLEET_ERR_DOWNLOAD_FAILED",
  "POLYFLEET_ERR_IMAGE_MISMATCH",
  "POLYFLEET_ERR_UPDATE_FAILED",
  "POLYFLEET_ERR_UPDATE_TIMEOUT",
  "POLYFLEET_ERR_UPDATE_WRONG_VERSION",
  "POLYFLEET_ERR_UPDATE_INTERRUPTED",
  "POLYFLEET_ERR_DOWNGRADE_REFUSED",
  "POLYFLEET_ERR_DEVICE_IN_CALL",
];
const REJECT_CODES = [
  "POLYFLEET_ERR_COMMAND_FAILED",
  "POLYFLEET_ERR_COMMAND_UNSUPPORTED",
  "POLYFLEET_ERR_DEVICE_IN_CALL",
];

const behaviourArb: fc.Arbitrary<Behaviour> = fc.oneof(
  { weight: 6, arbitrary: fc.constant<Behaviour>({ kind: "ok" }) },
  { weight: 1, arbitrary: fc.constant<Behaviour>({ kind: "ok", noReportedVersion: true }) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 0, max: 400_000 }).map<Behaviour>((slowMs) => ({ kind: "ok", slowMs })),
  },
  { weight: 2, arbitrary: fc.constantFrom(...FAIL_CODES).map<Behaviour>((code) => ({ kind: "fail", code })) },
  { weight: 1, arbitrary: fc.constant<Behaviour>({ kind: "silent" }) },
  {
    weight: 1,
    arbitrary: fc.boolean().map<Behaviour>((claimSuccess) => ({ kind: "oldVersion", claimSuccess })),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(...REJECT_CODES).map<Behaviour>((code) => ({ kind: "reject", code })),
  },
  { weight: 1, arbitrary: fc.constant<Behaviour>({ kind: "lostEvents" }) },
);

const waveArb = fc.oneof(
  fc.integer({ min: 1, max: 100 }).map((percent) => ({ percent })),
  fc.integer({ min: 1, max: 5 }).map((count) => ({ count })),
);

const scenarioArb = fc.record({
  n: fc.integer({ min: 2, max: 14 }),
  sites: fc.integer({ min: 1, max: 3 }),
  waves: fc.array(waveArb, { minLength: 1, maxLength: 4 }),
  concurrency: fc.integer({ min: 1, max: 3 }),
  threshold: fc.constantFrom(0, 5, 20, 50, 100),
  retries: fc.record({
    download: fc.integer({ min: 0, max: 2 }),
    install: fc.integer({ min: 0, max: 2 }),
    reboot: fc.integer({ min: 0, max: 1 }),
    verify: fc.integer({ min: 0, max: 1 }),
    timeout: fc.integer({ min: 0, max: 1 }),
    agent: fc.integer({ min: 0, max: 2 }),
    refused: fc.integer({ min: 0, max: 1 }),
  }),
  soakMs: fc.constantFrom(0, 30_000, 300_000),
  deviceTimeoutMs: fc.integer({ min: 60_000, max: 400_000 }),
  behaviours: fc.array(behaviourArb, { minLength: 56, maxLength: 56 }),
  calls: fc.array(
    fc.record({ device: fc.nat(13), at: fc.nat(2 * HOUR), forMs: fc.integer({ min: 1000, max: 600_000 }) }),
    {
      maxLength: 4,
    },
  ),
  outages: fc.array(
    fc.record({ device: fc.nat(13), at: fc.nat(2 * HOUR), forMs: fc.integer({ min: 1000, max: 900_000 }) }),
    {
      maxLength: 3,
    },
  ),
  actions: fc.array(
    fc.record({
      at: fc.nat(3 * HOUR),
      action: fc.constantFrom(...ACTIONS),
      second: fc.boolean(),
      x: fc.nat(30_000),
    }),
    { maxLength: 8 },
  ),
  second: fc.option(fc.record({ at: fc.nat(HOUR), siteOnly: fc.boolean() }), { nil: undefined }),
  window: fc.option(
    fc.record({ start: fc.nat(2 * HOUR), forMs: fc.integer({ min: 60_000, max: 4 * HOUR }) }),
    {
      nil: undefined,
    },
  ),
});

type Scenario = typeof scenarioArb extends fc.Arbitrary<infer T> ? T : never;

function criticalAlert(deviceId: string, at: number): Alert {
  return {
    v: 1,
    id: `a-${deviceId}-${at}`,
    fingerprint: `f-${deviceId}`,
    rule: "status-item-down",
    severity: "critical",
    state: "firing",
    summary: "down",
    deviceId,
    labels: { deviceId },
    startsAt: at,
    updatedAt: at,
    flapping: false,
    escalationLevel: 0,
    silenced: false,
  };
}

function run(sc: Scenario): void {
  const devices = fleet(sc.n, { sites: sc.sites, models: ["VVX 450", "Trio 8800"] });
  const index = new Map(devices.map((d, i) => [d.deviceId, i]));
  const sim = new Sim(devices, {
    tickMs: 5000,
    readingEveryMs: 60_000,
    behaviour: (deviceId, attempt) =>
      sc.behaviours[((index.get(deviceId) ?? 0) * 4 + Math.min(attempt - 1, 3)) % sc.behaviours.length] ?? {
        kind: "ok",
      },
  });
  if (sc.window)
    sim.setWindows([
      {
        id: "w",
        name: "window",
        matchers: [],
        schedule: { type: "once", start: T0 + sc.window.start, end: T0 + sc.window.start + sc.window.forMs },
        createdBy: "alice",
      },
    ]);
  const common = {
    concurrencyPerSite: sc.concurrency,
    errorThresholdPct: sc.threshold,
    retries: sc.retries,
    deviceTimeoutMs: sc.deviceTimeoutMs,
    inCallRetryMs: 30_000,
    healthGate: { soakMs: sc.soakMs, requireTargetVersion: true, noNewCriticalAlerts: true },
  };
  const first = sim.create({ ...common, waves: sc.waves, windowIds: sc.window ? ["w"] : [] });
  sim.act(first, "start");
  const ids = [first];

  const agenda: { at: number; fn: () => void }[] = [];
  for (const c of sc.calls) {
    const id = devices[c.device % sc.n]?.deviceId ?? "";
    agenda.push({ at: T0 + c.at, fn: () => sim.set(id, { inCall: true }) });
    agenda.push({ at: T0 + c.at + c.forMs, fn: () => sim.set(id, { inCall: false }) });
  }
  for (const o of sc.outages) {
    const id = devices[o.device % sc.n]?.deviceId ?? "";
    agenda.push({ at: T0 + o.at, fn: () => sim.set(id, { reachable: false }) });
    agenda.push({ at: T0 + o.at + o.forMs, fn: () => sim.set(id, { reachable: true }) });
  }
  const second = sc.second;
  if (second)
    agenda.push({
      at: T0 + second.at,
      fn: () => {
        const id = sim.create(
          {
            ...common,
            target: { kind: "release", version: "3.0.0" },
            waves: [{ percent: 50 }, { percent: 100 }],
            ...(second.siteOnly ? { selection: { sites: ["site0"] } } : {}),
          },
          [release("VVX 450", "3.0.0"), release("Trio 8800", "3.0.0")],
        );
        ids.push(id);
        sim.act(id, "start");
      },
    });
  for (const a of sc.actions)
    agenda.push({
      at: T0 + a.at,
      fn: () => {
        const id = (a.second ? ids[1] : undefined) ?? first;
        if (a.action === "restart") sim.restart();
        else if (a.action === "crash") {
          sim.advance(a.x);
          sim.restart();
        } else if (a.action === "alert") {
          sim.engine.onAlert(criticalAlert(devices[a.x % sc.n]?.deviceId ?? "", sim.now));
          sim.drain();
        } else {
          try {
            sim.act(id, a.action, "property");
          } catch (err) {
            if (!(err instanceof PolyfleetError) || err.code !== "POLYFLEET_ERR_ROLLOUT_STATE") throw err;
          }
        }
      },
    });
  agenda.sort((x, y) => x.at - y.at);
  for (const e of agenda) {
    sim.run(e.at);
    e.fn();
  }
  sim.run(Math.max(sim.now, T0 + 3 * HOUR) + 3 * HOUR, () =>
    sim.engine.list().every((r) => sim.finished(r) || r.state === "paused"),
  );

  // Every dispatch was stored first (attempts = commands sent), and no command id was used twice.
  const sent = new Map<string, number>();
  for (const d of sim.dispatches)
    sent.set(`${d.rolloutId}/${d.deviceId}`, (sent.get(`${d.rolloutId}/${d.deviceId}`) ?? 0) + 1);
  for (const id of ids)
    for (const d of sim.engine.devices(id))
      expect(d.attempts, `${id}/${d.deviceId}`).toBe(sent.get(`${id}/${d.deviceId}`) ?? 0);
  expect(new Set(sim.dispatches.map((d) => d.commandId)).size).toBe(sim.dispatches.length);
  // What the service stores passes the contracts (the stores parse every record).
  for (const r of sim.storedRollouts.values()) Rollout.parse(r);
  for (const d of sim.storedDevices.values()) RolloutDevice.parse(d);
  // A completed rollout has no device left to do.
  for (const r of sim.engine.list())
    if (r.state === "completed")
      expect((r.counts.queued ?? 0) + (r.counts.waitingWindow ?? 0) + (r.counts.deferred ?? 0), r.id).toBe(0);
}

describe("RolloutEngine properties", () => {
  it("keeps its invariants under random agents, devices, operators and crashes", () => {
    fc.assert(
      fc.property(scenarioArb, (sc) => {
        run(sc);
      }),
      { numRuns: 120 },
    );
  }, 60_000);
});
