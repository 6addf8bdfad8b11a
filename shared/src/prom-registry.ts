/** Counters, gauges and histograms every component reports into; served as Prometheus text on /metrics. */
export interface Metrics {
  /** Adds `n` (default 1) to a counter. Names end in `_total`. */
  inc(name: string, labels?: Record<string, string>, n?: number): void;
  set(name: string, value: number, labels?: Record<string, string>): void;
  /** Records one observation (seconds for durations) into a histogram. */
  observe(name: string, value: number, labels?: Record<string, string>): void;
  /** Current value of a counter or gauge (tests, /healthz). */
  get(name: string, labels?: Record<string, string>): number;
}

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

function key(labels: Record<string, string> | undefined): string {
  if (!labels) return "";
  const names = Object.keys(labels).sort();
  return names
    .map(
      (n) => `${n}="${String(labels[n]).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`,
    )
    .join(",");
}

/**
 * In-memory metrics registry rendering the Prometheus text exposition format (pure: no I/O). `help` texts
 * are registered once per metric name.
 */
export class PromRegistry implements Metrics {
  private readonly values = new Map<string, Map<string, number>>();
  private readonly histograms = new Map<string, Map<string, Histogram>>();
  private readonly types = new Map<string, "counter" | "gauge" | "histogram">();
  private readonly help = new Map<string, string>();

  describe(name: string, type: "counter" | "gauge" | "histogram", help: string): this {
    this.types.set(name, type);
    this.help.set(name, help);
    return this;
  }

  inc(name: string, labels?: Record<string, string>, n = 1): void {
    if (!this.types.has(name)) this.types.set(name, "counter");
    const series = this.series(name);
    const k = key(labels);
    series.set(k, (series.get(k) ?? 0) + n);
  }

  set(name: string, value: number, labels?: Record<string, string>): void {
    if (!this.types.has(name)) this.types.set(name, "gauge");
    this.series(name).set(key(labels), value);
  }

  observe(name: string, value: number, labels?: Record<string, string>): void {
    if (!this.types.has(name)) this.types.set(name, "histogram");
    let byLabels = this.histograms.get(name);
    if (!byLabels) {
      byLabels = new Map();
      this.histograms.set(name, byLabels);
    }
    const k = key(labels);
    let h = byLabels.get(k);
    if (!h) {
      h = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 };
      byLabels.set(k, h);
    }
    for (let i = 0; i < BUCKETS.length; i++)
      if (value <= (BUCKETS[i] as number)) h.counts[i] = (h.counts[i] as number) + 1;
    h.sum += value;
    h.count++;
  }

  get(name: string, labels?: Record<string, string>): number {
    return this.values.get(name)?.get(key(labels)) ?? 0;
  }

  /** Sum of a counter over all label sets. */
  total(name: string): number {
    let s = 0;
    for (const v of this.values.get(name)?.values() ?? []) s += v;
    return s;
  }

  render(): string {
    const out: string[] = [];
    const names = new Set([...this.values.keys(), ...this.histograms.keys()]);
    for (const name of [...names].sort()) {
      const type = this.types.get(name) ?? "gauge";
      const help = this.help.get(name);
      if (help) out.push(`# HELP ${name} ${help}`);
      out.push(`# TYPE ${name} ${type}`);
      for (const [k, v] of this.values.get(name) ?? []) out.push(`${name}${k ? `{${k}}` : ""} ${v}`);
      for (const [k, h] of this.histograms.get(name) ?? []) {
        const sep = k ? `${k},` : "";
        BUCKETS.forEach((b, i) => {
          out.push(`${name}_bucket{${sep}le="${b}"} ${h.counts[i]}`);
        });
        out.push(`${name}_bucket{${sep}le="+Inf"} ${h.count}`);
        out.push(`${name}_sum${k ? `{${k}}` : ""} ${h.sum}`);
        out.push(`${name}_count${k ? `{${k}}` : ""} ${h.count}`);
      }
    }
    return `${out.join("\n")}\n`;
  }

  private series(name: string): Map<string, number> {
    let s = this.values.get(name);
    if (!s) {
      s = new Map();
      this.values.set(name, s);
    }
    return s;
  }
}
