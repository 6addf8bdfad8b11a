import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, rename, stat, unlink } from "node:fs/promises";
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import type { ErrorCode } from "@polyfleet/shared";
import { decideResponse, rangeHeader, retryDelayMs } from "../../core/update-range.js";

export interface DownloadOptions {
  url: string;
  /** Declared length and sha256 (lowercase hex) of the image. */
  length: number;
  sha256: string;
  /** Where the bytes accumulate (kept across attempts and runs, for resuming). */
  partPath: string;
  /** Where the verified image goes (atomic rename). */
  finalPath: string;
  signal: AbortSignal;
  onProgress?: ((bytes: number, total: number) => void) | undefined;
  /** Attempts in a row that bring no new byte before giving up (default 5). */
  maxAttempts?: number;
  /** First retry delay, doubled each time (default 500 ms), capped at `maxBackoffMs` (default 10 s). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** A request that sends no byte for this long is dropped and retried (default 30 s). */
  idleTimeoutMs?: number;
  /** TLS: extra CA (PEM) for an https collector with a private CA. */
  ca?: string | undefined;
  /** Called for every retry (logging). */
  onRetry?: ((info: { attempt: number; reason: string; have: number; delayMs: number }) => void) | undefined;
}

export type DownloadResult =
  | { ok: true; resumed: number; requests: number }
  | { ok: false; code: ErrorCode; reason: string; aborted?: boolean };

class Abort extends Error {}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function hashFile(path: string, hash: Hash, signal: AbortSignal): Promise<void> {
  const stream = createReadStream(path);
  const onAbort = (): void => {
    stream.destroy(new Abort("aborted"));
  };
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) hash.update(chunk);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

function get(
  url: URL,
  headers: Record<string, string>,
  signal: AbortSignal,
  idleTimeoutMs: number,
  ca: string | undefined,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const opts = { method: "GET", headers, signal, timeout: idleTimeoutMs, ...(ca ? { ca } : {}) };
    const req =
      url.protocol === "https:" ? https.request(url, opts, resolve) : http.request(url, opts, resolve);
    req.on("timeout", () => req.destroy(new Error(`no data for ${idleTimeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

function errText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code ? `${code} ${err.message}` : err.message;
  }
  return String(err);
}

/**
 * Downloads one firmware image from the collector, resumably: bytes go to `partPath`; after a dropped
 * connection the next request asks `Range: bytes=<have>-` and appends on 206 (the part already on disk is
 * hashed first), or starts over on 200. Never more than the declared length is accepted (IMAGE_TOO_LARGE,
 * part deleted); at the end the length and sha256 must match (else IMAGE_MISMATCH, part deleted) and the
 * part is renamed to `finalPath`. Transient failures are retried with backoff; `maxAttempts` in a row
 * without a new byte give DOWNLOAD_FAILED. Never throws.
 */
export async function downloadImage(o: DownloadOptions): Promise<DownloadResult> {
  const url = new URL(o.url);
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return { ok: false, code: "POLYFLEET_ERR_DOWNLOAD_FAILED", reason: `unsupported scheme ${url.protocol}` };
  }
  const maxAttempts = Math.max(1, o.maxAttempts ?? 5);
  const backoff = o.backoffMs ?? 500;
  const maxBackoff = o.maxBackoffMs ?? 10_000;
  const idle = o.idleTimeoutMs ?? 30_000;
  const aborted = (): DownloadResult => ({
    ok: false,
    code: "POLYFLEET_ERR_UPDATE_INTERRUPTED",
    reason: "download aborted",
    aborted: true,
  });
  const discard = async (): Promise<void> => {
    await unlink(o.partPath).catch(() => undefined);
  };

  let fruitless = 0;
  let highWater = 0;
  let requests = 0;
  let resumed = 0;
  let restartFromZero = false;
  let lastReason = "";
  for (;;) {
    if (o.signal.aborted) return aborted();
    if (restartFromZero) {
      await discard();
      restartFromZero = false;
    }
    let have = await sizeOf(o.partPath);
    if (have > o.length) {
      await discard();
      have = 0;
    }
    const hash = createHash("sha256");
    let res: IncomingMessage | undefined;
    try {
      if (have > 0) await hashFile(o.partPath, hash, o.signal);
      if (have < o.length) {
        const range = rangeHeader(have);
        requests++;
        res = await get(
          url,
          { accept: "application/octet-stream", ...(range ? { range } : {}) },
          o.signal,
          idle,
          o.ca,
        );
        const decision = decideResponse({
          have,
          length: o.length,
          status: res.statusCode ?? 0,
          contentLength: res.headers["content-length"],
          contentRange: res.headers["content-range"],
        });
        switch (decision.action) {
          case "tooLarge":
            res.destroy();
            await discard();
            return { ok: false, code: "POLYFLEET_ERR_IMAGE_TOO_LARGE", reason: decision.reason };
          case "mismatch":
            res.destroy();
            await discard();
            return { ok: false, code: "POLYFLEET_ERR_IMAGE_MISMATCH", reason: decision.reason };
          case "fail":
            res.destroy();
            return { ok: false, code: "POLYFLEET_ERR_DOWNLOAD_FAILED", reason: decision.reason };
          case "retry":
            res.destroy();
            restartFromZero = decision.discard;
            throw new Error(decision.reason);
          case "restart":
            if (have > 0) {
              have = 0;
              hash.destroy();
            }
            break;
          case "append":
            if (have > 0) resumed++;
            break;
        }
        const h = have === 0 ? createHash("sha256") : hash;
        const fh = await open(o.partPath, have === 0 ? "w" : "a");
        try {
          for await (const chunk of res as AsyncIterable<Buffer>) {
            if (have + chunk.length > o.length) {
              res.destroy();
              await fh.close().catch(() => undefined);
              await discard();
              return {
                ok: false,
                code: "POLYFLEET_ERR_IMAGE_TOO_LARGE",
                reason: `server sent more than the declared ${o.length} bytes`,
              };
            }
            await fh.write(chunk);
            h.update(chunk);
            have += chunk.length;
            o.onProgress?.(have, o.length);
          }
        } finally {
          await fh.close().catch(() => undefined);
        }
        if (have < o.length) throw new Error(`connection ended after ${have} of ${o.length} bytes`);
        return await finalize(o, h, resumed, requests);
      }
      return await finalize(o, hash, resumed, requests);
    } catch (err) {
      res?.destroy();
      if (o.signal.aborted || err instanceof Abort) return aborted();
      lastReason = errText(err);
    }
    // Progress is a byte count never reached before: a server that keeps cutting or ignoring the Range
    // cannot keep the loop going for ever.
    const size = restartFromZero ? 0 : await sizeOf(o.partPath);
    fruitless = size > highWater ? 0 : fruitless + 1;
    highWater = Math.max(highWater, size);
    if (fruitless >= maxAttempts || requests >= maxAttempts * 20) {
      return {
        ok: false,
        code: "POLYFLEET_ERR_DOWNLOAD_FAILED",
        reason: `gave up after ${requests} requests: ${lastReason}`,
      };
    }
    const wait = retryDelayMs(Math.max(1, fruitless), backoff, maxBackoff);
    o.onRetry?.({ attempt: requests, reason: lastReason, have: await sizeOf(o.partPath), delayMs: wait });
    await delay(wait, o.signal);
  }
}

async function finalize(
  o: DownloadOptions,
  hash: Hash,
  resumed: number,
  requests: number,
): Promise<DownloadResult> {
  const size = await sizeOf(o.partPath);
  const digest = hash.digest("hex");
  if (size !== o.length || digest !== o.sha256) {
    await unlink(o.partPath).catch(() => undefined);
    return {
      ok: false,
      code: "POLYFLEET_ERR_IMAGE_MISMATCH",
      reason:
        size !== o.length
          ? `image is ${size} bytes, the catalog says ${o.length}`
          : `image sha256 ${digest} differs from the catalog's ${o.sha256}`,
    };
  }
  await rename(o.partPath, o.finalPath);
  return { ok: true, resumed, requests };
}
