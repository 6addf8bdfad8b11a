export { DeviceQueue, type ScanVerdict } from "./device-queue.js";
export {
  type Dispatch,
  RECONCILE_GRACE_MS,
  RETRY_BACKOFF_MAX_MS,
  RETRY_BACKOFF_MS,
  ROLLOUT_SYSTEM_ACTOR,
  RolloutEngine,
  type RolloutEngineDeps,
  type RolloutOutput,
  type RolloutTransition,
  TIMEOUT_GRACE_MS,
} from "./engine.js";
export { commandErrorOutcome, commandIdFor, type Outcome, progressOutcome } from "./failures.js";
export { fnv1a32, hex64 } from "./hash.js";
export {
  type Eligibility,
  type PlanDevice,
  type PlanInput,
  type PlannedDevice,
  planRollout,
  runningVersionOf,
  targetVersionOf,
  waveBounds,
} from "./plan.js";
