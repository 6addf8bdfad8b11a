import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Harness, makeHarness } from "./fakes.js";

const LENGTH = 65_537;
let dir: string;
let bytes: Buffer;
let sha: string;
let h: Harness;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "polyfleet-images-"));
  bytes = randomBytes(LENGTH);
  sha = createHash("sha256").update(bytes).digest("hex");
  await writeFile(join(dir, "image.bin"), bytes);
  await writeFile(join(dir, "short.bin"), bytes.subarray(0, 100));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  h = await makeHarness({ anonymousRateLimitPerMinute: 100_000 });
  h.rollouts.images.set(sha, {
    path: join(dir, "image.bin"),
    length: LENGTH,
    fileName: "vvx450-8.2.0.sip.ld",
  });
});
afterEach(async () => {
  await h.close();
});

const url = () => `/api/v1/firmware/images/${sha}`;
const get = (headers: Record<string, string> = {}) => h.app.inject({ url: url(), headers });

describe("GET /firmware/images/:sha256", () => {
  it("serves the whole image without a token, with length, ETag, ranges and caching headers", async () => {
    const res = await get();
    expect(res.statusCode).toBe(200);
    expect(res.rawPayload.equals(bytes)).toBe(true);
    expect(res.headers).toMatchObject({
      "content-length": String(LENGTH),
      "content-type": "application/octet-stream",
      etag: `"${sha}"`,
      "accept-ranges": "bytes",
      "cache-control": "public, max-age=31536000, immutable",
      "content-disposition": 'attachment; filename="vvx450-8.2.0.sip.ld"',
    });
    expect(res.headers["content-range"]).toBeUndefined();
    // A token is not needed, and one that is sent does not matter.
    expect((await get(h.auth("viewer"))).statusCode).toBe(200);
  });

  it("answers HEAD with the headers only", async () => {
    const res = await h.app.inject({ method: "HEAD", url: url(), headers: { range: "bytes=10-19" } });
    expect(res.statusCode).toBe(206);
    expect(res.rawPayload.length).toBe(0);
    expect(res.headers["content-length"]).toBe("10");
    expect(res.headers["content-range"]).toBe(`bytes 10-19/${LENGTH}`);
    const full = await h.app.inject({ method: "HEAD", url: url() });
    expect(full.statusCode).toBe(200);
    expect(full.headers["content-length"]).toBe(String(LENGTH));
  });

  it("404 for an unknown sha256, 400 naming the field for a malformed one", async () => {
    const unknown = await h.app.inject({ url: `/api/v1/firmware/images/${"0".repeat(64)}` });
    expect(unknown.statusCode).toBe(404);
    expect(JSON.parse(unknown.body)).toMatchObject({ error: { code: "POLYFLEET_ERR_NOT_FOUND" } });
    expect(unknown.headers["cache-control"]).toBe("no-store");
    for (const bad of ["abc", sha.toUpperCase(), `${sha}0`, "../../etc/passwd"]) {
      const res = await h.app.inject({ url: `/api/v1/firmware/images/${encodeURIComponent(bad)}` });
      expect(res.statusCode, bad).toBe(400);
      expect(JSON.parse(res.body)).toMatchObject({ error: { issues: [{ path: "sha256" }] } });
    }
  });

  it("refuses an image whose file is missing (404) or has another length than the catalog (422)", async () => {
    const other = "1".repeat(64);
    h.rollouts.images.set(other, { path: join(dir, "missing.bin"), length: 5, fileName: "x.bin" });
    expect((await h.app.inject({ url: `/api/v1/firmware/images/${other}` })).statusCode).toBe(404);
    h.rollouts.images.set(other, { path: join(dir, "short.bin"), length: LENGTH, fileName: "x.bin" });
    const res = await h.app.inject({ url: `/api/v1/firmware/images/${other}` });
    expect(res.statusCode).toBe(422);
    expect(JSON.parse(res.body)).toMatchObject({ error: { code: "POLYFLEET_ERR_IMAGE_MISMATCH" } });
  });

  it("answers exactly the requested bytes for any satisfiable single range (property)", async () => {
    const range = fc.oneof(
      // bytes=a-b (b may run past the end: clamped)
      fc
        .tuple(fc.nat(LENGTH - 1), fc.nat(LENGTH + 100))
        .map(([a, n]) => ({ header: `bytes=${a}-${a + n}`, start: a, end: Math.min(a + n, LENGTH - 1) })),
      // bytes=a-
      fc.nat(LENGTH - 1).map((a) => ({ header: `bytes=${a}-`, start: a, end: LENGTH - 1 })),
      // bytes=-n: the last n bytes (all of them when n is larger)
      fc
        .integer({ min: 1, max: LENGTH * 2 })
        .map((n) => ({ header: `bytes=-${n}`, start: Math.max(0, LENGTH - n), end: LENGTH - 1 })),
    );
    await fc.assert(
      fc.asyncProperty(range, async ({ header, start, end }) => {
        const res = await get({ range: header });
        expect(res.statusCode).toBe(206);
        expect(res.headers["content-range"]).toBe(`bytes ${start}-${end}/${LENGTH}`);
        expect(res.headers["content-length"]).toBe(String(end - start + 1));
        expect(res.rawPayload.equals(bytes.subarray(start, end + 1))).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it("answers 416 with the length for unsatisfiable or malformed byte ranges (property)", async () => {
    const bad = fc.oneof(
      fc.integer({ min: LENGTH, max: LENGTH * 3 }).map((a) => `bytes=${a}-`),
      fc.integer({ min: LENGTH, max: LENGTH * 3 }).map((a) => `bytes=${a}-${a + 5}`),
      fc
        .tuple(fc.integer({ min: 1, max: LENGTH - 1 }), fc.integer({ min: 1, max: 100 }))
        .map(([a, d]) => `bytes=${a}-${Math.max(0, a - d)}`),
      fc.constantFrom("bytes=-0", "bytes=-", "bytes=x-y", "bytes=1-2-3", "bytes=--5", "bytes= 5", "bytes"),
    );
    await fc.assert(
      fc.asyncProperty(bad, async (header) => {
        const res = await get({ range: header });
        expect(res.statusCode, header).toBe(416);
        expect(res.headers["content-range"]).toBe(`bytes */${LENGTH}`);
        expect(res.rawPayload.length).toBe(0);
      }),
      { numRuns: 60 },
    );
  });

  it("ignores another unit, several ranges and a stale If-Range (whole image, 200)", async () => {
    const cases: Record<string, string>[] = [
      { range: "items=0-5" },
      { range: "bytes=0-5, 10-20" },
      { range: "bytes=0-5", "if-range": '"0000"' },
      { range: "bytes=0-5", "if-range": "Wed, 21 Oct 2015 07:28:00 GMT" },
    ];
    for (const headers of cases) {
      const res = await get(headers);
      expect(res.statusCode, JSON.stringify(headers)).toBe(200);
      expect(res.rawPayload.length).toBe(LENGTH);
    }
    const current = await get({ range: "bytes=0-5", "if-range": `"${sha}"` });
    expect(current.statusCode).toBe(206);
    expect(current.rawPayload.equals(bytes.subarray(0, 6))).toBe(true);
  });

  it("answers 304 to If-None-Match with its ETag", async () => {
    for (const inm of [`"${sha}"`, `W/"${sha}"`, `"x", "${sha}"`, "*"]) {
      const res = await get({ "if-none-match": inm });
      expect(res.statusCode, inm).toBe(304);
      expect(res.rawPayload.length).toBe(0);
    }
    expect((await get({ "if-none-match": '"other"' })).statusCode).toBe(200);
  });

  it("is rate limited per client IP like other unauthenticated requests", async () => {
    await h.close();
    h = await makeHarness({ anonymousRateLimitPerMinute: 3 });
    h.rollouts.images.set(sha, { path: join(dir, "image.bin"), length: LENGTH, fileName: "a.bin" });
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) codes.push((await get({ range: "bytes=0-0" })).statusCode);
    expect(codes).toEqual([206, 206, 206, 429, 429]);
  });
});
