/**
 * Pure bookkeeping for SNMP walks (GETBULK/GETNEXT): OID order, subtree membership, loop and bound
 * detection. The adapter feeds each batch of returned OIDs and follows the verdict.
 */

/** Parses a dotted OID ("1.3.6.1" or ".1.3.6.1") into arcs; undefined when it is not a numeric OID. */
export function parseOid(oid: string): number[] | undefined {
  const s = oid.startsWith(".") ? oid.slice(1) : oid;
  if (s === "") return undefined;
  const parts = s.split(".");
  const out = new Array<number>(parts.length);
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] as string;
    if (p === "" || p.length > 10 || !/^\d+$/.test(p)) return undefined;
    out[i] = Number(p);
  }
  return out;
}

/** Lexicographic order of OIDs by arcs (SNMP's order): negative, 0 or positive. */
export function compareOids(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** True when `oid` lies strictly under `root` (root itself is not in its subtree). */
export function inSubtree(root: readonly number[], oid: readonly number[]): boolean {
  if (oid.length <= root.length) return false;
  for (let i = 0; i < root.length; i++) if (root[i] !== oid[i]) return false;
  return true;
}

export interface WalkLimits {
  maxVarbinds: number;
  maxMs: number;
}

export interface WalkState {
  readonly root: readonly number[];
  /** The last OID accepted (starts at the root: the first answer must follow it). */
  last: readonly number[];
  lastText: string;
  count: number;
  readonly startedAt: number;
}

/** One returned varbind as the walk sees it: its OID and whether it is an exception (endOfMibView...). */
export interface WalkItem {
  oid: string;
  endOfView: boolean;
}

export type WalkVerdict =
  /** Ask again from `next`. */
  | { kind: "continue"; next: string }
  /** The subtree is finished. */
  | { kind: "done" }
  /** A returned OID does not follow the previous one (or repeats it). */
  | { kind: "loop"; previous: string; oid: string }
  /** maxVarbinds or maxMs reached. */
  | { kind: "limit"; bound: "varbinds" | "time" }
  /** A returned OID is not an OID at all. */
  | { kind: "malformed"; oid: string };

export function startWalk(rootOid: string, now: number): WalkState | undefined {
  const root = parseOid(rootOid);
  if (!root) return undefined;
  return {
    root,
    last: root,
    lastText: rootOid.startsWith(".") ? rootOid.slice(1) : rootOid,
    count: 0,
    startedAt: now,
  };
}

/**
 * Feeds one batch of returned varbinds (in order). Returns how many were accepted (they are the walk's
 * result, in order) and what to do next. An OID outside the subtree or an endOfMibView ends the walk;
 * an OID that is not greater than the previous one is a loop; reaching maxVarbinds with more to come, or
 * maxMs, is a limit. An empty batch ends the walk (the agent has nothing more).
 */
export function feedWalk(
  state: WalkState,
  items: readonly WalkItem[],
  limits: WalkLimits,
  now: number,
): { accepted: number; verdict: WalkVerdict } {
  let accepted = 0;
  for (const item of items) {
    if (item.endOfView) return { accepted, verdict: { kind: "done" } };
    const arcs = parseOid(item.oid);
    if (!arcs) return { accepted, verdict: { kind: "malformed", oid: item.oid } };
    if (!inSubtree(state.root, arcs)) {
      // Leaving the subtree backwards is still a loop (a well-behaved agent only goes forward).
      if (compareOids(arcs, state.last) <= 0) {
        return { accepted, verdict: { kind: "loop", previous: state.lastText, oid: item.oid } };
      }
      return { accepted, verdict: { kind: "done" } };
    }
    if (compareOids(arcs, state.last) <= 0) {
      return { accepted, verdict: { kind: "loop", previous: state.lastText, oid: item.oid } };
    }
    if (state.count >= limits.maxVarbinds) return { accepted, verdict: { kind: "limit", bound: "varbinds" } };
    state.last = arcs;
    state.lastText = item.oid.startsWith(".") ? item.oid.slice(1) : item.oid;
    state.count++;
    accepted++;
  }
  if (items.length === 0) return { accepted, verdict: { kind: "done" } };
  if (now - state.startedAt >= limits.maxMs) return { accepted, verdict: { kind: "limit", bound: "time" } };
  return { accepted, verdict: { kind: "continue", next: state.lastText } };
}

/** How many repetitions to ask for next: never more than the varbinds the walk may still take (+1 to see the end). */
export function nextRepetitions(state: WalkState, limits: WalkLimits, maxRepetitions: number): number {
  const left = limits.maxVarbinds - state.count + 1;
  return Math.max(1, Math.min(maxRepetitions, left));
}
