/** Discovery progress (pure): the terminal bar's text and the rate limit of progress reports. */

export interface ProgressSnapshot {
  scanned: number;
  total: number;
  found: number;
  /** Elapsed time, shown when given. */
  elapsedMs?: number;
}

/**
 * One line of a progress bar, e.g. `[##########··········]  50% 127/254 scanned, 30 found, 4s`, exactly
 * `width` cells of bar. No control characters: the writer adds `\r` / newline.
 */
export function renderProgressBar(p: ProgressSnapshot, width = 30): string {
  const cells = Math.max(1, Math.floor(width));
  const total = Math.max(0, p.total);
  const scanned = Math.min(Math.max(0, p.scanned), total);
  const ratio = total === 0 ? 1 : scanned / total;
  const filled = Math.min(cells, Math.floor(ratio * cells));
  const pct = String(Math.floor(ratio * 100)).padStart(3, " ");
  const elapsed = p.elapsedMs === undefined ? "" : `, ${formatDuration(p.elapsedMs)}`;
  return `[${"#".repeat(filled)}${"·".repeat(cells - filled)}] ${pct}% ${scanned}/${total} scanned, ${p.found} found${elapsed}`;
}

/** `4s`, `2m05s`, `1h02m`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/**
 * Whether a progress report is due: the first and the final one always, others at most once per
 * `minIntervalMs`.
 */
export function progressDue(
  lastAt: number | undefined,
  now: number,
  minIntervalMs: number,
  final: boolean,
): boolean {
  if (final || lastAt === undefined) return true;
  return now - lastAt >= minIntervalMs;
}
