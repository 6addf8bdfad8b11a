import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Writable } from "node:stream";
import {
  type Alert,
  type AlertRule,
  type ApiTokenCreate,
  type AuditCheckpoint,
  type AuditEntry,
  type AuditVerifyResult,
  type Clock,
  createLogger,
  type MaintenanceWindow,
  PolyfleetError,
  type Reading,
  type Rollout,
  type RolloutCreate,
  type RolloutDevice,
  type RolloutDeviceState,
  type RolloutPreview,
  type RolloutState,
  type Silence,
  type TimerHandle,
} from "@polyfleet/shared";
import type { FastifyInstance } from "fastify";
import { MemoryMetricsStore } from "../../src/adapters/memory/memory-metrics-store.js";
import { MemoryStateStore } from "../../src/adapters/memory/memory-state-store.js";
import type { AlertActions, ApiConfig, SseHub } from "../../src/http/api-deps.js";
import { issueToken } from "../../src/http/auth.js";
import { buildServer } from "../../src/http/server.js";
import type { AuditInput, AuditLog, AuditQuery } from "../../src/ports/audit-log.js";
import type {
  CatalogView,
  ComplianceReport,
  RolloutActionName,
  RolloutActor,
  RolloutService,
} from "../../src/ports/rollouts.js";
import type { StateStore } from "../../src/ports/state-store.js";
import { rollout, rolloutDevice } from "../contracts/state-store.contract.js";

export const T0 = 1_750_000_000_000;

/** A clock that moves only when told to. */
export class ManualClock implements Clock {
  constructor(public t = T0) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
  setTimeout(): TimerHandle {
    return { id: 0 };
  }
  clearTimeout(): void {}
}

/** In-memory hash-chained audit log; `failing = true` makes every append reject (a full disk, a lost DB). */
export class FakeAuditLog implements AuditLog {
  readonly entries: AuditEntry[] = [];
  failing = false;
  constructor(private readonly clock: Clock) {}

  append(input: AuditInput): Promise<AuditEntry> {
    if (this.failing) return Promise.reject(new Error("disk I/O error"));
    const prevHash = this.entries.at(-1)?.hash ?? "0".repeat(64);
    const body = {
      seq: this.entries.length + 1,
      ts: this.clock.now(),
      actor: input.actor,
      action: input.action,
      target: input.target,
      reason: input.reason,
      result: input.result,
      details: input.details ?? {},
      prevHash,
    };
    const entry: AuditEntry = { ...body, hash: sha256(JSON.stringify(body)) };
    this.entries.push(entry);
    return Promise.resolve(structuredClone(entry));
  }

  query(q: AuditQuery): Promise<AuditEntry[]> {
    const out = this.entries.filter(
      (e) =>
        (q.actor === undefined || e.actor === q.actor) &&
        (q.action === undefined || e.action === q.action) &&
        (q.target === undefined || e.target === q.target) &&
        (q.from === undefined || e.ts >= q.from) &&
        (q.to === undefined || e.ts <= q.to) &&
        (q.afterSeq === undefined || e.seq > q.afterSeq),
    );
    return Promise.resolve(structuredClone(out.slice(0, q.limit ?? 100)));
  }

  verify(): Promise<AuditVerifyResult> {
    let prev = "0".repeat(64);
    for (const [i, e] of this.entries.entries()) {
      const { hash, ...body } = e;
      if (e.seq !== i + 1 || e.prevHash !== prev || sha256(JSON.stringify(body)) !== hash) {
        return Promise.resolve({
          ok: false,
          entries: this.entries.length,
          checkpoints: 0,
          firstBad: { seq: e.seq, reason: "hash mismatch" },
        });
      }
      prev = hash;
    }
    return Promise.resolve({ ok: true, entries: this.entries.length, checkpoints: 0 });
  }

  checkpoints(): Promise<AuditCheckpoint[]> {
    return Promise.resolve([]);
  }
}

function sha256(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}

export const RULES: AlertRule[] = [
  {
    kind: "deviceUnreachable",
    name: "device-unreachable",
    severity: "major",
    enabled: true,
    forSec: 0,
    labels: {},
  },
  {
    kind: "threshold",
    name: "cpu-high",
    severity: "warning",
    enabled: true,
    forSec: 300,
    labels: {},
    metric: "cpuPct",
    op: ">",
    value: 90,
  },
];

/** Alert actions against the store, the way the engine does them; records what it was told. */
export class FakeAlertActions implements AlertActions {
  readonly acks: { id: string; by: string; comment: string }[] = [];
  silences: Silence[] | undefined;
  windows: MaintenanceWindow[] | undefined;
  constructor(
    private readonly store: StateStore,
    private readonly clock: Clock,
  ) {}

  async ack(id: string, by: string, comment: string): Promise<Alert | PolyfleetError> {
    this.acks.push({ id, by, comment });
    const a = await this.store.getAlert(id);
    if (a === undefined) return new PolyfleetError("POLYFLEET_ERR_NOT_FOUND", `alert ${id} not found`);
    if (a.state === "resolved") return new PolyfleetError("POLYFLEET_ERR_BODY_INVALID", "alert is resolved");
    const next: Alert = {
      ...a,
      state: "acknowledged",
      updatedAt: this.clock.now(),
      ack: { by, at: this.clock.now(), comment },
    };
    await this.store.saveAlert(next);
    return next;
  }
  rules(): AlertRule[] {
    return RULES;
  }
  silencesChanged(s: Silence[]): void {
    this.silences = s;
  }
  windowsChanged(w: MaintenanceWindow[]): void {
    this.windows = w;
  }
}

/** Records hand-overs and answers like an SSE hub: headers, one comment, then ends (so inject returns). */
export class FakeSseHub implements SseHub {
  readonly calls: { sites: "*" | readonly string[]; url: string | undefined }[] = [];
  handle(req: IncomingMessage, res: ServerResponse, sites: "*" | readonly string[]): void {
    this.calls.push({ sites, url: req.url });
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8" });
    res.end(`: hello ${sites === "*" ? "*" : sites.join(",")}\n\n`);
  }
}

/** One call the fake rollout service received. */
export interface RolloutCall {
  method: keyof RolloutService;
  args: unknown[];
  who?: RolloutActor;
}

/** What the rollout fake allows per action (a simplified state machine). */
const FAKE_TRANSITIONS: Record<RolloutActionName, { from: RolloutState[]; to: RolloutState }> = {
  start: { from: ["pending"], to: "running" },
  pause: { from: ["running"], to: "paused" },
  resume: { from: ["paused", "halted"], to: "running" },
  cancel: { from: ["pending", "running", "paused", "halted"], to: "cancelled" },
  "retry-failed": { from: ["running", "paused", "halted"], to: "running" },
};

/**
 * A RolloutService for route tests: records every call (with the actor), keeps rollouts in maps, scopes them
 * by `spec.selection.sites` (a site-scoped actor sees a rollout only when every selected site is one of its
 * own), serves `images` by sha256. It does not audit (the real service does; the routes must not).
 */
export class FakeRolloutService implements RolloutService {
  readonly calls: RolloutCall[] = [];
  readonly rollouts = new Map<string, Rollout>();
  readonly devicesOf = new Map<string, RolloutDevice[]>();
  readonly images = new Map<string, { path: string; length: number; fileName: string }>();
  catalogView: CatalogView = {
    loaded: true,
    version: 7,
    expires: "2030-01-01T00:00:00Z",
    releases: [
      {
        family: "uc",
        model: "VVX 450",
        version: "8.2.0.1234",
        channel: "stable",
        releaseDate: "2025-05-01",
        minVersion: "6.4.0",
        downgrade: false,
        image: { fileName: "vvx450.sip.ld", length: 1000, sha256: "ab".repeat(32) },
      },
    ],
    baseline: { "VVX 450": "8.2.0.1234" },
  };
  private next = 1;

  constructor(private readonly clock: Clock) {
    const hq = rollout("ro-hq", {
      state: "running",
      createdAt: T0 - 2000,
      spec: { ...rollout("x").spec, selection: { sites: ["hq"] } },
    });
    const br = rollout("ro-branch", {
      state: "pending",
      createdAt: T0 - 1000,
      spec: { ...rollout("x").spec, selection: { sites: ["branch"] } },
    });
    this.rollouts.set(hq.id, hq);
    this.rollouts.set(br.id, br);
    this.devicesOf.set(
      hq.id,
      [0, 1, 2, 3].map((n) =>
        rolloutDevice(hq.id, n, { siteId: "hq", state: n === 3 ? "queued" : "failed", wave: n < 2 ? 0 : 1 }),
      ),
    );
    this.devicesOf.set(br.id, [rolloutDevice(br.id, 0, { siteId: "branch", state: "queued" })]);
  }

  private visible(r: Rollout, who: RolloutActor): boolean {
    if (who.sites === undefined) return true;
    return r.spec.selection.sites?.every((s) => who.sites?.includes(s) === true) === true;
  }

  private find(id: string, who: RolloutActor): Rollout {
    const r = this.rollouts.get(id);
    if (r === undefined || !this.visible(r, who)) {
      throw new PolyfleetError("POLYFLEET_ERR_NOT_FOUND", `rollout ${id} not found`);
    }
    return r;
  }

  preview(spec: RolloutCreate, who: RolloutActor): Promise<RolloutPreview> {
    this.calls.push({ method: "preview", args: [spec], who });
    return Promise.resolve({
      targets: rollout("x").targets,
      catalogVersion: 7,
      waves: spec.waves.map((w, index) => ({
        index,
        name: w.name ?? `wave ${index + 1}`,
        devices: [{ deviceId: "dev-hq", siteId: "hq", model: "VVX 450", targetVersion: "8.2.0.1234" }],
      })),
      skipped: [{ deviceId: "dev-branch", model: "Studio X50", reason: "no release for the model" }],
    });
  }

  create(spec: RolloutCreate, who: RolloutActor): Promise<Rollout> {
    this.calls.push({ method: "create", args: [spec], who });
    const id = `ro-new-${this.next++}`;
    const r = rollout(id, {
      name: spec.name,
      reason: spec.reason,
      spec,
      state: "pending",
      createdBy: who.actor,
      createdAt: this.clock.now(),
      updatedAt: this.clock.now(),
      waves: spec.waves.map((w, index) => ({
        index,
        name: w.name ?? `wave ${index + 1}`,
        size: 1,
        state: "pending" as const,
      })),
      currentWave: 0,
      counts: { queued: spec.waves.length },
    });
    this.rollouts.set(id, r);
    this.devicesOf.set(id, []);
    return Promise.resolve(structuredClone(r));
  }

  act(id: string, action: RolloutActionName, reason: string, who: RolloutActor): Promise<Rollout> {
    this.calls.push({ method: "act", args: [id, action, reason], who });
    try {
      const r = this.find(id, who);
      const t = FAKE_TRANSITIONS[action];
      if (!t.from.includes(r.state)) {
        throw new PolyfleetError("POLYFLEET_ERR_ROLLOUT_STATE", `cannot ${action} a ${r.state} rollout`);
      }
      const next: Rollout = { ...r, state: t.to, stateReason: reason, updatedAt: this.clock.now() };
      this.rollouts.set(id, next);
      return Promise.resolve(structuredClone(next));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  get(id: string, who: RolloutActor): Promise<Rollout | undefined> {
    this.calls.push({ method: "get", args: [id], who });
    const r = this.rollouts.get(id);
    return Promise.resolve(r !== undefined && this.visible(r, who) ? structuredClone(r) : undefined);
  }

  list(filter: { state?: RolloutState | undefined }, who: RolloutActor): Promise<Rollout[]> {
    this.calls.push({ method: "list", args: [filter], who });
    return Promise.resolve(
      [...this.rollouts.values()]
        .filter((r) => this.visible(r, who) && (filter.state === undefined || r.state === filter.state))
        .sort((a, b) => b.createdAt - a.createdAt)
        .map((r) => structuredClone(r)),
    );
  }

  devices(
    id: string,
    filter: { state?: RolloutDeviceState | undefined; wave?: number | undefined },
    who: RolloutActor,
  ): Promise<RolloutDevice[]> {
    this.calls.push({ method: "devices", args: [id, filter], who });
    try {
      this.find(id, who);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return Promise.resolve(
      (this.devicesOf.get(id) ?? []).filter(
        (d) =>
          (filter.state === undefined || d.state === filter.state) &&
          (filter.wave === undefined || d.wave === filter.wave),
      ),
    );
  }

  catalog(): CatalogView {
    this.calls.push({ method: "catalog", args: [] });
    return structuredClone(this.catalogView);
  }

  compliance(who: RolloutActor): Promise<ComplianceReport> {
    this.calls.push({ method: "compliance", args: [], who });
    const rows: ComplianceReport["devices"] = [
      {
        deviceId: "dev-hq",
        siteId: "hq",
        model: "VVX 450",
        softwareVersion: "8.2.0.1234",
        baseline: "8.2.0.1234",
        status: "current",
      },
      {
        deviceId: "dev-hq-2",
        siteId: "hq",
        model: "VVX 450",
        softwareVersion: "6.4.6",
        baseline: "8.2.0.1234",
        status: "behind",
      },
      {
        deviceId: "dev-branch",
        siteId: "branch",
        model: "Studio X50",
        softwareVersion: "4.1.0",
        status: "unknown",
      },
    ];
    const devices = rows.filter((d) => who.sites === undefined || who.sites.includes(d.siteId));
    const counts = { current: 0, behind: 0, ahead: 0, unknown: 0 };
    for (const d of devices) counts[d.status]++;
    return Promise.resolve({ catalogVersion: 7, counts, devices });
  }

  image(sha256: string): { path: string; length: number; fileName: string } | undefined {
    this.calls.push({ method: "image", args: [sha256] });
    return this.images.get(sha256);
  }
}

export function reading(
  seq: number,
  deviceId: string,
  siteId: string,
  agentId: string,
  over: Partial<Reading> = {},
): Reading {
  return {
    v: 1,
    agentId,
    siteId,
    seq,
    ts: T0 - 60_000 + seq,
    kind: "reading",
    deviceId,
    driver: "poly-ucs",
    reachable: true,
    pollLatencyMs: 12,
    identity: { address: `10.0.0.${seq}`, family: "uc", model: "VVX 450", serial: `SN${deviceId}` },
    firmware: [{ component: "application", version: "6.4.6" }],
    health: [],
    peripherals: [],
    lines: [],
    cpuPct: 20 + seq,
    memPct: 40,
    network: {},
    errors: [],
    ...over,
  };
}

export function alert(id: string, siteId: string, over: Partial<Alert> = {}): Alert {
  return {
    v: 1,
    id,
    fingerprint: `fp-${id}`,
    rule: "device-unreachable",
    severity: "major",
    state: "firing",
    summary: `device of ${siteId} unreachable`,
    siteId,
    deviceId: `dev-${siteId}`,
    labels: { siteId },
    startsAt: T0 - 10_000,
    updatedAt: T0 - 10_000,
    flapping: false,
    escalationLevel: 0,
    silenced: false,
    ...over,
  };
}

export interface Harness {
  app: FastifyInstance;
  store: MemoryStateStore;
  metrics: MemoryMetricsStore;
  audit: FakeAuditLog;
  alerts: FakeAlertActions;
  sse: FakeSseHub;
  /** The rollout service the server was given (see makeHarness's `rollouts` option). */
  rollouts: FakeRolloutService;
  clock: ManualClock;
  /** Parsed log lines the server wrote. */
  logs: Record<string, unknown>[];
  /** Raw log text (for "no secret in any log" checks). */
  logText: () => string;
  /** Token secrets by name. */
  secrets: Record<"admin" | "operator" | "viewer" | "hqOperator" | "hqViewer" | "hqAdmin", string>;
  auth: (name: keyof Harness["secrets"]) => { authorization: string };
  close: () => Promise<void>;
}

/**
 * A server over the real in-memory state and metrics stores, seeded with two sites (hq, branch), one agent
 * and two devices each, three alerts, and tokens of every role (all sites, and scoped to hq). With
 * `rollouts: false` the server gets no rollout service (its routes are then not registered).
 */
export async function makeHarness(
  config: Partial<ApiConfig> = {},
  opts: { rollouts?: boolean } = {},
): Promise<Harness> {
  const clock = new ManualClock();
  const store = new MemoryStateStore();
  const metrics = new MemoryMetricsStore({ clock });
  await metrics.start();
  const audit = new FakeAuditLog(clock);
  const alerts = new FakeAlertActions(store, clock);
  const sse = new FakeSseHub();
  const rollouts = new FakeRolloutService(clock);
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString("utf8"));
      cb();
    },
  });
  const log = createLogger({ level: "debug", name: "test" }, sink);

  const hq = [
    reading(1, "dev-hq", "hq", "agent-hq"),
    reading(2, "dev-hq-2", "hq", "agent-hq", { reachable: false }),
  ];
  const br = [
    reading(1, "dev-branch", "branch", "agent-br", {
      identity: { address: "10.9.0.1", family: "videoos", model: "Studio X50" },
    }),
  ];
  await store.ingest({ agentId: "agent-hq", siteId: "hq", readings: hq, events: [] });
  await store.ingest({ agentId: "agent-br", siteId: "branch", readings: br, events: [] });
  metrics.write([...hq, ...br]);
  await store.saveAlert(alert("a-hq", "hq"));
  await store.saveAlert(alert("a-branch", "branch"));
  await store.saveAlert(alert("a-old", "hq", { state: "resolved", endsAt: T0 - 5_000 }));

  const mk = async (name: string, role: ApiTokenCreate["role"], sites: string[]) =>
    (await issueToken(store, { name, role, sites }, "test", clock)).secret;
  const secrets = {
    admin: await mk("admin", "admin", ["*"]),
    operator: await mk("operator", "operator", ["*"]),
    viewer: await mk("viewer", "viewer", ["*"]),
    hqOperator: await mk("hq-operator", "operator", ["hq"]),
    hqViewer: await mk("hq-viewer", "viewer", ["hq"]),
    hqAdmin: await mk("hq-admin", "admin", ["hq"]),
  };
  const app = buildServer({
    store,
    audit,
    metrics,
    alerts,
    sse,
    clock,
    log,
    config: { rateLimitPerMinute: 10_000, ...config },
    health: () => ({ status: "ok", checks: { store: { ok: true } } }),
    ...(opts.rollouts === false ? {} : { rollouts }),
  });
  await app.ready();
  const logs = () =>
    chunks
      .join("")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    app,
    store,
    metrics,
    audit,
    alerts,
    sse,
    rollouts,
    clock,
    get logs() {
      return logs();
    },
    logText: () => chunks.join(""),
    secrets,
    auth: (name) => ({ authorization: `Bearer ${secrets[name]}` }),
    close: async () => {
      await app.close();
      await metrics.stop();
    },
  };
}
