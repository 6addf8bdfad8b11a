import { z } from "zod";
import { DeviceId, EpochMs, TopicId } from "./common.js";

/** A host name, IPv4 or IPv6 address: never a leading `-` or anything a shell or a tool would read as an option. */
const Host = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9[:][A-Za-z0-9.:_\]%-]*$/, "must be a host name or an IP address");
/** Command ids: idempotency keys chosen by the collector. */
export const CommandId = z.string().regex(/^[A-Za-z0-9_.:-]{8,128}$/, "8-128 of A-Z a-z 0-9 _ . : -");
const Oid = z.string().regex(/^\.?\d+(\.\d+)*$/, "OID must be numeric, dot-separated");
const TimeoutMs = z.int().min(1).max(120_000);

/** Network tools and device actions the agent runs on request. */
export const CommandBody = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("ping"),
    target: Host,
    count: z.int().min(1).max(20).default(3),
    timeoutMs: TimeoutMs.default(5000),
  }),
  z.object({
    type: z.literal("tcpConnect"),
    host: Host,
    port: z.int().min(1).max(65535),
    timeoutMs: TimeoutMs.default(5000),
  }),
  z.object({
    type: z.literal("httpProbe"),
    url: z.url({ protocol: /^https?$/ }),
    timeoutMs: TimeoutMs.default(10_000),
    insecure: z.boolean().default(true),
  }),
  z.object({
    type: z.literal("dnsLookup"),
    name: Host,
    rrtype: z.enum(["A", "AAAA", "CNAME", "MX", "TXT", "SRV", "PTR", "NS"]).default("A"),
  }),
  z.object({
    type: z.literal("traceroute"),
    target: Host,
    maxHops: z.int().min(1).max(64).default(30),
    timeoutMs: TimeoutMs.default(60_000),
  }),
  z.object({
    type: z.literal("snmpGet"),
    target: z.union([
      z.object({ deviceId: DeviceId }),
      z.object({ address: Host, credentials: z.string().min(1) }),
    ]),
    oids: z.array(Oid).min(1).max(64),
  }),
  z.object({
    type: z.literal("snmpWalk"),
    target: z.union([
      z.object({ deviceId: DeviceId }),
      z.object({ address: Host, credentials: z.string().min(1) }),
    ]),
    rootOid: Oid,
    maxVarbinds: z.int().min(1).max(100_000).default(10_000),
    maxMs: z.int().min(100).max(300_000).default(30_000),
  }),
  z.object({ type: z.literal("rediscover"), ranges: z.array(z.string()).optional() }),
  z.object({ type: z.literal("reboot"), deviceId: DeviceId, reason: z.string().min(1) }),
  z.object({
    type: z.literal("firmwareUpdate"),
    deviceId: DeviceId,
    rolloutId: z.string().optional(),
    targetVersion: z.string().min(1),
    image: z.object({
      url: z.url({ protocol: /^https?$/ }),
      fileName: z.string().regex(/^[A-Za-z0-9._-]+$/),
      length: z.int().positive(),
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
    }),
    timeoutMs: z.int().min(1000).max(7_200_000).default(1_800_000),
  }),
]);
export type CommandBody = z.infer<typeof CommandBody>;
export type CommandType = CommandBody["type"];

/** Published by the collector on `.../cmd`. `commandId` makes it idempotent. */
export const Command = z
  .object({
    v: z.literal(1),
    commandId: CommandId,
    agentId: TopicId,
    issuedBy: z.string().min(1),
    issuedAt: EpochMs,
    expiresAt: EpochMs.optional(),
    body: CommandBody,
  })
  .refine((c) => c.expiresAt === undefined || c.expiresAt >= c.issuedAt, {
    message: "expiresAt must not be before issuedAt",
    path: ["expiresAt"],
  });
export type Command = z.infer<typeof Command>;
export type CommandInput = z.input<typeof Command>;

/** Answer on `.../cmd-result`: one envelope, ok or error, keyed by the command id. */
export const CommandResult = z.discriminatedUnion("status", [
  z.object({
    v: z.literal(1),
    agentId: TopicId,
    commandId: CommandId,
    status: z.literal("ok"),
    ts: EpochMs,
    durationMs: z.number().nonnegative(),
    data: z.record(z.string(), z.unknown()),
  }),
  z.object({
    v: z.literal(1),
    agentId: TopicId,
    commandId: CommandId,
    status: z.literal("error"),
    ts: EpochMs,
    durationMs: z.number().nonnegative(),
    error: z.object({ code: z.string().regex(/^POLYFLEET_ERR_[A-Z0-9_]+$/), message: z.string() }),
  }),
]);
export type CommandResult = z.infer<typeof CommandResult>;
