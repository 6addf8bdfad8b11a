import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import type { AuditVerifyResult } from "@polyfleet/shared";
import Database from "better-sqlite3";
import {
  DEFAULT_AUDIT_KEY_FILE,
  loadAuditPublicKey,
  NODE_AUDIT_CRYPTO,
} from "../adapters/audit/audit-key.js";
import { SqliteAuditLog } from "../adapters/audit/sqlite-audit-log.js";
import type { AuditPublicKey } from "../core/audit/audit-chain.js";
import { verifyAuditExport } from "../core/audit/audit-export.js";

/** Where the CLI writes: text including its trailing newline. */
export interface AuditCliIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

export const AUDIT_CLI_USAGE = `usage:
  polyfleet audit verify --db <state.db> [--public-key <pem>]... [--key-file <pem>] [--expect-head <seq>:<hash>] [--json]
  polyfleet audit verify --file <export.jsonl> --public-key <pem>... [--expect-head <seq>:<hash>] [--json]
  polyfleet audit export --db <state.db> [--out <export.jsonl>]

verify checks sequence, hash chain, every checkpoint's ed25519 signature and the signed head, and names the
first bad entry. Only the given keys are trusted (a public key PEM, or the private key file, whose public half
is used); with --db and no key, <dir of state.db>/${DEFAULT_AUDIT_KEY_FILE} is used. --expect-head checks the
log still holds an entry remembered from earlier (printed by export): the only way to catch a rollback of the
whole log to an older state. Exit codes: 0 verified, 1 tampered (first bad entry printed), 2 usage error.`;

class UsageError extends Error {}

function isUsage(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof UsageError || (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS"));
}

function parseAnchor(text: string | undefined): { seq: number; hash: string } | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+):([0-9a-f]{64})$/.exec(text);
  if (m === null) throw new UsageError("--expect-head must be <seq>:<64 hex digits>");
  return { seq: Number(m[1]), hash: m[2] ?? "" };
}

function report(result: AuditVerifyResult, json: boolean, io: AuditCliIo, headNote: string): number {
  if (json) io.stdout(`${JSON.stringify(result)}\n`);
  if (result.ok) {
    if (!json)
      io.stdout(`OK: ${result.entries} entries, ${result.checkpoints} checkpoints verified${headNote}\n`);
    return 0;
  }
  const bad = result.firstBad;
  const line = `TAMPERED: first bad entry seq ${bad?.seq ?? "?"}: ${bad?.reason ?? "unknown"}\n`;
  if (json) io.stderr(line);
  else io.stdout(line);
  return 1;
}

function openDb(path: string): Database.Database {
  if (!existsSync(path)) throw new UsageError(`no such database: ${path}`);
  return new Database(path, { readonly: true, fileMustExist: true });
}

/**
 * `polyfleet audit <verify|export> ...` (argv after `audit`). Resolves to the exit code: 0 ok, 1 tampered,
 * 2 usage error (bad arguments, unreadable file or key).
 */
export async function runAuditCli(argv: readonly string[], io: AuditCliIo): Promise<number> {
  await Promise.resolve();
  const [command, ...rest] = argv;
  try {
    const { values } = parseArgs({
      args: rest,
      strict: true,
      allowPositionals: false,
      options: {
        db: { type: "string" },
        file: { type: "string" },
        out: { type: "string" },
        "public-key": { type: "string", multiple: true },
        "key-file": { type: "string" },
        "expect-head": { type: "string" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
    if (values.help || command === "help" || command === "--help" || command === "-h") {
      io.stdout(`${AUDIT_CLI_USAGE}\n`);
      return 0;
    }
    if (command === "verify") {
      if ((values.db === undefined) === (values.file === undefined)) {
        throw new UsageError("verify needs exactly one of --db or --file");
      }
      const anchor = parseAnchor(values["expect-head"]);
      const keyFiles = [...(values["public-key"] ?? []), ...(values["key-file"] ? [values["key-file"]] : [])];
      if (keyFiles.length === 0 && values.db !== undefined) {
        const guess = join(dirname(values.db), DEFAULT_AUDIT_KEY_FILE);
        if (existsSync(guess)) keyFiles.push(guess);
      }
      if (keyFiles.length === 0) throw new UsageError("verify needs a trusted key: --public-key <pem>");
      const trustedKeys: AuditPublicKey[] = keyFiles.map((f) => loadAuditPublicKey(f));
      if (values.file !== undefined) {
        let text: string;
        try {
          text = readFileSync(values.file, "utf8");
        } catch {
          throw new UsageError(`cannot read ${values.file}`);
        }
        const result = verifyAuditExport(text, { trustedKeys, crypto: NODE_AUDIT_CRYPTO, anchor });
        return report(result, values.json, io, "");
      }
      const db = openDb(values.db ?? "");
      try {
        const log = new SqliteAuditLog({ db, trustedKeys });
        const result = log.verifySync({ anchor });
        const head = log.head();
        return report(result, values.json, io, head ? `; head ${head.seq}:${head.hash}` : "");
      } finally {
        db.close();
      }
    }
    if (command === "export") {
      if (values.db === undefined) throw new UsageError("export needs --db <state.db>");
      const db = openDb(values.db);
      try {
        const log = new SqliteAuditLog({ db });
        const lines = log.exportLines();
        const text = lines.length > 0 ? `${lines.join("\n")}\n` : "";
        if (values.out === undefined) io.stdout(text);
        else writeFileSync(values.out, text);
        const head = log.head();
        io.stderr(
          `exported ${lines.length} lines${head ? `; head ${head.seq}:${head.hash} (keep it for --expect-head)` : ""}\n`,
        );
        return 0;
      } finally {
        db.close();
      }
    }
    throw new UsageError(command === undefined ? "missing command" : `unknown command: ${command}`);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    io.stderr(`polyfleet audit: ${message}\n${isUsage(err) ? `${AUDIT_CLI_USAGE}\n` : ""}`);
    return 2;
  }
}
