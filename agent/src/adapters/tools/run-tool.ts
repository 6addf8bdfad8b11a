import { spawn } from "node:child_process";
import { PolyfleetError } from "@polyfleet/shared";

/** What a finished (or stopped) tool run left behind. */
export interface ToolRun {
  exitCode: number | null;
  /** The signal that ended the process, if one did. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The run was stopped by the abort signal (time limit or agent stop). */
  aborted: boolean;
}

export interface RunToolOptions {
  signal: AbortSignal;
  /** Debian package that provides the tool, named in the error when it is missing. */
  packageName: string;
  /** Signal sent on abort (default SIGTERM; ping prints its statistics on SIGINT). */
  killSignal?: NodeJS.Signals;
  /** Bytes kept per stream (default 1 MiB); more output is discarded. */
  maxOutputBytes?: number;
}

/**
 * A fixed PATH: the tools are looked up in the system directories only, never in a directory an attacker
 * could put first in the agent's environment.
 */
const SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * Runs a system tool with an argument list — never through a shell — in the C locale (so its numbers and
 * messages have one form to parse). Resolves when the process has exited, also after an abort (the process
 * gets `killSignal`, then SIGKILL after 2 s). Rejects only when the tool cannot be started:
 * POLYFLEET_ERR_TOOL_UNAVAILABLE naming the package to install.
 */
export function runTool(bin: string, args: readonly string[], opts: RunToolOptions): Promise<ToolRun> {
  const max = opts.maxOutputBytes ?? 1 << 20;
  const name = bin.split("/").pop() ?? bin;
  return new Promise((resolve, reject) => {
    if (opts.signal.aborted) {
      resolve({ exitCode: null, signal: null, stdout: "", stderr: "", aborted: true });
      return;
    }
    const child = spawn(bin, args, {
      shell: false,
      stdio: ["ignore", "pipe", "pipe"],
      env: { PATH: SAFE_PATH, LC_ALL: "C", LANG: "C" },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let aborted = false;
    let killTimer: NodeJS.Timeout | undefined;
    child.stdout.on("data", (b: Buffer) => {
      if (outBytes < max) out.push(b.subarray(0, max - outBytes));
      outBytes += b.length;
    });
    child.stderr.on("data", (b: Buffer) => {
      if (errBytes < max) err.push(b.subarray(0, max - errBytes));
      errBytes += b.length;
    });
    const onAbort = (): void => {
      aborted = true;
      child.kill(opts.killSignal ?? "SIGTERM");
      killTimer = setTimeout(() => child.kill("SIGKILL"), 2000);
      killTimer.unref();
    };
    opts.signal.addEventListener("abort", onAbort, { once: true });
    const cleanup = (): void => {
      opts.signal.removeEventListener("abort", onAbort);
      if (killTimer) clearTimeout(killTimer);
    };
    child.once("error", (e: NodeJS.ErrnoException) => {
      cleanup();
      if (e.code === "ENOENT" || e.code === "EACCES") {
        const what = e.code === "ENOENT" ? "is not installed" : "cannot be executed";
        reject(
          new PolyfleetError(
            "POLYFLEET_ERR_TOOL_UNAVAILABLE",
            `${name} ${what} on the agent host (install the Debian package ${opts.packageName})`,
            { cause: e },
          ),
        );
      } else {
        reject(
          new PolyfleetError(
            "POLYFLEET_ERR_COMMAND_FAILED",
            `${name} could not be started: ${e.code ?? e.message}`,
            { cause: e },
          ),
        );
      }
    });
    child.once("close", (exitCode, signal) => {
      cleanup();
      resolve({
        exitCode,
        signal,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        aborted,
      });
    });
  });
}

/** The first non-empty line of a tool's stderr, cut to a readable length, for an error message. */
export function firstLine(text: string, max = 200): string {
  const line =
    text
      .split("\n")
      .find((l) => l.trim().length > 0)
      ?.trim() ?? "";
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

/** The caller's signal combined with the tool's own time limit. */
export function withDeadline(signal: AbortSignal, ms: number): AbortSignal {
  return AbortSignal.any([signal, AbortSignal.timeout(ms)]);
}
