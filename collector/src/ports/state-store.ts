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
}
