import { PolyfleetError } from "@polyfleet/shared";

/** Narrowest prefix a range may have by default: a /16 (65,534 hosts) is the widest range scanned. */
export const DEFAULT_MIN_PREFIX = 16;
/** Default limit on the addresses of all ranges of one scan together. */
export const DEFAULT_MAX_ADDRESSES = 65_536;

export interface CidrRange {
  /** Network address as an unsigned 32-bit integer (host bits cleared). */
  network: number;
  prefix: number;
}

export interface ExpandOptions {
  /** Ranges with a shorter prefix than this (wider ranges) are refused. Default 16. */
  minPrefix?: number;
  /** All ranges together may hold at most this many host addresses. Default 65,536. */
  maxAddresses?: number;
}

const OCTET = /^(0|[1-9]\d{0,2})$/;

/** Parses dotted-quad IPv4 into an unsigned 32-bit integer; undefined when it is not one. */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!OCTET.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

/** Formats an unsigned 32-bit integer as dotted-quad IPv4. */
export function formatIpv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/**
 * Parses `a.b.c.d/len`. Host bits are cleared (`10.0.0.5/24` is `10.0.0.0/24`). Throws a PolyfleetError
 * (POLYFLEET_ERR_CONFIG_INVALID) naming the text when it is not an IPv4 CIDR.
 */
export function parseCidr(text: string): CidrRange {
  const slash = text.indexOf("/");
  const ip = parseIpv4(slash < 0 ? text : text.slice(0, slash));
  const lenText = slash < 0 ? "32" : text.slice(slash + 1);
  const prefix = /^\d{1,2}$/.test(lenText) ? Number(lenText) : Number.NaN;
  if (ip === undefined || !(prefix >= 0 && prefix <= 32)) {
    throw new PolyfleetError(
      "POLYFLEET_ERR_CONFIG_INVALID",
      `"${text}" is not an IPv4 CIDR like 10.1.20.0/24`,
    );
  }
  return { network: (ip & maskOf(prefix)) >>> 0, prefix };
}

/** First and last scannable host: network and broadcast are excluded below /31 (RFC 3021 keeps both of a /31). */
export function hostBounds(range: CidrRange): { first: number; last: number } {
  const size = 2 ** (32 - range.prefix);
  const lastAddress = range.network + size - 1;
  if (range.prefix >= 31) return { first: range.network, last: lastAddress };
  return { first: range.network + 1, last: lastAddress - 1 };
}

/** How many host addresses `expandCidr` yields for the range. */
export function hostCount(range: CidrRange): number {
  const { first, last } = hostBounds(range);
  return last - first + 1;
}

/** True when the IPv4 address lies inside the range (network and broadcast included). */
export function cidrContains(range: CidrRange, address: string): boolean {
  const ip = parseIpv4(address);
  if (ip === undefined) return false;
  return (ip & maskOf(range.prefix)) >>> 0 === range.network;
}

/** Formats the range back as `a.b.c.d/len` (the canonical form, host bits cleared). */
export function formatCidr(range: CidrRange): string {
  return `${formatIpv4(range.network)}/${range.prefix}`;
}

function refuseWide(text: string, range: CidrRange, minPrefix: number): void {
  if (range.prefix < minPrefix) {
    throw new PolyfleetError(
      "POLYFLEET_ERR_DISCOVERY_RANGE_TOO_LARGE",
      `discovery range ${text} (${hostCount(range)} hosts) is wider than the /${minPrefix} limit: split it into smaller ranges`,
    );
  }
}

/** The host addresses of one CIDR, in ascending order. Refuses ranges wider than `minPrefix`. */
export function expandCidr(text: string, opts: ExpandOptions = {}): string[] {
  return expandRanges([text], opts);
}

/**
 * The host addresses of several CIDRs, in the order given, each address once. Throws a PolyfleetError
 * (POLYFLEET_ERR_DISCOVERY_RANGE_TOO_LARGE) when one range is wider than `minPrefix` or all of them together
 * exceed `maxAddresses`, before allocating anything.
 */
export function expandRanges(texts: readonly string[], opts: ExpandOptions = {}): string[] {
  const minPrefix = opts.minPrefix ?? DEFAULT_MIN_PREFIX;
  const maxAddresses = opts.maxAddresses ?? DEFAULT_MAX_ADDRESSES;
  const ranges = texts.map((t) => {
    const r = parseCidr(t);
    refuseWide(t, r, minPrefix);
    return r;
  });
  const total = ranges.reduce((s, r) => s + hostCount(r), 0);
  if (total > maxAddresses) {
    throw new PolyfleetError(
      "POLYFLEET_ERR_DISCOVERY_RANGE_TOO_LARGE",
      `discovery ranges hold ${total} addresses together, more than the limit of ${maxAddresses}`,
    );
  }
  const seen = new Set<number>();
  const out: string[] = [];
  for (const r of ranges) {
    const { first, last } = hostBounds(r);
    for (let ip = first; ip <= last; ip++) {
      if (seen.has(ip)) continue;
      seen.add(ip);
      out.push(formatIpv4(ip));
    }
  }
  return out;
}
