/**
 * Resumable image download decisions (pure): what to ask for, and what to do with the answer. The image
 * has a declared length; bytes already on disk (`have`) are kept when the server honours the Range.
 */

/** The Range header for a request that resumes after `have` bytes; undefined for a fresh download. */
export function rangeHeader(have: number): string | undefined {
  return have > 0 ? `bytes=${have}-` : undefined;
}

export type ResponseDecision =
  /** 206 from exactly `have`: append `remaining` bytes. */
  | { action: "append"; remaining: number }
  /** 200 (Range ignored or not asked): drop what is on disk and take the whole body. */
  | { action: "restart"; remaining: number }
  /** The server says the image is larger than declared. */
  | { action: "tooLarge"; reason: string }
  /** The server says the image is smaller than declared: it is not the catalog's image. */
  | { action: "mismatch"; reason: string }
  /** Try again later; with `discard`, from zero. */
  | { action: "retry"; reason: string; discard: boolean }
  /** Will not get better by retrying. */
  | { action: "fail"; reason: string };

export interface ResponseInput {
  /** Bytes already on disk when the request was made. */
  have: number;
  /** Declared image length. */
  length: number;
  status: number;
  contentLength?: string | undefined;
  contentRange?: string | undefined;
}

const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;

function intHeader(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d{1,16}$/.test(v.trim())) return undefined;
  return Number(v.trim());
}

/** Decides what an answer to an image GET means (see {@link ResponseDecision}). */
export function decideResponse(i: ResponseInput): ResponseDecision {
  const declared = intHeader(i.contentLength);
  if (i.status === 200) {
    if (declared !== undefined && declared > i.length) {
      return {
        action: "tooLarge",
        reason: `Content-Length ${declared} is more than the declared ${i.length}`,
      };
    }
    if (declared !== undefined && declared < i.length) {
      return { action: "mismatch", reason: `server has ${declared} bytes, the catalog says ${i.length}` };
    }
    return { action: "restart", remaining: i.length };
  }
  if (i.status === 206) {
    const m = CONTENT_RANGE.exec((i.contentRange ?? "").trim());
    if (!m) return { action: "retry", reason: "206 without a usable Content-Range", discard: true };
    const start = Number(m[1]);
    const end = Number(m[2]);
    const total = m[3] === "*" ? undefined : Number(m[3]);
    if ((total !== undefined && total > i.length) || end >= i.length) {
      return {
        action: "tooLarge",
        reason: `server has ${total ?? end + 1} bytes, more than the declared ${i.length}`,
      };
    }
    if (total !== undefined && total < i.length) {
      return { action: "mismatch", reason: `server has ${total} bytes, the catalog says ${i.length}` };
    }
    if (start !== i.have || end < start) {
      return {
        action: "retry",
        reason: `206 for bytes ${start}-${end}, asked from ${i.have}`,
        discard: true,
      };
    }
    const remaining = i.length - i.have;
    if (declared !== undefined && declared > remaining) {
      return { action: "tooLarge", reason: `Content-Length ${declared} is more than the ${remaining} left` };
    }
    return { action: "append", remaining };
  }
  if (i.status === 416) {
    const total = /^bytes \*\/(\d+)$/.exec((i.contentRange ?? "").trim());
    if (total && Number(total[1]) < i.length) {
      return { action: "mismatch", reason: `server has ${total[1]} bytes, the catalog says ${i.length}` };
    }
    // The part on disk does not fit the server's image (it changed, or the part is corrupt): start over.
    return { action: "retry", reason: "range not satisfiable", discard: true };
  }
  if (i.status === 408 || i.status === 429 || i.status >= 500) {
    return { action: "retry", reason: `HTTP ${i.status}`, discard: false };
  }
  return { action: "fail", reason: `HTTP ${i.status}` };
}

/** Backoff before retry `attempt` (1-based): base × 2^(attempt-1), capped. */
export function retryDelayMs(attempt: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
}
