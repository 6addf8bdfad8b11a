import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatDuration, progressDue, renderProgressBar } from "../../src/core/progress.js";

describe("progress", () => {
  it("renders a bar with counts", () => {
    expect(renderProgressBar({ scanned: 127, total: 254, found: 30 }, 10)).toBe(
      "[#####·····]  50% 127/254 scanned, 30 found",
    );
    expect(renderProgressBar({ scanned: 254, total: 254, found: 254, elapsedMs: 4200 }, 4)).toBe(
      "[####] 100% 254/254 scanned, 254 found, 4s",
    );
    expect(renderProgressBar({ scanned: 0, total: 0, found: 0 }, 4)).toContain("100%");
  });

  it("always draws exactly `width` cells, fills monotonically and never contains control characters", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 100_000 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.integer({ min: 1, max: 80 }),
        (a, b, width) => {
          const total = Math.max(a, b);
          const scanned = Math.min(a, b);
          const bar = renderProgressBar({ scanned, total, found: 0 }, width);
          const cells = bar.slice(1, bar.indexOf("]"));
          expect(cells.length).toBe(width);
          // biome-ignore lint/suspicious/noControlCharactersInRegex: asserting their absence
          expect(bar).not.toMatch(/[\u0000-\u001f]/);
          const filled = (s: number) =>
            (renderProgressBar({ scanned: s, total, found: 0 }, width).match(/#/g) ?? []).length;
          expect(filled(scanned)).toBeLessThanOrEqual(filled(total));
        },
      ),
    );
  });

  it("formats durations", () => {
    expect(formatDuration(59_999)).toBe("59s");
    expect(formatDuration(125_000)).toBe("2m05s");
    expect(formatDuration(3_720_000)).toBe("1h02m");
  });

  it("rate-limits reports but never the first or the last", () => {
    expect(progressDue(undefined, 0, 1000, false)).toBe(true);
    expect(progressDue(0, 999, 1000, false)).toBe(false);
    expect(progressDue(0, 1000, 1000, false)).toBe(true);
    expect(progressDue(0, 1, 1000, true)).toBe(true);
  });
});
