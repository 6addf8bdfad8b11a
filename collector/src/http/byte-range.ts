/** What to answer a request with a `Range` header for a body of a known length. */
export type RangeDecision =
  /** No usable Range: answer 200 with the whole body. */
  | { kind: "full" }
  /** 206 with bytes `start`..`end` (inclusive), `Content-Range: bytes start-end/length`. */
  | { kind: "partial"; start: number; end: number }
  /** 416 with `Content-Range: bytes *\/length`. */
  | { kind: "unsatisfiable" };

const SPEC = /^(\d*)-(\d*)$/;

/**
 * Decides a single-range request (RFC 9110 §14). Supported: `bytes=a-b`, `bytes=a-` and `bytes=-n` (the last
 * n bytes). A missing header, another range unit, or several ranges are ignored (the whole body, 200; the RFC
 * lets a server ignore Range, and multipart answers are not worth it for image downloads). A malformed byte
 * range (`bytes=5-2`, `bytes=x`), a start at or past the end, and `bytes=-0` are unsatisfiable (416). An end
 * past the body is clamped to the last byte.
 */
export function decideRange(header: string | undefined, length: number): RangeDecision {
  if (header === undefined) return { kind: "full" };
  const eq = header.indexOf("=");
  if (eq < 0) return { kind: "unsatisfiable" };
  if (header.slice(0, eq).trim().toLowerCase() !== "bytes") return { kind: "full" };
  const specs = header
    .slice(eq + 1)
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (specs.length > 1) return { kind: "full" };
  const m = SPEC.exec(specs[0] ?? "");
  const first = m?.[1] ?? "";
  const last = m?.[2] ?? "";
  if (m === null || (first === "" && last === "")) return { kind: "unsatisfiable" };
  if (first === "") {
    const n = Number(last);
    if (n === 0 || length === 0) return { kind: "unsatisfiable" };
    return { kind: "partial", start: Math.max(0, length - n), end: length - 1 };
  }
  const start = Number(first);
  if (start >= length) return { kind: "unsatisfiable" };
  if (last === "") return { kind: "partial", start, end: length - 1 };
  const end = Number(last);
  if (end < start) return { kind: "unsatisfiable" };
  return { kind: "partial", start, end: Math.min(end, length - 1) };
}

/** True when an `If-None-Match` value lists `etag` (weak comparison, as RFC 9110 §13.1.2 asks) or is `*`. */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  const bare = (t: string) => (t.startsWith("W/") ? t.slice(2) : t);
  return ifNoneMatch
    .split(",")
    .map((t) => t.trim())
    .some((t) => t === "*" || bare(t) === bare(etag));
}
