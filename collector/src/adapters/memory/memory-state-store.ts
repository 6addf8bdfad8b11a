import type {
  AgentEvent,
  AgentRecord,
  AgentState,
  Alert,
  ApiToken,
  DeviceQuery,
  DeviceRecord,
  MaintenanceWindow,
  Silence,
  Site,
} from "@polyfleet/shared";
import { Rollout, RolloutDevice } from "@polyfleet/shared";
import {
  applyReading,
  type DeviceState,
  newAgent,
  newestPerDevice,
  nextAgentRecord,
} from "../../core/device-state.js";
import { DEFAULT_MAX_AHEAD, type DedupState, dedupBatch, emptyDedupState } from "../../core/ingest-dedup.js";
import {
  type AlertFilter,
  FINISHED_ROLLOUT_STATES,
  type IngestBatch,
  type IngestResult,
  type Page,
  type RolloutChanges,
  type RolloutDeviceFilter,
  type RolloutFilter,
  type StateStore,
  type StoredToken,
} from "../../ports/state-store.js";

export interface MemoryStateStoreOptions {
  /** Events kept (the newest; older ones are forgotten). Default 100,000. */
  eventRetention?: number;
  /** Reorder window of the dedup (see core/ingest-dedup.ts). Default 100,000. */
  maxAheadSeqs?: number;
}

/** A stored event with the receive bookkeeping. */
export interface StoredEvent {
  agentId: string;
  seq: number;
  event: AgentEvent;
}

/**
 * The in-memory StateStore: the reference fake the SQL adapters are held to by the contract suite. Nothing is
 * durable beyond the object itself (`close()` keeps the data, so a "reopened" store is the same instance).
 */
export class MemoryStateStore implements StateStore {
  private readonly retention: number;
  private readonly maxAhead: number;
  private readonly agents = new Map<string, AgentRecord>();
  private readonly dedup = new Map<string, DedupState>();
  private readonly devices = new Map<string, DeviceState>();
  private events: StoredEvent[] = [];
  private readonly alerts = new Map<string, Alert>();
  private readonly history = new Map<string, Alert[]>();
  private readonly silences = new Map<string, Silence>();
  private readonly windows = new Map<string, MaintenanceWindow>();
  private readonly tokens = new Map<string, StoredToken>();
  private readonly rollouts = new Map<string, Rollout>();
  /** rolloutId → deviceId → record. */
  private readonly rolloutDevices = new Map<string, Map<string, RolloutDevice>>();

  constructor(opts: MemoryStateStoreOptions = {}) {
    this.retention = opts.eventRetention ?? 100_000;
    this.maxAhead = opts.maxAheadSeqs ?? DEFAULT_MAX_AHEAD;
  }

  migrate(): Promise<void> {
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }

  ingest(batch: IngestBatch): Promise<IngestResult> {
    return run(() => {
      let state = this.dedup.get(batch.agentId);
      if (!state) {
        state = emptyDedupState();
        this.dedup.set(batch.agentId, state);
      }
      const rd = dedupBatch(state, batch.readings, () => undefined, this.maxAhead);
      const ev = dedupBatch(state, batch.events, dropRange, this.maxAhead);
      for (const r of newestPerDevice(rd.fresh)) {
        const next = applyReading(this.devices.get(r.deviceId), r);
        if (next) this.devices.set(r.deviceId, next);
      }
      for (const e of ev.fresh) this.events.push({ agentId: batch.agentId, seq: e.seq, event: e });
      if (this.events.length > this.retention) this.events = this.events.slice(-this.retention);
      const ts = batchTs(batch);
      const agent = this.agents.get(batch.agentId);
      if (agent) {
        agent.ackedSeq = state.watermark;
        if (ts > agent.lastSeen) agent.lastSeen = ts;
      } else {
        this.agents.set(batch.agentId, newAgent(batch.agentId, batch.siteId, ts, state.watermark));
      }
      // Readings and events share one seq stream; a dropped range announced by an event may cover readings.
      return {
        watermark: state.watermark,
        duplicates: rd.duplicates + ev.duplicates,
        stored: rd.fresh.length + ev.fresh.length,
      };
    });
  }

  /** The newest stored events, oldest first (optionally of one agent). Not part of the port. */
  recentEvents(limit: number, agentId?: string): Promise<StoredEvent[]> {
    return run(() => {
      const all = agentId === undefined ? this.events : this.events.filter((e) => e.agentId === agentId);
      return all.slice(-limit).map((e) => structuredClone(e));
    });
  }

  applyAgentState(state: AgentState, receivedAt: number): Promise<AgentRecord | undefined> {
    return run(() => {
      const cur = this.agents.get(state.agentId);
      const next = nextAgentRecord(cur, state, receivedAt);
      if (!next) return undefined;
      this.agents.set(state.agentId, next);
      return structuredClone(next);
    });
  }

  getAgent(agentId: string): Promise<AgentRecord | undefined> {
    return run(() => {
      const a = this.agents.get(agentId);
      return a ? structuredClone(a) : undefined;
    });
  }

  listAgents(sites?: string[]): Promise<AgentRecord[]> {
    return run(() => {
      return [...this.agents.values()]
        .filter((a) => inScope(sites, a.siteId))
        .sort((a, b) => cmp(a.agentId, b.agentId))
        .map((a) => structuredClone(a));
    });
  }

  listSites(sites?: string[]): Promise<Site[]> {
    return run(() => {
      const out = new Map<string, Site>();
      const site = (id: string): Site => {
        let s = out.get(id);
        if (!s) {
          s = { siteId: id, name: id, agents: 0, devices: 0 };
          out.set(id, s);
        }
        return s;
      };
      for (const a of this.agents.values()) if (inScope(sites, a.siteId)) site(a.siteId).agents++;
      for (const d of this.devices.values()) {
        if (inScope(sites, d.record.siteId)) site(d.record.siteId).devices++;
      }
      return [...out.values()].sort((a, b) => cmp(a.siteId, b.siteId));
    });
  }

  getDevice(deviceId: string): Promise<DeviceRecord | undefined> {
    return run(() => {
      const d = this.devices.get(deviceId);
      return d ? structuredClone(d.record) : undefined;
    });
  }

  listDevices(query: DeviceQuery, sites?: string[]): Promise<Page<DeviceRecord>> {
    return run(() => {
      const q = query.q?.toLowerCase();
      const matching = [...this.devices.values()]
        .map((d) => d.record)
        .filter(
          (d) =>
            inScope(sites, d.siteId) &&
            (query.siteId === undefined || d.siteId === query.siteId) &&
            (query.agentId === undefined || d.agentId === query.agentId) &&
            (query.model === undefined || d.model === query.model) &&
            (query.family === undefined || d.family === query.family) &&
            (query.reachable === undefined || String(d.reachable) === query.reachable) &&
            (query.tag === undefined || d.tags.includes(query.tag)) &&
            (q === undefined || textOf(d).includes(q)),
        )
        .sort((a, b) => cmp(a.deviceId, b.deviceId));
      const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
      const rest = after === undefined ? matching : matching.filter((d) => d.deviceId > after);
      const limit = query.limit ?? 100;
      const items = rest.slice(0, limit);
      const last = items[items.length - 1];
      const page: Page<DeviceRecord> = {
        items: items.map((d) => structuredClone(d)),
        total: matching.length,
      };
      if (rest.length > limit && last) page.nextCursor = encodeCursor(last.deviceId);
      return page;
    });
  }

  setDeviceTags(deviceId: string, tags: string[]): Promise<DeviceRecord | undefined> {
    return run(() => {
      const d = this.devices.get(deviceId);
      if (!d) return undefined;
      d.record = { ...d.record, tags: [...tags] };
      return structuredClone(d.record);
    });
  }

  saveAlert(alert: Alert): Promise<void> {
    return run(() => {
      const a = structuredClone(alert);
      this.alerts.set(a.id, a);
      const h = this.history.get(a.id) ?? [];
      h.push(structuredClone(alert));
      this.history.set(a.id, h);
    });
  }

  getAlert(id: string): Promise<Alert | undefined> {
    return run(() => {
      const a = this.alerts.get(id);
      return a ? structuredClone(a) : undefined;
    });
  }

  listAlerts(filter: AlertFilter): Promise<Alert[]> {
    return run(() => {
      const out = [...this.alerts.values()]
        .filter(
          (a) =>
            (filter.state === undefined ||
              (filter.state === "active" ? a.state !== "resolved" : a.state === filter.state)) &&
            (filter.severity === undefined || a.severity === filter.severity) &&
            (filter.siteId === undefined || a.siteId === filter.siteId) &&
            (filter.deviceId === undefined || a.deviceId === filter.deviceId) &&
            (filter.sites === undefined ||
              filter.sites.includes("*") ||
              (a.siteId !== undefined && filter.sites.includes(a.siteId))),
        )
        .sort((a, b) => b.updatedAt - a.updatedAt || cmp(a.id, b.id));
      return (filter.limit === undefined ? out : out.slice(0, filter.limit)).map((a) => structuredClone(a));
    });
  }

  alertHistory(id: string): Promise<Alert[]> {
    return run(() => {
      return (this.history.get(id) ?? []).map((a) => structuredClone(a));
    });
  }

  saveSilence(s: Silence): Promise<void> {
    return run(() => {
      this.silences.set(s.id, structuredClone(s));
    });
  }
  deleteSilence(id: string): Promise<boolean> {
    return run(() => {
      return this.silences.delete(id);
    });
  }
  listSilences(): Promise<Silence[]> {
    return run(() => {
      return [...this.silences.values()].sort((a, b) => cmp(a.id, b.id)).map((s) => structuredClone(s));
    });
  }
  saveWindow(w: MaintenanceWindow): Promise<void> {
    return run(() => {
      this.windows.set(w.id, structuredClone(w));
    });
  }
  deleteWindow(id: string): Promise<boolean> {
    return run(() => {
      return this.windows.delete(id);
    });
  }
  listWindows(): Promise<MaintenanceWindow[]> {
    return run(() => {
      return [...this.windows.values()].sort((a, b) => cmp(a.id, b.id)).map((w) => structuredClone(w));
    });
  }

  saveToken(t: StoredToken): Promise<void> {
    return run(() => {
      for (const [id, o] of this.tokens) if (o.hash === t.hash && id !== t.id) this.tokens.delete(id);
      this.tokens.set(t.id, structuredClone(t));
    });
  }
  findTokenByHash(hash: string): Promise<StoredToken | undefined> {
    return run(() => {
      for (const t of this.tokens.values()) if (t.hash === hash) return structuredClone(t);
      return undefined;
    });
  }
  listTokens(): Promise<ApiToken[]> {
    return run(() => {
      return [...this.tokens.values()]
        .sort((a, b) => cmp(a.id, b.id))
        .map(({ hash: _h, ...t }) => structuredClone(t));
    });
  }
  deleteToken(id: string): Promise<boolean> {
    return run(() => {
      return this.tokens.delete(id);
    });
  }
  touchToken(id: string, at: number): Promise<void> {
    return run(() => {
      const t = this.tokens.get(id);
      if (t) t.lastUsedAt = at;
    });
  }

  saveRolloutChanges(changes: RolloutChanges): Promise<void> {
    return run(() => {
      // Everything is checked before anything is applied: all or nothing, like the SQL transaction.
      const { rollouts, devices } = prepareRolloutChanges(changes);
      const batchIds = new Set(rollouts.map((r) => r.id));
      for (const d of devices) {
        if (!batchIds.has(d.rolloutId) && !this.rollouts.has(d.rolloutId)) throw unknownRollout(d);
      }
      for (const r of rollouts) this.rollouts.set(r.id, r);
      for (const d of devices) {
        let m = this.rolloutDevices.get(d.rolloutId);
        if (!m) {
          m = new Map();
          this.rolloutDevices.set(d.rolloutId, m);
        }
        m.set(d.deviceId, d);
      }
    });
  }

  getRollout(id: string): Promise<Rollout | undefined> {
    return run(() => {
      const r = this.rollouts.get(id);
      return r ? structuredClone(r) : undefined;
    });
  }

  listRollouts(filter: RolloutFilter = {}): Promise<Rollout[]> {
    return run(() =>
      [...this.rollouts.values()]
        .filter((r) => filter.state === undefined || r.state === filter.state)
        .sort((a, b) => b.createdAt - a.createdAt || cmp(a.id, b.id))
        .map((r) => structuredClone(r)),
    );
  }

  listRolloutDevices(rolloutId: string, filter: RolloutDeviceFilter = {}): Promise<RolloutDevice[]> {
    return run(() =>
      [...(this.rolloutDevices.get(rolloutId)?.values() ?? [])]
        .filter(
          (d) =>
            (filter.state === undefined || d.state === filter.state) &&
            (filter.wave === undefined || d.wave === filter.wave),
        )
        .sort(byPlanOrder)
        .map((d) => structuredClone(d)),
    );
  }

  listActiveRolloutDevices(): Promise<RolloutDevice[]> {
    return run(() => {
      const ids = [...this.rollouts.values()]
        .filter((r) => !FINISHED_ROLLOUT_STATES.includes(r.state))
        .map((r) => r.id)
        .sort(cmp);
      return ids.flatMap((id) =>
        [...(this.rolloutDevices.get(id)?.values() ?? [])].sort(byPlanOrder).map((d) => structuredClone(d)),
      );
    });
  }
}

/**
 * Validates a rollout write against the zod schemas and normalises it (the parsed records; the last record of
 * a key wins). Throws on the first invalid record. Shared by every StateStore adapter.
 */
export function prepareRolloutChanges(changes: RolloutChanges): {
  rollouts: Rollout[];
  devices: RolloutDevice[];
} {
  const rollouts = new Map<string, Rollout>();
  for (const r of changes.rollouts) {
    const parsed = Rollout.safeParse(r);
    if (!parsed.success) throw invalidRecord("rollout", r, parsed.error);
    rollouts.set(parsed.data.id, parsed.data);
  }
  const devices = new Map<string, RolloutDevice>();
  for (const d of changes.devices) {
    const parsed = RolloutDevice.safeParse(d);
    if (!parsed.success) throw invalidRecord("rollout device", d, parsed.error);
    // The key is JSON so no separator character can make two different pairs collide.
    devices.set(JSON.stringify([parsed.data.rolloutId, parsed.data.deviceId]), parsed.data);
  }
  return { rollouts: [...rollouts.values()], devices: [...devices.values()] };
}

function invalidRecord(what: string, rec: unknown, err: { issues: readonly unknown[] }): Error {
  const id = typeof rec === "object" && rec !== null ? (rec as Record<string, unknown>) : {};
  const name = [id.id, id.rolloutId, id.deviceId].filter((x) => typeof x === "string").join("/");
  return new Error(`invalid ${what} ${name || "(no id)"}: ${JSON.stringify(err.issues)}`);
}

/** The error every adapter throws for a device of a rollout that is neither in the batch nor stored. */
export function unknownRollout(d: Pick<RolloutDevice, "rolloutId" | "deviceId">): Error {
  return new Error(`rollout device ${d.deviceId}: rollout ${d.rolloutId} does not exist`);
}

/** Plan order of a rollout's devices: `order`, then `deviceId`. */
export function byPlanOrder(a: RolloutDevice, b: RolloutDevice): number {
  return a.order - b.order || cmp(a.deviceId, b.deviceId);
}

/** The announced-lost range of an `outbox.dropped` event. */
export function dropRange(e: AgentEvent): [number, number] | undefined {
  return e.type === "outbox.dropped" ? [e.fromSeq, e.toSeq] : undefined;
}

/** The newest `ts` of a batch (the agent's last-seen time), 0 for an empty batch. */
export function batchTs(batch: IngestBatch): number {
  let ts = 0;
  for (const r of batch.readings) if (r.ts > ts) ts = r.ts;
  for (const e of batch.events) if (e.ts > ts) ts = e.ts;
  return ts;
}

/** True when `siteId` is within the scope list (undefined or containing `*` = every site). */
export function inScope(sites: string[] | undefined, siteId: string): boolean {
  return sites === undefined || sites.includes("*") || sites.includes(siteId);
}

/** Opaque, stable pagination cursor: the last device id of the page. */
export function encodeCursor(deviceId: string): string {
  return Buffer.from(deviceId, "utf8").toString("base64url");
}

export function decodeCursor(cursor: string): string {
  return Buffer.from(cursor, "base64url").toString("utf8");
}

function textOf(d: DeviceRecord): string {
  return [d.deviceId, d.address, d.model ?? "", d.serial ?? "", d.mac ?? "", d.systemName ?? ""]
    .join("\n")
    .toLowerCase();
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Runs `fn` now and returns its result (or its exception) as a settled promise, like an async function. */
function run<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}
