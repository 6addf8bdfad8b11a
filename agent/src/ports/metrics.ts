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
