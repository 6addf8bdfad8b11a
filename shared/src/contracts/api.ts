import { z } from "zod";

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
