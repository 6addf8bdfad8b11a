// End-to-end harness of the collector: the built collector (collector/dist/main.js) and agent
// (agent/dist/main.js) as child processes, the simulated fleet in this process, and observers that watch
// the system only from outside (MQTT alert topic, SSE stream, REST API, webhook deliveries, InfluxDB).
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, request, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runSimulator } from "@polyfleet/scripts";
import { freeTcpPort, freeUdpPort } from "@polyfleet/scripts/testing";
import {
  AgentEvent,
  Alert,
  type AlertNotification,
  type CollectorConfigInput,
  parseMessage,
  type SimManifest,
  SimManifest as SimManifestSchema,
  topicFor,
} from "@polyfleet/shared";
import { connect, type MqttClient } from "mqtt";
import { parse, stringify } from "yaml";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
/** The built programs the tests run (built by `npx tsc -b`). */
export const COLLECTOR_MAIN = join(ROOT, "collector/dist/main.js");
export const AGENT_MAIN = join(ROOT, "agent/dist/main.js");
export const POLYFLEET_CLI = join(ROOT, "collector/dist/cli/polyfleet.js");

/** Fails fast, with the fix, when the collector or the agent has not been built. */
export function assertBuilt(): void {
  const missing = [COLLECTOR_MAIN, AGENT_MAIN, POLYFLEET_CLI].filter((f) => !existsSync(f));
  if (missing.length > 0) {
    throw new Error(
      `${missing.join(", ")} missing: run \`npx tsc -b\` in the repository root first (these tests run the built collector and agent)`,
    );
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A random loopback /24 so parallel test files never collide. */
export function randomSubnet(): string {
  return `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.0/24`;
}

/** A port below the kernel's ephemeral range (those start at 32768). */
export function randomPort(): number {
  return 20_000 + Math.floor(Math.random() * 10_000);
}

export function randomId(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Polls `check` until it returns a value (not undefined) or `timeoutMs` passes; the error says what. */
export async function waitForValue<T>(
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  what: string,
  everyMs = 100,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Cleanup actions, run in reverse order; every one runs even when an earlier one fails. */
export class Cleanup {
  private readonly actions: { what: string; fn: () => unknown }[] = [];

  add(what: string, fn: () => unknown): void {
    this.actions.push({ what, fn });
  }

  async run(): Promise<void> {
    const errors: string[] = [];
    for (const a of this.actions.splice(0).reverse()) {
      try {
        await a.fn();
      } catch (err) {
        errors.push(`${a.what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (errors.length > 0) throw new Error(`cleanup failed: ${errors.join("; ")}`);
  }
}

// ---- a node child process with its output kept ---------------------------------------------------------

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** `node <script> <args>` with stdout/stderr kept (last 500 lines) for failure messages. */
export class NodeProcess {
  private child: ChildProcess | undefined;
  private exitInfo: ExitInfo | undefined;
  private exited: Promise<void> = Promise.resolve();
  private readonly lines: string[] = [];

  constructor(
    readonly name: string,
    private readonly script: string,
    private readonly args: string[],
    private readonly env: Record<string, string> = {},
  ) {}

  get running(): boolean {
    return this.child !== undefined && this.exitInfo === undefined;
  }

  get exit(): ExitInfo | undefined {
    return this.exitInfo;
  }

  spawn(): void {
    if (this.running) throw new Error(`${this.name} already running`);
    this.exitInfo = undefined;
    const cwd = mkdtempSync(join(tmpdir(), `polyfleet-e2e-${this.name}-cwd-`));
    const child = spawn(process.execPath, [this.script, ...this.args], {
      cwd,
      env: { ...process.env, ...this.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    this.exited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        this.exitInfo = { code, signal };
        rmSync(cwd, { recursive: true, force: true });
        resolve();
      });
      child.once("error", (err) => {
        this.push(`spawn error: ${err.message}`);
        this.exitInfo ??= { code: -1, signal: null };
        resolve();
      });
    });
    for (const s of [child.stdout, child.stderr]) {
      s?.setEncoding("utf8");
      s?.on("data", (d: string) => {
        for (const line of d.split("\n")) if (line) this.push(line);
      });
    }
  }

  /** SIGTERM, then SIGKILL after `timeoutMs`; resolves with the exit. */
  async stop(timeoutMs = 20_000): Promise<ExitInfo> {
    const c = this.child;
    if (c && !this.exitInfo) {
      c.kill("SIGTERM");
      const t = setTimeout(() => {
        this.push(`test: ${this.name} did not exit within ${timeoutMs} ms of SIGTERM: SIGKILL`);
        c.kill("SIGKILL");
      }, timeoutMs);
      await this.exited;
      clearTimeout(t);
    }
    return this.exitInfo ?? { code: null, signal: null };
  }

  /** SIGKILL (no chance to clean up) and wait for the exit. */
  async kill(): Promise<void> {
    const c = this.child;
    if (!c || this.exitInfo) return;
    c.kill("SIGKILL");
    await this.exited;
  }

  output(n = 40): string {
    return this.lines.slice(-n).join("\n");
  }

  private push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > 500) this.lines.splice(0, this.lines.length - 500);
  }
}

// ---- the collector process --------------------------------------------------------------------------

export interface CollectorProcessOptions {
  /** Directory of collector.yaml, rules.yaml and the SQLite state (kept across restarts). */
  dir: string;
  brokerUrl: string;
  influx?: { url: string; database: string };
  /** rules.yaml content; none = built-in rules and defaults. */
  rules?: Record<string, unknown>;
  webhooks?: { name: string; url: string; maxRetries?: number }[];
  /** The signed firmware catalog (root, catalog, images) and the rollout engine's step. */
  firmware?: { rootFile: string; catalogFile: string; imagesDir: string; tickMs?: number };
  /** Audit checkpoint interval (entries); the collector's default when absent. */
  auditCheckpointEvery?: number;
  logLevel?: string;
}

const TOKEN_ENV = "POLYFLEET_E2E_ADMIN_TOKEN";

/** The real collector, `node collector/dist/main.js --config <dir>/collector.yaml`, as a child process. */
export class CollectorProcess {
  /** The bootstrap admin token (never printed). */
  readonly token = `pf_${randomBytes(24).toString("base64url")}`;
  readonly configFile: string;
  readonly stateDb: string;
  private proc: NodeProcess | undefined;
  private port = 0;

  constructor(private readonly o: CollectorProcessOptions) {
    this.configFile = join(o.dir, "collector.yaml");
    this.stateDb = join(o.dir, "state.db");
  }

  get apiUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.proc?.running ?? false;
  }

  /** Writes the config (first start only: a restart keeps the port and the files) and waits for /healthz ok. */
  async start(readyTimeoutMs = 60_000): Promise<void> {
    assertBuilt();
    if (this.port === 0) {
      this.port = await freeTcpPort();
      const rulesFile = join(this.o.dir, "rules.yaml");
      if (this.o.rules) await writeFile(rulesFile, stringify(this.o.rules));
      const config: CollectorConfigInput = {
        logLevel: "warn",
        broker: { type: "external", url: this.o.brokerUrl, protocolVersion: 5 },
        store: { type: "sqlite", path: this.stateDb },
        metrics: this.o.influx
          ? { type: "influxdb", url: this.o.influx.url, database: this.o.influx.database, flushMs: 200 }
          : { type: "embedded" },
        http: { host: "127.0.0.1", port: this.port },
        api: { bootstrapToken: { env: TOKEN_ENV } },
        ...(this.o.rules ? { alerts: { rulesFile } } : {}),
        ...(this.o.auditCheckpointEvery ? { audit: { checkpointEvery: this.o.auditCheckpointEvery } } : {}),
        notifiers: { webhooks: this.o.webhooks ?? [] },
        ...(this.o.firmware
          ? { firmware: { ...this.o.firmware, trustStateFile: join(this.o.dir, "firmware-trust.json") } }
          : {}),
      };
      await writeFile(this.configFile, stringify(config), { mode: 0o600 });
    }
    const proc = new NodeProcess(
      "collector",
      COLLECTOR_MAIN,
      ["--config", this.configFile, "--log-level", this.o.logLevel ?? "warn"],
      { [TOKEN_ENV]: this.token },
    );
    this.proc = proc;
    proc.spawn();
    const until = Date.now() + readyTimeoutMs;
    for (;;) {
      const ex = proc.exit;
      if (ex) {
        throw new Error(
          `collector exited at start (code ${ex.code}, signal ${ex.signal}):\n${proc.output(30)}`,
        );
      }
      const h = await this.tryJson<{ status?: string }>("/healthz", false);
      if (h?.status === "ok") return;
      if (Date.now() > until) {
        throw new Error(`collector /healthz not ok within ${readyTimeoutMs} ms:\n${proc.output(30)}`);
      }
      await sleep(100);
    }
  }

  /** GET `path` with the admin token; throws on a non-2xx answer. */
  async get<T>(path: string): Promise<T> {
    const res = await fetch(`${this.apiUrl}${path}`, {
      headers: { authorization: `Bearer ${this.token}` },
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${text.slice(0, 500)}`);
    return JSON.parse(text) as T;
  }

  /** POST `path` with a JSON body and the admin token; throws on a non-2xx answer. */
  async post<T>(path: string, body: unknown): Promise<T> {
    const res = await fetch(`${this.apiUrl}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${text.slice(0, 500)}`);
    return JSON.parse(text) as T;
  }

  /** The Prometheus text of /metrics. */
  async metrics(): Promise<string> {
    const res = await fetch(`${this.apiUrl}/metrics`, {
      headers: { authorization: `Bearer ${this.token}` },
      signal: AbortSignal.timeout(10_000),
    });
    if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
    return await res.text();
  }

  /** SIGKILL: the collector gets no chance to flush, ack or audit its stop. */
  async kill(): Promise<void> {
    await this.proc?.kill();
  }

  async stop(): Promise<ExitInfo> {
    return (await this.proc?.stop()) ?? { code: null, signal: null };
  }

  output(n = 40): string {
    return this.proc?.output(n) ?? "";
  }

  private async tryJson<T>(path: string, auth = true): Promise<T | undefined> {
    try {
      const res = await fetch(`${this.apiUrl}${path}`, {
        ...(auth ? { headers: { authorization: `Bearer ${this.token}` } } : {}),
        signal: AbortSignal.timeout(3000),
      });
      return (await res.json()) as T;
    } catch {
      return undefined;
    }
  }
}

// ---- the simulated fleet and the agent --------------------------------------------------------------

interface AgentConfigShape {
  polling: Record<string, unknown>;
  outbox: Record<string, unknown>;
  traps: Record<string, unknown>;
  http: Record<string, unknown>;
  [key: string]: unknown;
}

export interface FleetOptions {
  devices: number;
  brokerUrl: string;
  pollIntervalSec: number;
  /** Merged into the agent config's `polling` (missesBeforeUnreachable, timeoutMs, jitterPct…). */
  polling?: Record<string, unknown>;
  /** Merged into the agent config's `provisioning` (watchIntervalMs…). */
  provisioning?: Record<string, unknown>;
  simArgs?: string[];
}

export interface Fleet {
  manifest: SimManifest;
  siteId: string;
  agentId: string;
  configFile: string;
  httpPort: number;
  /** Calls the simulator's control API. */
  control(method: "GET" | "POST" | "PUT", path: string, body?: unknown): Promise<unknown>;
  stop(): Promise<void>;
}

/**
 * Starts the simulator in this process as `polyfleet-sim --agent-config` does, then rewrites the agent
 * config it wrote: outbox in a temp dir, ops HTTP and traps on free loopback ports, the given polling.
 */
export async function startFleet(o: FleetOptions): Promise<Fleet> {
  const dir = await mkdtemp(join(tmpdir(), "polyfleet-e2e-fleet-"));
  const manifestFile = join(dir, "manifest.json");
  const configFile = join(dir, "agent.yaml");
  const trapPort = await freeUdpPort();
  const siteId = randomId("site");
  const agentId = randomId("agent");
  const sim = await runSimulator(
    [
      "--devices",
      String(o.devices),
      "--subnet",
      randomSubnet(),
      "--https-port",
      String(randomPort()),
      "--snmp-port",
      String(randomPort()),
      "--manifest",
      manifestFile,
      "--agent-config",
      configFile,
      "--broker",
      o.brokerUrl,
      "--agent-id",
      agentId,
      "--site-id",
      siteId,
      "--agent-trap-port",
      String(trapPort),
      "--poll-interval",
      String(o.pollIntervalSec),
      "--log-level",
      "silent",
      ...(o.simArgs ?? []),
    ],
    () => {},
  );
  if (!sim) {
    await rm(dir, { recursive: true, force: true });
    throw new Error("simulator did not start");
  }
  try {
    const manifest = SimManifestSchema.parse(JSON.parse(await readFile(manifestFile, "utf8")));
    const config = parse(await readFile(configFile, "utf8")) as AgentConfigShape;
    const httpPort = await freeTcpPort();
    config.outbox = { ...config.outbox, dir: join(dir, "outbox") };
    config.http = { host: "127.0.0.1", port: httpPort };
    config.traps = { ...config.traps, host: "127.0.0.1", port: trapPort };
    config.polling = { ...config.polling, intervalSec: o.pollIntervalSec, ...(o.polling ?? {}) };
    config.provisioning = {
      host: "127.0.0.1",
      port: 0,
      dir: join(dir, "firmware"),
      ...(o.provisioning ?? {}),
    };
    await writeFile(configFile, stringify(config), { mode: 0o600 });
    return {
      manifest,
      siteId,
      agentId,
      configFile,
      httpPort,
      async control(method, path, body) {
        const res = await fetch(`${manifest.control}${path}`, {
          method,
          headers: body === undefined ? {} : { "content-type": "application/json" },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await res.text();
        if (!res.ok) throw new Error(`control ${method} ${path}: ${res.status} ${text}`);
        return text ? (JSON.parse(text) as unknown) : undefined;
      },
      async stop() {
        await sim.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await sim.stop();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** What the agent's /healthz answers (the fields the tests read). */
export interface AgentHealth {
  connected: boolean;
  outboxDepth: number;
  lastSeq: number;
  ackedSeq: number;
  [key: string]: unknown;
}

/** The real agent, `node agent/dist/main.js --config FILE`, as a child process. */
export class AgentProcess {
  private readonly proc: NodeProcess;

  constructor(
    configFile: string,
    private readonly httpPort: number,
  ) {
    this.proc = new NodeProcess("agent", AGENT_MAIN, ["--config", configFile, "--log-level", "warn"]);
  }

  async start(readyTimeoutMs = 60_000): Promise<void> {
    assertBuilt();
    this.proc.spawn();
    const until = Date.now() + readyTimeoutMs;
    for (;;) {
      const ex = this.proc.exit;
      if (ex) {
        throw new Error(
          `agent exited at start (code ${ex.code}, signal ${ex.signal}):\n${this.proc.output(30)}`,
        );
      }
      if ((await this.tryHealth()) !== undefined) return;
      if (Date.now() > until) throw new Error(`agent /healthz did not answer within ${readyTimeoutMs} ms`);
      await sleep(100);
    }
  }

  async tryHealth(): Promise<AgentHealth | undefined> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.httpPort}/healthz`, {
        signal: AbortSignal.timeout(3000),
      });
      return (await res.json()) as AgentHealth;
    } catch {
      return undefined;
    }
  }

  async health(): Promise<AgentHealth> {
    const h = await this.tryHealth();
    if (!h) throw new Error(`agent /healthz did not answer:\n${this.proc.output(20)}`);
    return h;
  }

  async stop(): Promise<ExitInfo> {
    return await this.proc.stop();
  }

  output(n = 40): string {
    return this.proc.output(n);
  }
}

// ---- observers ----------------------------------------------------------------------------------------

async function mqttClient(url: string): Promise<MqttClient> {
  const client = connect(url, {
    clientId: randomId("e2e-observer"),
    protocolVersion: 5,
    reconnectPeriod: 250,
    connectTimeout: 5000,
  });
  client.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`could not connect to ${url}`)), 10_000);
    client.once("connect", () => {
      clearTimeout(t);
      resolve();
    });
  });
  return client;
}

/** One alert as an observer received it. */
export interface SeenAlert {
  /** Arrival time (Date.now() in this process). */
  at: number;
  alert: Alert;
  /** The MQTT topic (MQTT observer only). */
  topic?: string;
}

/** Subscribes to `polyfleet/v1/alerts/+` and keeps every alert that passes the shared `Alert` schema. */
export class AlertTopicSpy {
  readonly alerts: SeenAlert[] = [];
  /** Payloads that failed the schema, or whose topic names another severity than the payload. */
  readonly invalid: string[] = [];
  private client: MqttClient | undefined;

  constructor(private readonly url: string) {}

  async start(): Promise<void> {
    const client = await mqttClient(this.url);
    this.client = client;
    client.on("message", (topic, payload) => {
      const at = Date.now();
      const r = parseMessage(Alert, payload);
      if (!r.ok) {
        this.invalid.push(`${topic}: ${payload.toString("utf8").slice(0, 200)}`);
        return;
      }
      if (topic !== topicFor("alerts", { severity: r.value.severity })) {
        this.invalid.push(`${topic}: severity ${r.value.severity}`);
        return;
      }
      this.alerts.push({ at, alert: r.value, topic });
    });
    await client.subscribeAsync("polyfleet/v1/alerts/+", { qos: 1 });
  }

  async stop(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await c.endAsync(true);
  }
}

/** One agent event with its arrival time. */
export interface SeenEvent {
  at: number;
  event: AgentEvent;
}

/** Watches one agent's event topic (without acking anything): every valid event, in arrival order. */
export class AgentEventSpy {
  readonly events: SeenEvent[] = [];
  private client: MqttClient | undefined;

  constructor(
    private readonly url: string,
    private readonly siteId: string,
    private readonly agentId: string,
  ) {}

  async start(): Promise<void> {
    const client = await mqttClient(this.url);
    this.client = client;
    client.on("message", (_t, payload) => {
      const r = parseMessage(AgentEvent, payload);
      if (r.ok) this.events.push({ at: Date.now(), event: r.value });
    });
    await client.subscribeAsync(topicFor("events", { site: this.siteId, agent: this.agentId }), { qos: 1 });
  }

  /** `device.reachability` events of one device, first copy per seq (replays are skipped). */
  reachability(deviceId: string): { at: number; ts: number; seq: number; reachable: boolean }[] {
    const seen = new Set<number>();
    const out: { at: number; ts: number; seq: number; reachable: boolean }[] = [];
    for (const { at, event } of this.events) {
      if (event.type !== "device.reachability" || event.deviceId !== deviceId || seen.has(event.seq))
        continue;
      seen.add(event.seq);
      out.push({ at, ts: event.ts, seq: event.seq, reachable: event.reachable });
    }
    return out;
  }

  async stop(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await c.endAsync(true);
  }
}

/** A client of `/api/v1/alerts/stream` (Server-Sent Events): every `alert` event, schema-checked. */
export class SseAlertClient {
  readonly alerts: SeenAlert[] = [];
  readonly invalid: string[] = [];
  private res: IncomingMessage | undefined;
  private buffer = "";

  constructor(
    private readonly apiUrl: string,
    private readonly token: string,
  ) {}

  /** Connects and resolves once the stream answered 200 with `text/event-stream`. */
  start(): Promise<void> {
    const url = new URL("/api/v1/alerts/stream", this.apiUrl);
    return new Promise<void>((resolve, reject) => {
      const req = request(
        url,
        { headers: { authorization: `Bearer ${this.token}`, accept: "text/event-stream" } },
        (res) => {
          const type = String(res.headers["content-type"] ?? "");
          if (res.statusCode !== 200 || !type.startsWith("text/event-stream")) {
            res.resume();
            reject(new Error(`SSE stream answered ${res.statusCode} ${type}`));
            return;
          }
          this.res = res;
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => this.onData(chunk));
          res.on("error", () => {});
          resolve();
        },
      );
      req.on("error", reject);
      req.end();
    });
  }

  private onData(chunk: string): void {
    const at = Date.now();
    this.buffer += chunk;
    for (;;) {
      const end = this.buffer.indexOf("\n\n");
      if (end < 0) return;
      const frame = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      let event = "message";
      const data: string[] = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (event !== "alert" || data.length === 0) continue;
      const r = parseMessage(Alert, data.join("\n"));
      if (r.ok) this.alerts.push({ at, alert: r.value });
      else this.invalid.push(data.join("\n").slice(0, 200));
    }
  }

  stop(): void {
    this.res?.destroy();
    this.res = undefined;
  }
}

/** One webhook delivery as the local receiver got it. */
export interface WebhookDelivery {
  at: number;
  notification: AlertNotification;
  alerts: Alert[];
}

/** A local HTTP server on 127.0.0.1 that answers 204 to every POST and keeps the parsed notification. */
export class WebhookSink {
  readonly deliveries: WebhookDelivery[] = [];
  readonly invalid: string[] = [];
  private server: Server | undefined;
  private port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        try {
          const body = JSON.parse(text) as AlertNotification & { alerts: unknown[] };
          const alerts = body.alerts.map((a) => Alert.parse(a));
          const { alerts: _alerts, ...notification } = body;
          this.deliveries.push({ at: Date.now(), notification, alerts });
        } catch {
          this.invalid.push(text.slice(0, 200));
        }
        res.writeHead(204);
        res.end();
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const addr = server.address();
    this.port = typeof addr === "object" && addr ? addr.port : 0;
  }

  /** Deliveries naming at least one alert of `deviceId` (one delivery = one notification). */
  forDevice(deviceId: string): WebhookDelivery[] {
    return this.deliveries.filter((d) => d.alerts.some((a) => a.deviceId === deviceId));
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

// ---- InfluxDB and Prometheus text ---------------------------------------------------------------------

interface InfluxQueryAnswer {
  results?: {
    error?: string;
    series?: { name: string; columns: string[]; values: unknown[][] }[];
  }[];
  error?: string;
}

/** Runs one InfluxQL statement; returns the first result's series (empty when there is none). */
export async function influxQuery(
  url: string,
  db: string,
  q: string,
): Promise<{ name: string; columns: string[]; values: unknown[][] }[]> {
  const res = await fetch(`${url}/query?${new URLSearchParams({ db, q }).toString()}`, {
    signal: AbortSignal.timeout(10_000),
  });
  const body = (await res.json()) as InfluxQueryAnswer;
  const err = body.error ?? body.results?.[0]?.error;
  if (!res.ok || err) throw new Error(`InfluxDB query ${q}: ${res.status} ${err ?? ""}`);
  return body.results?.[0]?.series ?? [];
}

/** Sum of every sample of `name` whose labels include all of `labels` (0 when there is none). */
export function promSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || !line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    for (let l = re.exec(m[3] ?? ""); l; l = re.exec(m[3] ?? "")) have[l[1] as string] = l[2] as string;
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[4]);
  }
  return sum;
}
