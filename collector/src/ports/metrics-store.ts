import type { Reading } from "@polyfleet/shared";

/** One point of a device series. */
export interface SeriesPoint {
  ts: number;
  value: number;
}

export interface SeriesQuery {
  deviceId: string;
  /** Field: cpuPct, memPct, pollLatencyMs, rxPacketsPerSec, txPacketsPerSec, packetLossPct, uptimeSec, reachable. */
  field: string;
  from: number;
  to: number;
  /** Bucket width for averaging; 0 = raw points. */
  stepMs?: number;
}

export interface MetricsWriteStats {
  written: number;
  buffered: number;
  dropped: number;
  retries: number;
}

/**
 * Time series of device readings (port). Adapters: InfluxDB 1.x (batched line protocol, retries, bounded
 * buffer) and an embedded bounded in-memory store for the dashboard. `write` never blocks ingest: it buffers.
 */
export interface MetricsStore {
  start(): Promise<void>;
  /** Flushes what is buffered (bounded wait) and stops. */
  stop(): Promise<void>;
  write(readings: readonly Reading[]): void;
  query(q: SeriesQuery): Promise<SeriesPoint[]>;
  stats(): MetricsWriteStats;
}
