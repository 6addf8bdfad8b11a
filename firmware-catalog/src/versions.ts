import { PolyfleetError } from "@polyfleet/shared";

/**
 * Version ordering for Poly firmware.
 *
 * Numeric parts are kept as the digits written (leading zeros included, so formatting round-trips: UC builds
 * such as `5.9.5.0614` exist) and compared as numbers: `5.10` > `5.9`, `0614` == `614`.
 */

/** The families whose versions can be compared. "snmp" is a generic dotted-numeric fallback. */
export type VersionFamily = "uc" | "videoos" | "snmp";

/** The build timestamp a UC phone appends in `Firmware.Application`: `28-Feb-22 15:29`. */
export interface UcTimestamp {
  /** Full year (two-digit years are 2000 + yy). */
  year: number;
  /** 1-12. */
  month: number;
  day: number;
  hour: number;
  minute: number;
}

/** UC Software version: `major.minor.patch.build[SUFFIX][ DD-Mon-YY HH:MM]`. */
export interface UcVersion {
  /** The four numeric parts, digits as written. */
  parts: [string, string, string, string];
  /** Letter revision after the fourth part ("" when none; up to three of A-Z): `5.4.3.1138AA`. */
  suffix: string;
  timestamp?: UcTimestamp;
}

/** VideoOS version: `major.minor.patch[-build]` (`3.12.0`, `3.12.0-366027`). */
export interface VideoosVersion {
  parts: [string, string, string];
  build?: string;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"] as const;
const NUM = "(\\d{1,12})";
const UC_RE = new RegExp(
  `^${NUM}\\.${NUM}\\.${NUM}\\.${NUM}([A-Z]{0,3})(?:\\s+(\\d{1,2})-([A-Za-z]{3})-(\\d{2})\\s+(\\d{1,2}):(\\d{2}))?$`,
);
const VIDEOOS_RE = new RegExp(`^${NUM}\\.${NUM}\\.${NUM}(?:-${NUM}|\\s+\\(${NUM}\\))?$`);
const SNMP_RE = /^\d{1,12}(?:\.\d{1,12}){0,15}$/;

const EXPECTED: Record<VersionFamily, string> = {
  uc: 'UC Software major.minor.patch.build with an optional A-Z suffix and build timestamp, e.g. "7.2.2.1094" or "7.2.2.1094 28-Feb-22 15:29"',
  videoos: 'VideoOS major.minor.patch with an optional build, e.g. "3.12.0" or "3.12.0-366027"',
  snmp: 'dotted numbers, e.g. "6.2.2"',
};

function two(n: number): string {
  return String(n).padStart(2, "0");
}

/** Parses a UC Software version (optionally with the build timestamp of `Firmware.Application`). */
export function parseUcVersion(s: string): UcVersion | undefined {
  const m = UC_RE.exec(s.trim());
  if (!m) return undefined;
  const [, a, b, c, d, suffix, day, mon, yy, hh, mm] = m as unknown as string[];
  const v: UcVersion = { parts: [a ?? "", b ?? "", c ?? "", d ?? ""], suffix: suffix ?? "" };
  if (day !== undefined && mon !== undefined && yy !== undefined && hh !== undefined && mm !== undefined) {
    const month = MONTHS.findIndex((x) => x.toLowerCase() === mon.toLowerCase()) + 1;
    const t: UcTimestamp = {
      year: 2000 + Number(yy),
      month,
      day: Number(day),
      hour: Number(hh),
      minute: Number(mm),
    };
    if (!validTimestamp(t)) return undefined;
    v.timestamp = t;
  }
  return v;
}

function validTimestamp(t: UcTimestamp): boolean {
  if (t.month < 1 || t.month > 12 || t.hour > 23 || t.minute > 59 || t.day < 1) return false;
  const daysInMonth = new Date(Date.UTC(t.year, t.month, 0)).getUTCDate();
  return t.day <= daysInMonth && t.year >= 2000 && t.year <= 2099;
}

/** Formats a UC version canonically (single spaces, two-digit day and hour, `Mon` month). */
export function formatUcVersion(v: UcVersion): string {
  const core = `${v.parts.join(".")}${v.suffix}`;
  const t = v.timestamp;
  if (!t) return core;
  const month = MONTHS[t.month - 1] ?? "???";
  return `${core} ${two(t.day)}-${month}-${two(t.year % 100)} ${two(t.hour)}:${two(t.minute)}`;
}

/** Parses a VideoOS version: `3.12.0`, `3.12.0-366027` (also `3.12.0 (366027)`, formatted with a dash). */
export function parseVideoosVersion(s: string): VideoosVersion | undefined {
  const m = VIDEOOS_RE.exec(s.trim());
  if (!m) return undefined;
  const [, a, b, c, dash, paren] = m as unknown as (string | undefined)[];
  const build = dash ?? paren;
  return { parts: [a ?? "", b ?? "", c ?? ""], ...(build !== undefined ? { build } : {}) };
}

/** Formats a VideoOS version: `major.minor.patch[-build]`. */
export function formatVideoosVersion(v: VideoosVersion): string {
  return v.build === undefined ? v.parts.join(".") : `${v.parts.join(".")}-${v.build}`;
}

function parseSnmp(s: string): string[] | undefined {
  const t = s.trim();
  return SNMP_RE.test(t) ? t.split(".") : undefined;
}

/** Compares two digit strings as numbers (leading zeros ignored). */
function cmpDigits(a: string, b: string): number {
  const x = a.replace(/^0+(?=\d)/, "");
  const y = b.replace(/^0+(?=\d)/, "");
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

function cmpParts(a: readonly string[], b: readonly string[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = cmpDigits(a[i] ?? "0", b[i] ?? "0");
    if (c !== 0) return c;
  }
  return Math.sign(a.length - b.length);
}

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function timestampKey(t: UcTimestamp): number {
  return Date.UTC(t.year, t.month - 1, t.day, t.hour, t.minute);
}

function cmpUc(a: UcVersion, b: UcVersion, withTimestamp: boolean): number {
  const p = cmpParts(a.parts, b.parts);
  if (p !== 0) return p;
  const s = cmpStr(a.suffix, b.suffix);
  if (s !== 0 || !withTimestamp) return s;
  if (!a.timestamp || !b.timestamp) return Math.sign(Number(!!a.timestamp) - Number(!!b.timestamp));
  return Math.sign(timestampKey(a.timestamp) - timestampKey(b.timestamp));
}

function cmpVideoos(a: VideoosVersion, b: VideoosVersion): number {
  const p = cmpParts(a.parts, b.parts);
  if (p !== 0) return p;
  if (a.build === undefined || b.build === undefined)
    return Math.sign(Number(a.build !== undefined) - Number(b.build !== undefined));
  return cmpDigits(a.build, b.build);
}

function invalid(family: VersionFamily, s: string): PolyfleetError {
  return new PolyfleetError(
    "POLYFLEET_ERR_VERSION_INVALID",
    `${JSON.stringify(s)} is not a valid version: expected ${EXPECTED[family]}`,
  );
}

function familyOf(family: string): VersionFamily {
  if (family === "uc" || family === "videoos" || family === "snmp") return family;
  throw new PolyfleetError(
    "POLYFLEET_ERR_VERSION_INVALID",
    `unknown version family ${JSON.stringify(family)}`,
  );
}

/** True when `s` parses as a version of `family`. */
export function isValidVersion(family: VersionFamily, s: string): boolean {
  return tryCompareVersions(family, s, s) !== undefined;
}

/**
 * Orders two versions of one family: -1, 0 or 1. UC: the four parts numerically, then the suffix (none < A <
 * AA < B, lexicographic), then the build timestamp (absent first, then chronological). VideoOS: the three parts,
 * then the build numerically (absent first). SNMP: dotted numbers, a prefix first (`1.2` < `1.2.0`).
 * Throws VERSION_INVALID naming the string and the expected form.
 */
export function compareVersions(family: VersionFamily, a: string, b: string): number {
  const f = familyOf(family);
  switch (f) {
    case "uc": {
      const x = parseUcVersion(a);
      if (!x) throw invalid(f, a);
      const y = parseUcVersion(b);
      if (!y) throw invalid(f, b);
      return cmpUc(x, y, true);
    }
    case "videoos": {
      const x = parseVideoosVersion(a);
      if (!x) throw invalid(f, a);
      const y = parseVideoosVersion(b);
      if (!y) throw invalid(f, b);
      return cmpVideoos(x, y);
    }
    case "snmp": {
      const x = parseSnmp(a);
      if (!x) throw invalid(f, a);
      const y = parseSnmp(b);
      if (!y) throw invalid(f, b);
      return cmpParts(x, y);
    }
  }
}

/** `compareVersions` that answers `undefined` instead of throwing when either version does not parse. */
export function tryCompareVersions(family: VersionFamily, a: string, b: string): number | undefined {
  try {
    return compareVersions(family, a, b);
  } catch {
    return undefined;
  }
}

/**
 * The same release? UC: equal ignoring the build timestamp (a phone reporting `7.2.2.1094 28-Feb-22 15:29`
 * runs release `7.2.2.1094`). VideoOS: equal parts, and equal builds when both sides have one (a missing build
 * matches any build). SNMP: equal. False when either does not parse (a garbled report is never "the target").
 */
export function sameRelease(family: VersionFamily, a: string, b: string): boolean {
  const f = familyOf(family);
  switch (f) {
    case "uc": {
      const x = parseUcVersion(a);
      const y = parseUcVersion(b);
      return x !== undefined && y !== undefined && cmpUc(x, y, false) === 0;
    }
    case "videoos": {
      const x = parseVideoosVersion(a);
      const y = parseVideoosVersion(b);
      if (!x || !y || cmpParts(x.parts, y.parts) !== 0) return false;
      return x.build === undefined || y.build === undefined || cmpDigits(x.build, y.build) === 0;
    }
    case "snmp":
      return tryCompareVersions(f, a, b) === 0;
  }
}

/**
 * Orders two versions as releases: 0 when `sameRelease`, else the order of their cores (UC without the
 * timestamp; VideoOS with the builds only when both have one). This is the comparison to use between a
 * catalog release and what a device reports. Throws VERSION_INVALID when either does not parse.
 */
export function compareReleases(family: VersionFamily, a: string, b: string): number {
  compareVersions(family, a, b); // throws VERSION_INVALID for either side that does not parse
  if (sameRelease(family, a, b)) return 0;
  const f = familyOf(family);
  if (f === "uc") return compareVersions(f, versionCore(f, a), versionCore(f, b));
  if (f === "videoos") {
    const x = parseVideoosVersion(a);
    const y = parseVideoosVersion(b);
    // sameRelease already parsed both; the parts differ or both builds are present and differ.
    if (x && y) return cmpVideoos(x, y);
  }
  return compareVersions(f, a, b);
}

/** The canonical version without the UC build timestamp (`7.2.2.1094 28-Feb-22 15:29` → `7.2.2.1094`). */
export function versionCore(family: VersionFamily, s: string): string {
  const f = familyOf(family);
  switch (f) {
    case "uc": {
      const x = parseUcVersion(s);
      if (!x) throw invalid(f, s);
      return formatUcVersion({ parts: x.parts, suffix: x.suffix });
    }
    case "videoos": {
      const x = parseVideoosVersion(s);
      if (!x) throw invalid(f, s);
      return formatVideoosVersion(x);
    }
    case "snmp": {
      const x = parseSnmp(s);
      if (!x) throw invalid(f, s);
      return x.join(".");
    }
  }
}
