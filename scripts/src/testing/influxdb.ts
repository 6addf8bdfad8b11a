import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freeTcpPort } from "./free-port.js";

export interface InfluxdOptions {
  /** HTTP API port on 127.0.0.1 (default: a free one). */
  port?: number;
  /** The server binary (default /usr/bin/influxd: InfluxDB 1.6 from Debian). */
  binary?: string;
  /** Milliseconds to wait for `/ping` after a (re)start (default 30,000). */
  startTimeoutMs?: number;
}

export interface InfluxdHandle {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** The RPC (backup/restore) port, also on 127.0.0.1. */
  rpcPort: number;
  /** The temp dir holding config, meta, data and WAL. */
  dir: string;
  /** The server's process id (undefined while it is not running). */
  readonly pid: number | undefined;
  /** Sends `signal` (default SIGKILL) and waits for the process to exit. Data stays on disk. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again (after `kill`, or kills it first) on the same ports and data, waits for /ping. */
  restart(): Promise<void>;
  /** Stops the server (SIGTERM, then SIGKILL) and removes its temp dir. */
  stop(): Promise<void>;
  /** The server's recent log lines. */
  log(): string[];
}

/**
 * Spawns the real InfluxDB 1.x (`influxd run -config <generated>`) in a temp dir. Every listener is on
 * 127.0.0.1 with a free port: the HTTP API and the RPC service (whose stock address is port 8088; 1.6's
 * `ifql` listener is disabled and moved off 8082 too). Usage reporting, the `_internal` monitor store,
 * subscriptions, continuous queries, graphite, collectd, opentsdb and UDP are off; meta, data and WAL live
 * in the temp dir. Resolves once `/ping` answers 204.
 */
export async function startInfluxd(opts: InfluxdOptions = {}): Promise<InfluxdHandle> {
  const port = opts.port ?? (await freeTcpPort());
  let rpcPort = await freeTcpPort();
  while (rpcPort === port) rpcPort = await freeTcpPort();
  let ifqlPort = await freeTcpPort();
  while (ifqlPort === port || ifqlPort === rpcPort) ifqlPort = await freeTcpPort();
  const binary = opts.binary ?? "/usr/bin/influxd";
  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;
  const dir = await mkdtemp(join(tmpdir(), "polyfleet-influxd-"));
  const conf = join(dir, "influxdb.conf");
  const q = (s: string): string => JSON.stringify(s);
  await writeFile(
    conf,
    [
      // Upstream's key is `reporting-disabled`; Debian's 1.6 build renamed it `reporting-enabled`. Set both.
      "reporting-disabled = true",
      "reporting-enabled = false",
      `bind-address = ${q(`127.0.0.1:${rpcPort}`)}`,
      "[meta]",
      `  dir = ${q(join(dir, "meta"))}`,
      "  logging-enabled = false",
      "[data]",
      `  dir = ${q(join(dir, "data"))}`,
      `  wal-dir = ${q(join(dir, "wal"))}`,
      "  query-log-enabled = false",
      "[monitor]",
      "  store-enabled = false",
      "[subscriber]",
      "  enabled = false",
      "[continuous_queries]",
      "  enabled = false",
      "[http]",
      "  enabled = true",
      `  bind-address = ${q(`127.0.0.1:${port}`)}`,
      "  auth-enabled = false",
      "  log-enabled = false",
      "  pprof-enabled = false",
      "  unix-socket-enabled = false",
      "[ifql]",
      "  enabled = false",
      `  bind-address = ${q(`127.0.0.1:${ifqlPort}`)}`,
      "[logging]",
      '  level = "warn"',
      "  suppress-logo = true",
      "[[graphite]]",
      "  enabled = false",
      "[[collectd]]",
      "  enabled = false",
      "[[opentsdb]]",
      "  enabled = false",
      "[[udp]]",
      "  enabled = false",
      "",
    ].join("\n"),
  );
  const logLines: string[] = [];
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const onData = (d: string): void => {
    for (const line of d.split("\n")) if (line) logLines.push(line);
    if (logLines.length > 300) logLines.splice(0, logLines.length - 300);
  };

  const launch = async (): Promise<void> => {
    const c = spawn(binary, ["run", "-config", conf], { stdio: ["ignore", "pipe", "pipe"] });
    child = c;
    exited = new Promise<void>((resolve) => {
      c.once("exit", () => resolve());
      c.once("error", () => resolve());
    });
    c.stdout?.setEncoding("utf8");
    c.stderr?.setEncoding("utf8");
    c.stdout?.on("data", onData);
    c.stderr?.on("data", onData);
    const until = Date.now() + startTimeoutMs;
    for (;;) {
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(`influxd exited at start (port ${port}): ${logLines.slice(-5).join(" | ")}`);
      }
      if ((await ping(port)) === 204) return;
      if (Date.now() > until) throw new Error(`influxd did not answer /ping on 127.0.0.1:${port} in time`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const kill = async (signal: NodeJS.Signals = "SIGKILL"): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill(signal);
    await exited;
    child = undefined;
  };

  try {
    await launch();
  } catch (err) {
    await kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    rpcPort,
    dir,
    get pid() {
      return child?.pid;
    },
    kill,
    restart: async () => {
      await kill("SIGKILL");
      await launch();
    },
    stop: async () => {
      const c = child;
      if (c && c.exitCode === null && c.signalCode === null) {
        c.kill("SIGTERM");
        const t = setTimeout(() => c.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(t);
      }
      child = undefined;
      await rm(dir, { recursive: true, force: true });
    },
    log: () => [...logLines],
  };
}

/** GET /ping: the status code, or 0 when nothing answers. */
function ping(port: number): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path: "/ping", method: "GET", timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once("timeout", () => req.destroy());
    req.once("error", () => resolve(0));
    req.end();
  });
}
