import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ProgressThrottle } from "../../src/core/update-progress.js";

describe("download progress throttle", () => {
  it("reports the start, every 25 %, the end, and otherwise at most every 2 s", () => {
    const t = new ProgressThrottle(1000);
    expect(t.shouldReport(0, 0)).toBe(true);
    expect(t.shouldReport(100, 10)).toBe(false);
    expect(t.shouldReport(249, 20)).toBe(false);
    expect(t.shouldReport(250, 30)).toBe(true);
    expect(t.shouldReport(300, 2000)).toBe(false);
    expect(t.shouldReport(310, 2031)).toBe(true);
    expect(t.shouldReport(1000, 2040)).toBe(true);
    expect(t.shouldReport(1000, 9000)).toBe(false);
  });

  it("reports a restart from zero", () => {
    const t = new ProgressThrottle(1000);
    t.shouldReport(0, 0);
    t.shouldReport(500, 1);
    expect(t.shouldReport(0, 2)).toBe(true);
  });

  it("never reports more than ~4 + elapsed/2s times and always reports the end (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000_000 }),
        fc.array(fc.integer({ min: 1, max: 100_000 }), { minLength: 1, maxLength: 300 }),
        fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 300, maxLength: 300 }),
        (total, chunks, gaps) => {
          const t = new ProgressThrottle(total);
          let bytes = 0;
          let now = 0;
          let reports = t.shouldReport(0, now) ? 1 : 0;
          for (const [i, c] of chunks.entries()) {
            bytes = Math.min(total, bytes + c);
            now += gaps[i] ?? 0;
            if (t.shouldReport(bytes, now)) reports++;
          }
          if (bytes < total) {
            bytes = total;
            expect(t.shouldReport(bytes, now)).toBe(true);
            reports++;
          }
          expect(reports).toBeLessThanOrEqual(6 + Math.floor(now / 2000));
        },
      ),
    );
  });
});
