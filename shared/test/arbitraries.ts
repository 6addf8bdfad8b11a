/**
 * fast-check arbitraries that produce VALID instances of every MQTT message contract in `shared/`.
 *
 * They are written by hand from fc primitives (not derived from the zod schemas), so a property over them
 * tests the schemas instead of restating them. Rules every arbitrary keeps:
 * - ids match their regexes, `z.int()` fields get safe integers, ranges are respected;
 * - an optional field is either present with a valid value or absent: never an `undefined`-valued key,
 *   because JSON drops those and a round trip would then differ from the input;
 * - every object has Object.prototype (no null-prototype records), and no number is `-0` or non-finite,
 *   so `JSON.parse(JSON.stringify(x))` deep-equals `x`;
 * - Command bodies are fully specified (every defaulted field present), so parsing returns the input.
 */
import fc from "fast-check";
import { ERRORS } from "../src/errors.js";
import type {
  Ack,
  AgentEvent,
  AgentState,
  Alert,
  Command,
  CommandBody,
  CommandResult,
  DeviceIdentity,
  Reading,
  ReadingBatch,
  Telemetry,
} from "../src/index.js";

// ---------------------------------------------------------------- primitives

const UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER = "abcdefghijklmnopqrstuvwxyz";
const DIGITS = "0123456789";
const ALNUM = UPPER + LOWER + DIGITS;
const HEX = "0123456789abcdef";

/** One character out of `chars`. */
function charOf(chars: string): fc.Arbitrary<string> {
  return fc.constantFrom(...chars.split(""));
}

/** A string made only of `chars`. */
function stringOf(chars: string, minLength: number, maxLength: number): fc.Arbitrary<string> {
  return fc.string({ unit: charOf(chars), minLength, maxLength });
}

/** `fc.record` that never yields null-prototype objects (they would not deep-equal a parsed copy). */
function rec<T, K extends keyof T = keyof T>(
  model: { [P in keyof T]: fc.Arbitrary<T[P]> },
  requiredKeys?: K[],
): fc.Arbitrary<fc.RecordValue<T, K>> {
  return requiredKeys === undefined
    ? (fc.record(model, { noNullPrototype: true }) as fc.Arbitrary<fc.RecordValue<T, K>>)
    : fc.record(model, { requiredKeys, noNullPrototype: true });
}

/** Free text: ASCII most of the time, any code point (astral, lone surrogates) sometimes. */
export const text = (maxLength = 24): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.string({ maxLength }) },
    { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength }) },
  );

/** Text with at least one UTF-16 code unit (what `z.string().min(1)` counts). */
export const nonEmptyText = (maxLength = 24): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.string({ minLength: 1, maxLength }) },
    { weight: 1, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength }) },
  );

/** Matches TopicId: `^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`. */
export const topicId: fc.Arbitrary<string> = fc
  .tuple(charOf(ALNUM), fc.oneof(stringOf(`${ALNUM}_.-`, 0, 8), stringOf(`${ALNUM}_.-`, 0, 63)))
  .map(([head, tail]) => head + tail);

/** Matches Mac: 12 lowercase hex digits. */
export const mac: fc.Arbitrary<string> = stringOf(HEX, 12, 12);

/** Matches DeviceId: `^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`, including the agent's own forms. */
export const deviceId: fc.Arbitrary<string> = fc.oneof(
  mac,
  fc.ipV4().map((ip) => `ip-${ip}`),
  fc
    .tuple(charOf(ALNUM), fc.oneof(stringOf(`${ALNUM}_.:-`, 0, 10), stringOf(`${ALNUM}_.:-`, 0, 127)))
    .map(([head, tail]) => head + tail),
);

/** EpochMs: a non-negative safe integer, mostly near "now". */
export const epochMs: fc.Arbitrary<number> = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 1_600_000_000_000, max: 2_100_000_000_000 }) },
  { weight: 1, arbitrary: fc.maxSafeNat() },
);

/** Seq: a positive safe integer. */
export const seq: fc.Arbitrary<number> = fc.oneof(
  fc.integer({ min: 1, max: 10_000 }),
  fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
);

/** A non-negative safe integer. */
export const count: fc.Arbitrary<number> = fc.oneof(fc.nat({ max: 1000 }), fc.maxSafeNat());

/** A positive safe integer. */
export const positive: fc.Arbitrary<number> = count.map((n) => (n === 0 ? 1 : n));

/** A finite double in [min, max]; `+ 0` turns -0 into 0 (JSON cannot carry -0). */
export function finite(min: number, max: number): fc.Arbitrary<number> {
  return fc.oneof(
    fc.integer({ min: Math.ceil(min), max: Math.floor(Math.min(max, Number.MAX_SAFE_INTEGER)) }),
    fc.double({ min, max, noNaN: true, noDefaultInfinity: true }).map((x) => x + 0),
  );
}

export const nonNegative: fc.Arbitrary<number> = finite(0, 1e15);
export const percent: fc.Arbitrary<number> = finite(0, 100);

/** An error code as PollError / CommandResult require: `^POLYFLEET_ERR_[A-Z0-9_]+$`. */
export const errorCode: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...Object.keys(ERRORS)),
  stringOf(`${UPPER}${DIGITS}_`, 1, 20).map((s) => `POLYFLEET_ERR_${s}`),
);

/** A dotted numeric OID, optionally with a leading dot (command Oid regex `^\.?\d+(\.\d+)*$`). */
export const oid: fc.Arbitrary<string> = fc
  .tuple(fc.boolean(), fc.array(fc.nat({ max: 2 ** 32 - 1 }), { minLength: 1, maxLength: 12 }))
  .map(([dot, parts]) => (dot ? "." : "") + parts.join("."));

/** A trap OID: at least two components, no leading dot (`^\d+(\.\d+)+$`). */
export const trapOid: fc.Arbitrary<string> = fc
  .array(fc.nat({ max: 2 ** 32 - 1 }), { minLength: 2, maxLength: 14 })
  .map((parts) => parts.join("."));

/** Matches the commandId regex `^[A-Za-z0-9_.:-]{8,128}$`. */
export const commandId: fc.Arbitrary<string> = fc.oneof(
  fc.uuid(),
  stringOf(`${ALNUM}_.:-`, 8, 16),
  stringOf(`${ALNUM}_.:-`, 8, 128),
);

/** A Host: 1..253 UTF-16 units (single-unit ASCII chars keep the count exact). */
export const host: fc.Arbitrary<string> = fc.oneof(
  fc.domain().filter((d) => d.length <= 253),
  fc.ipV4(),
  fc.ipV6(),
);

const hostLabel = fc
  .tuple(charOf(LOWER + DIGITS), stringOf(`${LOWER}${DIGITS}-`, 0, 10))
  .map(([h, t]) => h + t);

/** An http(s) URL that `new URL()` accepts and whose scheme is http or https. */
export const httpUrl: fc.Arbitrary<string> = fc
  .record({
    scheme: fc.constantFrom("http", "https"),
    // The last label starts with a letter: WHATWG URL reads a numeric last label as an (invalid) IPv4 address.
    hostname: fc.oneof(
      fc
        .tuple(fc.array(hostLabel, { maxLength: 3 }), charOf(LOWER), stringOf(LOWER + DIGITS, 0, 6))
        .map(([labels, h, t]) => [...labels, h + t].join(".")),
      fc.ipV4(),
    ),
    port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
    path: fc.array(stringOf(`${ALNUM}._~-`, 1, 12), { maxLength: 4 }),
  })
  .map(
    ({ scheme, hostname, port, path }) =>
      `${scheme}://${hostname}${port === undefined ? "" : `:${port}`}/${path.join("/")}`,
  );

const severity = fc.constantFrom("critical", "major", "minor", "warning", "info" as const);
const deviceFamily = fc.constantFrom("uc", "videoos", "snmp" as const);

/** The header every stream message carries. */
const streamHeader = {
  v: fc.constant(1 as const),
  agentId: topicId,
  siteId: topicId,
  seq,
  ts: epochMs,
};

// ---------------------------------------------------------------- telemetry

export const deviceIdentity: fc.Arbitrary<DeviceIdentity> = rec(
  {
    address: fc.oneof(fc.ipV4(), fc.ipV6(), nonEmptyText()),
    family: deviceFamily,
    vendor: text(),
    model: text(),
    serial: text(),
    mac,
    partNumber: text(),
    systemName: text(),
    ipv6: text(),
  },
  ["address", "family"],
);

export const reading: fc.Arbitrary<Reading> = rec(
  {
    ...streamHeader,
    kind: fc.constant("reading" as const),
    deviceId,
    driver: fc.constantFrom("poly-ucs", "poly-videoos", "snmp-generic" as const),
    reachable: fc.boolean(),
    pollLatencyMs: nonNegative,
    identity: deviceIdentity,
    firmware: fc.array(
      rec({ component: nonEmptyText(), version: nonEmptyText(), build: text() }, ["component", "version"]),
      { maxLength: 3 },
    ),
    health: fc.array(
      rec(
        {
          name: nonEmptyText(),
          state: fc.constantFrom("up", "down", "off", "unknown" as const),
          detail: text(),
        },
        ["name", "state"],
      ),
      { maxLength: 3 },
    ),
    peripherals: fc.array(
      rec(
        {
          id: nonEmptyText(),
          category: nonEmptyText(),
          name: text(),
          state: fc.constantFrom("connected", "paired", "disconnected", "missing", "unknown" as const),
          serial: text(),
          firmware: text(),
          mac: text(),
        },
        ["id", "category", "name", "state"],
      ),
      { maxLength: 3 },
    ),
    lines: fc.array(
      rec({ line: positive, address: text(), label: text(), registered: fc.boolean(), state: text() }, [
        "line",
        "address",
        "registered",
        "state",
      ]),
      { maxLength: 3 },
    ),
    cpuPct: percent,
    memPct: percent,
    memUsedBytes: nonNegative,
    memTotalBytes: nonNegative,
    uptimeSec: nonNegative,
    inCall: fc.boolean(),
    network: rec(
      {
        rxPacketsPerSec: nonNegative,
        txPacketsPerSec: nonNegative,
        rxBytesPerSec: nonNegative,
        txBytesPerSec: nonNegative,
        packetLossPct: percent,
        linkSpeedMbps: nonNegative,
      },
      [],
    ),
    errors: fc.array(rec({ code: errorCode, message: text(), endpoint: text() }, ["code", "message"]), {
      maxLength: 2,
    }),
  },
  [
    "v",
    "agentId",
    "siteId",
    "seq",
    "ts",
    "kind",
    "deviceId",
    "driver",
    "reachable",
    "pollLatencyMs",
    "identity",
    "firmware",
    "health",
    "peripherals",
    "lines",
    "network",
    "errors",
  ],
);

export const readingBatch: fc.Arbitrary<ReadingBatch> = rec({
  v: fc.constant(1 as const),
  kind: fc.constant("batch" as const),
  agentId: topicId,
  siteId: topicId,
  items: fc.array(reading, { minLength: 1, maxLength: 3 }),
});

export const telemetry: fc.Arbitrary<Telemetry> = fc.oneof(reading, readingBatch);

// ---------------------------------------------------------------- events

const deviceDiscovered = rec({
  ...streamHeader,
  type: fc.constant("device.discovered" as const),
  deviceId,
  identity: deviceIdentity,
  via: fc.array(fc.constantFrom("snmp", "https", "http", "config" as const), { minLength: 1, maxLength: 4 }),
});

const deviceLost = rec({
  ...streamHeader,
  type: fc.constant("device.lost" as const),
  deviceId,
  address: text(),
  missedPolls: count,
  reason: text(),
});

const deviceReachability = rec({
  ...streamHeader,
  type: fc.constant("device.reachability" as const),
  deviceId,
  reachable: fc.boolean(),
  missedPolls: count,
});

const trap = rec(
  {
    ...streamHeader,
    type: fc.constant("trap" as const),
    deviceId,
    source: text(),
    trapOid,
    name: text(),
    kind: fc.constantFrom("problem", "resolution", "info" as const),
    severity,
    varbinds: fc.array(rec({ oid: text(), value: text() }), { maxLength: 3 }),
  },
  [
    "v",
    "agentId",
    "siteId",
    "seq",
    "ts",
    "type",
    "source",
    "trapOid",
    "name",
    "kind",
    "severity",
    "varbinds",
  ],
);

const updateProgress = rec(
  {
    ...streamHeader,
    type: fc.constant("update.progress" as const),
    deviceId,
    commandId,
    rolloutId: text(),
    phase: fc.constantFrom(
      "accepted",
      "downloading",
      "staged",
      "installing",
      "rebooting",
      "verifying",
      "succeeded",
      "failed" as const,
    ),
    targetVersion: text(),
    reportedVersion: text(),
    bytes: count,
    totalBytes: count,
    reason: text(),
  },
  ["v", "agentId", "siteId", "seq", "ts", "type", "deviceId", "commandId", "phase", "targetVersion"],
);

const discoveryProgress = rec({
  ...streamHeader,
  type: fc.constant("discovery.progress" as const),
  scanId: text(),
  scanned: count,
  total: count,
  found: count,
  done: fc.boolean(),
});

const outboxDropped = rec({
  ...streamHeader,
  type: fc.constant("outbox.dropped" as const),
  range: fc.tuple(
    fc.integer({ min: 1, max: 2 ** 40 }),
    fc.integer({ min: 0, max: 10_000 }),
    fc.integer({ min: 0, max: 10_000 }),
    fc.nat({ max: 2 ** 40 }),
  ),
}).map(({ range: [fromSeq, span, gap, extra], ...rest }) => {
  const dropped = Math.max(1, span - gap);
  return { ...rest, dropped, fromSeq, toSeq: fromSeq + span, totalDropped: dropped + extra };
});

const deviceClassified = rec(
  {
    ...streamHeader,
    type: fc.constant("device.classified" as const),
    deviceId,
    family: deviceFamily,
    model: text(),
  },
  ["v", "agentId", "siteId", "seq", "ts", "type", "deviceId", "family"],
);

/** One arbitrary per AgentEvent variant, keyed by its `type`. */
export const agentEventVariants = {
  "device.discovered": deviceDiscovered,
  "device.lost": deviceLost,
  "device.reachability": deviceReachability,
  trap,
  "update.progress": updateProgress,
  "discovery.progress": discoveryProgress,
  "outbox.dropped": outboxDropped,
  "device.classified": deviceClassified,
} satisfies { [T in AgentEvent["type"]]: fc.Arbitrary<Extract<AgentEvent, { type: T }>> };

export const agentEvent: fc.Arbitrary<AgentEvent> = fc.oneof(...Object.values(agentEventVariants));

// ---------------------------------------------------------------- agent state, ack

export const agentStateOnline = rec(
  {
    v: fc.constant(1 as const),
    agentId: topicId,
    siteId: topicId,
    status: fc.constant("online" as const),
    sessionId: nonEmptyText(),
    ts: epochMs,
    version: nonEmptyText(),
    capabilities: fc.array(text(), { maxLength: 5 }),
    protocolVersion: fc.constantFrom(4, 5 as const),
    hostname: text(),
  },
  ["v", "agentId", "siteId", "status", "sessionId", "ts", "version", "capabilities", "protocolVersion"],
);

export const agentStateOffline = rec({
  v: fc.constant(1 as const),
  agentId: topicId,
  siteId: topicId,
  status: fc.constant("offline" as const),
  sessionId: nonEmptyText(),
  ts: epochMs,
  reason: fc.constantFrom("will", "shutdown" as const),
});

export const agentState: fc.Arbitrary<AgentState> = fc.oneof(agentStateOnline, agentStateOffline);

export const ack: fc.Arbitrary<Ack> = rec({
  v: fc.constant(1 as const),
  agentId: topicId,
  seq: count,
  ts: epochMs,
});

// ---------------------------------------------------------------- commands

const timeoutMs = fc.integer({ min: 1, max: 120_000 });

const snmpTarget = fc.oneof(rec({ deviceId }), rec({ address: host, credentials: nonEmptyText() }));

/** One arbitrary per command body type, every defaulted field given explicitly. */
export const commandBodyVariants = {
  ping: rec({
    type: fc.constant("ping" as const),
    target: host,
    count: fc.integer({ min: 1, max: 20 }),
    timeoutMs,
  }),
  tcpConnect: rec({
    type: fc.constant("tcpConnect" as const),
    host,
    port: fc.integer({ min: 1, max: 65535 }),
    timeoutMs,
  }),
  httpProbe: rec({
    type: fc.constant("httpProbe" as const),
    url: httpUrl,
    timeoutMs,
    insecure: fc.boolean(),
  }),
  dnsLookup: rec({
    type: fc.constant("dnsLookup" as const),
    name: host,
    rrtype: fc.constantFrom("A", "AAAA", "CNAME", "MX", "TXT", "SRV", "PTR", "NS" as const),
  }),
  traceroute: rec({
    type: fc.constant("traceroute" as const),
    target: host,
    maxHops: fc.integer({ min: 1, max: 64 }),
    timeoutMs,
  }),
  snmpGet: rec({
    type: fc.constant("snmpGet" as const),
    target: snmpTarget,
    oids: fc.array(oid, { minLength: 1, maxLength: 64, size: "small" }),
  }),
  snmpWalk: rec({
    type: fc.constant("snmpWalk" as const),
    target: snmpTarget,
    rootOid: oid,
    maxVarbinds: fc.integer({ min: 1, max: 100_000 }),
    maxMs: fc.integer({ min: 100, max: 300_000 }),
  }),
  rediscover: rec(
    {
      type: fc.constant("rediscover" as const),
      ranges: fc.array(text(), { maxLength: 3 }),
    },
    ["type"],
  ),
  reboot: rec({ type: fc.constant("reboot" as const), deviceId, reason: nonEmptyText() }),
  firmwareUpdate: rec(
    {
      type: fc.constant("firmwareUpdate" as const),
      deviceId,
      rolloutId: text(),
      targetVersion: nonEmptyText(),
      image: rec({
        url: httpUrl,
        fileName: stringOf(`${ALNUM}._-`, 1, 40),
        length: positive,
        sha256: stringOf(HEX, 64, 64),
      }),
      timeoutMs: fc.integer({ min: 1000, max: 7_200_000 }),
    },
    ["type", "deviceId", "targetVersion", "image", "timeoutMs"],
  ),
} satisfies { [T in CommandBody["type"]]: fc.Arbitrary<Extract<CommandBody, { type: T }>> };

export const commandBody: fc.Arbitrary<CommandBody> = fc.oneof(...Object.values(commandBodyVariants));

export const command: fc.Arbitrary<Command> = rec(
  {
    v: fc.constant(1 as const),
    commandId,
    agentId: topicId,
    issuedBy: nonEmptyText(),
    issuedAt: epochMs,
    expiresAt: epochMs,
    body: commandBody,
  },
  ["v", "commandId", "agentId", "issuedBy", "issuedAt", "body"],
).map((c) => (c.expiresAt !== undefined && c.expiresAt < c.issuedAt ? { ...c, expiresAt: c.issuedAt } : c));

/**
 * Free-form result data. `__proto__` is left out of the top-level keys: `z.record` copies entries by
 * assignment, so such a key is (harmlessly) dropped and would make the round trip differ.
 */
const resultData = fc.dictionary(
  text(12).filter((k) => k !== "__proto__"),
  // fc.jsonValue can yield -0, which JSON turns into 0: normalise through a JSON round trip.
  fc.jsonValue({ maxDepth: 2 }).map((j) => JSON.parse(JSON.stringify(j)) as unknown),
  { maxKeys: 4, noNullPrototype: true },
);

export const commandResultOk = rec({
  v: fc.constant(1 as const),
  agentId: topicId,
  commandId,
  status: fc.constant("ok" as const),
  ts: epochMs,
  durationMs: nonNegative,
  data: resultData,
});

export const commandResultError = rec({
  v: fc.constant(1 as const),
  agentId: topicId,
  commandId,
  status: fc.constant("error" as const),
  ts: epochMs,
  durationMs: nonNegative,
  error: rec({ code: errorCode, message: text() }),
});

export const commandResult: fc.Arbitrary<CommandResult> = fc.oneof(commandResultOk, commandResultError);

// ---------------------------------------------------------------- alerts

export const alert: fc.Arbitrary<Alert> = rec(
  {
    v: fc.constant(1 as const),
    id: nonEmptyText(),
    fingerprint: nonEmptyText(),
    rule: nonEmptyText(),
    severity,
    state: fc.constantFrom("firing", "acknowledged", "resolved" as const),
    summary: text(),
    siteId: topicId,
    agentId: topicId,
    deviceId,
    labels: fc.dictionary(
      text(12).filter((k) => k !== "__proto__"),
      text(),
      { maxKeys: 4, noNullPrototype: true },
    ),
    startsAt: epochMs,
    updatedAt: epochMs,
    endsAt: epochMs,
    ack: rec({ by: nonEmptyText(), at: epochMs, comment: text() }),
    flapping: fc.boolean(),
    escalationLevel: count,
    silenced: fc.boolean(),
  },
  [
    "v",
    "id",
    "fingerprint",
    "rule",
    "severity",
    "state",
    "summary",
    "labels",
    "startsAt",
    "updatedAt",
    "flapping",
    "escalationLevel",
    "silenced",
  ],
);
