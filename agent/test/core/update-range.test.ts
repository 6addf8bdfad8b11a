import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decideResponse, rangeHeader, retryDelayMs } from "../../src/core/update-range.js";

describe("resumable download decisions", () => {
  it("asks for the rest only when something is on disk", () => {
    expect(rangeHeader(0)).toBeUndefined();
    expect(rangeHeader(4096)).toBe("bytes=4096-");
  });

  it("appends on a 206 from exactly what is on disk", () => {
    expect(
      decideResponse({
        have: 100,
        length: 1000,
        status: 206,
        contentRange: "bytes 100-999/1000",
        contentLength: "900",
      }),
    ).toEqual({ action: "append", remaining: 900 });
  });

  it("starts over when the server ignores the Range (200)", () => {
    expect(decideResponse({ have: 100, length: 1000, status: 200, contentLength: "1000" })).toEqual({
      action: "restart",
      remaining: 1000,
    });
  });

  it("refuses a server that says the image is larger than declared", () => {
    expect(decideResponse({ have: 0, length: 1000, status: 200, contentLength: "1001" }).action).toBe(
      "tooLarge",
    );
    expect(
      decideResponse({ have: 10, length: 1000, status: 206, contentRange: "bytes 10-1000/1001" }).action,
    ).toBe("tooLarge");
  });

  it("calls an image the server has fewer bytes of than declared a mismatch", () => {
    expect(decideResponse({ have: 0, length: 1000, status: 200, contentLength: "999" }).action).toBe(
      "mismatch",
    );
    expect(
      decideResponse({ have: 10, length: 1000, status: 206, contentRange: "bytes 10-998/999" }).action,
    ).toBe("mismatch");
    expect(decideResponse({ have: 999, length: 1000, status: 416, contentRange: "bytes */999" }).action).toBe(
      "mismatch",
    );
  });

  it("retries from zero on a 206 for the wrong range or a 416, keeps the part on 5xx, gives up on 404", () => {
    expect(
      decideResponse({ have: 10, length: 1000, status: 206, contentRange: "bytes 0-999/1000" }),
    ).toMatchObject({
      action: "retry",
      discard: true,
    });
    expect(decideResponse({ have: 10, length: 1000, status: 206 })).toMatchObject({
      action: "retry",
      discard: true,
    });
    expect(decideResponse({ have: 10, length: 1000, status: 416 })).toMatchObject({
      action: "retry",
      discard: true,
    });
    expect(decideResponse({ have: 10, length: 1000, status: 503 })).toMatchObject({
      action: "retry",
      discard: false,
    });
    expect(decideResponse({ have: 10, length: 1000, status: 404 }).action).toBe("fail");
    expect(decideResponse({ have: 10, length: 1000, status: 302 }).action).toBe("fail");
  });

  it("backs off exponentially up to the cap", () => {
    expect([1, 2, 3, 4, 5, 6].map((a) => retryDelayMs(a, 500, 10_000))).toEqual([
      500, 1000, 2000, 4000, 8000, 10_000,
    ]);
  });

  it("never appends bytes that do not continue the part, nor beyond the declared length (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.integer({ min: 0, max: 2_000_000 }),
        fc.integer({ min: 0, max: 2_000_000 }),
        fc.integer({ min: 0, max: 3_000_000 }),
        (length, haveRaw, start, end, total) => {
          const have = haveRaw % length;
          const d = decideResponse({
            have,
            length,
            status: 206,
            contentRange: `bytes ${start}-${end}/${total}`,
            contentLength: String(end - start + 1),
          });
          if (d.action === "append") {
            expect(start).toBe(have);
            expect(end).toBeLessThan(length);
            expect(total).toBeLessThanOrEqual(length);
            expect(d.remaining).toBe(length - have);
          }
          if (total > length || end >= length) expect(d.action).toBe("tooLarge");
        },
      ),
    );
  });
});
