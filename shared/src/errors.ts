/**
 * The one catalog of polyfleet error codes. Every code is documented in docs/errors.md (a test checks it).
 * Expected device failures travel as values ({ code, message }); PolyfleetError is for refusals at the edges.
 */
export const ERRORS = {
  POLYFLEET_ERR_CONFIG_INVALID: { status: 400, message: "configuration is invalid" },
  POLYFLEET_ERR_CONFIG_UNREADABLE: { status: 500, message: "configuration file cannot be read" },
  POLYFLEET_ERR_SECRET_UNRESOLVED: { status: 500, message: "a secret reference could not be resolved" },
  POLYFLEET_ERR_MESSAGE_INVALID: { status: 400, message: "message does not match its contract" },
  POLYFLEET_ERR_MESSAGE_NOT_JSON: { status: 400, message: "message is not valid JSON" },
  POLYFLEET_ERR_TOPIC_UNKNOWN: { status: 400, message: "topic is not a polyfleet topic" },
  POLYFLEET_ERR_BODY_INVALID: { status: 400, message: "request body is invalid" },
  POLYFLEET_ERR_NOT_FOUND: { status: 404, message: "not found" },
  POLYFLEET_ERR_UNAUTHORIZED: { status: 401, message: "authentication required" },
  POLYFLEET_ERR_FORBIDDEN: { status: 403, message: "not allowed" },
  POLYFLEET_ERR_RATE_LIMITED: { status: 429, message: "too many requests" },
  POLYFLEET_ERR_INTERNAL: { status: 500, message: "internal error" },
  POLYFLEET_ERR_DEVICE_TIMEOUT: { status: 504, message: "device did not answer in time" },
  POLYFLEET_ERR_DEVICE_UNREACHABLE: { status: 502, message: "device is unreachable" },
  POLYFLEET_ERR_DEVICE_AUTH: { status: 502, message: "device refused the credentials" },
  POLYFLEET_ERR_DEVICE_BUSY: { status: 503, message: "device is busy with another request" },
  POLYFLEET_ERR_DEVICE_HTTP: { status: 502, message: "device answered with an HTTP error" },
  POLYFLEET_ERR_DEVICE_BAD_RESPONSE: { status: 502, message: "device answer is malformed" },
  POLYFLEET_ERR_DEVICE_REST_DISABLED: { status: 502, message: "device REST API is disabled" },
  POLYFLEET_ERR_DEVICE_TOO_LARGE: { status: 502, message: "device answer exceeds the size limit" },
  POLYFLEET_ERR_SNMP_TIMEOUT: { status: 504, message: "SNMP request timed out" },
  POLYFLEET_ERR_SNMP_AUTH: { status: 502, message: "SNMPv3 authentication or privacy failed" },
  POLYFLEET_ERR_SNMP_MALFORMED: { status: 502, message: "SNMP packet is malformed" },
  POLYFLEET_ERR_SNMP_WALK_LOOP: { status: 502, message: "SNMP walk returned a non-increasing OID" },
  POLYFLEET_ERR_SNMP_WALK_LIMIT: { status: 502, message: "SNMP walk exceeded its varbind or time bound" },
  POLYFLEET_ERR_SNMP_INSECURE: { status: 400, message: "SNMP security settings are refused as insecure" },
  POLYFLEET_ERR_COMMAND_INVALID: { status: 400, message: "command is invalid" },
  POLYFLEET_ERR_COMMAND_EXPIRED: { status: 410, message: "command expired before it ran" },
  POLYFLEET_ERR_COMMAND_FAILED: { status: 502, message: "command failed" },
  POLYFLEET_ERR_OUTBOX_FULL: { status: 507, message: "outbox full: oldest entries dropped" },
  POLYFLEET_ERR_UPDATE_FAILED: { status: 502, message: "firmware update failed" },
  POLYFLEET_ERR_IMAGE_MISMATCH: {
    status: 422,
    message: "firmware image length or hash differs from the catalog",
  },
  POLYFLEET_ERR_AUDIT_WRITE_FAILED: { status: 503, message: "audit write failed; action refused" },
  POLYFLEET_ERR_COMMAND_TIMEOUT: { status: 504, message: "command did not finish in time" },
  POLYFLEET_ERR_COMMAND_UNSUPPORTED: { status: 501, message: "this agent does not support the command type" },
  POLYFLEET_ERR_TOOL_UNAVAILABLE: {
    status: 501,
    message: "a system tool the command needs is not installed",
  },
  POLYFLEET_ERR_DISCOVERY_RANGE_TOO_LARGE: { status: 400, message: "discovery range is larger than allowed" },
  POLYFLEET_ERR_OUTBOX_UNAVAILABLE: {
    status: 500,
    message: "outbox cannot be opened: in use by another agent process, or owned by another agent",
  },
  POLYFLEET_ERR_SNMP_ERROR_STATUS: { status: 502, message: "SNMP agent answered with an error status" },
  POLYFLEET_ERR_DEVICE_ACTION_UNSUPPORTED: {
    status: 501,
    message: "the device or its driver does not support this action",
  },
  POLYFLEET_ERR_METRICS_UNAVAILABLE: {
    status: 503,
    message: "metrics store is unreachable or answered with an error",
  },
  POLYFLEET_ERR_METRICS_FIELD_UNKNOWN: { status: 400, message: "unknown metrics field" },
  POLYFLEET_ERR_BODY_TOO_LARGE: { status: 413, message: "request body is too large" },
  POLYFLEET_ERR_MEDIA_TYPE_UNSUPPORTED: { status: 415, message: "request content type is not supported" },
  POLYFLEET_ERR_AUDIT_KEY_INVALID: {
    status: 500,
    message: "audit signing key cannot be read or written, is not ed25519, or is readable by others",
  },
  POLYFLEET_ERR_CATALOG_INVALID: { status: 422, message: "firmware catalog or root file is malformed" },
  POLYFLEET_ERR_CATALOG_SIGNATURE: {
    status: 422,
    message: "firmware catalog signature missing, invalid or below the threshold",
  },
  POLYFLEET_ERR_CATALOG_ROLLBACK: {
    status: 422,
    message: "firmware catalog is older than the last one accepted",
  },
  POLYFLEET_ERR_CATALOG_EXPIRED: { status: 422, message: "firmware catalog has expired" },
  POLYFLEET_ERR_DOWNGRADE_REFUSED: { status: 422, message: "update would go below the allowed floor" },
  POLYFLEET_ERR_MODEL_MISMATCH: { status: 422, message: "release is not for this device model" },
  POLYFLEET_ERR_IMAGE_TOO_LARGE: {
    status: 413,
    message: "firmware image is larger than its declared length",
  },
  POLYFLEET_ERR_VERSION_INVALID: {
    status: 400,
    message: "firmware version string is not valid for its family",
  },
  POLYFLEET_ERR_ROLLOUT_STATE: { status: 409, message: "rollout action does not fit the rollout's state" },
  POLYFLEET_ERR_DEVICE_IN_CALL: { status: 409, message: "device is in a call; the update is deferred" },
  POLYFLEET_ERR_UPDATE_IN_PROGRESS: {
    status: 409,
    message: "another update is already running on this device",
  },
  POLYFLEET_ERR_UPDATE_TIMEOUT: {
    status: 504,
    message: "device did not come back on the target version in time",
  },
  POLYFLEET_ERR_UPDATE_WRONG_VERSION: { status: 502, message: "device came back running another version" },
  POLYFLEET_ERR_DOWNLOAD_FAILED: { status: 502, message: "firmware image download failed" },
  POLYFLEET_ERR_UPDATE_INTERRUPTED: { status: 500, message: "update interrupted by an agent restart" },
  POLYFLEET_ERR_ALERT_STATE: {
    status: 409,
    message: "the alert is not in a state that allows this (already acknowledged or resolved)",
  },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

export class PolyfleetError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message?: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(
      message ?? ERRORS[code].message,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "PolyfleetError";
    this.code = code;
    this.statusCode = ERRORS[code].status;
    this.details = options?.details;
  }

  /** The `{ code, message }` value form used in readings, command results and HTTP error envelopes. */
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export function isPolyfleetError(e: unknown): e is PolyfleetError {
  return e instanceof PolyfleetError;
}
