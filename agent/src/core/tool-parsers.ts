/**
 * Pure parsers of the text the system network tools print (iputils `ping`, Linux `traceroute`), run with
 * `LC_ALL=C` and `-n` so numbers and addresses have one form. They never throw: text they do not recognise
 * yields `null` (ping) or no hops (traceroute).
 */

/** One echo reply line: `64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.134 ms`. */
export interface PingReply {
  seq: number;
  ttl: number | null;
  timeMs: number;
}

/** The summary block of a ping run. */
export interface PingSummary {
  /** The address ping resolved the target to (`PING host (addr) ...`), when printed. */
  address: string | null;
  transmitted: number;
  received: number;
  duplicates: number;
  corrupted: number;
  errors: number;
  /** Packet loss in percent as ping prints it (0-100, may be fractional). */
  lossPercent: number;
  /** Total run time ping reports, in ms. */
  timeMs: number | null;
  /** Round-trip statistics; null when no reply came back. `mdevMs` is null where the tool omits it. */
  rtt: { minMs: number; avgMs: number; maxMs: number; mdevMs: number | null } | null;
  replies: PingReply[];
}

const NUM = String.raw`(\d+(?:\.\d+)?)`;
const STATS_RE = new RegExp(
  String.raw`^\s*(\d+) packets transmitted, (\d+) (?:packets )?received` +
    String.raw`(?:, \+(\d+) duplicates)?(?:, \+(\d+) corrupted)?(?:, \+(\d+) errors)?` +
    String.raw`, ${NUM}% packet loss(?:, time (\d+)ms)?`,
  "m",
);
const RTT_RE = new RegExp(
  String.raw`^\s*(?:rtt|round-trip) min/avg/max(/mdev|/stddev)? = ${NUM}/${NUM}/${NUM}(?:/${NUM})? ms`,
  "m",
);
/** `PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.` or, for IPv6, `PING ::1(::1) 56 data bytes`. */
const HEADER_RE = /^PING \S+? ?\(([^)\s]+)\)/m;
const REPLY_RE = new RegExp(
  String.raw`^\d+ bytes from .+?: icmp_seq=(\d+)(?: ttl=(\d+))? time[=<]${NUM} ms`,
  "gm",
);

/** Parses iputils (or busybox) `ping` output. Returns null when the statistics line is absent. */
export function parsePingOutput(text: string): PingSummary | null {
  const stats = STATS_RE.exec(text);
  if (!stats) return null;
  const rtt = RTT_RE.exec(text);
  const header = HEADER_RE.exec(text);
  const replies: PingReply[] = [];
  for (const m of text.matchAll(REPLY_RE)) {
    replies.push({ seq: Number(m[1]), ttl: m[2] === undefined ? null : Number(m[2]), timeMs: Number(m[3]) });
    if (replies.length >= 1000) break;
  }
  return {
    address: header?.[1] ?? null,
    transmitted: Number(stats[1]),
    received: Number(stats[2]),
    duplicates: Number(stats[3] ?? 0),
    corrupted: Number(stats[4] ?? 0),
    errors: Number(stats[5] ?? 0),
    lossPercent: Number(stats[6]),
    timeMs: stats[7] === undefined ? null : Number(stats[7]),
    rtt: rtt
      ? {
          minMs: Number(rtt[2]),
          avgMs: Number(rtt[3]),
          maxMs: Number(rtt[4]),
          mdevMs: rtt[5] === undefined ? null : Number(rtt[5]),
        }
      : null,
    replies,
  };
}

/** One probe of a hop: who answered (null = `*`, no answer), in how long, and any `!H`-style annotation. */
export interface TracerouteProbe {
  address: string | null;
  rttMs: number | null;
  annotation: string | null;
}

export interface TracerouteHop {
  hop: number;
  /** The first address that answered at this hop, null when every probe timed out. */
  address: string | null;
  /** The first answered probe's round trip. */
  rttMs: number | null;
  probes: TracerouteProbe[];
}

export interface TracerouteResult {
  /** The destination address from the header line (`traceroute to host (addr), ...`). */
  destination: string | null;
  maxHops: number | null;
  hops: TracerouteHop[];
  /** The last hop is the destination itself. */
  reached: boolean;
}

const TR_HEADER_RE = /^traceroute to \S+ \(([^)\s]+)\), (\d+) hops max/m;
const HOP_RE = /^\s*(\d+)\s+(.*)$/;
const RTT_TOKEN_RE = /^\d+(?:\.\d+)?$/;

/** Parses Linux `traceroute -n` output (any `-q`); lines it does not recognise are skipped. */
export function parseTracerouteOutput(text: string): TracerouteResult {
  const header = TR_HEADER_RE.exec(text);
  const destination = header?.[1] ?? null;
  const hops: TracerouteHop[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("traceroute to ")) continue;
    const m = HOP_RE.exec(line);
    if (!m) continue;
    const probes = parseProbes(m[2] ?? "");
    if (probes.length === 0) continue;
    const answered = probes.find((p) => p.address !== null);
    hops.push({
      hop: Number(m[1]),
      address: answered?.address ?? null,
      rttMs: answered?.rttMs ?? null,
      probes,
    });
    if (hops.length >= 255) break;
  }
  const last = hops[hops.length - 1];
  const reached = destination !== null && (last?.probes.some((p) => p.address === destination) ?? false);
  return { destination, maxHops: header ? Number(header[2]) : null, hops, reached };
}

function parseProbes(rest: string): TracerouteProbe[] {
  const tokens = rest
    .trim()
    .split(/\s+/)
    .filter((t) => t.length > 0);
  const probes: TracerouteProbe[] = [];
  let current: string | null = null;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as string;
    if (t === "*") {
      probes.push({ address: null, rttMs: null, annotation: null });
    } else if (RTT_TOKEN_RE.test(t) && tokens[i + 1] === "ms") {
      if (current === null) return []; // an RTT with no address before it: not a hop line
      probes.push({ address: current, rttMs: Number(t), annotation: null });
      i++;
    } else if (t.startsWith("!")) {
      const last = probes[probes.length - 1];
      if (last) last.annotation = t;
    } else if (t.startsWith("(") && t.endsWith(")")) {
      current = t.slice(1, -1); // `host (addr)` when names are resolved: keep the address
    } else {
      current = t; // with -n an address; without, a host name until its `(addr)` follows
    }
  }
  return probes;
}
