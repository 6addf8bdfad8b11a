import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { chown, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freeTcpPort } from "./free-port.js";

const run = promisify(execFile);

export interface PostgresOptions {
  /** Port on 127.0.0.1 (default: a free one). */
  port?: number;
  /** Directory holding initdb/postgres/pg_isready (default: the highest /usr/lib/postgresql/<v>/bin). */
  binDir?: string;
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string>;
}

export interface PostgresHandle {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust auth, no password). */
  url: string;
  port: number;
  /** The URL of another database on the same server (create it first). */
  urlFor(database: string): string;
  /** Stops the server (SIGINT "fast" shutdown, SIGKILL after 5 s) and removes its temp dir. */
  stop(): Promise<void>;
  /** The server's recent log lines. */
  log(): string[];
}

/** The highest installed PostgreSQL server's bin dir (`/usr/lib/postgresql/<major>/bin`). */
export function findPostgresBinDir(root = "/usr/lib/postgresql"): string {
  let versions: string[];
  try {
    versions = readdirSync(root).filter((v) => /^\d+(\.\d+)?$/.test(v));
  } catch {
    versions = [];
  }
  versions.sort((a, b) => Number(b) - Number(a));
  const v = versions[0];
  if (v === undefined) throw new Error(`no PostgreSQL server found under ${root}`);
  return join(root, v, "bin");
}

/**
 * Runs a real PostgreSQL server (initdb + postgres) in a temp dir on 127.0.0.1: trust auth for local
 * connections, the unix socket in the temp dir, fsync off (test data only). PostgreSQL refuses to run as root,
 * so as root the data dir belongs to the `postgres` system user and the binaries run under `runuser -u
 * postgres`. Resolves once the server accepts connections.
 */
export async function startPostgres(opts: PostgresOptions = {}): Promise<PostgresHandle> {
  const bin = opts.binDir ?? findPostgresBinDir();
  const port = opts.port ?? (await freeTcpPort());
  const dir = await mkdtemp(join(tmpdir(), "polyfleet-pg-"));
  const data = join(dir, "data");
  const asRoot = userInfo().uid === 0;
  const wrap = (cmd: string, args: string[]): [string, string[]] =>
    asRoot ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args];

  const logLines: string[] = [];
  let child: ChildProcess | undefined;
  try {
    await mkdir(data, { mode: 0o700 });
    if (asRoot) {
      const { uid, gid } = postgresUser();
      await chown(dir, uid, gid);
      await chown(data, uid, gid);
    }
    const [initCmd, initArgs] = wrap(join(bin, "initdb"), [
      "-D",
      data,
      "-U",
      "postgres",
      "--auth=trust",
      "--no-sync",
      "--encoding=UTF8",
      "--locale=C",
    ]);
    await run(initCmd, initArgs, { timeout: 60_000 });

    const settings: Record<string, string> = {
      listen_addresses: "127.0.0.1",
      port: String(port),
      unix_socket_directories: dir,
      fsync: "off",
      synchronous_commit: "off",
      full_page_writes: "off",
      max_connections: "50",
      ...opts.settings,
    };
    const args = ["-D", data];
    for (const [k, v] of Object.entries(settings)) args.push("-c", `${k}=${v}`);
    const [cmd, cmdArgs] = wrap(join(bin, "postgres"), args);
    const c = spawn(cmd, cmdArgs, { stdio: ["ignore", "ignore", "pipe"] });
    child = c;
    c.stderr?.setEncoding("utf8");
    c.stderr?.on("data", (d: string) => {
      for (const line of d.split("\n")) if (line) logLines.push(line);
      if (logLines.length > 200) logLines.splice(0, logLines.length - 200);
    });

    const until = Date.now() + 30_000;
    for (;;) {
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(`postgres exited at start (port ${port}): ${logLines.slice(-5).join(" | ")}`);
      }
      if (await isReady(bin, port)) break;
      if (Date.now() > until)
        throw new Error(`postgres did not accept connections on port ${port} within 30 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    await shutdown(child, data);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  const urlFor = (db: string) => `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(db)}`;
  let stopped = false;
  return {
    url: urlFor("postgres"),
    port,
    urlFor,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await shutdown(child, data);
      await rm(dir, { recursive: true, force: true });
    },
    log: () => [...logLines],
  };
}

function postgresUser(): { uid: number; gid: number } {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  const f = line?.split(":");
  if (!f || f[2] === undefined || f[3] === undefined) {
    throw new Error("running as root needs the `postgres` system user (install the postgresql package)");
  }
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

async function isReady(bin: string, port: number): Promise<boolean> {
  try {
    await run(join(bin, "pg_isready"), ["-h", "127.0.0.1", "-p", String(port), "-t", "1"], { timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

/** The postmaster's pid from its pid file (the spawned process may be `runuser`, not postgres itself). */
function postmasterPid(data: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function shutdown(child: ChildProcess | undefined, data: string): Promise<void> {
  const pid = postmasterPid(data);
  const signal = (s: NodeJS.Signals) => {
    try {
      if (pid !== undefined) process.kill(pid, s);
      else child?.kill(s);
    } catch {
      // already gone
    }
  };
  const gone = () =>
    (pid === undefined || !alive(pid)) && (!child || child.exitCode !== null || child.signalCode !== null);
  // SIGINT = "fast" shutdown: disconnects clients and exits; SIGKILL if it takes longer than 5 s.
  signal("SIGINT");
  const until = Date.now() + 5000;
  while (!gone() && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
  if (!gone()) {
    signal("SIGKILL");
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    const until2 = Date.now() + 2000;
    while (!gone() && Date.now() < until2) await new Promise((r) => setTimeout(r, 25));
  }
}
