import { z } from "zod";
import { Alert } from "./alert.js";

/** The one error envelope of the REST API. */
export const ApiError = z.object({
  error: z.object({
    code: z.string().regex(/^POLYFLEET_ERR_[A-Z0-9_]+$/),
    message: z.string(),
    /** For invalid bodies: the failing fields. */
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  }),
});
export type ApiError = z.infer<typeof ApiError>;

export const Role = z.enum(["viewer", "operator", "admin"]);
export type Role = z.infer<typeof Role>;

/** An API token as listed: never the secret itself (only shown once, at creation). */
export const ApiToken = z.object({
  id: z.string(),
  name: z.string(),
  role: Role,
  /** Site ids the token may see and act on; `*` = all. */
  sites: z.array(z.string()).min(1),
  createdAt: z.int(),
  createdBy: z.string(),
  lastUsedAt: z.int().optional(),
});
export type ApiToken = z.infer<typeof ApiToken>;

export const ApiTokenCreate = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/),
  role: Role,
  sites: z.array(z.string().min(1)).min(1).default(["*"]),
});
export type ApiTokenCreate = z.infer<typeof ApiTokenCreate>;

/** Query of `GET /api/v1/devices`. */
export const DeviceQuery = z.strictObject({
  siteId: z.string().optional(),
  agentId: z.string().optional(),
  model: z.string().optional(),
  family: z.enum(["uc", "videoos", "snmp"]).optional(),
  reachable: z.enum(["true", "false"]).optional(),
  tag: z.string().optional(),
  /** Free-text search over id, address, model, serial, MAC, system name. */
  q: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().optional(),
});
export type DeviceQuery = z.infer<typeof DeviceQuery>;

// ---- REST API request/response bodies (collector/src/http) ----

/** Body of `PUT /api/v1/devices/:id/tags`: replaces the device's tags. */
export const DeviceTagsUpdate = z.strictObject({
  tags: z
    .array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:=-]{0,63}$/, "tag: 1-64 of A-Z a-z 0-9 _ . : = -"))
    .max(50),
});
export type DeviceTagsUpdate = z.infer<typeof DeviceTagsUpdate>;

/** Fields of a device series (`GET /api/v1/devices/:id/series`). */
export const SeriesField = z.enum([
  "cpuPct",
  "memPct",
  "pollLatencyMs",
  "rxPacketsPerSec",
  "txPacketsPerSec",
  "packetLossPct",
  "uptimeSec",
  "reachable",
]);
export type SeriesField = z.infer<typeof SeriesField>;

/** Query of `GET /api/v1/devices/:id/series`; `from`/`to` in epoch ms (default: the last hour), `step` in ms (0 = raw). */
export const SeriesRequest = z.strictObject({
  field: SeriesField,
  from: z.coerce.number().int().nonnegative().optional(),
  to: z.coerce.number().int().nonnegative().optional(),
  step: z.coerce.number().int().min(0).max(86_400_000).default(0),
});
export type SeriesRequest = z.infer<typeof SeriesRequest>;

export const SeriesResponse = z.object({
  deviceId: z.string(),
  field: SeriesField,
  from: z.int().nonnegative(),
  to: z.int().nonnegative(),
  step: z.int().nonnegative(),
  points: z.array(z.object({ ts: z.number(), value: z.number() })),
});
export type SeriesResponse = z.infer<typeof SeriesResponse>;

/** Query of `GET /api/v1/alerts`: `state=active` means firing or acknowledged. */
export const AlertListQuery = z.strictObject({
  state: z.enum(["firing", "acknowledged", "resolved", "active"]).optional(),
  severity: z.enum(["critical", "major", "minor", "warning", "info"]).optional(),
  siteId: z.string().optional(),
  deviceId: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(200),
});
export type AlertListQuery = z.infer<typeof AlertListQuery>;

/** Query of `GET /api/v1/audit`. */
export const AuditQueryParams = z.strictObject({
  actor: z.string().optional(),
  action: z.string().optional(),
  target: z.string().optional(),
  from: z.coerce.number().int().nonnegative().optional(),
  to: z.coerce.number().int().nonnegative().optional(),
  afterSeq: z.coerce.number().int().nonnegative().optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
export type AuditQueryParams = z.infer<typeof AuditQueryParams>;

/** Answer of `POST /api/v1/tokens`: the only time the secret is ever shown. */
export const ApiTokenCreated = z.object({ token: ApiToken, secret: z.string().startsWith("pf_") });
export type ApiTokenCreated = z.infer<typeof ApiTokenCreated>;

/** Answer of `GET /healthz` (no auth): overall status plus one entry per component. */
export const HealthReport = z.object({
  status: z.enum(["ok", "degraded", "down"]),
  version: z.string().optional(),
  uptimeSec: z.number().nonnegative().optional(),
  checks: z.record(z.string(), z.object({ ok: z.boolean(), detail: z.string().optional() })),
});
export type HealthReport = z.infer<typeof HealthReport>;

/** Answer of `GET /api/v1/alerts/:id`: the alert and every saved version of it, oldest first. */
export const AlertDetail = z.object({ alert: Alert, history: z.array(Alert) });
export type AlertDetail = z.infer<typeof AlertDetail>;
