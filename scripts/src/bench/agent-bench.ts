import { type ChildProcess, spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { AgentConfig, type AgentConfigInput, type SimDevice, SimManifest } from "@polyfleet/shared";
import { parse as parseYaml, stringify } from "yaml";
import { startAedes } from "../testing/aedes.js";
import { freeTcpPort, freeUdpPort } from "../testing/free-port.js";
import { startMosquitto } from "../testing/mosquitto.js";
import { TestCollector } from "../testing/test-collector.js";
import type { BareJob, BareMode, BareResult } from "./agent-bench-bare.js";
import { type PollTiming, TelemetryObserver } from "./agent-bench-observer.js";
import { perfSummary } from "./agent-bench-perf.js";
import type { ProbeSample } from "./agent-bench-probe.js";
import { formatProfile, summarizeProfile } from "./agent-bench-profile.js";
import {
  bucketQuantile,
  countAtOrBelow,
  histogram,
  histogramDelta,
  maxOf,
  type PromSample,
  parsePrometheus,
  sumOf,
} from "./agent-bench-prom.js";
import { procStats } from "./proc-stats.js";

/**
 * Benchmark of the agent's polling (issue 3, "Must show"): the simulator (a child) runs 2,000 devices of the
 * real family mix with 10 % not answering, a real Mosquitto and an acking TestCollector take the telemetry,
 * and the agent (`node agent/dist/main.js`, a child) polls every 30 s. Phases, each a fresh agent:
 *
 * - `mix`: every device, 10 % dead: cycles inside the interval, lateness, answering devices' timing, CPU per
 *   poll, RSS.
 * - `uc`, `videoos`, `snmp`: only the answering UC phones / VideoOS devices (poly-videoos, REST + SNMP) /
 *   VideoOS devices as `snmp-generic` with only the SNMP credential: CPU per poll by family.
 * - `bare`: a bare undici / net-snmp client in a child of its own doing the same requests at the same pace.
 *
 * - `idle`: the agent with no device, for its CPU per second when nothing is polled.
 *
 * Agent CPU comes from /proc/<pid>/stat (10 ms ticks) and, precisely, from a probe preloaded into the agent
 * (`--import agent-bench-probe.js`, getrusage on SIGUSR2). Bounded: stops by itself (defaults ≈ 9 min;
 * --devices, --interval, --cycles, --phases shorten it).
 *
 *   node scripts/dist/bench/agent-bench.js [--devices 2000] [--interval 30] [--cycles 3] [--family-cycles 1]
 *     [--warmup-cycles 2] [--phases idle,mix,uc,videoos,snmp,bare] [--bare-seconds 8] [--cpu-prof] [--perf]
 */
const { values } = parseArgs({
  options: {
    devices: { type: "string", default: "2000" },
    subnet: { type: "string", default: "127.0.8.0/21" },
    interval: { type: "string", default: "30" },
    cycles: { type: "string", default: "3" },
    "family-cycles": { type: "string", default: "1" },
    "warmup-cycles": { type: "string", default: "2" },
    "no-answer-pct": { type: "string", default: "10" },
    "timeout-ms": { type: "string", default: "5000" },
    concurrency: { type: "string", default: "256" },
    "jitter-pct": { type: "string", default: "10" },
    phases: { type: "string", default: "idle,mix,uc,videoos,snmp,bare" },
    "bare-seconds": { type: "string", default: "8" },
    broker: { type: "string", default: "mosquitto" },
    seed: { type: "string", default: "7" },
    agent: { type: "string" },
    "cpu-prof": { type: "boolean", default: false },
    perf: { type: "boolean", default: false },
    "keep-dir": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});

if (values.help) {
  console.log(`agent-bench — the agent's polling benchmark (issue 3)

  --devices N          simulated devices (default 2000, the real family mix)
  --subnet CIDR        loopback range of the simulator (default 127.0.8.0/21)
  --interval SEC       poll interval (default 30)
  --warmup-cycles N    intervals before measuring, per phase (default 2: first polls, then the re-arm after
                       the agent re-keys each device by its MAC)
  --cycles N           measured intervals of the mix phase (default 3)
  --family-cycles N    measured intervals of the uc / videoos / snmp phases (default 1)
  --no-answer-pct P    devices with the simulator's noAnswer fault (default 10)
  --timeout-ms MS      polling.timeoutMs (default 5000)
  --concurrency N      polling.concurrency (default 256)
  --phases LIST        idle,mix,uc,videoos,snmp,bare (default all)
  --bare-seconds S     measured seconds per bare-client mode (default 8)
  --broker KIND        mosquitto (default) or aedes
  --agent FILE         the agent entry (default agent/dist/main.js)
  --cpu-prof           profile the agent over the measured cycles (V8 sampling, in-process) and the bare
                       client (node --cpu-prof, warm-up included), and print where the time goes (the CPU
                       figures then include the profiler's overhead)
  --perf               record the agent with Linux perf over the measured cycles (every thread, kernel
                       included; JIT frames named via --perf-basic-prof) and print CPU by thread, by
                       library and by symbol
  --keep-dir           keep the temp dir (configs, manifest, profiles)`);
  process.exit(0);
}

const DEVICES = Number(values.devices);
const INTERVAL_S = Number(values.interval);
const INTERVAL_MS = INTERVAL_S * 1000;
const CYCLES = Number(values.cycles);
const FAMILY_CYCLES = Number(values["family-cycles"]);
const WARMUP = Number(values["warmup-cycles"]);
const TIMEOUT_MS = Number(values["timeout-ms"]);
const CONCURRENCY = Number(values.concurrency);
const JITTER = Number(values["jitter-pct"]);
const NO_ANSWER = Number(values["no-answer-pct"]);
const BARE_SECONDS = Number(values["bare-seconds"]);
const PHASES = new Set(values.phases.split(",").map((s) => s.trim()));
/** Snapshots are taken this long after a scheduler cycle boundary: the agent exports a finished cycle's
 *  late count and worst lateness every 5 s, and the cycle's last polls end within the poll timeout. */
const SNAP_OFFSET_MS = Math.max(TIMEOUT_MS, 5000) + 1500;

const here = new URL(".", import.meta.url).pathname;
const simCli = new URL("../simulator/cli-main.js", import.meta.url).pathname;
const agentMain = values.agent ?? new URL("../../../agent/dist/main.js", import.meta.url).pathname;
const probe = pathToFileURL(join(here, "agent-bench-probe.js")).href;
const dir = mkdtempSync(join(tmpdir(), "polyfleet-agent-bench-"));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const mb = (bytes: number): number => +(bytes / 2 ** 20).toFixed(1);
const r1 = (n: number): number => +n.toFixed(1);

// ------------------------------------------------------------------------------------------ children

interface Child {
  child: ChildProcess;
  pid: number;
  exited: Promise<number | null>;
  stderr: string[];
  stderrLines: number;
}

function spawnChild(args: string[], env: NodeJS.ProcessEnv = process.env): Child {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env });
  const c: Child = {
    child,
    pid: child.pid as number,
    exited: new Promise((resolve) => child.once("exit", (code) => resolve(code))),
    stderr: [],
    stderrLines: 0,
  };
  child.stdout?.resume();
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (d: string) => {
    for (const line of d.split("\n")) {
      if (!line) continue;
      c.stderrLines++;
      c.stderr.push(line);
      if (c.stderr.length > 30) c.stderr.shift();
    }
  });
  return c;
}

async function stopChild(c: Child, graceMs = 15_000): Promise<void> {
  if (c.child.exitCode !== null || c.child.signalCode !== null) return;
  c.child.kill("SIGTERM");
  const t = setTimeout(() => c.child.kill("SIGKILL"), graceMs);
  await c.exited;
  clearTimeout(t);
}

async function startSimulator(
  brokerUrl: string,
  trapPort: number,
): Promise<{ sim: Child; manifest: SimManifest; agentYaml: string }> {
  const manifestFile = join(dir, "manifest.json");
  const agentYaml = join(dir, "sim-agent.yaml");
  const args = [
    simCli,
    "--devices",
    String(DEVICES),
    "--subnet",
    values.subnet,
    "--manifest",
    manifestFile,
    "--https-port",
    String(await freeTcpPort()),
    "--snmp-port",
    String(await freeUdpPort()),
    "--agent-config",
    agentYaml,
    "--broker",
    brokerUrl,
    "--agent-trap-port",
    String(trapPort),
    "--poll-interval",
    String(INTERVAL_S),
    "--seed",
    values.seed,
    "--log-level",
    "warn",
  ];
  if (NO_ANSWER > 0) args.push("--fault", `noAnswer=${NO_ANSWER}%`);
  const t0 = Date.now();
  const sim = spawnChild(args);
  while (!existsSync(manifestFile) || !existsSync(agentYaml)) {
    if (sim.child.exitCode !== null) throw new Error(`simulator exited: ${sim.stderr.join(" | ")}`);
    if (Date.now() - t0 > 180_000) throw new Error("simulator did not start within 180 s");
    await sleep(100);
  }
  await sleep(200); // the agent config is written right after the manifest
  const manifest = SimManifest.parse(JSON.parse(readFileSync(manifestFile, "utf8")));
  console.log(
    `simulator: ${manifest.devices.length} devices up in ${((Date.now() - t0) / 1000).toFixed(1)} s (pid ${sim.pid})`,
  );
  return { sim, manifest, agentYaml };
}

// --------------------------------------------------------------------------------------------- agent

interface Snap {
  t: number;
  procCpuMs: number;
  rssBytes: number;
  probe: ProbeSample | undefined;
  samples: PromSample[];
  health: Record<string, unknown> | undefined;
}

interface RunningAgent extends Child {
  opsUrl: string;
  probeFile: string;
  readyAt: number;
}

async function startAgent(name: string, config: AgentConfigInput): Promise<RunningAgent> {
  AgentConfig.parse(config);
  const file = join(dir, `agent-${name}.yaml`);
  writeFileSync(file, stringify(config), { mode: 0o600 });
  const probeFile = join(dir, `probe-${name}.json`);
  const nodeArgs = ["--import", probe];
  if (values.perf) nodeArgs.push("--perf-basic-prof-only-functions");
  const c = spawnChild([...nodeArgs, agentMain, "--config", file, "--log-level", "warn"], {
    ...process.env,
    POLYFLEET_BENCH_PROBE_FILE: probeFile,
  });
  const http = config.http as { host: string; port: number };
  const opsUrl = `http://${http.host}:${http.port}`;
  const t0 = Date.now();
  for (;;) {
    if (c.child.exitCode !== null) {
      throw new Error(`agent exited with ${c.child.exitCode}: ${c.stderr.slice(-10).join("\n")}`);
    }
    try {
      const res = await fetch(`${opsUrl}/healthz`);
      await res.arrayBuffer();
      break;
    } catch {
      // not listening yet
    }
    if (Date.now() - t0 > 60_000) throw new Error(`agent did not answer /healthz within 60 s`);
    await sleep(50);
  }
  return { ...c, opsUrl, probeFile, readyAt: Date.now() };
}

async function readProbe(a: RunningAgent, cmd?: string): Promise<ProbeSample | undefined> {
  if (cmd) writeFileSync(`${a.probeFile}.cmd`, cmd);
  let before = 0;
  try {
    before = (JSON.parse(readFileSync(a.probeFile, "utf8")) as ProbeSample).seq;
  } catch {
    // first sample
  }
  try {
    process.kill(a.pid, "SIGUSR2");
  } catch {
    return undefined;
  }
  const until = Date.now() + 2000;
  while (Date.now() < until) {
    try {
      const s = JSON.parse(readFileSync(a.probeFile, "utf8")) as ProbeSample;
      if (s.seq > before) return s;
    } catch {
      // not written yet
    }
    await sleep(2);
  }
  return undefined;
}

async function snapshot(a: RunningAgent, cmd?: string): Promise<Snap> {
  const probeSample = await readProbe(a, cmd);
  const ps = procStats(a.pid);
  const t = Date.now();
  const samples = parsePrometheus(await (await fetch(`${a.opsUrl}/metrics`)).text());
  let health: Record<string, unknown> | undefined;
  try {
    health = (await (await fetch(`${a.opsUrl}/healthz`)).json()) as Record<string, unknown>;
  } catch {
    health = undefined;
  }
  return { t, procCpuMs: ps.cpuMs, rssBytes: ps.rssBytes, probe: probeSample, samples, health };
}

// -------------------------------------------------------------------------------------------- phases

interface CycleResult {
  cycle: number;
  seconds: number;
  cpuMs: number;
  procCpuMs: number;
  polls: number;
  ok: number;
  failed: number;
  timeout: number;
  skipped: number;
  late: number | null;
  maxLatenessSec: number | null;
  cycleDue: number | null;
  cycleDone: number | null;
  cpuUsPerPoll: number | null;
  cpuUsPerOkPoll: number | null;
  eventLoopBusyPct: number | null;
  rssMB: number;
  heapUsedMB: number | null;
  /** V8 heap reserved, and memory outside it that V8 knows of (Buffers, TLS and sqlite are mostly not). */
  heapTotalMB: number | null;
  externalMB: number | null;
  outboxDepth: number | null;
  /** Readings of the answering devices whose poll began in this scheduler cycle. */
  answering: PollTiming;
  inside: boolean;
  why: string[];
}

interface PhaseResult {
  phase: string;
  devices: number;
  answering: number;
  byDriver: Record<string, number>;
  cycles: CycleResult[];
  seconds: number;
  polls: number;
  okPolls: number;
  cpuMs: number;
  procCpuMs: number;
  cpuUsPerPoll: number | null;
  cpuUsPerOkPoll: number | null;
  /** CPU per poll less what the idle agent spends in the same time (filled in by the report). */
  netUsPerPoll?: number | null;
  /** ±: the /proc figure's resolution (2 ticks) spread over the polls. */
  procResolutionUsPerPoll: number | null;
  peakRssMB: number;
  endRssMB: number;
  okDurationSec: { p50: number | undefined; p99: number | undefined; atOrBelow1s: number | undefined } | null;
  answeringTiming: PollTiming;
  collector: {
    stored: number;
    /** MQTT messages (telemetry batches + events) and acks: readings per message show the batching. */
    messages: number;
    acksSent: number;
    invalid: number;
    duplicates: number;
    gaps: number;
    lastSeq: number | null;
  };
  agentStderrLines: number;
  agentStderrTail: string[];
  profile?: string;
  perfReport?: string;
}

interface Env {
  brokerUrl: string;
  manifest: SimManifest;
  baseConfig: AgentConfigInput;
  trapPort: number;
}

function phaseConfig(
  env: Env,
  name: string,
  devices: NonNullable<AgentConfigInput["devices"]>,
  opsPort: number,
): AgentConfigInput {
  const outbox = join(dir, `outbox-${name}`);
  mkdirSync(outbox, { recursive: true });
  return {
    ...env.baseConfig,
    agentId: `bench-${name}`,
    logLevel: "warn",
    broker: { url: env.brokerUrl },
    devices,
    // No discovery: the devices are configured; a scan of the /21 would blur the polling figures.
    discovery: { ranges: [], credentials: [], intervalSec: 0 },
    polling: {
      intervalSec: INTERVAL_S,
      jitterPct: JITTER,
      timeoutMs: TIMEOUT_MS,
      concurrency: CONCURRENCY,
      missesBeforeUnreachable: 3,
    },
    outbox: { dir: outbox, maxEntries: 1_000_000, batchSize: 100 },
    provisioning: { host: "127.0.0.1", port: 0, dir: join(dir, `firmware-${name}`) },
    traps: { enabled: true, host: "127.0.0.1", port: env.trapPort },
    http: { host: "127.0.0.1", port: opsPort },
  };
}

const pollsOf = (s: PromSample[], result?: string): number =>
  sumOf(s, "polyfleet_agent_polls_total", result ? { result } : {});

function cpuDeltaMs(a: Snap, b: Snap): number {
  if (a.probe && b.probe) return (b.probe.cpuUs - a.probe.cpuUs) / 1000;
  return b.procCpuMs - a.procCpuMs;
}

async function runPhase(
  env: Env,
  name: string,
  devices: NonNullable<AgentConfigInput["devices"]>,
  answering: string[],
  measured: number,
): Promise<PhaseResult> {
  const opsPort = await freeTcpPort();
  const config = phaseConfig(env, name, devices, opsPort);
  const agentId = config.agentId;
  const collector = new TestCollector({ url: env.brokerUrl, siteId: config.siteId, agentId });
  await collector.start();
  const observer = new TelemetryObserver(env.brokerUrl, config.siteId, agentId);
  await observer.start();
  const profFile = values["cpu-prof"] ? join(dir, `agent-${name}.cpuprofile`) : undefined;
  const perfFile = values.perf ? join(dir, `agent-${name}.perf.data`) : undefined;
  let perfRec: ChildProcess | undefined;
  const byDriver: Record<string, number> = {};
  for (const d of devices) byDriver[d.driver ?? "?"] = (byDriver[d.driver ?? "?"] ?? 0) + 1;
  console.log(
    `\n[${name}] ${devices.length} devices (${Object.entries(byDriver)
      .map(([k, v]) => `${k} ×${v}`)
      .join(
        ", ",
      )}), ${answering.length} answering; ${WARMUP} warm-up + ${measured} measured cycles of ${INTERVAL_S} s`,
  );
  let agent: RunningAgent;
  try {
    agent = await startAgent(name, config);
  } catch (err) {
    await observer.stop();
    await collector.stop();
    throw err;
  }
  let peakRss = 0;
  const rssTimer = setInterval(() => {
    try {
      peakRss = Math.max(peakRss, procStats(agent.pid).rssBytes);
    } catch {
      // exited
    }
  }, 1000);
  const epoch = agent.readyAt;
  const snaps: Snap[] = [];
  try {
    for (let i = 0; i <= measured; i++) {
      await sleep(epoch + (WARMUP + i) * INTERVAL_MS + SNAP_OFFSET_MS - Date.now());
      if (agent.child.exitCode !== null)
        throw new Error(`agent exited: ${agent.stderr.slice(-10).join("\n")}`);
      const cmd = profFile
        ? i === 0
          ? "start"
          : i === measured
            ? `stop ${profFile}`
            : undefined
        : undefined;
      if (perfRec && i === measured) {
        perfRec.kill("SIGINT");
        await new Promise((r) => perfRec?.once("exit", r));
      }
      const s = await snapshot(agent, cmd);
      snaps.push(s);
      if (perfFile && i === 0) {
        perfRec = spawn(
          "perf",
          ["record", "-q", "-e", "cpu-clock", "-F", "999", "-g", "-p", String(agent.pid), "-o", perfFile],
          { stdio: ["ignore", "ignore", "inherit"] },
        );
      }
      if (i > 0) {
        const p = snaps[i - 1] as Snap;
        const polls = pollsOf(s.samples) - pollsOf(p.samples);
        process.stdout.write(
          `  cycle ${i}: ${polls} polls, ${((1000 * cpuDeltaMs(p, s)) / Math.max(1, polls)).toFixed(0)} µs CPU/poll, RSS ${mb(s.rssBytes)} MB\n`,
        );
      }
    }
    // Let the last polls' readings reach the observer.
    await sleep(1500);
  } catch (err) {
    clearInterval(rssTimer);
    perfRec?.kill("SIGINT");
    await stopChild(agent);
    removePerfMap(agent.pid);
    await observer.stop();
    await collector.stop();
    throw err;
  }
  clearInterval(rssTimer);
  const first = snaps[0] as Snap;
  const last = snaps[snaps.length - 1] as Snap;
  const cycles: CycleResult[] = [];
  for (let i = 1; i < snaps.length; i++) {
    const a = snaps[i - 1] as Snap;
    const b = snaps[i] as Snap;
    const c = WARMUP + i - 1; // the scheduler cycle this window reports
    const cycleStart = epoch + c * INTERVAL_MS;
    const polls = pollsOf(b.samples) - pollsOf(a.samples);
    const ok = pollsOf(b.samples, "ok") - pollsOf(a.samples, "ok");
    const cpuMs = cpuDeltaMs(a, b);
    const lateMetric = b.samples.some((x) => x.name === "polyfleet_agent_poll_late_total");
    const late = lateMetric
      ? sumOf(b.samples, "polyfleet_agent_poll_late_total") -
        sumOf(a.samples, "polyfleet_agent_poll_late_total")
      : null;
    const maxLate = maxOf(b.samples, "polyfleet_agent_poll_max_lateness_seconds") ?? null;
    const skipped =
      sumOf(b.samples, "polyfleet_agent_poll_skipped_total") -
      sumOf(a.samples, "polyfleet_agent_poll_skipped_total");
    const timing = observer.timing(answering, cycleStart, cycleStart + INTERVAL_MS, INTERVAL_MS, JITTER);
    // Inside the interval, from the agent's metrics: nothing skipped, nothing started > 1 s late, and about
    // one ok poll per answering device (±jitter).
    const why: string[] = [];
    if (skipped > 0) why.push(`${skipped} skipped`);
    if (late !== null && late > 0) why.push(`${late} late`);
    if (late === null && timing.lateGaps > 0) why.push(`${timing.lateGaps} answering devices polled late`);
    if (ok < 0.9 * answering.length)
      why.push(`only ${ok} ok polls for ${answering.length} answering devices`);
    const elu =
      a.probe && b.probe
        ? (100 * (b.probe.eluActiveMs - a.probe.eluActiveMs)) /
          Math.max(1, b.probe.eluActiveMs - a.probe.eluActiveMs + b.probe.eluIdleMs - a.probe.eluIdleMs)
        : null;
    cycles.push({
      cycle: c,
      seconds: r1((b.t - a.t) / 1000),
      cpuMs: r1(cpuMs),
      procCpuMs: b.procCpuMs - a.procCpuMs,
      polls,
      ok,
      failed: pollsOf(b.samples, "failed") - pollsOf(a.samples, "failed"),
      timeout: pollsOf(b.samples, "timeout") - pollsOf(a.samples, "timeout"),
      skipped,
      late,
      maxLatenessSec: maxLate,
      cycleDue: maxOf(b.samples, "polyfleet_agent_cycle_polls_due") ?? null,
      cycleDone: maxOf(b.samples, "polyfleet_agent_cycle_polls_done") ?? null,
      cpuUsPerPoll: polls > 0 ? Math.round((cpuMs * 1000) / polls) : null,
      cpuUsPerOkPoll: ok > 0 ? Math.round((cpuMs * 1000) / ok) : null,
      eventLoopBusyPct: elu === null ? null : r1(elu),
      rssMB: mb(b.rssBytes),
      heapUsedMB: b.probe ? mb(b.probe.heapUsed) : null,
      heapTotalMB: b.probe ? mb(b.probe.heapTotal) : null,
      externalMB: b.probe ? mb(b.probe.external) : null,
      outboxDepth: typeof b.health?.outboxDepth === "number" ? b.health.outboxDepth : null,
      answering: timing,
      inside: why.length === 0,
      why,
    });
  }
  const polls = pollsOf(last.samples) - pollsOf(first.samples);
  const okPolls = pollsOf(last.samples, "ok") - pollsOf(first.samples, "ok");
  const cpuMs = cpuDeltaMs(first, last);
  const dur = histogramDelta(
    histogram(last.samples, "polyfleet_agent_poll_duration_seconds"),
    histogram(first.samples, "polyfleet_agent_poll_duration_seconds"),
  );
  const endRss = last.rssBytes;
  const answeringTiming = observer.timing(
    answering,
    epoch + WARMUP * INTERVAL_MS,
    epoch + (WARMUP + measured) * INTERVAL_MS,
    INTERVAL_MS,
    JITTER,
  );
  const perfReport = perfFile && existsSync(perfFile) ? perfSummary(perfFile, 30) : undefined;
  let profile: string | undefined;
  if (profFile) {
    for (let i = 0; i < 200 && !existsSync(profFile); i++) await sleep(50);
    profile = existsSync(profFile) ? profFile : undefined;
  }
  await stopChild(agent);
  removePerfMap(agent.pid);
  await sleep(300);
  await observer.stop();
  await collector.stop();
  const lastSeq = typeof last.health?.lastSeq === "number" ? last.health.lastSeq : null;
  return {
    phase: name,
    devices: devices.length,
    answering: answering.length,
    byDriver,
    cycles,
    seconds: r1((last.t - first.t) / 1000),
    polls,
    okPolls,
    cpuMs: r1(cpuMs),
    procCpuMs: last.procCpuMs - first.procCpuMs,
    cpuUsPerPoll: polls > 0 ? Math.round((cpuMs * 1000) / polls) : null,
    cpuUsPerOkPoll: okPolls > 0 ? Math.round((cpuMs * 1000) / okPolls) : null,
    procResolutionUsPerPoll: polls > 0 ? Math.round(20_000 / polls) : null,
    peakRssMB: mb(Math.max(peakRss, endRss)),
    endRssMB: mb(endRss),
    okDurationSec:
      dur.count > 0
        ? {
            p50: bucketQuantile(dur, 0.5),
            p99: bucketQuantile(dur, (0.99 * okPolls) / dur.count),
            atOrBelow1s: countAtOrBelow(dur, 1),
          }
        : null,
    answeringTiming,
    collector: {
      stored: collector.watermark(),
      messages: collector.messages,
      acksSent: collector.acksSent,
      invalid: collector.invalid,
      duplicates: collector.duplicates,
      gaps: collector.gaps().length,
      lastSeq,
    },
    agentStderrLines: agent.stderrLines,
    agentStderrTail: agent.stderr.slice(-5),
    ...(profile ? { profile } : {}),
    ...(perfReport ? { perfReport } : {}),
  };
}

/** The agent with no device at all: its CPU per second when nothing is polled (MQTT keep-alive, timers). */
async function runIdle(env: Env, seconds: number): Promise<IdleResult> {
  const config = phaseConfig(env, "idle", [], await freeTcpPort());
  const collector = new TestCollector({ url: env.brokerUrl, siteId: config.siteId, agentId: config.agentId });
  await collector.start();
  console.log(`\n[idle] the agent with no device, ${seconds} s`);
  const agent = await startAgent("idle", config);
  try {
    await sleep(3000);
    const a = await snapshot(agent);
    await sleep(seconds * 1000);
    const b = await snapshot(agent);
    const cpuMs = cpuDeltaMs(a, b);
    const r: IdleResult = {
      seconds: r1((b.t - a.t) / 1000),
      cpuMs: r1(cpuMs),
      cpuMsPerSec: +((cpuMs * 1000) / (b.t - a.t)).toFixed(2),
      rssMB: mb(b.rssBytes),
    };
    console.log(`  ${r.cpuMsPerSec} ms CPU per second, RSS ${r.rssMB} MB`);
    return r;
  } finally {
    await stopChild(agent);
    removePerfMap(agent.pid);
    await collector.stop();
  }
}

/** With --perf the agent writes JIT symbol names to /tmp/perf-<pid>.map; removed once the agent is gone. */
function removePerfMap(pid: number): void {
  if (values.perf) rmSync(`/tmp/perf-${pid}.map`, { force: true });
}

interface IdleResult {
  seconds: number;
  cpuMs: number;
  cpuMsPerSec: number;
  rssMB: number;
}

/**
 * What one event-loop wake-up costs on this machine: CPU of a process doing nothing but a 5 ms timer. On
 * virtual machines a sleep/wake cycle can cost tens of µs, a floor under every poll's CPU.
 */
async function wakeCostUs(): Promise<number> {
  let n = 0;
  const u0 = process.cpuUsage();
  await new Promise<void>((resolve) => {
    const t = setInterval(() => {
      if (++n >= 400) {
        clearInterval(t);
        resolve();
      }
    }, 5);
  });
  const u = process.cpuUsage(u0);
  return Math.round((u.user + u.system) / n);
}

// ---------------------------------------------------------------------------------------------- bare

const bareProfiles = new Map<BareMode, string>();

async function runBareMode(mode: BareMode, devices: SimDevice[]): Promise<BareResult> {
  const job: BareJob = {
    mode,
    devices,
    ratePerSec: devices.length / INTERVAL_S,
    seconds: BARE_SECONDS,
    timeoutMs: TIMEOUT_MS,
    warmupConcurrency: 32,
  };
  const file = join(dir, `bare-${mode}.json`);
  writeFileSync(file, JSON.stringify(job), { mode: 0o600 });
  const profDir = values["cpu-prof"] ? join(dir, `prof-bare-${mode}`) : undefined;
  const prof = profDir ? ["--cpu-prof", "--cpu-prof-dir", profDir] : [];
  const child = spawn(process.execPath, [...prof, join(here, "agent-bench-bare.js"), file], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (d: string) => {
    out += d;
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  const line = out.trim().split("\n").at(-1) ?? "";
  if (code !== 0 || !line.startsWith("{")) throw new Error(`bare client (${mode}) exited ${code}: ${out}`);
  const r = JSON.parse(line) as BareResult;
  if (profDir && existsSync(profDir)) {
    const f = readdirSync(profDir).find((x) => x.endsWith(".cpuprofile"));
    if (f) bareProfiles.set(mode, join(profDir, f));
  }
  console.log(
    `  bare ${mode}: ${r.polls} polls (${r.requests} requests, ${r.failed} failed) in ${r.seconds} s: ${r.cpuUsPerPoll} µs CPU/poll, ${r.cpuUsPerRequest} µs/request, RSS ${r.rssMB} MB`,
  );
  return r;
}

// ---------------------------------------------------------------------------------------------- main

function verdict(ok: boolean | undefined): string {
  return ok === undefined ? "n/a " : ok ? "PASS" : "MISS";
}

async function main(): Promise<void> {
  const started = Date.now();
  const wakeUs = await wakeCostUs();
  console.log(`machine: one idle event-loop wake-up (5 ms timer) costs ${wakeUs} µs CPU`);
  if (!existsSync(agentMain)) throw new Error(`${agentMain} not found: build the agent first (npx tsc -b)`);
  const useMosquitto = values.broker === "mosquitto" && existsSync("/usr/sbin/mosquitto");
  const broker = useMosquitto ? await startMosquitto() : await startAedes();
  console.log(`broker: ${useMosquitto ? "mosquitto" : "aedes (in-process)"} ${broker.url}`);
  const trapPort = await freeUdpPort();
  let sim: Child | undefined;
  const phases: PhaseResult[] = [];
  let idle: IdleResult | undefined;
  const bare: Partial<Record<BareMode, BareResult>> = {};
  try {
    const s = await startSimulator(broker.url, trapPort);
    sim = s.sim;
    const manifest = s.manifest;
    const baseConfig = parseYaml(readFileSync(s.agentYaml, "utf8")) as AgentConfigInput;
    const env: Env = { brokerUrl: broker.url, manifest, baseConfig, trapPort };
    const all = baseConfig.devices ?? [];
    const byAddr = new Map(manifest.devices.map((d) => [d.address, d]));
    const answers = (d: SimDevice): boolean => d.faults.length === 0;
    const fam = (f: "uc" | "videoos"): SimDevice[] =>
      manifest.devices.filter((d) => d.family === f && answers(d));
    const pick = (list: SimDevice[]) => {
      const set = new Set(list.map((d) => d.address));
      return all.filter((d) => set.has(d.address));
    };
    const families: Record<string, number> = {};
    for (const d of manifest.devices) families[d.family] = (families[d.family] ?? 0) + 1;
    const dead = manifest.devices.filter((d) => !answers(d)).length;
    console.log(`  families ${JSON.stringify(families)}, ${dead} not answering`);

    if (PHASES.has("idle")) idle = await runIdle(env, 10);
    if (PHASES.has("mix")) {
      const answering = manifest.devices.filter(answers).map((d) => d.address);
      phases.push(await runPhase(env, "mix", all, answering, CYCLES));
    }
    if (PHASES.has("uc")) {
      const list = fam("uc");
      phases.push(
        await runPhase(
          env,
          "uc",
          pick(list),
          list.map((d) => d.address),
          FAMILY_CYCLES,
        ),
      );
    }
    if (PHASES.has("videoos")) {
      const list = fam("videoos");
      phases.push(
        await runPhase(
          env,
          "videoos",
          pick(list),
          list.map((d) => d.address),
          FAMILY_CYCLES,
        ),
      );
    }
    if (PHASES.has("snmp")) {
      const list = fam("videoos").filter((d) => d.snmp?.version === "3" && d.snmpPort !== null);
      const snmpCred = Object.entries(baseConfig.credentials ?? {}).find(([, c]) => c.type === "snmpv3")?.[0];
      if (!snmpCred) throw new Error("the simulator's agent config has no snmpv3 credential");
      const devs = pick(list).map((d) => ({
        address: d.address,
        driver: "snmp-generic" as const,
        ...(byAddr.get(d.address)?.snmpPort ? { snmpPort: byAddr.get(d.address)?.snmpPort as number } : {}),
        credentials: [snmpCred],
        tags: ["simulated", "snmp-only"],
      }));
      phases.push(
        await runPhase(
          env,
          "snmp",
          devs,
          list.map((d) => d.address),
          FAMILY_CYCLES,
        ),
      );
    }
    if (PHASES.has("bare")) {
      console.log(
        `\n[bare] bare undici / net-snmp clients, same pace as the agent, ${BARE_SECONDS} s per mode`,
      );
      bare.uc = await runBareMode("uc", fam("uc"));
      const video = fam("videoos");
      bare.videoos = await runBareMode("videoos", video);
      bare["snmp-get"] = await runBareMode("snmp-get", video);
      bare["snmp-bulk"] = await runBareMode("snmp-bulk", video);
    }
  } finally {
    if (sim) await stopChild(sim, 10_000);
    await broker.stop();
  }
  report(phases, bare, idle, wakeUs, (Date.now() - started) / 1000);
}

function report(
  phases: PhaseResult[],
  bare: Partial<Record<BareMode, BareResult>>,
  idle: IdleResult | undefined,
  wakeUs: number,
  seconds: number,
): void {
  for (const p of phases) {
    p.netUsPerPoll =
      idle && p.polls > 0 ? Math.round(((p.cpuMs - idle.cpuMsPerSec * p.seconds) * 1000) / p.polls) : null;
  }
  const ph = (n: string): PhaseResult | undefined => phases.find((p) => p.phase === n);
  const mix = ph("mix");
  const uc = ph("uc");
  const video = ph("videoos");
  const snmpP = ph("snmp");
  console.log(
    `\n===== agent polling benchmark (${DEVICES} devices, ${INTERVAL_S} s interval, ${seconds.toFixed(0)} s)`,
  );
  for (const p of phases) {
    console.log(
      `\n${p.phase}: ${p.devices} devices (${p.answering} answering) — ${p.polls} polls (${p.okPolls} ok) over ${p.cycles.length} cycles`,
    );
    console.log(
      `  agent CPU ${p.cpuMs.toFixed(0)} ms in ${p.seconds} s (/proc ${p.procCpuMs} ms): ${p.cpuUsPerPoll} µs per poll (${p.netUsPerPoll ?? "?"} µs above the idle agent), ${p.cpuUsPerOkPoll} µs per ok poll; RSS peak ${p.peakRssMB} MB, end ${p.endRssMB} MB`,
    );
    for (const c of p.cycles) {
      const t = c.answering;
      console.log(
        `  cycle ${c.cycle}: polls ${c.polls} (ok ${c.ok}, failed ${c.failed}, timeout ${c.timeout}), due/done ${c.cycleDue ?? "?"}/${c.cycleDone ?? "?"}, skipped ${c.skipped}, late ${c.late ?? "n/a"}, max lateness ${c.maxLatenessSec ?? "n/a"} s, ${c.cpuUsPerPoll} µs/poll, loop busy ${c.eventLoopBusyPct ?? "?"} %, RSS ${c.rssMB} MB (V8 heap ${c.heapUsedMB ?? "?"} used / ${c.heapTotalMB ?? "?"} MB, external ${c.externalMB ?? "?"} MB), outbox ${c.outboxDepth ?? "?"} — ${c.inside ? "inside the interval" : `NOT inside: ${c.why.join(", ")}`}`,
      );
      console.log(
        `    answering devices: ${t.ok}/${t.devices} ok, latency p50 ${t.okLatencyMs?.p50 ?? "?"} / p95 ${t.okLatencyMs?.p95 ?? "?"} / p99 ${t.okLatencyMs?.p99 ?? "?"} / max ${t.okLatencyMs?.max ?? "?"} ms, longest gap between poll starts ${t.maxGapMs === undefined ? "?" : (t.maxGapMs / 1000).toFixed(1)} s, late gaps ${t.lateGaps}`,
      );
    }
    console.log(
      `  published: ${p.collector.stored} stored and acked (agent last seq ${p.collector.lastSeq ?? "?"}) in ${p.collector.messages} MQTT messages, ${p.collector.acksSent} acks, ${p.collector.gaps} gaps, ${p.collector.duplicates} duplicates, ${p.collector.invalid} invalid; agent stderr ${p.agentStderrLines} lines`,
    );
    if (p.agentStderrLines > 0) for (const l of p.agentStderrTail) console.log(`    | ${l.slice(0, 300)}`);
  }

  const perReq = (agentUs: number | null | undefined, b: BareResult | undefined): number | undefined =>
    agentUs != null && b && b.polls > 0 ? agentUs / (b.requests / b.polls) : undefined;
  const ratio = (agentUs: number | null | undefined, b: BareResult | undefined): number | undefined =>
    agentUs != null && b?.cpuUsPerPoll ? agentUs / b.cpuUsPerPoll : undefined;
  const ucRatio = ratio(uc?.cpuUsPerPoll, bare.uc);
  const videoRatio = ratio(video?.cpuUsPerPoll, bare.videoos);
  const snmpRatio = ratio(snmpP?.cpuUsPerPoll, bare["snmp-bulk"]);
  const snmpRatioGet = ratio(snmpP?.cpuUsPerPoll, bare["snmp-get"]);
  const peakRss = phases.length ? Math.max(...phases.map((p) => p.peakRssMB)) : undefined;
  const allCycles = phases.flatMap((p) => p.cycles.map((c) => ({ phase: p.phase, c })));
  const inside = allCycles.filter((x) => x.c.inside).length;
  const fmt = (n: number | undefined | null, d = 0): string => (n == null ? "n/a" : n.toFixed(d));

  console.log(
    "\nper family (agent CPU per poll vs the bare client doing the same requests at the same pace):",
  );
  const row = (label: string, p: PhaseResult | undefined, b: BareResult | undefined, r: number | undefined) =>
    console.log(
      `  ${label.padEnd(36)} agent ${fmt(p?.cpuUsPerPoll).padStart(5)} µs/poll (net of idle ${fmt(p?.netUsPerPoll)}; ≈${fmt(perReq(p?.cpuUsPerPoll, b))} µs/request)   bare ${fmt(b?.cpuUsPerPoll).padStart(5)} µs/poll (${fmt(b?.cpuUsPerRequest)} µs/request, ${b ? (b.requests / Math.max(1, b.polls)).toFixed(2) : "?"} requests/poll)   ratio ${fmt(r, 2)}×`,
    );
  row("UC phone (poly-ucs, HTTPS)", uc, bare.uc, ucRatio);
  row("VideoOS (poly-videoos, REST + SNMP)", video, bare.videoos, videoRatio);
  row("SNMP (snmp-generic, 1 GETBULK)", snmpP, bare["snmp-bulk"], snmpRatio);
  if (bare["snmp-get"])
    console.log(
      `  bare SNMPv3 10-OID get: ${bare["snmp-get"].cpuUsPerPoll} µs/request (agent snmp-generic poll / this = ${fmt(snmpRatioGet, 2)}×)`,
    );
  if (mix?.cpuUsPerPoll != null) {
    const cores = (mix.cpuUsPerPoll * 10_000) / INTERVAL_S / 1e6;
    console.log(
      `  mix (all devices, 10 % dead): ${mix.cpuUsPerPoll} µs per poll → 10,000 devices every ${INTERVAL_S} s ≈ ${cores.toFixed(2)} of one core`,
    );
  }

  const goals: { goal: string; value: string; ok: boolean | undefined }[] = [
    {
      goal: "≤ 1 ms CPU per UC phone poll",
      value: `${fmt(uc?.cpuUsPerPoll)} µs`,
      ok: uc?.cpuUsPerPoll == null ? undefined : uc.cpuUsPerPoll <= 1000,
    },
    {
      goal: "≤ 100 µs CPU per SNMP poll",
      value: `${fmt(snmpP?.cpuUsPerPoll)} µs`,
      ok: snmpP?.cpuUsPerPoll == null ? undefined : snmpP.cpuUsPerPoll <= 100,
    },
    {
      goal: "≤ 1.5× bare client, UC",
      value: `${fmt(ucRatio, 2)}×`,
      ok: ucRatio === undefined ? undefined : ucRatio <= 1.5,
    },
    {
      goal: "≤ 1.5× bare client, VideoOS",
      value: `${fmt(videoRatio, 2)}×`,
      ok: videoRatio === undefined ? undefined : videoRatio <= 1.5,
    },
    {
      goal: "≤ 1.5× bare client, SNMP",
      value: `${fmt(snmpRatio, 2)}×`,
      ok: snmpRatio === undefined ? undefined : snmpRatio <= 1.5,
    },
    {
      goal: "≤ 200 MB RSS",
      value: `${fmt(peakRss, 1)} MB peak`,
      ok: peakRss === undefined ? undefined : peakRss <= 200,
    },
    {
      goal: "every cycle inside the interval",
      value: `${inside}/${allCycles.length} cycles`,
      ok: allCycles.length === 0 ? undefined : inside === allCycles.length,
    },
  ];
  console.log("\ngoals:");
  for (const g of goals) console.log(`  ${verdict(g.ok)}  ${g.goal.padEnd(34)} ${g.value}`);

  for (const p of phases) {
    if (!p.profile) continue;
    console.log(`\n[${p.phase}] CPU profile of the agent over the measured cycles:`);
    console.log(formatProfile(summarizeProfile(p.profile, 25)));
  }
  for (const p of phases) {
    if (!p.perfReport) continue;
    console.log(
      `\n[${p.phase}] perf profile of the agent process over the measured cycles (% of its samples):`,
    );
    console.log(p.perfReport);
  }
  for (const [mode, f] of bareProfiles) {
    console.log(`\n[bare ${mode}] CPU profile of the bare client (warm-up included):`);
    console.log(formatProfile(summarizeProfile(f, 15)));
  }

  const result = {
    bench: "agent",
    devices: DEVICES,
    intervalSec: INTERVAL_S,
    noAnswerPct: NO_ANSWER,
    seconds: Math.round(seconds),
    wakeUpCostUs: wakeUs,
    idle: idle ?? null,
    phases: phases.map((p) => ({ ...p, agentStderrTail: undefined, perfReport: undefined })),
    bare,
    perFamily: {
      ucUsPerPoll: uc?.cpuUsPerPoll ?? null,
      videoosUsPerPoll: video?.cpuUsPerPoll ?? null,
      snmpUsPerPoll: snmpP?.cpuUsPerPoll ?? null,
      mixUsPerPoll: mix?.cpuUsPerPoll ?? null,
      ratioUc: ucRatio ?? null,
      ratioVideoos: videoRatio ?? null,
      ratioSnmp: snmpRatio ?? null,
      ratioSnmpVsGet10: snmpRatioGet ?? null,
    },
    peakRssMB: peakRss ?? null,
    cyclesInside: inside,
    cycles: allCycles.length,
    goals: goals.map((g) => ({ goal: g.goal, value: g.value, result: verdict(g.ok).trim() })),
  };
  console.log(JSON.stringify(result));
}

try {
  await main();
} finally {
  // The temp dir holds the devices' credentials (manifest, agent configs): removed even on failure.
  if (!values["keep-dir"]) rmSync(dir, { recursive: true, force: true });
  else console.log(`kept ${dir}`);
}
