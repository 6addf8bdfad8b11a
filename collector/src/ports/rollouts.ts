import type {
  Rollout,
  RolloutCreate,
  RolloutDevice,
  RolloutDeviceState,
  RolloutPreview,
  RolloutState,
} from "@polyfleet/shared";

/** Who asks, for audit and site scoping. `sites` undefined = every site. */
export interface RolloutActor {
  actor: string;
  sites?: string[] | undefined;
}

export type RolloutActionName = "start" | "pause" | "resume" | "cancel" | "retry-failed";

/** One release of the verified catalog, as the API lists it. */
export interface CatalogReleaseView {
  family: string;
  model: string;
  version: string;
  build?: string | undefined;
  channel: string;
  releaseDate: string;
  minVersion?: string | undefined;
  downgrade: boolean;
  notes?: string | undefined;
  image: { fileName: string; length: number; sha256: string };
}

export interface CatalogView {
  /** False when no catalog is configured or the configured one was refused (see `error`). */
  loaded: boolean;
  version?: number | undefined;
  expires?: string | undefined;
  error?: string | undefined;
  releases: CatalogReleaseView[];
  /** Approved version per model (the baseline compliance is measured against). */
  baseline: Record<string, string>;
}

export interface ComplianceRow {
  deviceId: string;
  siteId: string;
  model?: string | undefined;
  softwareVersion?: string | undefined;
  baseline?: string | undefined;
  status: "current" | "behind" | "ahead" | "unknown";
}

export interface ComplianceReport {
  catalogVersion?: number | undefined;
  counts: Record<ComplianceRow["status"], number>;
  devices: ComplianceRow[];
}

/**
 * The rollout service (port) the REST API calls. Every state-changing method is audited (actor, action, target,
 * reason) before it returns and throws PolyfleetError: POLYFLEET_ERR_NOT_FOUND for an unknown id or one outside
 * the actor's sites, POLYFLEET_ERR_ROLLOUT_STATE for an action the state does not allow, the catalog codes when
 * the catalog refuses the target.
 */
export interface RolloutService {
  /** The dry run: waves and devices, nothing stored. */
  preview(spec: RolloutCreate, who: RolloutActor): Promise<RolloutPreview>;
  /** Creates the rollout in state `pending` (planned exactly as the preview shows). */
  create(spec: RolloutCreate, who: RolloutActor): Promise<Rollout>;
  act(id: string, action: RolloutActionName, reason: string, who: RolloutActor): Promise<Rollout>;
  get(id: string, who: RolloutActor): Promise<Rollout | undefined>;
  list(filter: { state?: RolloutState | undefined }, who: RolloutActor): Promise<Rollout[]>;
  devices(
    id: string,
    filter: { state?: RolloutDeviceState | undefined; wave?: number | undefined },
    who: RolloutActor,
  ): Promise<RolloutDevice[]>;
  catalog(): CatalogView;
  compliance(who: RolloutActor): Promise<ComplianceReport>;
  /** An image of the verified catalog by sha256: its path on disk and length, or undefined. */
  image(sha256: string): { path: string; length: number; fileName: string } | undefined;
}
