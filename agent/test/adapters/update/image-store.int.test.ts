import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FileImageStore } from "../../../src/adapters/update/image-store.js";
import { PromRegistry } from "../../../src/core/prom-registry.js";
import type { UpdateImage } from "../../../src/core/update-state.js";
import { type ImageMode, TestImageServer } from "../../helpers/image-server.js";

const quiet = { info: () => {}, warn: () => {} };

describe("FileImageStore and the resumable download", () => {
  let server: TestImageServer;
  let dir: string;
  let n = 0;

  beforeAll(async () => {
    server = new TestImageServer();
    await server.start();
  });
  afterAll(async () => {
    await server?.stop();
  });
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function store(maxCached = 8): Promise<FileImageStore> {
    dir = await mkdtemp(join(tmpdir(), "polyfleet-images-"));
    const s = new FileImageStore({
      dir,
      maxCached,
      metrics: new PromRegistry(),
      log: quiet,
      download: { backoffMs: 10, maxBackoffMs: 50, maxAttempts: 3, idleTimeoutMs: 2000 },
    });
    s.open();
    return s;
  }
  function image(
    mode: ImageMode = "normal",
    size = 100_000,
  ): { img: UpdateImage; bytes: Buffer; name: string } {
    n++;
    const bytes = randomBytes(size);
    const name = `img-${n}.bin`;
    const url = server.add(name, bytes, mode);
    return { img: { url, fileName: name, length: size, sha256: TestImageServer.sha256(bytes) }, bytes, name };
  }
  const signal = (): AbortSignal => new AbortController().signal;

  it("downloads, verifies and caches by sha256; a cached image is not fetched again", async () => {
    const s = await store();
    const { img, bytes, name } = image();
    const seen: number[] = [];
    expect(await s.ensure(img, { signal: signal(), onProgress: (b) => seen.push(b) })).toEqual({ ok: true });
    expect((await readFile(join(dir, img.sha256))).equals(bytes)).toBe(true);
    expect(seen.at(-1)).toBe(bytes.length);
    expect(s.has(img.sha256)).toBe(true);
    expect(await s.ensure(img, { signal: signal() })).toEqual({ ok: true });
    expect(server.requestsFor(name)).toHaveLength(1);
    expect(await readdir(dir)).toEqual([img.sha256]);
  });

  it("shares one download between concurrent updates of the same image", async () => {
    const s = await store();
    const { img, name } = image("normal", 500_000);
    const a: number[] = [];
    const b: number[] = [];
    const [ra, rb] = await Promise.all([
      s.ensure(img, { signal: signal(), onProgress: (x) => a.push(x) }),
      s.ensure(img, { signal: signal(), onProgress: (x) => b.push(x) }),
    ]);
    expect(ra).toEqual({ ok: true });
    expect(rb).toEqual({ ok: true });
    expect(server.requestsFor(name)).toHaveLength(1);
    expect(a.at(-1)).toBe(500_000);
    expect(b.at(-1)).toBe(500_000);
  });

  it("resumes after a dropped connection with Range and hashes what it already had", async () => {
    const s = await store();
    const { img, bytes, name } = image("cutOnce", 400_000);
    expect(await s.ensure(img, { signal: signal() })).toEqual({ ok: true });
    const reqs = server.requestsFor(name);
    expect(reqs.map((r) => r.status)).toEqual([200, 206]);
    expect(reqs[1]?.range).toMatch(/^bytes=\d+-$/);
    expect((await readFile(join(dir, img.sha256))).equals(bytes)).toBe(true);
  });

  it("starts over when the server ignores the Range", async () => {
    const s = await store();
    const { img, bytes, name } = image("cutOnceIgnoreRange", 400_000);
    expect(await s.ensure(img, { signal: signal() })).toEqual({ ok: true });
    const reqs = server.requestsFor(name);
    expect(reqs.map((r) => r.status)).toEqual([200, 200]);
    expect(reqs[1]?.range).toBeDefined();
    expect((await readFile(join(dir, img.sha256))).equals(bytes)).toBe(true);
  });

  it("resumes a part left by a previous run", async () => {
    const s = await store();
    const { img, bytes, name } = image("normal", 300_000);
    await writeFile(join(dir, `${img.sha256}.part`), bytes.subarray(0, 123_456));
    expect(await s.ensure(img, { signal: signal() })).toEqual({ ok: true });
    expect(server.requestsFor(name)).toEqual([
      { path: `/images/${name}`, range: "bytes=123456-", status: 206 },
    ]);
    expect((await readFile(join(dir, img.sha256))).equals(bytes)).toBe(true);
  });

  it("refuses a tampered image (IMAGE_MISMATCH) and keeps nothing of it", async () => {
    const s = await store();
    const { img } = image();
    const r = await s.ensure({ ...img, sha256: "0".repeat(64) }, { signal: signal() });
    expect(r).toMatchObject({ ok: false, code: "POLYFLEET_ERR_IMAGE_MISMATCH" });
    expect(await readdir(dir)).toEqual([]);
    const short = await s.ensure({ ...image().img, length: 99_000 }, { signal: signal() });
    expect(short).toMatchObject({ ok: false, code: "POLYFLEET_ERR_IMAGE_TOO_LARGE" });
    const long = await s.ensure({ ...image().img, length: 100_500 }, { signal: signal() });
    expect(long).toMatchObject({ ok: false, code: "POLYFLEET_ERR_IMAGE_MISMATCH" });
    expect(await readdir(dir)).toEqual([]);
  });

  it("refuses an image the server declares larger than the catalog, before reading it", async () => {
    const s = await store();
    const { img } = image("oversizeDeclared");
    expect(await s.ensure(img, { signal: signal() })).toMatchObject({
      ok: false,
      code: "POLYFLEET_ERR_IMAGE_TOO_LARGE",
    });
    expect(await readdir(dir)).toEqual([]);
  });

  it("gives up at once on 404 and after bounded retries on 500 (DOWNLOAD_FAILED)", async () => {
    const s = await store();
    const missing = { ...image().img, url: `${server.base}/images/missing` };
    expect(await s.ensure(missing, { signal: signal() })).toMatchObject({
      ok: false,
      code: "POLYFLEET_ERR_DOWNLOAD_FAILED",
      reason: "HTTP 404",
    });
    const { img, name } = image("error500");
    expect(await s.ensure(img, { signal: signal() })).toMatchObject({
      ok: false,
      code: "POLYFLEET_ERR_DOWNLOAD_FAILED",
    });
    expect(server.requestsFor(name)).toHaveLength(3);
  });

  it("removes least recently used images beyond the cache size, never a pinned one", async () => {
    const s = await store(2);
    const a = image("normal", 1000).img;
    const b = image("normal", 1000).img;
    const c = image("normal", 1000).img;
    s.pin(a.sha256);
    await s.ensure(a, { signal: signal() });
    await s.ensure(b, { signal: signal() });
    await s.ensure(c, { signal: signal() });
    expect(s.has(a.sha256)).toBe(true);
    expect(s.has(b.sha256)).toBe(false);
    expect(existsSync(join(dir, b.sha256))).toBe(false);
    expect(s.has(c.sha256)).toBe(true);
    s.unpin(a.sha256);
    await s.ensure(image("normal", 1000).img, { signal: signal() });
    expect(s.has(a.sha256)).toBe(false);
    expect(s.has(c.sha256)).toBe(true);
  });

  it("stops a download everyone abandoned and keeps its part for resuming", async () => {
    const s = await store();
    const { img } = image("stall", 200_000);
    const ac = new AbortController();
    const p = s.ensure(img, { signal: ac.signal, onProgress: () => ac.abort() });
    expect(await p).toMatchObject({ ok: false, code: "POLYFLEET_ERR_UPDATE_INTERRUPTED" });
    for (let i = 0; i < 50 && !existsSync(join(dir, `${img.sha256}.part`)); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(existsSync(join(dir, `${img.sha256}.part`))).toBe(true);
    expect(s.has(img.sha256)).toBe(false);
  });
});
