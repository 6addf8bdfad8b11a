import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { performance } from "node:perf_hooks";

/**
 * Preloaded into the agent child by `agent-bench`
 * (`node --import …/agent-bench-probe.js agent/dist/main.js`): on SIGUSR2 it writes the process's own CPU
 * time (getrusage: microseconds, where /proc/<pid>/stat counts 10 ms ticks), memory and event-loop
 * utilisation to `$POLYFLEET_BENCH_PROBE_FILE`. It adds no timer and no work between signals; a signal
 * listener does not keep the process alive.
 *
 * With `--cpu-prof` the benchmark also drops a command into `<file>.cmd` before the signal: `start` begins
 * V8 CPU profiling (in-process inspector session), `stop <path>` writes the `.cpuprofile` — so a profile
 * covers exactly the measured cycles, not the start-up and warm-up.
 */
export interface ProbeSample {
  seq: number;
  t: number;
  cpuUs: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  /** Event loop busy time (ms) since the probe loaded. */
  eluActiveMs: number;
  eluIdleMs: number;
  /** The profiler command handled with this sample, if any. */
  cmd?: string;
}

const file = process.env.POLYFLEET_BENCH_PROBE_FILE;
if (file) {
  let seq = 0;
  let session: Session | undefined;
  const elu0 = performance.eventLoopUtilization();
  const command = (): string | undefined => {
    const cmdFile = `${file}.cmd`;
    if (!existsSync(cmdFile)) return undefined;
    const cmd = readFileSync(cmdFile, "utf8").trim();
    rmSync(cmdFile, { force: true });
    if (cmd === "start" && !session) {
      session = new Session();
      session.connect();
      session.post("Profiler.enable");
      session.post("Profiler.setSamplingInterval", { interval: 500 });
      session.post("Profiler.start");
    } else if (cmd.startsWith("stop ") && session) {
      const out = cmd.slice("stop ".length);
      const s = session;
      session = undefined;
      s.post("Profiler.stop", (err, res) => {
        if (!err) writeFileSync(out, JSON.stringify(res.profile));
        s.disconnect();
      });
    }
    return cmd;
  };
  process.on("SIGUSR2", () => {
    const c = process.cpuUsage();
    const m = process.memoryUsage();
    const elu = performance.eventLoopUtilization(elu0);
    let cmd: string | undefined;
    try {
      cmd = command();
    } catch {
      cmd = "failed";
    }
    const s: ProbeSample = {
      seq: ++seq,
      t: Date.now(),
      cpuUs: c.user + c.system,
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
      eluActiveMs: elu.active,
      eluIdleMs: elu.idle,
      ...(cmd ? { cmd } : {}),
    };
    try {
      writeFileSync(`${file}.tmp`, JSON.stringify(s));
      renameSync(`${file}.tmp`, file);
    } catch {
      // the benchmark falls back to /proc when no sample arrives
    }
  });
}
