import { readFileSync } from "node:fs";

/**
 * Summary of a V8 `.cpuprofile` (what `node --cpu-prof` writes): where the busy time went, by function
 * (self and inclusive) and by code origin (agent file, npm package, Node internals, V8/GC).
 *
 *   node scripts/dist/bench/agent-bench-profile.js FILE.cpuprofile [--top 30] [--json]
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileRow {
  name: string;
  ms: number;
  /** Share of the busy (non-idle) time, percent. */
  pct: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  idleMs: number;
  busyMs: number;
  topSelf: ProfileRow[];
  topInclusive: ProfileRow[];
  originSelf: ProfileRow[];
  originInclusive: ProfileRow[];
}

const SPECIAL = new Set(["(root)", "(program)", "(idle)", "(garbage collector)"]);

/** Where a frame's code comes from: agent/shared file, npm package, Node internals, or V8 itself. */
export function originOf(cf: CallFrame): string {
  if (SPECIAL.has(cf.functionName) && cf.url === "") return cf.functionName;
  const url = cf.url;
  if (url === "") return "(V8 builtins / native)";
  if (url.startsWith("node:")) {
    const m = /^node:(?:internal\/)?([^/]+)/.exec(url);
    return `node:${m?.[1] ?? url}`;
  }
  const nm = url.lastIndexOf("/node_modules/");
  if (nm >= 0) {
    const rest = url.slice(nm + "/node_modules/".length).split("/");
    const pkg = rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1] ?? ""}` : (rest[0] ?? "?");
    return `npm:${pkg}`;
  }
  const ws = /\/(agent|shared|scripts|collector|firmware-catalog)\/(?:dist|src)\/(.+)$/.exec(url);
  if (ws) return `${ws[1]}:${ws[2]}`;
  return url;
}

function frameKey(cf: CallFrame): string {
  if (SPECIAL.has(cf.functionName) && cf.url === "") return cf.functionName;
  const origin = originOf(cf);
  const name = cf.functionName || "(anonymous)";
  return cf.url === "" ? `${name} [native]` : `${name} (${origin}:${cf.lineNumber + 1})`;
}

function top(map: Map<string, number>, busy: number, n: number, skip: (k: string) => boolean): ProfileRow[] {
  return [...map]
    .filter(([k]) => !skip(k))
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, us]) => ({ name, ms: +(us / 1000).toFixed(1), pct: +((100 * us) / busy).toFixed(1) }));
}

/** Reads and summarises one profile. */
export function summarizeProfile(file: string, n = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const node of p.nodes) byId.set(node.id, node);
  // Self time per node (µs): each sample gets the time until the next one.
  const self = new Map<number, number>();
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  const total = p.endTime - p.startTime;
  if (samples.length > 0) {
    for (let i = 0; i < samples.length; i++) {
      const id = samples[i] as number;
      const dt = deltas[i + 1] ?? total / samples.length;
      self.set(id, (self.get(id) ?? 0) + Math.max(0, dt));
    }
  } else {
    const hits = p.nodes.reduce((s, x) => s + (x.hitCount ?? 0), 0) || 1;
    for (const node of p.nodes) self.set(node.id, ((node.hitCount ?? 0) * total) / hits);
  }
  let idle = 0;
  let sum = 0;
  for (const [id, us] of self) {
    sum += us;
    if (byId.get(id)?.callFrame.functionName === "(idle)") idle += us;
  }
  const busy = Math.max(1, sum - idle);

  const selfByFn = new Map<string, number>();
  const selfByOrigin = new Map<string, number>();
  const inclByFn = new Map<string, number>();
  const inclByOrigin = new Map<string, number>();
  const fnOnStack = new Map<string, number>();
  const originOnStack = new Map<string, number>();
  const root = p.nodes[0];
  // Iterative DFS; a function (or origin) counts once per sample however often it recurs on the stack.
  const stack: { node: ProfileNode; entered: boolean }[] = root ? [{ node: root, entered: false }] : [];
  while (stack.length > 0) {
    const top0 = stack[stack.length - 1] as { node: ProfileNode; entered: boolean };
    const cf = top0.node.callFrame;
    const fk = frameKey(cf);
    const ok = originOf(cf);
    if (!top0.entered) {
      top0.entered = true;
      fnOnStack.set(fk, (fnOnStack.get(fk) ?? 0) + 1);
      originOnStack.set(ok, (originOnStack.get(ok) ?? 0) + 1);
      const us = self.get(top0.node.id) ?? 0;
      if (us > 0) {
        selfByFn.set(fk, (selfByFn.get(fk) ?? 0) + us);
        selfByOrigin.set(ok, (selfByOrigin.get(ok) ?? 0) + us);
        if (cf.functionName !== "(idle)") {
          for (const [k, c] of fnOnStack) if (c > 0) inclByFn.set(k, (inclByFn.get(k) ?? 0) + us);
          for (const [k, c] of originOnStack) if (c > 0) inclByOrigin.set(k, (inclByOrigin.get(k) ?? 0) + us);
        }
      }
      for (const cid of top0.node.children ?? []) {
        const child = byId.get(cid);
        if (child) stack.push({ node: child, entered: false });
      }
    } else {
      stack.pop();
      fnOnStack.set(fk, (fnOnStack.get(fk) ?? 1) - 1);
      originOnStack.set(ok, (originOnStack.get(ok) ?? 1) - 1);
    }
  }
  const notIdle = (k: string): boolean => k === "(idle)" || k === "(root)";
  return {
    file,
    totalMs: +(sum / 1000).toFixed(1),
    idleMs: +(idle / 1000).toFixed(1),
    busyMs: +(busy / 1000).toFixed(1),
    topSelf: top(selfByFn, busy, n, notIdle),
    topInclusive: top(inclByFn, busy, n, (k) => notIdle(k) || k === "(program)"),
    originSelf: top(selfByOrigin, busy, n, notIdle),
    originInclusive: top(inclByOrigin, busy, n, notIdle),
  };
}

/** Human-readable rendering of a summary. */
export function formatProfile(s: ProfileSummary): string {
  const rows = (title: string, list: ProfileRow[]): string[] => [
    `  ${title}`,
    ...list.map((r) => `    ${r.pct.toFixed(1).padStart(5)}%  ${r.ms.toFixed(0).padStart(7)} ms  ${r.name}`),
  ];
  return [
    `profile ${s.file}: ${s.totalMs.toFixed(0)} ms sampled, ${s.busyMs.toFixed(0)} ms busy (${s.idleMs.toFixed(0)} ms idle)`,
    ...rows("self time by origin (% of busy):", s.originSelf),
    ...rows("inclusive time by origin:", s.originInclusive),
    ...rows("self time by function:", s.topSelf),
    ...rows("inclusive time by function:", s.topInclusive),
  ].join("\n");
}

if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) {
  const args = process.argv.slice(2);
  const files = args.filter((a) => a.endsWith(".cpuprofile"));
  const ti = args.indexOf("--top");
  const n = ti >= 0 ? Number(args[ti + 1]) : 25;
  if (files.length === 0) {
    console.error("usage: agent-bench-profile.js FILE.cpuprofile [--top N] [--json]");
    process.exit(2);
  }
  for (const f of files) {
    const s = summarizeProfile(f, n);
    console.log(args.includes("--json") ? JSON.stringify(s) : formatProfile(s));
  }
}
