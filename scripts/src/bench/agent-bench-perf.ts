import { spawnSync } from "node:child_process";

/**
 * Summary of a `perf record -g -p <pid>` of a Node process (what `agent-bench --perf` records): the share of
 * the process's CPU samples by thread, by category (kernel scheduling, kernel network, V8 interpreter and
 * inline caches, JIT-compiled JS, V8 compilers, GC, OpenSSL, SQLite, libc) and the top symbols.
 *
 *   node scripts/dist/bench/agent-bench-perf.js FILE.perf.data [--top 30]
 */

export interface PerfRow {
  pct: number;
  dso: string;
  sym: string;
}

/** Which part of the machine a sampled symbol belongs to. */
export function perfCategory(dso: string, sym: string): string {
  if (dso.includes("kernel")) {
    if (
      /finish_task_switch|__schedule|schedule|_raw_spin_unlock_irq|try_to_wake_up|hrtimer|do_idle|futex/.test(
        sym,
      )
    )
      return "kernel: scheduling, wake-ups, futex";
    if (
      /tcp|udp|ip_|ipv4|skb|sock|net_|dev_|__sys_send|__sys_recv|sendmsg|recvmsg|inet|fib_|nf_|loopback|softirq/.test(
        sym,
      )
    )
      return "kernel: network stack (loopback TCP/UDP)";
    if (/ext4|jbd2|vfs_|filemap|fsync|pwrite|page_cache|iomap|generic_perform_write/.test(sym))
      return "kernel: file I/O (outbox)";
    if (/epoll|ep_poll|poll/.test(sym)) return "kernel: epoll";
    return "kernel: other (syscall entry, copies, page faults)";
  }
  if (dso.startsWith("[JIT]")) return "JS, JIT-compiled (Sparkplug/Maglev/TurboFan code)";
  if (dso.includes("sqlite")) return "SQLite (outbox)";
  if (dso.startsWith("libc") || dso.startsWith("ld-linux")) return "libc (malloc, memcpy)";
  if (dso.includes("libstdc++")) return "libstdc++";
  if (dso === "node") {
    if (/^Builtins_(Interpreter|.*Handler$)/.test(sym) || /Ignition|BytecodeHandler/.test(sym))
      return "V8 interpreter (Ignition bytecode handlers)";
    if (/^Builtins_/.test(sym)) return "V8 builtins (inline caches, calls, object/array/string ops)";
    if (/compiler::|maglev|Maglev|turboshaft|Turboshaft|Compile|Parser|Scanner|baseline::|Baseline/.test(sym))
      return "V8 compilers (JIT compiling)";
    if (
      /Heap|Marking|Mark[A-Z]|Sweep|Scaveng|Evacuat|RememberedSet|Collector|GC|Gc|Page::|MemoryChunk|Worklist/.test(
        sym,
      )
    )
      return "V8 garbage collector";
    if (
      /ssl|SSL|aes|AES|sha[0-9]|SHA|gcm|GCM|EVP|ossl|OPENSSL|OSSL|bn_|x25519|ecp_|chacha|poly1305|CRYPTO|HMAC|hmac/.test(
        sym,
      )
    )
      return "OpenSSL (TLS, SNMP auth/priv)";
    if (/uv_|uv__/.test(sym)) return "libuv";
    if (/^node::/.test(sym)) return "Node C++ bindings";
    return "V8 runtime (C++)";
  }
  return dso;
}

/** Rows of `perf report --sort dso,sym` (whole recording, every thread). */
export function perfRows(file: string): PerfRow[] {
  const r = spawnSync(
    "perf",
    [
      "report",
      "-i",
      file,
      "--stdio",
      "--no-children",
      "-g",
      "none",
      "--sort",
      "dso,sym",
      "--percent-limit",
      "0",
      "-t",
      "|",
    ],
    { encoding: "utf8", maxBuffer: 256 * 2 ** 20 },
  );
  const rows: PerfRow[] = [];
  for (const line of (r.stdout ?? "").split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const [pct, dso, sym] = line.split("|");
    const p = Number.parseFloat(pct ?? "");
    if (!Number.isFinite(p)) continue;
    rows.push({ pct: p, dso: (dso ?? "").trim(), sym: (sym ?? "").trim().replace(/^\[.\]\s*/, "") });
  }
  return rows;
}

/** Share of samples per thread (`tid:comm`), from `perf report --sort pid`. */
export function perfThreads(file: string): { thread: string; pct: number }[] {
  const r = spawnSync(
    "perf",
    ["report", "-i", file, "--stdio", "--no-children", "-g", "none", "--sort", "pid", "-t", "|"],
    { encoding: "utf8", maxBuffer: 64 * 2 ** 20 },
  );
  const out: { thread: string; pct: number }[] = [];
  for (const line of (r.stdout ?? "").split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const [pct, thread] = line.split("|");
    const p = Number.parseFloat(pct ?? "");
    if (Number.isFinite(p)) out.push({ thread: (thread ?? "").trim(), pct: p });
  }
  return out;
}

/**
 * Inclusive share of the JS functions (JIT frames named by `--perf-basic-prof`), from the call graphs: the
 * CPU spent in a function and everything it called (builtins, runtime, natives, kernel) — where a function's
 * own work in inline caches and V8 runtime lands. Only frames of the given path fragments.
 */
export function perfInclusiveJs(file: string, match: RegExp, top: number): PerfRow[] {
  const r = spawnSync(
    "perf",
    [
      "report",
      "-i",
      file,
      "--stdio",
      "--children",
      "-g",
      "none",
      "--sort",
      "dso,sym",
      "--percent-limit",
      "0.3",
      "-t",
      "|",
    ],
    { encoding: "utf8", maxBuffer: 256 * 2 ** 20 },
  );
  const rows: PerfRow[] = [];
  for (const line of (r.stdout ?? "").split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const [children, , dso, sym] = line.split("|");
    const p = Number.parseFloat(children ?? "");
    const name = (sym ?? "").trim().replace(/^\[.\]\s*/, "");
    if (!Number.isFinite(p) || !(dso ?? "").trim().startsWith("[JIT]") || !match.test(name)) continue;
    rows.push({ pct: p, dso: "JIT", sym: name.replace(/^JS:[*~^+]?/, "").replace(/\/work\/main\//, "") });
  }
  return rows.sort((a, b) => b.pct - a.pct).slice(0, top);
}

/** Human-readable summary: threads (first one = main thread), categories, top symbols. */
export function perfSummary(file: string, top = 25): string {
  const rows = perfRows(file);
  if (rows.length === 0) return "  (perf report gave no samples)";
  const cats = new Map<string, number>();
  for (const r of rows) {
    const c = perfCategory(r.dso, r.sym);
    cats.set(c, (cats.get(c) ?? 0) + r.pct);
  }
  const threads = perfThreads(file);
  const fmt = (p: number): string => `${p.toFixed(1).padStart(5)}%`;
  return [
    "  by thread (tid:comm; the first is the main thread, the others V8 GC/compiler workers and libuv):",
    ...threads.slice(0, 8).map((t) => `    ${fmt(t.pct)}  ${t.thread}`),
    "  by category:",
    ...[...cats].sort((a, b) => b[1] - a[1]).map(([c, p]) => `    ${fmt(p)}  ${c}`),
    "  top symbols (self):",
    ...rows.slice(0, top).map((r) => `    ${fmt(r.pct)}  ${r.sym}  [${r.dso}]`),
    "  agent / shared JS functions, inclusive (call graphs; nested functions overlap):",
    ...perfInclusiveJs(file, /\/(agent|shared)\/dist\//, top).map((r) => `    ${fmt(r.pct)}  ${r.sym}`),
    "  library JS functions, inclusive:",
    ...perfInclusiveJs(file, /node_modules|node:/, Math.ceil(top / 2)).map(
      (r) => `    ${fmt(r.pct)}  ${r.sym}`,
    ),
  ].join("\n");
}

if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) {
  const args = process.argv.slice(2);
  const ti = args.indexOf("--top");
  const n = ti >= 0 ? Number(args[ti + 1]) : 25;
  const files = args.filter((a, i) => !a.startsWith("--") && (ti < 0 || i !== ti + 1));
  if (files.length === 0) {
    console.error("usage: agent-bench-perf.js FILE.perf.data [--top N]");
    process.exit(2);
  }
  for (const f of files) {
    console.log(`perf ${f}:`);
    console.log(perfSummary(f, n));
  }
}
