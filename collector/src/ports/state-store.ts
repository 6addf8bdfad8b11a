import type {
  AgentEvent,
  AgentRecord,
  AgentState,
  Alert,
  ApiToken,
  DeviceQuery,
  DeviceRecord,
  MaintenanceWindow,
  Reading,
  Rollout,
  RolloutDevice,
  RolloutDeviceState,
  RolloutState,
  Silence,
  Site,
} from "@polyfleet/shared";

/** One batch of validated stream messages from one agent, stored in one transaction. */
export interface IngestBatch {
  agentId: string;
  siteId: string;
  readings: Reading[];
  events: AgentEvent[];
}

export interface IngestResult {
  /** Every seq up to this is stored (or was announced dropped by the agent): the ack the agent waits for. */
  watermark: number;
  /** Messages already stored before (same agent and seq): not stored again. */
  duplicates: number;
  /** Readings/events newly stored. */
  stored: number;
}

export interface Page<T> {
  items: T[];
  total: number;
  nextCursor?: string;
}

export interface AlertFilter {
  state?: Alert["state"] | "active";
  severity?: Alert["severity"];
  siteId?: string;
  deviceId?: string;
  /** Restrict to these sites (token scope); undefined = all. */
  sites?: string[];
  limit?: number;
}

export interface StoredToken extends ApiToken {
  /** sha256 hex of the token secret; the secret itself is never stored. */
  hash: string;
}

/** One write of the rollout service: rollouts and device records, stored together or not at all. */
export interface RolloutChanges {
  /** Upserted by `id`. */
  rollouts: Rollout[];
  /** Upserted by (`rolloutId`, `deviceId`). Each device's rollout must be in `rollouts` or already stored. */
  devices: RolloutDevice[];
}

export interface RolloutFilter {
  state?: RolloutState | undefined;
}

export interface RolloutDeviceFilter {
  state?: RolloutDeviceState | undefined;
  wave?: number | undefined;
}

/**
 * The collector's state (port). Adapters: SQLite (embedded default) and PostgreSQL, both passing the contract
 * suite in collector/test/contracts/state-store.contract.ts. Every method is atomic.
 */
export interface StateStore {
  /** Applies pending versioned migrations. */
  migrate(): Promise<void>;
  close(): Promise<void>;

  /**
   * Stores a batch durably (devices' latest state, events, the agent's seen sequence numbers) and returns the
   * new ack watermark. Dedup by (agentId, seq); `outbox.dropped` events mark their range as seen.
   */
  ingest(batch: IngestBatch): Promise<IngestResult>;

  /** Applies a birth/Will. A Will (offline) whose sessionId is not the current session is ignored (returns undefined). */
  applyAgentState(state: AgentState, receivedAt: number): Promise<AgentRecord | undefined>;
  getAgent(agentId: string): Promise<AgentRecord | undefined>;
  listAgents(sites?: string[]): Promise<AgentRecord[]>;
  listSites(sites?: string[]): Promise<Site[]>;

  getDevice(deviceId: string): Promise<DeviceRecord | undefined>;
  listDevices(query: DeviceQuery, sites?: string[]): Promise<Page<DeviceRecord>>;
  setDeviceTags(deviceId: string, tags: string[]): Promise<DeviceRecord | undefined>;

  /** Upserts an alert (by id) and appends the transition to its history. */
  saveAlert(alert: Alert): Promise<void>;
  getAlert(id: string): Promise<Alert | undefined>;
  listAlerts(filter: AlertFilter): Promise<Alert[]>;
  /** Every saved version of an alert, oldest first. */
  alertHistory(id: string): Promise<Alert[]>;

  saveSilence(s: Silence): Promise<void>;
  deleteSilence(id: string): Promise<boolean>;
  listSilences(): Promise<Silence[]>;
  saveWindow(w: MaintenanceWindow): Promise<void>;
  deleteWindow(id: string): Promise<boolean>;
  listWindows(): Promise<MaintenanceWindow[]>;

  saveToken(t: StoredToken): Promise<void>;
  findTokenByHash(hash: string): Promise<StoredToken | undefined>;
  listTokens(): Promise<ApiToken[]>;
  deleteToken(id: string): Promise<boolean>;
  touchToken(id: string, at: number): Promise<void>;

  /**
   * Upserts rollouts (by id) and rollout devices (by rolloutId + deviceId) in ONE transaction: either every
   * record is stored or none is. The rollout service writes its decisions here before it sends any command,
   * so a crash never leaves a command out that the stored state does not know about.
   *
   * Every record is validated against its zod schema (`Rollout`, `RolloutDevice`) first; the stored form is
   * the parsed one, so a read gives back exactly what was written. Rejects (storing nothing) when a record is
   * invalid or a device names a rollout that is neither in `changes.rollouts` nor stored. When a batch holds
   * the same key twice, the last one wins. Built for batches of thousands of devices (one statement per
   * batch on PostgreSQL, prepared statements in one transaction on SQLite).
   */
  saveRolloutChanges(changes: RolloutChanges): Promise<void>;
  getRollout(id: string): Promise<Rollout | undefined>;
  /** Rollouts, newest first (`createdAt` descending, then `id` ascending), optionally of one state. */
  listRollouts(filter?: RolloutFilter): Promise<Rollout[]>;
  /** The devices of one rollout in plan order (`order` ascending, then `deviceId`), optionally filtered. */
  listRolloutDevices(rolloutId: string, filter?: RolloutDeviceFilter): Promise<RolloutDevice[]>;
  /**
   * For the restore after a restart: every device of every rollout that is not `completed` or `cancelled`
   * (pending, running, paused and halted rollouts can still move), ordered by `rolloutId`, then `order`,
   * then `deviceId`. Devices of finished rollouts are not loaded.
   */
  listActiveRolloutDevices(): Promise<RolloutDevice[]>;
}

/** Rollout states after which nothing more happens: their devices are not restored after a restart. */
export const FINISHED_ROLLOUT_STATES: readonly RolloutState[] = ["completed", "cancelled"];
