import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { Command, parseMessage, type Rollout, type RolloutCreateInput, topicFor } from "@polyfleet/shared";
import { connect, type MqttClient } from "mqtt";
import { stringify } from "yaml";
import { MODELS, type ModelSpec } from "../simulator/catalog.js";
import { nextSimRelease, writeSignedCatalog } from "../testing/firmware.js";
import { type MosquittoHandle, startMosquitto } from "../testing/mosquitto.js";
import { procStats, selfCpuMs } from "./proc-stats.js";

/**
 * rollout-bench — the collector's orchestration cost per device for a 10,000-device firmware rollout (issue 5).
 *
 * The real collector (collector/dist/main.js, SQLite state, real Mosquitto) drives a rollout of every device
 * in 4 waves (1/10/50/100 %, soak 0). The agents are a fast stand-in ("fast simulator setting"): for each
 * update command they answer at once — command result, the seven `update.progress` events an agent sends
 * (accepted … succeeded) and a reading with the new version — so the measured time is the collector's.
 *
 * Baseline in the same run: the same agents send the very same messages (7 events + 1 reading per device)
 * with no rollout; the collector's CPU for that is what ingest costs. Orchestration = rollout − baseline.
 */

const { values } = parseArgs({
  options: {
    devices: { type: "string", default: "10000" },
    agents: { type: "string", default: "20" },
    sites: { type: "string", default: "10" },
    concurrency: { type: "string", default: "1000" },
    collector: { type: "string" },
    "keep-dir": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log(`rollout-bench — orchestration CPU per device of a firmware rollout (issue 5)

  --devices N       devices in the rollout (default 10000)
  --agents N        fast stand-in agents (default 20)
  --sites N         sites the agents are spread over (default 10)
  --concurrency N   the rollout's concurrencyPerSite (default 1000)
  --collector FILE  the collector entry (default collector/dist/main.js)
  --keep-dir        keep the temp dir`);
  process.exit(0);
}

const DEVICES = Number(values.devices);
const AGENTS = Number(values.agents);
const SITES = Number(values.sites);
const collectorMain =
  values.collector ?? new URL("../../../collector/dist/main.js", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "polyfleet-rollout-bench-"));
const token = `pf_${randomBytes(24).toString("hex")}`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const r1 = (n: number): number => +n.toFixed(1);

interface Dev {
  id: string;
  spec: ModelSpec;
  version: string;
  build?: string | undefined;
}

function readingJson(agentId: string, siteId: string, seq: number, d: Dev): string {
  const fw =
    d.spec.family === "uc"
      ? { component: "application", version: d.version }
      : { component: "system", version: d.version, ...(d.build ? { build: d.build } : {}) };
  return JSON.stringify({
    v: 1,
    agentId,
    siteId,
    seq,
    ts: Date.now(),
    kind: "reading",
    deviceId: d.id,
    driver: d.spec.family === "uc" ? "poly-ucs" : "poly-videoos",
    reachable: true,
    pollLatencyMs: 12,
    identity: { address: `10.0.${seq % 250}.${seq % 200}`, family: d.spec.family, model: d.spec.model },
    firmware: [fw],
    health: [],
    peripherals: [],
    lines: [],
    inCall: false,
    network: {},
    errors: [],
  });
}

/** Messages an agent keeps published and unacknowledged, at most (the broker queues 1,000 per client). */
const WINDOW = 40;

const PHASES = ["accepted", "downloading", "staged", "installing", "rebooting", "verifying", "succeeded"];

/** A stand-in agent: birth, readings, and an instant answer to every firmwareUpdate command. */
class FastAgent {
  private client: MqttClient | undefined;
  private seq = 0;
  private acked = 0;
  private waiters: (() => void)[] = [];
  private work: Promise<void> = Promise.resolve();
  readonly devices = new Map<string, Dev>();
  commands = 0;
  invalid = 0;

  constructor(
    readonly url: string,
    readonly agentId: string,
    readonly siteId: string,
  ) {}

  async connect(): Promise<void> {
    const p = { site: this.siteId, agent: this.agentId };
    const client = connect(this.url, {
      protocolVersion: 5,
      clientId: this.agentId,
      clean: true,
      reconnectPeriod: 0,
    });
    this.client = client;
    await new Promise<void>((resolve, reject) => {
      client.once("error", reject);
      client.once("connect", () => resolve());
    });
    (client.stream as unknown as Partial<Pick<Socket, "setNoDelay">>).setNoDelay?.(true);
    const ackTopic = topicFor("ack", p);
    client.on("message", (t, payload) => {
      if (t === ackTopic) this.onAck(payload);
      else this.onCommand(payload);
    });
    await client.subscribeAsync([topicFor("cmd", p), ackTopic], { qos: 1 });
    await client.publishAsync(
      topicFor("state", p),
      JSON.stringify({
        v: 1,
        agentId: this.agentId,
        siteId: this.siteId,
        status: "online",
        sessionId: randomBytes(8).toString("hex"),
        ts: Date.now(),
        version: "0.1.0-bench",
        capabilities: ["poll", "firmwareUpdate"],
        protocolVersion: 5,
      }),
      { qos: 1, retain: true },
    );
  }

  private onAck(payload: Buffer): void {
    const seq = (JSON.parse(payload.toString()) as { seq?: number }).seq ?? 0;
    if (seq > this.acked) this.acked = seq;
    for (const w of this.waiters.splice(0)) w();
  }

  /**
   * Like the real agent's outbox window: at most WINDOW messages published and not yet acknowledged, so the
   * broker never has to queue (and, past its max_queued_messages, drop) a burst for the collector.
   */
  private async nextSeq(): Promise<number> {
    while (this.seq - this.acked >= WINDOW) await new Promise<void>((r) => this.waiters.push(r));
    return ++this.seq;
  }

  /** One batch of readings of every device (inventory). */
  async publishInventory(): Promise<void> {
    const devices = [...this.devices.values()];
    for (let i = 0; i < devices.length; i += 20) {
      const items: string[] = [];
      for (const d of devices.slice(i, i + 20))
        items.push(readingJson(this.agentId, this.siteId, await this.nextSeq(), d));
      const batch = `{"v":1,"kind":"batch","agentId":"${this.agentId}","siteId":"${this.siteId}","items":[${items.join(",")}]}`;
      await this.publish("telemetry", batch);
    }
  }

  /** The messages an agent sends for one update (7 progress events + a reading), for `d` ending on `to`. */
  async updateMessages(d: Dev, commandId: string, rolloutId: string, target: string, to: Dev): Promise<void> {
    const sends: Promise<void>[] = [];
    for (const phase of PHASES) {
      const e = {
        v: 1,
        agentId: this.agentId,
        siteId: this.siteId,
        seq: await this.nextSeq(),
        ts: Date.now(),
        type: "update.progress",
        deviceId: d.id,
        commandId,
        rolloutId,
        phase,
        targetVersion: target,
        ...(phase === "succeeded" ? { reportedVersion: target } : {}),
      };
      sends.push(this.publish("events", JSON.stringify(e)));
    }
    sends.push(this.publish("telemetry", readingJson(this.agentId, this.siteId, await this.nextSeq(), to)));
    await Promise.all(sends);
  }

  private onCommand(payload: Buffer): void {
    const r = parseMessage(Command, payload);
    if (!r.ok || r.value.body.type !== "firmwareUpdate") {
      this.invalid++;
      return;
    }
    this.commands++;
    const cmd = r.value;
    const body = r.value.body;
    const d = this.devices.get(body.deviceId);
    if (!d) return;
    const [version, build] = body.targetVersion.split("-");
    const to: Dev = { ...d, version: version ?? d.version, build };
    this.devices.set(d.id, to);
    // One command at a time per agent: its result, then its events through the ack window. Bursts of
    // results beside the window would overflow the broker's queue towards the collector (1,000 messages).
    this.work = this.work.then(async () => {
      await this.publish(
        "cmdResult",
        JSON.stringify({
          v: 1,
          agentId: this.agentId,
          commandId: cmd.commandId,
          status: "ok",
          ts: Date.now(),
          durationMs: 1,
          data: { accepted: true },
        }),
      );
      await this.updateMessages(d, cmd.commandId, body.rolloutId ?? "", body.targetVersion, to);
    });
  }

  private publish(key: "telemetry" | "events" | "cmdResult", payload: string): Promise<void> {
    const topic = topicFor(key, { site: this.siteId, agent: this.agentId });
    return this.client?.publishAsync(topic, payload, { qos: 1 }).then(() => undefined) ?? Promise.resolve();
  }

  async close(): Promise<void> {
    await this.client?.endAsync();
  }
}

async function api<T>(base: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

async function startCollector(
  mosquitto: MosquittoHandle,
  firmware: { rootFile: string; catalogFile: string; imagesDir: string },
): Promise<{ child: ChildProcess; pid: number; apiUrl: string }> {
  const stateDir = join(dir, "state");
  mkdirSync(stateDir, { recursive: true });
  const configFile = join(dir, "collector.yaml");
  writeFileSync(
    configFile,
    stringify({
      logLevel: "warn",
      broker: { type: "external", url: mosquitto.url },
      store: { type: "sqlite", path: join(stateDir, "state.db") },
      http: { host: "127.0.0.1", port: 0 },
      api: { rateLimitPerMinute: 100_000, bootstrapToken: token },
      audit: { keyFile: join(stateDir, "audit-key.pem") },
      firmware: {
        rootFile: firmware.rootFile,
        catalogFile: firmware.catalogFile,
        imagesDir: firmware.imagesDir,
        tickMs: 100,
      },
    }),
  );
  const child = spawn(process.execPath, [collectorMain, "--config", configFile], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  const apiUrl = await new Promise<string>((resolve, reject) => {
    const onData = (d: string): void => {
      for (const line of d.split("\n")) {
        if (!line) continue;
        output.push(line);
        if (output.length > 40) output.shift();
        const m = /API and dashboard (http:\/\/\S+)/.exec(line);
        if (m?.[1]) resolve(m[1]);
      }
    };
    child.stdout?.setEncoding("utf8").on("data", onData);
    child.stderr?.setEncoding("utf8").on("data", onData);
    child.once("exit", (code) =>
      reject(new Error(`collector exited ${code}: ${output.slice(-8).join(" | ")}`)),
    );
    setTimeout(() => reject(new Error("collector did not start within 30 s")), 30_000).unref();
  });
  return { child, pid: child.pid as number, apiUrl };
}

async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

async function main(): Promise<void> {
  console.log(
    `rollout-bench on ${cpus().length} cores (load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}): ${DEVICES} devices, ${AGENTS} agents on ${SITES} sites, 4 waves (1/10/50/100 %), soak 0`,
  );
  const firmware = writeSignedCatalog(join(dir, "firmware"), {
    releases: MODELS.map((m) => ({ ...nextSimRelease(m), bytes: 4096, baseline: true })),
  });
  const mosquitto = await startMosquitto();
  const collector = await startCollector(mosquitto, firmware);
  const agents: FastAgent[] = [];
  try {
    for (let a = 0; a < AGENTS; a++)
      agents.push(new FastAgent(mosquitto.url, `bench-agent-${a}`, `site-${a % SITES}`));
    for (let i = 0; i < DEVICES; i++) {
      const spec = MODELS[i % MODELS.length] as ModelSpec;
      const fw = spec.firmware[0];
      const agent = agents[i % AGENTS] as FastAgent;
      const id = (0x0004f2000000 + i).toString(16).padStart(12, "0");
      agent.devices.set(id, { id, spec, version: fw?.version ?? "1.0.0.0000", build: fw?.build });
    }
    await Promise.all(agents.map((a) => a.connect()));
    await Promise.all(agents.map((a) => a.publishInventory()));
    await waitFor("the inventory", 120_000, async () => {
      const page = await api<{ total: number }>(collector.apiUrl, "GET", "/api/v1/devices?limit=1");
      return page.total >= DEVICES ? page.total : undefined;
    });
    await sleep(1000);

    // Baseline: the same messages with no rollout (ingest only).
    const b0 = procStats(collector.pid).cpuMs;
    const tb = performance.now();
    for (const a of agents) {
      const sends: Promise<void>[] = [];
      for (const d of a.devices.values())
        sends.push(a.updateMessages(d, `baseline-${d.id}`, "baseline", d.version, d));
      await Promise.all(sends);
    }
    const stored = async (): Promise<number> => {
      const text = await (await fetch(`${collector.apiUrl}/metrics`)).text();
      let n = 0;
      for (const m of text.matchAll(/^polyfleet_collector_stored_total(?:\{[^}]*\})? (\d+)/gm))
        n += Number(m[1]);
      return n;
    };
    const before = await stored();
    await waitFor("the baseline to be stored", 300_000, async () => {
      const n = await stored();
      await sleep(500);
      return n === (await stored()) && n > before ? n : undefined;
    });
    const baselineMs = procStats(collector.pid).cpuMs - b0;
    const baselineWall = performance.now() - tb;

    // The rollout.
    const spec: RolloutCreateInput = {
      name: "bench rollout",
      reason: "orchestration benchmark",
      target: { kind: "baseline" },
      waves: [{ percent: 1 }, { percent: 10 }, { percent: 50 }, { percent: 100 }],
      concurrencyPerSite: Number(values.concurrency),
      healthGate: { soakMs: 0, requireTargetVersion: true, noNewCriticalAlerts: true },
      errorThresholdPct: 5,
    };
    const r0 = procStats(collector.pid).cpuMs;
    const benchCpu0 = selfCpuMs();
    const tr = performance.now();
    const created = await api<Rollout>(collector.apiUrl, "POST", "/api/v1/rollouts", spec);
    const tCreate = performance.now() - tr;
    await api<Rollout>(collector.apiUrl, "POST", `/api/v1/rollouts/${created.id}/start`, { reason: "bench" });
    const done = await waitFor("the rollout to end", 900_000, async () => {
      const r = await api<Rollout>(collector.apiUrl, "GET", `/api/v1/rollouts/${created.id}`);
      return r.state === "completed" || r.state === "halted" || r.state === "cancelled" ? r : undefined;
    });
    const rolloutWall = performance.now() - tr;
    await sleep(1000); // let the last readings be stored
    const rolloutMs = procStats(collector.pid).cpuMs - r0;
    const benchMs = selfCpuMs() - benchCpu0;
    const commands = agents.reduce((n, a) => n + a.commands, 0);
    const orchestration = rolloutMs - baselineMs;
    console.log(
      `  rollout ${done.state}: ${JSON.stringify(done.counts)}, ${commands} update commands for ${DEVICES} devices (${commands === DEVICES ? "none twice" : "MISMATCH"}), wall ${r1(rolloutWall / 1000)} s (create + plan ${Math.round(tCreate)} ms)`,
    );
    console.log(
      `  collector CPU: ingest-only baseline ${r1((baselineMs * 1000) / DEVICES)} µs/device (${Math.round(baselineMs)} ms in ${r1(baselineWall / 1000)} s), with the rollout ${r1((rolloutMs * 1000) / DEVICES)} µs/device`,
    );
    console.log(
      `  orchestration cost: ${r1((orchestration * 1000) / DEVICES)} µs CPU per device (rollout − baseline; ${r1(rolloutMs / Math.max(1, baselineMs))}× the bare ingest of the same messages); stand-in agents ${r1((benchMs * 1000) / DEVICES)} µs/device`,
    );
    const rss = procStats(collector.pid).rssBytes;
    console.log(`  collector RSS ${Math.round(rss / 2 ** 20)} MB`);
    if (done.state !== "completed" || commands !== DEVICES) process.exitCode = 1;
  } finally {
    await Promise.all(agents.map((a) => a.close().catch(() => undefined)));
    collector.child.kill("SIGTERM");
    await new Promise((r) => collector.child.once("exit", r));
    await mosquitto.stop();
    if (!values["keep-dir"]) rmSync(dir, { recursive: true, force: true });
    else console.log(`  kept ${dir}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
