/** Counters, gauges and histograms every component reports into (defined in shared). */
export type { Metrics } from "@polyfleet/shared";
