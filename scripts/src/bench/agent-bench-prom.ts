/** Prometheus text exposition (what the agent's /metrics answers), parsed just enough for the benchmark. */

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Every sample line of a Prometheus text body (comments and blank lines skipped). */
export function parsePrometheus(text: string): PromSample[] {
  const out: PromSample[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(LABEL)) {
      labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, (_s, c: string) => (c === "n" ? "\n" : c));
    }
    const v = m[3] as string;
    const value =
      v === "+Inf" ? Number.POSITIVE_INFINITY : v === "-Inf" ? Number.NEGATIVE_INFINITY : Number(v);
    out.push({ name: m[1] as string, labels, value });
  }
  return out;
}

/** Sum of the samples named `name` whose labels include every pair of `match`. */
export function sumOf(
  samples: readonly PromSample[],
  name: string,
  match: Record<string, string> = {},
): number {
  let s = 0;
  for (const x of samples) {
    if (x.name !== name) continue;
    if (Object.entries(match).every(([k, v]) => x.labels[k] === v)) s += x.value;
  }
  return s;
}

/** Largest sample named `name` (a gauge that may carry labels); undefined when absent. */
export function maxOf(
  samples: readonly PromSample[],
  name: string,
  match: Record<string, string> = {},
): number | undefined {
  let m: number | undefined;
  for (const x of samples) {
    if (x.name !== name) continue;
    if (!Object.entries(match).every(([k, v]) => x.labels[k] === v)) continue;
    m = m === undefined ? x.value : Math.max(m, x.value);
  }
  return m;
}

/** Whether any sample named `name` exists. */
export function has(samples: readonly PromSample[], name: string): boolean {
  return samples.some((x) => x.name === name);
}

/** Values of one label across the samples named `name`. */
export function labelValues(samples: readonly PromSample[], name: string, label: string): string[] {
  const set = new Set<string>();
  for (const x of samples) if (x.name === name && x.labels[label] !== undefined) set.add(x.labels[label]);
  return [...set].sort();
}

/** Cumulative histogram buckets (`le` → count) of `name`, summed over the series matching `match`. */
export function histogram(
  samples: readonly PromSample[],
  name: string,
  match: Record<string, string> = {},
): { buckets: Map<number, number>; count: number; sum: number } {
  const buckets = new Map<number, number>();
  for (const x of samples) {
    if (x.name !== `${name}_bucket`) continue;
    if (!Object.entries(match).every(([k, v]) => x.labels[k] === v)) continue;
    const le = x.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(x.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + x.value);
  }
  return {
    buckets,
    count: sumOf(samples, `${name}_count`, match),
    sum: sumOf(samples, `${name}_sum`, match),
  };
}

/** Difference of two cumulative histograms (later − earlier). */
export function histogramDelta(
  later: ReturnType<typeof histogram>,
  earlier: ReturnType<typeof histogram>,
): ReturnType<typeof histogram> {
  const buckets = new Map<number, number>();
  for (const [le, n] of later.buckets) buckets.set(le, n - (earlier.buckets.get(le) ?? 0));
  return { buckets, count: later.count - earlier.count, sum: later.sum - earlier.sum };
}

/** Observations at or below `le` seconds (the bucket boundary must exist), from a cumulative histogram. */
export function countAtOrBelow(h: ReturnType<typeof histogram>, le: number): number | undefined {
  return h.buckets.get(le);
}

/** Upper bucket bound under which `q` (0..1) of the observations fall (a histogram quantile, coarse). */
export function bucketQuantile(h: ReturnType<typeof histogram>, q: number): number | undefined {
  if (h.count <= 0) return undefined;
  const want = q * h.count;
  for (const le of [...h.buckets.keys()].sort((a, b) => a - b)) {
    if ((h.buckets.get(le) ?? 0) >= want) return le;
  }
  return undefined;
}
