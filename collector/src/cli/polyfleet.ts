import { isProcessEntry } from "@polyfleet/shared";
import { AUDIT_CLI_USAGE, runAuditCli } from "./audit-cli.js";

const USAGE = `polyfleet — administration commands

Usage:
  polyfleet audit verify (--db state.db | --file export.jsonl) [--public-key key.pem]... [--expect-head seq:hash] [--json]
  polyfleet audit export --db state.db [--out export.jsonl]

${AUDIT_CLI_USAGE}`;

/** `polyfleet <command> ...`: returns the exit code. */
export function runPolyfleetCli(argv: readonly string[]): Promise<number> {
  const io = {
    stdout: (t: string) => process.stdout.write(t),
    stderr: (t: string) => process.stderr.write(t),
  };
  const [command, ...rest] = argv;
  if (command === "audit") return runAuditCli(rest, io);
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    io.stdout(USAGE);
    return Promise.resolve(command === undefined ? 2 : 0);
  }
  io.stderr(`polyfleet: unknown command ${command}\n${USAGE}`);
  return Promise.resolve(2);
}

if (isProcessEntry(import.meta.url)) process.exitCode = await runPolyfleetCli(process.argv.slice(2));
