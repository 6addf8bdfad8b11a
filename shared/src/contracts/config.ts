import { z } from "zod";
import { SecretRef, TopicId } from "./common.js";

const LogLevel = z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

/** IPv4 CIDR, e.g. 10.1.20.0/24. */
export const Cidr = z
  .string()
  .regex(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/, "must be an IPv4 CIDR like 10.1.20.0/24")
  .refine((s) => {
    const [ip, len] = s.split("/") as [string, string];
    return ip.split(".").every((o) => Number(o) <= 255) && Number(len) <= 32;
  }, "octets must be 0-255 and the prefix 0-32");

const BrokerConfig = z.strictObject({
  url: z.string().regex(/^mqtts?:\/\/[^\s]+$/, "must be mqtt://host:port or mqtts://host:port"),
  username: z.string().optional(),
  password: SecretRef.optional(),
  ca: z.string().optional(),
  cert: z.string().optional(),
  key: z.string().optional(),
  protocolVersion: z.union([z.literal(4), z.literal(5)]).optional(),
  keepaliveSec: z.int().min(5).max(3600).default(30),
});

/** A named credential profile; devices refer to it by name. */
export const CredentialProfile = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("snmpv3"),
    user: z.string().min(1),
    authProtocol: z.enum(["sha256", "sha512", "sha1", "md5"]).default("sha256"),
    authKey: SecretRef,
    privProtocol: z.enum(["aes128", "aes256", "des"]).default("aes128"),
    privKey: SecretRef,
    securityLevel: z.enum(["authPriv", "authNoPriv", "noAuthNoPriv"]).default("authPriv"),
    /** Accept SHA-1 authentication for devices that support nothing better. */
    allowLegacySha1: z.boolean().default(false),
  }),
  z.strictObject({ type: z.literal("snmpv2c"), community: SecretRef }),
  z.strictObject({ type: z.literal("http"), user: z.string().min(1), password: SecretRef }),
]);
export type CredentialProfile = z.infer<typeof CredentialProfile>;

const AgentDevice = z.strictObject({
  address: z.string().min(1),
  driver: z.enum(["poly-ucs", "poly-videoos", "snmp-generic"]).optional(),
  httpsPort: z.int().min(1).max(65535).default(443),
  snmpPort: z.int().min(1).max(65535).default(161),
  credentials: z.array(z.string().min(1)).min(1),
  tags: z.array(z.string()).default([]),
  pollIntervalSec: z.int().min(5).max(86_400).optional(),
});

/** `agent.yaml`. */
export const AgentConfig = z.strictObject({
  siteId: TopicId,
  agentId: TopicId,
  logLevel: LogLevel.default("info"),
  broker: BrokerConfig,
  credentials: z.record(z.string().min(1), CredentialProfile).default({}),
  devices: z.array(AgentDevice).default([]),
  discovery: z
    .strictObject({
      ranges: z.array(Cidr).default([]),
      credentials: z.array(z.string().min(1)).default([]),
      httpsPorts: z.array(z.int().min(1).max(65535)).default([443]),
      snmpPorts: z.array(z.int().min(1).max(65535)).default([161]),
      concurrency: z.int().min(1).max(1024).default(64),
      timeoutMs: z.int().min(100).max(30_000).default(2000),
      intervalSec: z.int().min(0).max(604_800).default(3600),
    })
    .default({
      ranges: [],
      credentials: [],
      httpsPorts: [443],
      snmpPorts: [161],
      concurrency: 64,
      timeoutMs: 2000,
      intervalSec: 3600,
    }),
  polling: z
    .strictObject({
      intervalSec: z.int().min(5).max(86_400).default(60),
      jitterPct: z.number().min(0).max(50).default(10),
      timeoutMs: z.int().min(100).max(60_000).default(5000),
      concurrency: z.int().min(1).max(10_000).default(256),
      missesBeforeUnreachable: z.int().min(1).max(100).default(3),
    })
    .default({
      intervalSec: 60,
      jitterPct: 10,
      timeoutMs: 5000,
      concurrency: 256,
      missesBeforeUnreachable: 3,
    }),
  outbox: z
    .strictObject({
      dir: z.string().min(1).default("./.polyfleet/outbox"),
      maxEntries: z.int().min(100).max(100_000_000).default(1_000_000),
      batchSize: z.int().min(1).max(1000).default(100),
    })
    .default({ dir: "./.polyfleet/outbox", maxEntries: 1_000_000, batchSize: 100 }),
  provisioning: z
    .strictObject({
      host: z.string().default("0.0.0.0"),
      port: z.int().min(0).max(65535).default(8085),
      /** The URL devices fetch provisioning files and images from (default http://<host>:<port>). */
      advertisedUrl: z.string().optional(),
      /** Where downloaded firmware images and the update journal are kept. */
      dir: z.string().min(1).default("./.polyfleet/firmware"),
      /** Images kept at most (least recently used removed first; images of running updates are kept). */
      maxCachedImages: z.int().min(1).max(1000).default(8),
      /** How often a device is checked while an update runs (back from reboot? which version?). */
      watchIntervalMs: z.int().min(100).max(60_000).default(5000),
    })
    .default({
      host: "0.0.0.0",
      port: 8085,
      dir: "./.polyfleet/firmware",
      maxCachedImages: 8,
      watchIntervalMs: 5000,
    }),
  traps: z
    .strictObject({
      enabled: z.boolean().default(true),
      host: z.string().default("0.0.0.0"),
      port: z.int().min(0).max(65535).default(162),
    })
    .default({ enabled: true, host: "0.0.0.0", port: 162 }),
  http: z
    .strictObject({ host: z.string().default("127.0.0.1"), port: z.int().min(0).max(65535).default(9465) })
    .default({ host: "127.0.0.1", port: 9465 }),
});
export type AgentConfig = z.infer<typeof AgentConfig>;
export type AgentConfigInput = z.input<typeof AgentConfig>;

/** `collector.yaml`. */
export const CollectorConfig = z.strictObject({
  logLevel: LogLevel.default("info"),
  broker: z
    .discriminatedUnion("type", [
      z.strictObject({
        type: z.literal("embedded"),
        host: z.string().default("127.0.0.1"),
        port: z.int().min(0).max(65535).default(1883),
      }),
      z.strictObject({
        type: z.literal("external"),
        ...BrokerConfig.shape,
        sharedGroup: z.string().optional(),
      }),
    ])
    .default({ type: "embedded", host: "127.0.0.1", port: 1883 }),
  store: z
    .discriminatedUnion("type", [
      z.strictObject({ type: z.literal("sqlite"), path: z.string().default("./.polyfleet/state.db") }),
      z.strictObject({ type: z.literal("postgres"), url: SecretRef }),
    ])
    .default({ type: "sqlite", path: "./.polyfleet/state.db" }),
  metrics: z
    .discriminatedUnion("type", [
      z.strictObject({
        type: z.literal("embedded"),
        retentionMinutes: z.int().min(1).max(10_080).default(360),
      }),
      z.strictObject({
        type: z.literal("influxdb"),
        url: z.url(),
        database: z.string().min(1),
        username: z.string().optional(),
        password: SecretRef.optional(),
        batchSize: z.int().min(1).max(100_000).default(5000),
        flushMs: z.int().min(10).max(60_000).default(1000),
        maxBufferPoints: z.int().min(1000).max(100_000_000).default(1_000_000),
      }),
    ])
    .default({ type: "embedded", retentionMinutes: 360 }),
  http: z
    .strictObject({ host: z.string().default("127.0.0.1"), port: z.int().min(0).max(65535).default(8080) })
    .default({ host: "127.0.0.1", port: 8080 }),
  alerts: z.strictObject({ rulesFile: z.string().optional() }).default({}),
  firmware: z
    .strictObject({
      /** The trusted root (signing keys + threshold). Rollouts are refused without it. */
      rootFile: z.string().optional(),
      /** The signed catalog. Reloaded when it changes; a refused catalog keeps the last good one. */
      catalogFile: z.string().optional(),
      /** Images named as in the catalog (`image.fileName`). */
      imagesDir: z.string().default("./.polyfleet/firmware"),
      /** Highest accepted catalog/root versions (rollback protection); default beside the state database. */
      trustStateFile: z.string().optional(),
      /** Base URL agents download images from (default: the API's own URL). */
      publicUrl: z.url().optional(),
      /** How often the rollout engine steps. */
      tickMs: z.int().min(10).max(60_000).default(1000),
    })
    .default({ imagesDir: "./.polyfleet/firmware", tickMs: 1000 }),
  audit: z
    .strictObject({
      /** ed25519 private key (PEM) signing checkpoints; generated into the state directory when absent. */
      keyFile: z.string().optional(),
      checkpointEvery: z.int().min(1).max(100_000).default(100),
    })
    .default({ checkpointEvery: 100 }),
  api: z
    .strictObject({
      /** Token of the first admin, created at start when no token exists (e.g. {env: POLYFLEET_ADMIN_TOKEN}). */
      bootstrapToken: SecretRef.optional(),
      rateLimitPerMinute: z.int().min(1).max(1_000_000).default(600),
    })
    .default({ rateLimitPerMinute: 600 }),
  notifiers: z
    .strictObject({
      webhooks: z
        .array(
          z.strictObject({
            name: z.string().min(1),
            url: z.url(),
            secret: SecretRef.optional(),
            template: z.string().optional(),
            maxRetries: z.int().min(0).max(20).default(5),
          }),
        )
        .default([]),
      email: z
        .strictObject({
          name: z.string().default("email"),
          host: z.string(),
          port: z.int().min(1).max(65535).default(25),
          secure: z.boolean().default(false),
          username: z.string().optional(),
          password: SecretRef.optional(),
          from: z.string(),
          to: z.array(z.string()).min(1),
        })
        .optional(),
    })
    .default({ webhooks: [] }),
});
export type CollectorConfig = z.infer<typeof CollectorConfig>;
export type CollectorConfigInput = z.input<typeof CollectorConfig>;
