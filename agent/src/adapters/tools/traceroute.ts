import { PolyfleetError } from "@polyfleet/shared";
import { parseTracerouteOutput } from "../../core/tool-parsers.js";
import type { CommandHandler } from "../../ports/command.js";
import { firstLine, runTool, withDeadline } from "./run-tool.js";

export interface TracerouteHandlerOptions {
  /** The traceroute binary (default `traceroute`, looked up in the system directories). */
  bin?: string;
  /** Seconds to wait for each probe's answer (default 3; never more than the command's time limit). */
  probeWaitS?: number;
}

/**
 * `traceroute`: runs Linux `traceroute -n -q 1 -w <wait> -m <maxHops> -- <target>` (no shell) within
 * `timeoutMs` and resolves with the parsed hops. Rejects with POLYFLEET_ERR_TOOL_UNAVAILABLE when traceroute
 * is not installed, POLYFLEET_ERR_COMMAND_FAILED when it printed no route (unknown host), with its message.
 */
export function createTracerouteHandler(opts: TracerouteHandlerOptions = {}): CommandHandler<"traceroute"> {
  const bin = opts.bin ?? "traceroute";
  return async (body, ctx) => {
    const waitS = Math.max(1, Math.min(opts.probeWaitS ?? 3, Math.floor(body.timeoutMs / 1000)));
    const args = ["-n", "-q", "1", "-w", String(waitS), "-m", String(body.maxHops), "--", body.target];
    const run = await runTool(bin, args, {
      signal: withDeadline(ctx.signal, body.timeoutMs),
      packageName: "traceroute",
    });
    const route = parseTracerouteOutput(run.stdout);
    if (route.destination === null && route.hops.length === 0) {
      const why =
        firstLine(run.stderr) ||
        (run.aborted ? "no output before the time limit" : `exit code ${run.exitCode}`);
      throw new PolyfleetError("POLYFLEET_ERR_COMMAND_FAILED", `traceroute ${body.target}: ${why}`);
    }
    return {
      target: body.target,
      destination: route.destination,
      maxHops: body.maxHops,
      reached: route.reached,
      hops: route.hops.map((h) => ({
        hop: h.hop,
        address: h.address,
        rttMs: h.rttMs,
        annotation: h.probes.find((p) => p.annotation !== null)?.annotation ?? null,
      })),
      timedOut: run.aborted,
    };
  };
}
