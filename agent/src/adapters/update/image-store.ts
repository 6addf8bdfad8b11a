import { mkdirSync, readdirSync, statSync } from "node:fs";
import { unlink, utimes } from "node:fs/promises";
import { join } from "node:path";
import type { UpdateImage } from "../../core/update-state.js";
import type { Metrics } from "../../ports/metrics.js";
import type { ImageCache, ImageResult } from "../../ports/update.js";
import { type DownloadOptions, downloadImage } from "./image-download.js";

const SHA256 = /^[0-9a-f]{64}$/;

export const IMAGE_DOWNLOADS_TOTAL = "polyfleet_agent_image_downloads_total";
export const IMAGE_CACHE_COUNT = "polyfleet_agent_image_cache_images";

/** The logger subset the store uses. */
export interface ImageStoreLogger {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}

export interface FileImageStoreOptions {
  /** `<provisioning.dir>/images`; created when missing. */
  dir: string;
  /** Verified images kept at most (`provisioning.maxCachedImages`). */
  maxCached: number;
  metrics?: Metrics | undefined;
  log: ImageStoreLogger;
  /** Download tuning (retries, backoff, idle timeout, CA). */
  download?: Pick<DownloadOptions, "maxAttempts" | "backoffMs" | "maxBackoffMs" | "idleTimeoutMs" | "ca">;
}

interface Shared {
  promise: Promise<ImageResult>;
  controller: AbortController;
  waiters: number;
  listeners: Set<(bytes: number, total: number) => void>;
}

/**
 * The verified image cache on disk (port: `ImageCache`): `<dir>/<sha256>` for verified images, `<dir>/<sha256>.part`
 * for downloads in progress (kept for resuming). Concurrent updates of one image share one download. Least
 * recently used images (by use in this process, else file time) are removed beyond `maxCached`, never one
 * that is pinned by a running update. Files are found by sha256 only.
 */
export class FileImageStore implements ImageCache {
  private readonly o: FileImageStoreOptions;
  /** Verified images, least recently used first. */
  private readonly lru = new Map<string, number>();
  private readonly pins = new Map<string, number>();
  private readonly inflight = new Map<string, Shared>();

  constructor(opts: FileImageStoreOptions) {
    this.o = opts;
  }

  /** Creates the directory and learns the images already there (oldest first). */
  open(): void {
    mkdirSync(this.o.dir, { recursive: true });
    const found: { sha: string; at: number; size: number }[] = [];
    for (const name of readdirSync(this.o.dir)) {
      if (!SHA256.test(name)) continue;
      try {
        const st = statSync(join(this.o.dir, name));
        if (st.isFile()) found.push({ sha: name, at: st.mtimeMs, size: st.size });
      } catch {
        // Gone meanwhile.
      }
    }
    found.sort((a, b) => a.at - b.at);
    for (const f of found) this.lru.set(f.sha, f.size);
    this.gauge();
  }

  /** Path of a verified image, or undefined when it is not cached. */
  pathOf(sha256: string): string | undefined {
    return SHA256.test(sha256) && this.lru.has(sha256) ? join(this.o.dir, sha256) : undefined;
  }

  has(sha256: string): boolean {
    return this.pathOf(sha256) !== undefined;
  }

  /** Marks the image as just used (serving it to a device). */
  touch(sha256: string): void {
    const size = this.lru.get(sha256);
    if (size === undefined) return;
    this.lru.delete(sha256);
    this.lru.set(sha256, size);
    const now = new Date();
    void utimes(join(this.o.dir, sha256), now, now).catch(() => undefined);
  }

  pin(sha256: string): void {
    this.pins.set(sha256, (this.pins.get(sha256) ?? 0) + 1);
  }

  unpin(sha256: string): void {
    const n = (this.pins.get(sha256) ?? 0) - 1;
    if (n > 0) this.pins.set(sha256, n);
    else this.pins.delete(sha256);
    void this.evict();
  }

  async ensure(
    image: UpdateImage,
    opts: { signal: AbortSignal; onProgress?: (bytes: number, total: number) => void },
  ): Promise<ImageResult> {
    if (!SHA256.test(image.sha256)) {
      return {
        ok: false,
        code: "POLYFLEET_ERR_COMMAND_INVALID",
        reason: "sha256 must be 64 lowercase hex digits",
      };
    }
    let shared = this.inflight.get(image.sha256);
    // A download everyone abandoned is winding down: let it end, then start afresh (it resumes its part).
    if (shared?.controller.signal.aborted) {
      await shared.promise;
      shared = this.inflight.get(image.sha256);
    }
    if (this.has(image.sha256)) {
      this.touch(image.sha256);
      return { ok: true };
    }
    if (!shared) shared = this.startDownload(image);
    const s = shared;
    s.waiters++;
    const listener = opts.onProgress;
    if (listener) s.listeners.add(listener);
    return new Promise<ImageResult>((resolve) => {
      let settled = false;
      const leave = (r: ImageResult): void => {
        if (settled) return;
        settled = true;
        opts.signal.removeEventListener("abort", onAbort);
        if (listener) s.listeners.delete(listener);
        s.waiters--;
        resolve(r);
      };
      const onAbort = (): void => {
        leave({ ok: false, code: "POLYFLEET_ERR_UPDATE_INTERRUPTED", reason: "download abandoned" });
        // The last one waiting for it takes the download down with it (its part stays for resuming).
        if (s.waiters === 0) s.controller.abort();
      };
      if (opts.signal.aborted) onAbort();
      else opts.signal.addEventListener("abort", onAbort, { once: true });
      void s.promise.then(leave);
    });
  }

  private startDownload(image: UpdateImage): Shared {
    const controller = new AbortController();
    const shared: Shared = {
      controller,
      waiters: 0,
      listeners: new Set(),
      promise: Promise.resolve({ ok: true }),
    };
    const sha = image.sha256;
    shared.promise = (async (): Promise<ImageResult> => {
      this.o.log.info({ sha256: sha, length: image.length }, "downloading firmware image");
      const r = await downloadImage({
        ...(this.o.download ?? {}),
        url: image.url,
        length: image.length,
        sha256: sha,
        partPath: join(this.o.dir, `${sha}.part`),
        finalPath: join(this.o.dir, sha),
        signal: controller.signal,
        onProgress: (bytes, total) => {
          for (const l of shared.listeners) {
            try {
              l(bytes, total);
            } catch {
              // A listener's failure is its own.
            }
          }
        },
        onRetry: (info) => this.o.log.warn({ sha256: sha, ...info }, "image download interrupted; retrying"),
      });
      this.inflight.delete(sha);
      if (r.ok) {
        this.lru.set(sha, image.length);
        this.o.metrics?.inc(IMAGE_DOWNLOADS_TOTAL, { result: "ok" });
        this.o.log.info({ sha256: sha, requests: r.requests, resumed: r.resumed }, "firmware image verified");
        await this.evict();
        return { ok: true };
      }
      this.o.metrics?.inc(IMAGE_DOWNLOADS_TOTAL, { result: r.aborted ? "aborted" : "failed" });
      if (!r.aborted)
        this.o.log.warn({ sha256: sha, code: r.code, reason: r.reason }, "firmware image download failed");
      return { ok: false, code: r.code, reason: r.reason };
    })();
    this.inflight.set(sha, shared);
    return shared;
  }

  /** Removes least recently used, unpinned images beyond the cache size. */
  private async evict(): Promise<void> {
    for (const sha of [...this.lru.keys()]) {
      if (this.lru.size <= this.o.maxCached) break;
      if (this.pins.has(sha)) continue;
      this.lru.delete(sha);
      await unlink(join(this.o.dir, sha)).catch(() => undefined);
      this.o.log.info({ sha256: sha }, "cached firmware image removed (least recently used)");
    }
    this.gauge();
  }

  private gauge(): void {
    this.o.metrics?.set(IMAGE_CACHE_COUNT, this.lru.size);
  }
}
