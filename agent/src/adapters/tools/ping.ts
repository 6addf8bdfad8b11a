import { PolyfleetError } from "@polyfleet/shared";
import { parsePingOutput } from "../../core/tool-parsers.js";
import type { CommandHandler } from "../../ports/command.js";
import { firstLine, runTool, withDeadline } from "./run-tool.js";

export interface PingHandlerOptions {
  /** The ping binary (default `ping`, looked up in the system directories). */
  bin?: string;
  /** Seconds between echo requests (default 0.2, the shortest iputils allows without privileges). */
  intervalS?: number;
}

/**
 * `ping`: runs iputils `ping -n -c <count> -i <interval> -W <wait> -- <target>` (no shell). `timeoutMs` bounds
 * the whole run: at that point ping gets SIGINT and reports what it has. Resolves with the parsed summary —
 * loss is a result, not an error; rejects with POLYFLEET_ERR_TOOL_UNAVAILABLE when ping is not installed and
 * POLYFLEET_ERR_COMMAND_FAILED when it printed no statistics (unknown host, no permission), with its message.
 */
export function createPingHandler(opts: PingHandlerOptions = {}): CommandHandler<"ping"> {
  const bin = opts.bin ?? "ping";
  const interval = opts.intervalS ?? 0.2;
  return async (body, ctx) => {
    const waitS = Math.max(1, Math.ceil(body.timeoutMs / 1000));
    const args = [
      "-n",
      "-c",
      String(body.count),
      "-i",
      String(interval),
      "-W",
      String(waitS),
      "--",
      body.target,
    ];
    const run = await runTool(bin, args, {
      signal: withDeadline(ctx.signal, body.timeoutMs),
      packageName: "iputils-ping",
      killSignal: "SIGINT",
    });
    const summary = parsePingOutput(run.stdout);
    if (!summary) {
      const why =
        firstLine(run.stderr) ||
        (run.aborted ? "no answer before the time limit" : `exit code ${run.exitCode}`);
      throw new PolyfleetError("POLYFLEET_ERR_COMMAND_FAILED", `ping ${body.target}: ${why}`);
    }
    return {
      target: body.target,
      address: summary.address,
      transmitted: summary.transmitted,
      received: summary.received,
      lossPercent: summary.lossPercent,
      duplicates: summary.duplicates,
      errors: summary.errors,
      rtt: summary.rtt,
      replies: summary.replies,
      reachable: summary.received > 0,
      timedOut: run.aborted,
    };
  };
}
