// End-to-end harness: the simulated fleet in this process, the real agent (agent/dist/main.js) as a child
// process, and helpers to read its /healthz, /metrics and on-disk outbox from outside.
import { type ChildProcess, spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runSimulator } from "@polyfleet/scripts";
import { freeTcpPort, freeUdpPort } from "@polyfleet/scripts/testing";
import {
  type CommandInput,
  CommandResult,
  parseMessage,
  type SimManifest,
  SimManifest as SimManifestSchema,
  Telemetry,
  topicFor,
} from "@polyfleet/shared";
import { Aedes } from "aedes";
import Database from "better-sqlite3";
import { connect, type MqttClient } from "mqtt";
import { parse, stringify } from "yaml";

/** The built agent CLI the tests run (built by `npx tsc -b`). */
export const AGENT_MAIN = fileURLToPath(new URL("../../dist/main.js", import.meta.url));

/** Fails fast, with the fix, when the agent has not been built. */
export function assertAgentBuilt(): void {
  if (!existsSync(AGENT_MAIN)) {
    throw new Error(`${AGENT_MAIN} is missing: run \`npx tsc -b\` in the repository root first`);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A random loopback range (a /24, or a /23 for up to 510 devices) so parallel test files never collide. */
export function randomSubnet(prefix: 23 | 24 = 24): string {
  const a = 10 + Math.floor(Math.random() * 200);
  const b = prefix === 23 ? 2 * Math.floor(Math.random() * 125) : Math.floor(Math.random() * 250);
  return `127.${a}.${b}.0/${prefix}`;
}

/** A port below the kernel's ephemeral range (those start at 32768). */
export function randomPort(): number {
  return 20_000 + Math.floor(Math.random() * 10_000);
}

/** A short random suffix for agent ids, so retained state of one run never meets another. */
export function randomId(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
}

// ---- the simulated fleet and its agent config --------------------------------------------------------

/** The parts of the agent config the tests read back. */
export interface E2eAgentConfig {
  siteId: string;
  agentId: string;
  broker: { url: string };
  devices: { address: string; driver?: string }[];
  polling: Record<string, unknown>;
  outbox: Record<string, unknown>;
  traps: Record<string, unknown>;
  http: Record<string, unknown>;
  [key: string]: unknown;
}

export interface E2eFleet {
  manifest: SimManifest;
  /** The agent config the simulator wrote, rewritten for this test (outbox dir, ports). */
  configFile: string;
  config: E2eAgentConfig;
  outboxDir: string;
  httpPort: number;
  siteId: string;
  agentId: string;
  /** Calls the simulator's control API. */
  control(method: "GET" | "POST" | "PUT", path: string, body?: unknown): Promise<unknown>;
  stop(): Promise<void>;
}

export interface E2eFleetOptions {
  devices: number;
  brokerUrl: string;
  agentId: string;
  siteId: string;
  pollIntervalSec: number;
  /** Default 24 (up to 254 devices); 23 for up to 510. */
  subnetPrefix?: 23 | 24;
  simArgs?: string[];
  /** Last changes to the parsed config before it is written back. */
  edit?: (config: E2eAgentConfig) => void;
}

/**
 * Starts the simulator in this process exactly as `polyfleet-sim --agent-config` does, then rewrites the
 * agent config it wrote: outbox in a temp dir, /healthz on a free port, the poll interval given; everything
 * else (devices, credentials, discovery, traps) as the simulator wrote it.
 */
export async function startE2eFleet(o: E2eFleetOptions): Promise<E2eFleet> {
  const dir = await mkdtemp(join(tmpdir(), "polyfleet-e2e-"));
  const manifestFile = join(dir, "manifest.json");
  const configFile = join(dir, "agent.yaml");
  const trapPort = await freeUdpPort();
  const sim = await runSimulator(
    [
      "--devices",
      String(o.devices),
      "--subnet",
      randomSubnet(o.subnetPrefix ?? 24),
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
      o.agentId,
      "--site-id",
      o.siteId,
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
  if (!sim) throw new Error("simulator did not start");
  try {
    const manifest = SimManifestSchema.parse(JSON.parse(await readFile(manifestFile, "utf8")));
    const config = parse(await readFile(configFile, "utf8")) as E2eAgentConfig;
    const outboxDir = join(dir, "outbox");
    const httpPort = await freeTcpPort();
    config.outbox = { ...config.outbox, dir: outboxDir };
    config.http = { ...config.http, host: "127.0.0.1", port: httpPort };
    config.traps = { ...config.traps, host: "127.0.0.1", port: trapPort };
    config.polling = { ...config.polling, intervalSec: o.pollIntervalSec };
    // The site provisioning server on a free loopback port, its journal and images in the test's dir.
    config.provisioning = { host: "127.0.0.1", port: 0, dir: join(dir, "firmware") };
    o.edit?.(config);
    await writeFile(configFile, stringify(config), { mode: 0o600 });
    return {
      manifest,
      configFile,
      config,
      outboxDir,
      httpPort,
      siteId: o.siteId,
      agentId: o.agentId,
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

// ---- the agent process -------------------------------------------------------------------------------

/** What the agent's /healthz answers (the fields the tests read; the agent may add more). */
export interface AgentHealth {
  ok: boolean;
  connected: boolean;
  outboxDepth: number;
  lastSeq: number;
  ackedSeq: number;
  [key: string]: unknown;
}

/** The real agent, `node agent/dist/main.js --config FILE`, as a child process. */
export class AgentProcess {
  private child: ChildProcess | undefined;
  private readonly lines: string[] = [];
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null; at: number } | undefined;
  private exitedP: Promise<void> = Promise.resolve();
  /** Every exit this object has seen (one per run), in order. */
  readonly exits: { code: number | null; signal: NodeJS.Signals | null; at: number }[] = [];

  constructor(
    private readonly configFile: string,
    private readonly httpPort: number,
    private readonly logLevel = "warn",
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** True while the process runs. */
  get running(): boolean {
    return this.child !== undefined && this.exitInfo === undefined;
  }

  /** How the last run ended (undefined while it runs or before the first start). */
  get exit(): { code: number | null; signal: NodeJS.Signals | null; at: number } | undefined {
    return this.exitInfo;
  }

  /** Spawns the agent and waits until /healthz answers. */
  async start(readyTimeoutMs = 60_000): Promise<void> {
    assertAgentBuilt();
    if (this.running) throw new Error("agent already running");
    this.exitInfo = undefined;
    const cwd = mkdtempSync(join(tmpdir(), "polyfleet-agent-cwd-"));
    const child = spawn(
      process.execPath,
      [AGENT_MAIN, "--config", this.configFile, "--log-level", this.logLevel],
      { cwd, stdio: ["ignore", "pipe", "pipe"] },
    );
    this.child = child;
    this.exitedP = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        this.exitInfo = { code, signal, at: Date.now() };
        this.exits.push(this.exitInfo);
        rmSync(cwd, { recursive: true, force: true });
        resolve();
      });
      child.once("error", (err) => {
        this.push(`spawn error: ${err.message}`);
        if (!this.exitInfo) {
          this.exitInfo = { code: -1, signal: null, at: Date.now() };
          this.exits.push(this.exitInfo);
        }
        resolve();
      });
    });
    for (const s of [child.stdout, child.stderr]) {
      s?.setEncoding("utf8");
      s?.on("data", (d: string) => {
        for (const line of d.split("\n")) if (line) this.push(line);
      });
    }
    const until = Date.now() + readyTimeoutMs;
    for (;;) {
      const ex = this.exit;
      if (ex) {
        throw new Error(`agent exited at start (code ${ex.code}, signal ${ex.signal}):\n${this.output(30)}`);
      }
      if ((await this.tryHealth()) !== undefined) return;
      if (Date.now() > until) throw new Error(`agent /healthz did not answer within ${readyTimeoutMs} ms`);
      await sleep(100);
    }
  }

  /** The parsed /healthz (whatever its status code), or undefined when nothing answers. */
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
    if (!h) throw new Error(`agent /healthz did not answer:\n${this.output(20)}`);
    return h;
  }

  /** The Prometheus text of /metrics. */
  async metrics(): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.httpPort}/metrics`, {
      signal: AbortSignal.timeout(3000),
    });
    if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
    return await res.text();
  }

  /** SIGTERM and wait for the exit (SIGKILL after `timeoutMs`). Resolves with the exit. */
  async stop(timeoutMs = 20_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const c = this.child;
    if (!c) throw new Error("agent never started");
    if (!this.exitInfo) {
      c.kill("SIGTERM");
      const t = setTimeout(() => {
        this.push(`test: agent did not exit within ${timeoutMs} ms of SIGTERM: SIGKILL`);
        c.kill("SIGKILL");
      }, timeoutMs);
      await this.exitedP;
      clearTimeout(t);
    }
    const e = this.exitInfo ?? { code: null, signal: null };
    return { code: e.code, signal: e.signal };
  }

  /** SIGKILL (no chance to clean up) and wait for the exit. */
  async kill(): Promise<void> {
    const c = this.child;
    if (!c || this.exitInfo) return;
    c.kill("SIGKILL");
    await this.exitedP;
  }

  /** Cleanup for afterAll: SIGKILL whatever still runs. */
  async dispose(): Promise<void> {
    await this.kill();
  }

  /** The agent's last `n` output lines (stdout and stderr), for failure messages. */
  output(n = 50): string {
    return this.lines.slice(-n).join("\n");
  }

  private push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > 500) this.lines.splice(0, this.lines.length - 500);
  }
}

/** Polls /healthz every `everyMs` and keeps every sample (for "connected was false during the outage"). */
export class HealthSampler {
  readonly samples: { at: number; h: AgentHealth | undefined }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(
    private readonly agent: AgentProcess,
    private readonly everyMs = 250,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      void this.agent.tryHealth().then((h) => {
        this.samples.push({ at: Date.now(), h });
        this.busy = false;
      });
    }, this.everyMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Samples taken in [from, to). */
  between(from: number, to: number): { at: number; h: AgentHealth | undefined }[] {
    return this.samples.filter((s) => s.at >= from && s.at < to);
  }
}

// ---- Prometheus text ---------------------------------------------------------------------------------

/** Sum of every sample of `name` whose labels include all of `labels` (0 when there is none). */
export function promSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || !line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = parseLabels(m[3] ?? "");
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[4]);
  }
  return sum;
}

/** Every sample of `name` with its labels. */
export function promSamples(text: string, name: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || !line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    out.push({ labels: parseLabels(m[3] ?? ""), value: Number(m[4]) });
  }
  return out;
}

function parseLabels(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (let m = re.exec(s); m; m = re.exec(s)) out[m[1] as string] = (m[2] as string).replace(/\\(.)/g, "$1");
  return out;
}

// ---- the outbox on disk ------------------------------------------------------------------------------

export interface OutboxSnapshot {
  /** The highest seq ever assigned (meta lastSeq or the highest stored entry). */
  lastSeq: number;
  ackedSeq: number;
  droppedTotal: number;
  /** Seqs still stored (not acked), ascending. */
  seqs: number[];
}

/**
 * Reads the agent's outbox database from a copy (the agent holds it in exclusive locking mode, and a copy
 * never disturbs the next run): the database file and its WAL, so a SIGKILLed agent's last commits count.
 */
export function inspectOutbox(dir: string): OutboxSnapshot {
  const copy = mkdtempSync(join(tmpdir(), "polyfleet-outbox-copy-"));
  try {
    for (const suffix of ["", "-wal"]) {
      const from = join(dir, `outbox.db${suffix}`);
      if (existsSync(from)) copyFileSync(from, join(copy, `outbox.db${suffix}`));
    }
    const db = new Database(join(copy, "outbox.db"));
    try {
      const meta = new Map(
        (db.prepare("SELECT key, value FROM meta").all() as { key: string; value: string }[]).map((r) => [
          r.key,
          r.value,
        ]),
      );
      const seqs = db.prepare("SELECT seq FROM entries ORDER BY seq").pluck(true).all() as number[];
      return {
        lastSeq: Math.max(Number(meta.get("lastSeq") ?? 0), seqs[seqs.length - 1] ?? 0),
        ackedSeq: Number(meta.get("ackedSeq") ?? 0),
        droppedTotal: Number(meta.get("droppedTotal") ?? 0),
        seqs,
      };
    } finally {
      db.close();
    }
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

// ---- MQTT observers ----------------------------------------------------------------------------------

/** A plain MQTT client on loopback that ignores errors and reconnects quickly. */
export async function mqttClient(url: string, protocolVersion: 4 | 5 = 5): Promise<MqttClient> {
  const client = connect(url, {
    clientId: randomId("e2e-client"),
    protocolVersion,
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

/** One reading as the spy saw it. */
export interface SeenReading {
  at: number;
  seq: number;
  deviceId: string;
  address: string;
  reachable: boolean;
  errorCodes: string[];
}

/**
 * Watches one agent's telemetry without acking: every reading (batches unpacked) with its device, address,
 * reachability and error codes, in arrival order.
 */
export class TelemetrySpy {
  readonly readings: SeenReading[] = [];
  invalid = 0;
  private client: MqttClient | undefined;

  constructor(
    private readonly url: string,
    private readonly siteId: string,
    private readonly agentId: string,
    private readonly protocolVersion: 4 | 5 = 5,
  ) {}

  async start(): Promise<void> {
    const client = await mqttClient(this.url, this.protocolVersion);
    this.client = client;
    const topic = topicFor("telemetry", { site: this.siteId, agent: this.agentId });
    client.on("message", (_t, payload) => {
      const r = parseMessage(Telemetry, payload);
      if (!r.ok) {
        this.invalid++;
        return;
      }
      const items = r.value.kind === "batch" ? r.value.items : [r.value];
      const at = Date.now();
      for (const x of items) {
        this.readings.push({
          at,
          seq: x.seq,
          deviceId: x.deviceId,
          address: x.identity.address,
          reachable: x.reachable,
          errorCodes: x.errors.map((e) => e.code),
        });
      }
    });
    client.on("connect", () => client.subscribe(topic, { qos: 1 }));
    await client.subscribeAsync(topic, { qos: 1 });
  }

  /** Readings (first copy per seq) that arrived in [from, to). */
  between(from: number, to: number): SeenReading[] {
    const seen = new Set<number>();
    const out: SeenReading[] = [];
    for (const r of this.readings) {
      if (r.at < from || r.at >= to || seen.has(r.seq)) continue;
      seen.add(r.seq);
      out.push(r);
    }
    return out;
  }

  async stop(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await c.endAsync(true);
  }
}

/**
 * Sends commands on the agent's command topic and collects every result from its result topic (valid
 * `CommandResult`s by command id, in arrival order; invalid payloads counted).
 */
export class CommandClient {
  readonly results = new Map<string, CommandResult[]>();
  invalidResults = 0;
  private client: MqttClient | undefined;
  private readonly cmdTopic: string;
  private readonly resultTopic: string;

  constructor(
    private readonly url: string,
    siteId: string,
    private readonly agentId: string,
    private readonly protocolVersion: 4 | 5 = 5,
  ) {
    this.cmdTopic = topicFor("cmd", { site: siteId, agent: agentId });
    this.resultTopic = topicFor("cmdResult", { site: siteId, agent: agentId });
  }

  async start(): Promise<void> {
    const client = await mqttClient(this.url, this.protocolVersion);
    this.client = client;
    client.on("message", (_t, payload) => {
      const r = parseMessage(CommandResult, payload);
      if (!r.ok) {
        this.invalidResults++;
        return;
      }
      const list = this.results.get(r.value.commandId) ?? [];
      list.push(r.value);
      this.results.set(r.value.commandId, list);
    });
    await client.subscribeAsync(this.resultTopic, { qos: 1 });
  }

  /** Publishes raw bytes on the command topic (QoS 1). */
  async publishRaw(payload: string | Buffer): Promise<void> {
    if (!this.client) throw new Error("command client not started");
    await this.client.publishAsync(this.cmdTopic, payload, { qos: 1 });
  }

  /** Publishes a well-formed command for this agent; returns its id. */
  async send(commandId: string, body: CommandInput["body"]): Promise<string> {
    const cmd: CommandInput = {
      v: 1,
      commandId,
      agentId: this.agentId,
      issuedBy: "e2e-test",
      issuedAt: Date.now(),
      body,
    };
    await this.publishRaw(JSON.stringify(cmd));
    return commandId;
  }

  async stop(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await c.endAsync(true);
  }
}

// ---- an embedded aedes broker that can come back on the same port ------------------------------------

export interface AedesOnPort {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/**
 * An in-process aedes broker (MQTT 3.1.1 only) on 127.0.0.1:`port` (a free one when 0), like
 * `startAedes` from @polyfleet/scripts/testing but restartable on the same port for an outage: `stop`
 * destroys every connection abruptly (as a crash would) and forgets every session.
 */
export async function startAedesOnPort(port = 0): Promise<AedesOnPort> {
  const broker = await Aedes.createBroker();
  const sockets = new Set<Socket>();
  const server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    broker.handle(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const addr = server.address();
  const bound = typeof addr === "object" && addr ? addr.port : 0;
  return {
    url: `mqtt://127.0.0.1:${bound}`,
    port: bound,
    stop: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}
