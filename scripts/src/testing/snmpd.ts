import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freeUdpPort } from "./free-port.js";

export interface SnmpdV3User {
  user: string;
  /** Net-SNMP names: SHA (SHA-1), SHA-256, SHA-512. Default SHA-256. */
  authProtocol?: "SHA" | "SHA-256" | "SHA-512";
  authKey: string;
  /** Default AES (AES-128). */
  privProtocol?: "AES" | "AES-256";
  privKey: string;
}

export interface SnmpdOptions {
  /** A read-only v2c community (from 127.0.0.1 only). */
  v2cCommunity?: string;
  /** A read-only v3 user with authPriv. */
  v3User?: SnmpdV3User;
  /** Defaults to /usr/sbin/snmpd. */
  binary?: string;
  /** Extra snmpd.conf lines. */
  extraConfig?: string[];
  /** How long to wait for the first answer. Default 10 s. */
  startTimeoutMs?: number;
}

export interface SnmpdHandle {
  address: string;
  port: number;
  /** The temporary directory (config, persistent state, log). */
  dir: string;
  /** snmpd's log so far (for failure messages). */
  log(): Promise<string>;
  stop(): Promise<void>;
}

function quote(s: string): string {
  if (/["\n\r\\]/.test(s))
    throw new Error("snmpd test secrets must not contain quotes, backslashes or newlines");
  return `"${s}"`;
}

function probe(port: number, opts: SnmpdOptions): Promise<boolean> {
  const auth = opts.v2cCommunity
    ? ["-v2c", "-c", opts.v2cCommunity]
    : opts.v3User
      ? [
          "-v3",
          "-l",
          "authPriv",
          "-u",
          opts.v3User.user,
          "-a",
          opts.v3User.authProtocol ?? "SHA-256",
          "-A",
          opts.v3User.authKey,
          "-x",
          opts.v3User.privProtocol ?? "AES",
          "-X",
          opts.v3User.privKey,
        ]
      : undefined;
  if (!auth) {
    // Nothing configured to ask with: any datagram back is enough, so wait for the log line instead.
    return Promise.resolve(true);
  }
  return new Promise((resolve) => {
    execFile(
      "/usr/bin/snmpget",
      [
        ...auth,
        "-On",
        "-t",
        "0.3",
        "-r",
        "0",
        "-M",
        "/dev/null",
        "-m",
        "",
        `127.0.0.1:${port}`,
        "1.3.6.1.2.1.1.3.0",
      ],
      { timeout: 3000, env: { ...process.env, MIBS: "", MIBDIRS: "/dev/null" } },
      (err) => resolve(!err),
    );
  });
}

/**
 * Starts the real Net-SNMP `snmpd` (Debian's 5.9: SHA-256/512 and AES-256 supported) in the foreground on
 * udp:127.0.0.1:<free port>, with a generated config (`-C -c`: no system config is read), its persistent
 * directory and log in a temporary folder, and no MIB files (`MIBS=""`, numeric OIDs only). Resolves once it
 * answers an SNMP GET. snmpd needs no privilege beyond binding an unprivileged UDP port; it runs fine as
 * root or not (no `-u`/`-g` given, so it does not try to switch user).
 */
export async function startSnmpd(opts: SnmpdOptions = {}): Promise<SnmpdHandle> {
  const dir = await mkdtemp(join(tmpdir(), "polyfleet-snmpd-"));
  const conf = join(dir, "snmpd.conf");
  const logFile = join(dir, "snmpd.log");
  const persist = join(dir, "persist");
  const address = "127.0.0.1";
  let child: ChildProcess | undefined;
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const readLog = async (): Promise<string> => {
    try {
      return await readFile(logFile, "utf8");
    } catch {
      return "";
    }
  };
  const cleanup = async (): Promise<void> => {
    if (child && !exited) {
      const c = child;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          c.kill("SIGKILL");
        }, 3000);
        c.once("exit", () => {
          clearTimeout(t);
          resolve();
        });
        c.kill("SIGTERM");
      });
    }
    await rm(dir, { recursive: true, force: true });
  };

  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freeUdpPort(address);
    const lines = [
      `agentAddress udp:${address}:${port}`,
      "sysName polyfleet-snmpd-test",
      "sysContact polyfleet tests",
    ];
    if (opts.v2cCommunity) lines.push(`rocommunity ${opts.v2cCommunity} 127.0.0.1`);
    if (opts.v3User) {
      const u = opts.v3User;
      lines.push(
        `createUser ${u.user} ${u.authProtocol ?? "SHA-256"} ${quote(u.authKey)} ${u.privProtocol ?? "AES"} ${quote(u.privKey)}`,
        `rouser ${u.user} priv`,
      );
    }
    lines.push(...(opts.extraConfig ?? []));
    await writeFile(conf, `${lines.join("\n")}\n`, { mode: 0o600 });
    exited = undefined;
    const proc = spawn(
      opts.binary ?? "/usr/sbin/snmpd",
      [
        "-f",
        "-Lf",
        logFile,
        "-C",
        "-c",
        conf,
        "-M",
        "/dev/null",
        "-m",
        "",
        "-I",
        "-smux,mteTrigger,mteTriggerConf",
      ],
      {
        stdio: "ignore",
        env: {
          ...process.env,
          SNMP_PERSISTENT_DIR: persist,
          SNMPCONFPATH: dir,
          MIBS: "",
          MIBDIRS: "/dev/null",
        },
      },
    );
    child = proc;
    proc.once("exit", (code, signal) => {
      exited = { code, signal };
    });
    proc.once("error", () => {
      exited = { code: -1, signal: null };
    });
    const until = Date.now() + (opts.startTimeoutMs ?? 10_000);
    let up = false;
    while (Date.now() < until && !exited) {
      if ((await readLog()).includes("NET-SNMP version") && (await probe(port, opts))) {
        up = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    if (up) {
      return {
        address,
        port,
        dir,
        log: readLog,
        stop: cleanup,
      };
    }
    const log = await readLog();
    if (!exited) {
      await new Promise<void>((resolve) => {
        proc.once("exit", () => resolve());
        proc.kill("SIGKILL");
      });
    }
    // A port taken between freeUdpPort and snmpd's bind: try another one.
    if (!/Address already in use|couldn't open udp/i.test(log) || attempt === 2) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`snmpd did not start on ${address}:${port}: ${log.slice(-2000)}`);
    }
  }
  throw new Error("snmpd did not start");
}
