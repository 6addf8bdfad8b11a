import { type ChildProcess, fork, spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { type InfluxdHandle, startInfluxd } from "../testing/influxdb.js";
import { type MosquittoHandle, startMosquitto } from "../testing/mosquitto.js";
import { formatProfile, summarizeProfile } from "./agent-bench-profile.js";
import { SyntheticAgent } from "./collector-bench-agents.js";
import { type BenchDevice, buildBenchFleet } from "./collector-bench-fleet.js";
import { countPoints, dropDatabase, type RawWriteResult, rawWrite } from "./collector-bench-influx.js";
import { formatStages, ingestStages, type StageRow } from "./collector-bench-profile.js";
import { procStats, selfCpuMs } from "./proc-stats.js";

/**
 * Benchmark of the collector's ingest path (issue 4, "Must show"), all in one run on a real Mosquitto and a
 * real InfluxDB 1.x (spawned here), with the collector as a child (`node collector/dist/main.js --config`,
 * external broker, SQLite state, InfluxDB metrics) fed by synthetic agents (mqtt.js, one client per agent,
 * `ReadingBatch`es of 100 realistic readings of a 2,000-device fleet, increasing seqs, acks checked):
 *
 * - raw: the reference InfluxDB write rate, a bare undici writer posting hand-built line protocol (batches of
 *   5,000 ten-field points) into a scratch database of the same server, before anything else runs.
 * - throughput: the agents publish as fast as their ack windows allow; (a) the collector's CPU per reading
 *   (/proc/<pid>/stat) from the first publish until every reading is acked and every point written, and
 *   (b) readings/s end to end into InfluxDB over the same window, the points checked by `/query`.
 * - latency: (c) the agents publish at a fixed pace (10,000 readings/s in all) and time each batch from when
 *   it was due to the ack that covers it; the ack is only sent once the batch is durably stored (SQLite), so
 *   this bounds publish → stored.
 * - bare: the collector stopped, a bare mqtt.js subscriber (a child, counting messages only) takes the same
 *   stream (same agents, same payloads) at the message rate the collector sustained: CPU per message.
 *
 * Mosquitto runs with `set_tcp_nodelay true` (its default leaves Nagle on for the broker's sockets), every
 * mqtt.js socket here and in the collector has Nagle off. The machine's load from other processes during the
 * measured phases is printed, since it moves every figure on a small machine.
 *
 * Bounded (defaults ≈ 2.5 min, `--quick` ≈ 1 min); prints a summary with PASS/MISS per goal and one JSON
 * line; never exits non-zero on a miss.
 *
 *   node scripts/dist/bench/collector-bench.js [--quick] [--seconds 60] [--latency-seconds 30] [--cpu-prof]
 */
const { values } = parseArgs({
  options: {
    devices: { type: "string", default: "2000" },
    agents: { type: "string", default: "4" },
    batch: { type: "string", default: "100" },
    seed: { type: "string", default: "7" },
    "raw-seconds": { type: "string", default: "20" },
    "raw-batch": { type: "string", default: "5000" },
    "raw-inflight": { type: "string", default: "2" },
    "warmup-seconds": { type: "string", default: "10" },
    seconds: { type: "string", default: "60" },
    "latency-seconds": { type: "string", default: "30" },
    "latency-rate": { type: "string", default: "10000" },
    "bare-seconds": { type: "string", default: "20" },
    quick: { type: "boolean", default: false },
    "mosquitto-nagle": { type: "boolean", default: false },
    collector: { type: "string" },
    "cpu-prof": { type: "boolean", default: false },
    "keep-dir": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});

if (values.help) {
  console.log(`collector-bench — the collector's ingest benchmark (issue 4)

  --devices N            fleet size the readings come from (default 2000, the simulator's real model mix)
  --agents N             synthetic agents (mqtt.js publishers), each with its share of the devices (default 4)
  --batch N              readings per ReadingBatch (default 100, the agent's outbox.batchSize)
  --raw-seconds S        reference InfluxDB write phase (default 20)
  --raw-batch N          points per reference write request (default 5000, the collector's batchSize)
  --raw-inflight N       reference write requests in flight (default 2, as the collector's writer)
  --warmup-seconds S     collector warm-up at full speed before measuring (default 10)
  --seconds S            measured full-speed phase, goals (a) and (b) (default 60)
  --latency-seconds S    paced phase, goal (c) (default 30)
  --latency-rate R       readings/s of the paced phase (default 10000)
  --bare-seconds S       bare-subscriber phase (default 20)
  --quick                short run: raw 5, warm-up 3, measured 15, latency 10, bare 8 seconds (≈ 1 min;
                         explicit flags still win)
  --mosquitto-nagle      leave Mosquitto's set_tcp_nodelay at its default (false): Nagle on the broker's
                         sockets (about +16 ms publish→ack at p50 here)
  --collector FILE       the collector entry (default collector/dist/main.js)
  --cpu-prof             run the collector under node --cpu-prof and print where its time goes (the CPU
                         figures then include the profiler's overhead)
  --keep-dir             keep the temp dir (config, state, profiles)`);
  process.exit(0);
}

const quick = values.quick;
const num = (name: keyof typeof values, quickValue: number): number =>
  quick && !process.argv.some((a) => a === `--${name}` || a.startsWith(`--${name}=`))
    ? quickValue
    : Number(values[name]);
const DEVICES = Number(values.devices);
const AGENTS = Number(values.agents);
const BATCH = Number(values.batch);
const RAW_SECONDS = num("raw-seconds", 5);
const RAW_BATCH = Number(values["raw-batch"]);
const RAW_INFLIGHT = Number(values["raw-inflight"]);
const WARMUP_SECONDS = num("warmup-seconds", 3);
const SECONDS = num("seconds", 15);
const LATENCY_SECONDS = num("latency-seconds", 10);
const LATENCY_RATE = Number(values["latency-rate"]);
const BARE_SECONDS = num("bare-seconds", 8);

const GOAL_US_PER_READING = 20;
const GOAL_INFLUX_RATIO = 0.8;
const GOAL_P99_MS = 1000;
const DB = "polyfleet";

const collectorMain =
  values.collector ?? new URL("../../../collector/dist/main.js", import.meta.url).pathname;
const bareMain = new URL("./collector-bench-bare.js", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "polyfleet-collector-bench-"));
const profDir = join(dir, "profiles");

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const r1 = (n: number): number => +n.toFixed(1);
const r2 = (n: number): number => +n.toFixed(2);
const mb = (bytes: number): number => +(bytes / 2 ** 20).toFixed(1);

// ------------------------------------------------------------------------------------------- collector

interface CollectorChild {
  child: ChildProcess;
  pid: number;
  apiUrl: string;
  exited: Promise<number | null>;
  output: string[];
}

async function startCollector(mosquitto: MosquittoHandle, influx: InfluxdHandle): Promise<CollectorChild> {
  const stateDir = join(dir, "state");
  mkdirSync(stateDir, { recursive: true });
  const configFile = join(dir, "collector.yaml");
  writeFileSync(
    configFile,
    stringify({
      logLevel: "warn",
      broker: { type: "external", url: mosquitto.url },
      store: { type: "sqlite", path: join(stateDir, "state.db") },
      metrics: { type: "influxdb", url: influx.url, database: DB },
      http: { host: "127.0.0.1", port: 0 },
      api: { rateLimitPerMinute: 100_000 },
      audit: { keyFile: join(stateDir, "audit-key.pem") },
    }),
  );
  const args = [collectorMain, "--config", configFile];
  if (values["cpu-prof"]) args.unshift("--cpu-prof", "--cpu-prof-dir", profDir);
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  const output: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const apiUrl = new Promise<string>((resolve, reject) => {
    const onLine = (d: string): void => {
      for (const line of d.split("\n")) {
        if (!line) continue;
        output.push(line);
        if (output.length > 40) output.shift();
        const m = /API and dashboard (http:\/\/\S+)/.exec(line);
        if (m?.[1]) resolve(m[1]);
      }
    };
    child.stdout?.setEncoding("utf8").on("data", onLine);
    child.stderr?.setEncoding("utf8").on("data", onLine);
    void exited.then((code) =>
      reject(new Error(`collector exited with ${code}: ${output.slice(-8).join(" | ")}`)),
    );
    setTimeout(() => reject(new Error("collector did not start within 30 s")), 30_000).unref();
  });
  return { child, pid: child.pid as number, apiUrl: await apiUrl, exited, output };
}

async function stopCollector(c: CollectorChild): Promise<number | null> {
  if (c.child.exitCode !== null || c.child.signalCode !== null) return c.child.exitCode;
  c.child.kill("SIGTERM");
  const t = setTimeout(() => c.child.kill("SIGKILL"), 30_000);
  const code = await c.exited;
  clearTimeout(t);
  return code;
}

interface MetricsStats {
  written: number;
  buffered: number;
  dropped: number;
  retries: number;
}

/** The collector's InfluxDB writer counters, from `/healthz` (no auth). */
async function metricsStats(apiUrl: string): Promise<MetricsStats> {
  const res = await fetch(`${apiUrl}/healthz`);
  const body = (await res.json()) as { checks?: { metrics?: { detail?: string } } };
  const detail = body.checks?.metrics?.detail;
  if (!detail) throw new Error(`/healthz has no metrics detail: ${JSON.stringify(body).slice(0, 300)}`);
  return JSON.parse(detail) as MetricsStats;
}

/** Waits until the collector's InfluxDB writer holds nothing; returns the last stats and when that was seen. */
async function waitMetricsDrained(
  apiUrl: string,
  target: number,
  timeoutMs: number,
): Promise<{ stats: MetricsStats; at: number; drained: boolean }> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const stats = await metricsStats(apiUrl);
    const at = performance.now();
    if (stats.buffered === 0 && stats.written + stats.dropped >= target) return { stats, at, drained: true };
    if (at > until) return { stats, at, drained: false };
    await sleep(100);
  }
}

// -------------------------------------------------------------------------------------------- helpers

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

function splitDevices(devices: BenchDevice[], n: number): BenchDevice[][] {
  const out: BenchDevice[][] = Array.from({ length: n }, () => []);
  devices.forEach((d, i) => {
    out[i % n]?.push(d);
  });
  return out;
}

function makeAgents(url: string, shares: BenchDevice[][], expectAcks: boolean): SyntheticAgent[] {
  return shares.map(
    (devices, i) =>
      new SyntheticAgent({
        url,
        agentId: `bench-agent-${i + 1}`,
        siteId: `bench-site-${(i % 2) + 1}`,
        devices,
        batchSize: BATCH,
        windowEntries: Math.max(1000, BATCH * 20),
        maxInflight: 32,
        expectAcks,
      }),
  );
}

const sum = (agents: SyntheticAgent[], f: (a: SyntheticAgent) => number): number =>
  agents.reduce((s, a) => s + f(a), 0);

async function waitAllAcked(agents: SyntheticAgent[], timeoutMs: number): Promise<boolean> {
  const ok = await Promise.all(agents.map((a) => a.waitAllAcked(timeoutMs)));
  return ok.every(Boolean);
}

/**
 * Publishes `rate` readings/s for `seconds` in batches spread over the agents round-robin, each batch due at
 * its slot of a fixed schedule (ticks of 2 ms; a late tick publishes every batch that fell due).
 */
async function paced(agents: SyntheticAgent[], rate: number, seconds: number): Promise<number> {
  const batchesPerMs = rate / BATCH / 1000;
  const total = Math.floor((rate * seconds) / BATCH);
  const start = performance.now();
  let scheduled = 0;
  while (scheduled < total) {
    const due = Math.min(total, Math.floor((performance.now() - start) * batchesPerMs) + 1);
    while (scheduled < due) {
      const dueAt = start + scheduled / batchesPerMs;
      agents[scheduled % agents.length]?.enqueue(dueAt);
      scheduled++;
    }
    await sleep(2);
  }
  return scheduled;
}

/** Busy CPU time of the whole machine (ms, every core), from the first line of /proc/stat. */
function machineBusyMs(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
  return (busy * 1000) / 100;
}

interface Cpu {
  collector: number;
  mosquitto: number;
  influxd: number;
  bench: number;
  machine: number;
  at: number;
}

/** Cores used between two snapshots: by the machine, and by processes that are not part of this benchmark. */
function load(a: Cpu, b: Cpu): { machineCores: number; otherCores: number } {
  const ms = b.at - a.at;
  const ours =
    b.collector - a.collector + b.mosquitto - a.mosquitto + b.influxd - a.influxd + b.bench - a.bench;
  const machine = b.machine - a.machine;
  return { machineCores: r2(machine / ms), otherCores: r2(Math.max(0, machine - ours) / ms) };
}

// ---------------------------------------------------------------------------------------------- main

async function main(): Promise<void> {
  console.log(
    `collector-bench on ${cpus().length} cores (load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(
        " ",
      )}): ${DEVICES} devices, ${AGENTS} agents, batches of ${BATCH}; raw ${RAW_SECONDS} s, warm-up ${WARMUP_SECONDS} s, measured ${SECONDS} s, latency ${LATENCY_SECONDS} s at ${LATENCY_RATE}/s, bare ${BARE_SECONDS} s`,
  );
  const tFleet = performance.now();
  const { devices, stats: fleet } = buildBenchFleet({ devices: DEVICES, seed: Number(values.seed) });
  console.log(
    `  fleet: ${JSON.stringify(fleet.byFamily)}, ${fleet.unreachable} not answering, faults ${JSON.stringify(fleet.faults)}, ~${fleet.meanReadingBytes} B/reading (${Math.round(performance.now() - tFleet)} ms, every device's reading schema-checked)`,
  );
  const shares = splitDevices(devices, AGENTS);

  const influx = await startInfluxd();
  // Mosquitto leaves Nagle on for its client sockets unless told otherwise (`set_tcp_nodelay`, default false).
  const mosquitto = await startMosquitto(
    values["mosquitto-nagle"] ? { extraConfig: ["set_tcp_nodelay false"] } : {},
  );
  const influxPid = influx.pid as number;
  const mosquittoPid = mosquitto.pid as number;
  let collector: CollectorChild | undefined;
  let agents: SyntheticAgent[] = [];
  let bare: ChildProcess | undefined;
  try {
    // ------------------------------------------------------------------ raw InfluxDB reference
    console.log(
      `\n[raw] bare undici writer, ${RAW_BATCH} ten-field points per request, ${RAW_INFLIGHT} in flight`,
    );
    const i0 = procStats(influxPid).cpuMs;
    const raw: RawWriteResult = await rawWrite({
      url: influx.url,
      database: "rawbench",
      devices,
      seconds: RAW_SECONDS,
      batchPoints: RAW_BATCH,
      inFlight: RAW_INFLIGHT,
    });
    const rawInfluxUsPerPoint = ((procStats(influxPid).cpuMs - i0) * 1000) / Math.max(1, raw.points);
    const rawLanded = await countPoints(influx.url, "rawbench", "device", "reachable");
    console.log(
      `  ${Math.round(raw.pointsPerSec)} points/s (${raw.points} in ${r1(raw.seconds)} s, ${raw.failed} failed, ${rawLanded} counted by /query), influxd ${r1(rawInfluxUsPerPoint)} µs CPU/point`,
    );
    await dropDatabase(influx.url, "rawbench");

    // ------------------------------------------------------------------ collector + agents
    collector = await startCollector(mosquitto, influx);
    const c = collector;
    console.log(
      `\n[collector] pid ${c.pid}, API ${c.apiUrl}, broker ${mosquitto.url}, InfluxDB ${influx.url}`,
    );
    agents = makeAgents(mosquitto.url, shares, true);
    await Promise.all(agents.map((a) => a.connect()));
    const cpu = (): Cpu => ({
      collector: procStats(c.pid).cpuMs,
      mosquitto: procStats(mosquittoPid).cpuMs,
      influxd: procStats(influxPid).cpuMs,
      bench: selfCpuMs(),
      machine: machineBusyMs(),
      at: performance.now(),
    });

    // Warm-up at full speed (JIT, caches, every device's first reading), then drain.
    for (const a of agents) a.startFill();
    await sleep(WARMUP_SECONDS * 1000);
    for (const a of agents) a.stopFill();
    if (!(await waitAllAcked(agents, 60_000)))
      throw new Error("warm-up: not every reading was acked in 60 s");
    const warmReadings = sum(agents, (a) => a.seq);
    await waitMetricsDrained(c.apiUrl, warmReadings, 60_000);
    const landed0 = await countPoints(influx.url, DB, "device", "reachable");
    console.log(`  warm-up: ${warmReadings} readings acked, ${landed0} points in InfluxDB`);

    // ------------------------------------------------------------------ (a) + (b) full speed
    const seq0 = sum(agents, (a) => a.seq);
    const m0 = await metricsStats(c.apiUrl);
    const rss0 = procStats(c.pid).rssBytes;
    const cpu0 = cpu();
    for (const a of agents) a.startFill();
    await sleep(SECONDS * 1000);
    for (const a of agents) a.stopFill();
    const cpuStop = cpu();
    const allAcked = await waitAllAcked(agents, 120_000);
    const tAcked = performance.now();
    const seq1 = sum(agents, (a) => a.seq);
    const readings = seq1 - seq0;
    // Landed = every write answered (the writer holds nothing); the points are then counted with /query.
    const drained = await waitMetricsDrained(c.apiUrl, seq1, 120_000);
    const cpu1 = cpu();
    const rssPeak = procStats(c.pid).rssBytes;
    const landed1 = await countPoints(influx.url, DB, "device", "reachable");
    const landedPhase = landed1 - landed0;
    const secAcked = (tAcked - cpu0.at) / 1000;
    const secDrained = (drained.at - cpu0.at) / 1000;
    const collectorUsPerReading = ((cpu1.collector - cpu0.collector) * 1000) / readings;
    const perReading = (a: number, b: number): number => r2(((b - a) * 1000) / readings);
    const ingestRate = readings / secAcked;
    const influxRate = landedPhase / secDrained;
    const influxRatio = influxRate / raw.pointsPerSec;
    const collectorCores = (cpuStop.collector - cpu0.collector) / (cpuStop.at - cpu0.at);
    const loadT = load(cpu0, cpuStop);
    console.log(
      `\n[throughput] ${readings} readings in ${SECONDS} s of publishing; all acked after ${r1(secAcked)} s${allAcked ? "" : " (NOT ALL ACKED)"}, all in InfluxDB after ${r1(secDrained)} s${drained.drained ? "" : " (NOT DRAINED)"}`,
    );
    console.log(
      `  collector ${r2(collectorUsPerReading)} µs CPU/reading (${r2(collectorCores)} cores while publishing), RSS ${mb(rss0)} → ${mb(rssPeak)} MB`,
    );
    console.log(
      `  per reading also: mosquitto ${perReading(cpu0.mosquitto, cpu1.mosquitto)} µs, influxd ${perReading(cpu0.influxd, cpu1.influxd)} µs, publishers (this process) ${perReading(cpu0.bench, cpu1.bench)} µs`,
    );
    console.log(
      `  ingest ${Math.round(ingestRate)} readings/s acked; ${Math.round(influxRate)} readings/s into InfluxDB (${landedPhase} points counted by /query for ${readings} readings; writer dropped ${drained.stats.dropped - m0.dropped}, retried ${drained.stats.retries - m0.retries})`,
    );
    console.log(
      `  machine: ${loadT.machineCores} of ${cpus().length} cores busy while publishing, ${loadT.otherCores} of them by processes outside this benchmark`,
    );

    // ------------------------------------------------------------------ (c) paced latency
    for (const a of agents) {
      a.latencies = [];
      a.recordLatency = true;
    }
    const seqL0 = sum(agents, (a) => a.seq);
    const cpuL0 = cpu();
    const scheduled = await paced(agents, LATENCY_RATE, LATENCY_SECONDS);
    const latAcked = await waitAllAcked(agents, 60_000);
    const cpuL1 = cpu();
    const loadL = load(cpuL0, cpuL1);
    for (const a of agents) a.recordLatency = false;
    const latReadings = sum(agents, (a) => a.seq) - seqL0;
    const lat = agents.flatMap((a) => a.latencies).sort((x, y) => x - y);
    const latency = {
      batches: lat.length,
      scheduled,
      p50: r2(quantile(lat, 0.5)),
      p95: r2(quantile(lat, 0.95)),
      p99: r2(quantile(lat, 0.99)),
      max: r2(lat[lat.length - 1] ?? Number.NaN),
      achievedRate: Math.round(latReadings / ((cpuL1.at - cpuL0.at) / 1000)),
      collectorUsPerReading: r2(((cpuL1.collector - cpuL0.collector) * 1000) / Math.max(1, latReadings)),
      otherCores: loadL.otherCores,
    };
    console.log(
      `\n[latency] ${LATENCY_RATE} readings/s for ${LATENCY_SECONDS} s: ${lat.length} batches${latAcked ? "" : " (NOT ALL ACKED)"}, publish→ack p50 ${latency.p50} ms, p95 ${latency.p95} ms, p99 ${latency.p99} ms, max ${latency.max} ms; collector ${latency.collectorUsPerReading} µs CPU/reading at this pace; ${loadL.otherCores} cores used outside this benchmark`,
    );

    // Everything published so far must be in InfluxDB, one point per reading.
    const totalReadings = sum(agents, (a) => a.seq);
    const collectorRunCpuMs = procStats(c.pid).cpuMs;
    const finalDrain = await waitMetricsDrained(c.apiUrl, totalReadings, 60_000);
    const landed = await countPoints(influx.url, DB, "device", "reachable");
    const ackProblems = agents.flatMap((a) => a.ackProblems.map((p) => `${a.agentId}: ${p}`));
    const acks = sum(agents, (a) => a.acks);
    console.log(
      `  InfluxDB holds ${landed} points for ${totalReadings} readings published (writer: ${finalDrain.stats.written} written, ${finalDrain.stats.dropped} dropped); ${acks} acks, ${ackProblems.length} ack problems${ackProblems.length ? `: ${ackProblems.slice(0, 3).join("; ")}` : ""}`,
    );

    for (const a of agents) await a.close();
    agents = [];
    const exitCode = await stopCollector(c);
    collector = undefined;

    // ------------------------------------------------------------------ bare subscriber, same stream
    const msgRate = ingestRate / BATCH;
    console.log(
      `\n[bare] bare mqtt.js subscriber (child), same agents and payloads at ${Math.round(msgRate)} msg/s`,
    );
    const b = fork(bareMain, [mosquitto.url], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    bare = b;
    const bareStats = (): Promise<{ messages: number; bytes: number }> =>
      new Promise((resolve) => {
        b.once("message", (m) => resolve(m as { messages: number; bytes: number }));
        b.send("stats");
      });
    await new Promise<void>((resolve, reject) => {
      b.once("message", () => resolve());
      b.once("exit", (code) => reject(new Error(`bare subscriber exited with ${code}`)));
    });
    agents = makeAgents(mosquitto.url, shares, false);
    await Promise.all(agents.map((a) => a.connect()));
    await paced(agents, msgRate * BATCH, Math.min(3, BARE_SECONDS / 4));
    await Promise.all(agents.map((a) => a.waitPubacks(30_000)));
    const bs0 = await bareStats();
    const bc0 = procStats(b.pid as number).cpuMs;
    const pub0 = sum(agents, (a) => a.published);
    await paced(agents, msgRate * BATCH, BARE_SECONDS);
    await Promise.all(agents.map((a) => a.waitPubacks(30_000)));
    const pubN = sum(agents, (a) => a.published) - pub0;
    let bs1 = await bareStats();
    for (let i = 0; i < 100 && bs1.messages - bs0.messages < pubN; i++) {
      await sleep(50);
      bs1 = await bareStats();
    }
    const bc1 = procStats(b.pid as number).cpuMs;
    const bareMsgs = bs1.messages - bs0.messages;
    const bareUsPerMsg = ((bc1 - bc0) * 1000) / Math.max(1, bareMsgs);
    const meanMsgKB = (bs1.bytes - bs0.bytes) / Math.max(1, bareMsgs) / 1024;
    console.log(
      `  ${bareMsgs} of ${pubN} messages received (${r1(meanMsgKB)} KB each), ${r1(bareUsPerMsg)} µs CPU/message = ${r2(bareUsPerMsg / BATCH)} µs per reading carried`,
    );
    b.send("stop");
    for (const a of agents) await a.close();
    agents = [];

    // ------------------------------------------------------------------ profile
    let profile: ReturnType<typeof summarizeProfile> | undefined;
    let stages: StageRow[] | undefined;
    if (values["cpu-prof"] && existsSync(profDir)) {
      const file = readdirSync(profDir).find((f) => f.endsWith(".cpuprofile"));
      if (file) {
        profile = summarizeProfile(join(profDir, file), 25);
        console.log(`\n[profile] collector (whole run: start, warm-up, throughput, latency, stop)`);
        console.log(formatProfile(profile));
        // The profile's "busy" time is wall time on the stack (it grows while the collector waits for a core on
        // a loaded machine); the shares are scaled to the collector's CPU time per reading over the run instead.
        const usPerReading = (collectorRunCpuMs * 1000) / totalReadings;
        stages = ingestStages(summarizeProfile(join(profDir, file), 1000), usPerReading);
        console.log(formatStages(stages, usPerReading));
      } else console.log("\n[profile] no .cpuprofile written");
    }

    // ------------------------------------------------------------------ summary
    const mark = (ok: boolean): string => (ok ? "PASS" : "MISS");
    const okA = collectorUsPerReading <= GOAL_US_PER_READING;
    const okB = influxRatio >= GOAL_INFLUX_RATIO;
    const okC = latency.p99 < GOAL_P99_MS && latAcked;
    const ratioA = collectorUsPerReading / bareUsPerMsg;
    console.log("\n== collector benchmark summary");
    console.log(
      `  (a) ${mark(okA)}  collector ${r2(collectorUsPerReading)} µs CPU/reading (goal ≤ ${GOAL_US_PER_READING}: ${Math.round(1e6 / collectorUsPerReading)} readings/s per core); bare subscriber ${r1(bareUsPerMsg)} µs/message; ratio µs/reading ÷ bare µs/message = ${r2(ratioA)} (per message of ${BATCH}: ${r1((collectorUsPerReading * BATCH) / bareUsPerMsg)}×)`,
    );
    console.log(
      `  (b) ${mark(okB)}  ${Math.round(influxRate)} readings/s into InfluxDB vs raw line protocol ${Math.round(raw.pointsPerSec)} points/s = ${r2(influxRatio)} (goal ≥ ${GOAL_INFLUX_RATIO}); collector at ${r2(collectorCores)} cores${collectorCores > 0.9 ? ": CPU-bound, (b) is capped by (a)" : ""}${loadT.machineCores > 0.9 * cpus().length ? `; the machine was saturated (${loadT.otherCores} cores used by other processes)` : ""}`,
    );
    console.log(
      `  (c) ${mark(okC)}  publish→ack at ${latency.achievedRate} readings/s: p50 ${latency.p50} ms, p95 ${latency.p95} ms, p99 ${latency.p99} ms, max ${latency.max} ms (goal p99 < ${GOAL_P99_MS} ms)`,
    );
    console.log(
      `  checks: ${landed === totalReadings ? "every reading is one point in InfluxDB" : `InfluxDB points ${landed} ≠ readings ${totalReadings}`}; ${ackProblems.length === 0 && allAcked && latAcked ? "every reading acked, acks valid and monotonic" : "ACK PROBLEMS"}; collector exit ${exitCode}; ${loadT.otherCores} cores used outside this benchmark while publishing${values["cpu-prof"] ? "; CPU figures include the profiler's overhead" : ""}`,
    );
    const result = {
      bench: "collector",
      devices: DEVICES,
      agents: AGENTS,
      batch: BATCH,
      meanReadingBytes: fleet.meanReadingBytes,
      cpuProf: values["cpu-prof"],
      raw: {
        pointsPerSec: Math.round(raw.pointsPerSec),
        batchPoints: RAW_BATCH,
        inFlight: RAW_INFLIGHT,
        failed: raw.failed,
        influxdUsPerPoint: r2(rawInfluxUsPerPoint),
      },
      throughput: {
        seconds: SECONDS,
        readings,
        collectorUsPerReading: r2(collectorUsPerReading),
        readingsPerCore: Math.round(1e6 / collectorUsPerReading),
        collectorCores: r2(collectorCores),
        mosquittoUsPerReading: perReading(cpu0.mosquitto, cpu1.mosquitto),
        influxdUsPerReading: perReading(cpu0.influxd, cpu1.influxd),
        publishersUsPerReading: perReading(cpu0.bench, cpu1.bench),
        ingestReadingsPerSec: Math.round(ingestRate),
        influxReadingsPerSec: Math.round(influxRate),
        influxRatio: r2(influxRatio),
        influxPointsCounted: landedPhase,
        machineCores: loadT.machineCores,
        otherCores: loadT.otherCores,
        collectorRssMB: mb(rssPeak),
      },
      latency,
      bare: { usPerMessage: r1(bareUsPerMsg), messages: bareMsgs, msgPerSec: Math.round(msgRate) },
      ratioUsPerReadingToBareUsPerMessage: r2(ratioA),
      influx: { landed, readings: totalReadings },
      acks: { count: acks, problems: ackProblems.length },
      goals: {
        a: { ok: okA, goal: `<= ${GOAL_US_PER_READING} us/reading` },
        b: { ok: okB, goal: `>= ${GOAL_INFLUX_RATIO} of raw` },
        c: { ok: okC, goal: `p99 < ${GOAL_P99_MS} ms` },
      },
      ...(profile
        ? {
            profile: {
              busyMs: profile.busyMs,
              originSelf: profile.originSelf.slice(0, 12),
              topSelf: profile.topSelf.slice(0, 15),
              stages,
            },
          }
        : {}),
    };
    console.log(JSON.stringify(result));
  } finally {
    for (const a of agents) await a.close().catch(() => undefined);
    if (collector) await stopCollector(collector);
    if (bare && bare.exitCode === null) bare.kill("SIGTERM");
    await mosquitto.stop();
    await influx.stop();
    if (values["keep-dir"]) console.log(`(kept ${dir})`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

await main();
