import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { z } from "zod";
import {
  Ack,
  AgentEvent,
  AgentState,
  Alert,
  Command,
  CommandResult,
  formatPath,
  parseMessage,
  Reading,
  ReadingBatch,
  Telemetry,
} from "../src/index.js";
import * as arb from "./arbitraries.js";

const RUNS = { numRuns: 200 };

type PathKey = string | number;
type Msg = Record<string, unknown>;

/**
 * One message family under test. `required` lists, as path patterns (`items[].identity.address`), every key
 * the contract requires in a message of this shape; every other key present in a generated message is
 * optional or defaulted. Both halves are checked below, so the lists pin the contract: making a required
 * field optional (or the reverse) fails a test.
 */
interface Case {
  name: string;
  schema: z.ZodType;
  arb: fc.Arbitrary<Msg>;
  required: readonly string[];
  /** Paths whose content the schema does not constrain (`z.unknown()`); never mutated to a wrong type. */
  opaque?: (path: readonly PathKey[]) => boolean;
}

const HEADER = ["v", "agentId", "siteId", "seq", "ts"];
const under = (prefix: string, keys: readonly string[]): string[] => keys.map((k) => `${prefix}.${k}`);

const IDENTITY_REQUIRED = ["identity", "identity.address", "identity.family"];
const READING_REQUIRED = [
  ...HEADER,
  "kind",
  "deviceId",
  "driver",
  "reachable",
  "pollLatencyMs",
  ...IDENTITY_REQUIRED,
  "firmware",
  "firmware[].component",
  "firmware[].version",
  "health",
  "health[].name",
  "health[].state",
  "peripherals",
  "peripherals[].id",
  "peripherals[].category",
  "peripherals[].name",
  "peripherals[].state",
  "lines",
  "lines[].line",
  "lines[].address",
  "lines[].registered",
  "lines[].state",
  "network",
  "errors",
  "errors[].code",
  "errors[].message",
];
const BATCH_REQUIRED = ["v", "kind", "agentId", "siteId", "items", ...under("items[]", READING_REQUIRED)];

const EVENT_REQUIRED: Record<AgentEvent["type"], string[]> = {
  "device.discovered": [...HEADER, "type", "deviceId", ...IDENTITY_REQUIRED, "via", "via[]"],
  "device.lost": [...HEADER, "type", "deviceId", "address", "missedPolls", "reason"],
  "device.reachability": [...HEADER, "type", "deviceId", "reachable", "missedPolls"],
  trap: [
    ...HEADER,
    "type",
    "source",
    "trapOid",
    "name",
    "kind",
    "severity",
    "varbinds",
    "varbinds[].oid",
    "varbinds[].value",
  ],
  "update.progress": [...HEADER, "type", "deviceId", "commandId", "phase", "targetVersion"],
  "discovery.progress": [...HEADER, "type", "scanId", "scanned", "total", "found", "done"],
  "outbox.dropped": [...HEADER, "type", "dropped", "fromSeq", "toSeq", "totalDropped"],
  "device.classified": [...HEADER, "type", "deviceId", "family"],
};

const SNMP_TARGET = ["body.target", "body.target.deviceId", "body.target.address", "body.target.credentials"];
const BODY_REQUIRED: Record<Command["body"]["type"], string[]> = {
  ping: ["body.target"],
  tcpConnect: ["body.host", "body.port"],
  httpProbe: ["body.url"],
  dnsLookup: ["body.name"],
  traceroute: ["body.target"],
  snmpGet: [...SNMP_TARGET, "body.oids", "body.oids[]"],
  snmpWalk: [...SNMP_TARGET, "body.rootOid"],
  rediscover: [],
  reboot: ["body.deviceId", "body.reason"],
  firmwareUpdate: [
    "body.deviceId",
    "body.targetVersion",
    "body.image",
    ...under("body.image", ["url", "fileName", "length", "sha256"]),
  ],
};
const COMMAND_REQUIRED = ["v", "commandId", "agentId", "issuedBy", "issuedAt", "body", "body.type"];
const RESULT_REQUIRED = ["v", "agentId", "commandId", "status", "ts", "durationMs"];

const CASES: Case[] = [
  { name: "Reading", schema: Reading, arb: arb.reading, required: READING_REQUIRED },
  { name: "ReadingBatch", schema: ReadingBatch, arb: arb.readingBatch, required: BATCH_REQUIRED },
  { name: "Telemetry (reading)", schema: Telemetry, arb: arb.reading, required: READING_REQUIRED },
  { name: "Telemetry (batch)", schema: Telemetry, arb: arb.readingBatch, required: BATCH_REQUIRED },
  ...Object.entries(arb.agentEventVariants).map(
    ([type, a]): Case => ({
      name: `AgentEvent ${type}`,
      schema: AgentEvent,
      arb: a as fc.Arbitrary<Msg>,
      required: EVENT_REQUIRED[type as AgentEvent["type"]],
    }),
  ),
  {
    name: "AgentState online",
    schema: AgentState,
    arb: arb.agentStateOnline,
    required: [
      "v",
      "agentId",
      "siteId",
      "status",
      "sessionId",
      "ts",
      "version",
      "capabilities",
      "capabilities[]",
      "protocolVersion",
    ],
  },
  {
    name: "AgentState offline",
    schema: AgentState,
    arb: arb.agentStateOffline,
    required: ["v", "agentId", "siteId", "status", "sessionId", "ts", "reason"],
  },
  { name: "Ack", schema: Ack, arb: arb.ack, required: ["v", "agentId", "seq", "ts"] },
  ...Object.entries(arb.commandBodyVariants).map(
    ([type, body]): Case => ({
      name: `Command ${type}`,
      schema: Command,
      arb: arb.command.chain((c) =>
        (body as fc.Arbitrary<Command["body"]>).map((b): Msg => ({ ...c, body: b })),
      ),
      required: [...COMMAND_REQUIRED, ...BODY_REQUIRED[type as Command["body"]["type"]]],
    }),
  ),
  {
    name: "CommandResult ok",
    schema: CommandResult,
    arb: arb.commandResultOk,
    required: [...RESULT_REQUIRED, "data"],
    opaque: (path) => path[0] === "data" && path.length > 1,
  },
  {
    name: "CommandResult error",
    schema: CommandResult,
    arb: arb.commandResultError,
    required: [...RESULT_REQUIRED, "error", "error.code", "error.message"],
  },
  {
    name: "Alert",
    schema: Alert,
    arb: arb.alert,
    required: [
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
      "ack.by",
      "ack.at",
      "ack.comment",
    ],
  },
];

// ---------------------------------------------------------------- helpers

interface Node {
  path: PathKey[];
  value: unknown;
}

/** Every node of a JSON value, depth first, with its path (array indices as numbers, as zod reports them). */
function nodesOf(value: unknown, path: PathKey[] = []): Node[] {
  const out: Node[] = [{ path, value }];
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) out.push(...nodesOf(v, [...path, i]));
  } else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) out.push(...nodesOf(v, [...path, k]));
  }
  return out;
}

/** `["items", 0, "identity", "mac"]` -> `items[].identity.mac`: the form of the `required` lists. */
function patternOf(path: readonly PathKey[]): string {
  return path.map((p, i) => (typeof p === "number" ? "[]" : i === 0 ? p : `.${p}`)).join("");
}

/** Values of a JSON type other than `value`'s; none of the message schemas accepts null or coerces. */
function wrongTypeFor(value: unknown): fc.Arbitrary<unknown> {
  if (typeof value === "string") return fc.constantFrom(0, 1, true, null, [], {});
  if (typeof value === "number") return fc.constantFrom(String(value), "", false, null, [], {});
  if (typeof value === "boolean") return fc.constantFrom(String(value), 0, 1, null, [], {});
  if (Array.isArray(value)) return fc.constantFrom("[]", 0, false, null, {});
  return fc.constantFrom("{}", 0, true, null, []);
}

type Mutation =
  | { kind: "wrongType"; path: PathKey[]; value: unknown }
  | { kind: "delete"; path: PathKey[] }
  | { kind: "version"; path: PathKey[]; value: 2 };

function applyMutation(msg: Msg, m: Mutation): unknown {
  const copy = structuredClone(msg);
  const parentPath = m.path.slice(0, -1);
  const key = m.path.at(-1) as PathKey;
  let parent: Record<PathKey, unknown> = copy;
  for (const p of parentPath) parent = parent[p] as Record<PathKey, unknown>;
  if (m.kind === "delete") delete parent[key];
  else parent[key] = m.value;
  return copy;
}

/** True when two formatted paths are equal or one is a prefix of the other (`body.target` / `body.target.x`). */
function related(a: string, b: string): boolean {
  return (
    a === b ||
    b.startsWith(`${a}.`) ||
    b.startsWith(`${a}[`) ||
    a.startsWith(`${b}.`) ||
    a.startsWith(`${b}[`)
  );
}

/** A valid message plus one mutation that must make it invalid. */
function invalidating(c: Case): fc.Arbitrary<{ msg: Msg; mutation: Mutation }> {
  return c.arb.chain((msg) => {
    const nodes = nodesOf(msg).filter((n) => n.path.length > 0 && !c.opaque?.(n.path));
    const required = new Set(c.required);
    const deletable = nodes.filter(
      (n) => typeof n.path.at(-1) === "string" && required.has(patternOf(n.path)),
    );
    const versions = deletable.filter((n) => n.path.at(-1) === "v");
    const mutation = fc.oneof(
      fc
        .constantFrom(...nodes)
        .chain((n) =>
          wrongTypeFor(n.value).map((value): Mutation => ({ kind: "wrongType", path: n.path, value })),
        ),
      fc.constantFrom(...deletable).map((n): Mutation => ({ kind: "delete", path: n.path })),
      fc.constantFrom(...versions).map((n): Mutation => ({ kind: "version", path: n.path, value: 2 })),
    );
    return mutation.map((m) => ({ msg, mutation: m }));
  });
}

// ---------------------------------------------------------------- properties

describe("formatPath", () => {
  it("reads the way a person writes a path", () => {
    expect(formatPath(["items", 0, "identity", "mac"])).toBe("items[0].identity.mac");
    expect(formatPath(["broker", "url"])).toBe("broker.url");
    expect(formatPath([3, "address"])).toBe("[3].address");
    expect(formatPath([])).toBe("(root)");
  });
});

describe.each(CASES)("$name", (c) => {
  it("the arbitrary yields JSON-stable values (no undefined keys, no -0, no null prototypes)", () => {
    fc.assert(
      fc.property(c.arb, (msg) => {
        expect(JSON.parse(JSON.stringify(msg))).toStrictEqual(msg);
      }),
      RUNS,
    );
  });

  it("every valid message survives JSON.stringify -> parseMessage unchanged (string and bytes)", () => {
    fc.assert(
      fc.property(c.arb, (msg) => {
        const text = JSON.stringify(msg);
        expect(parseMessage(c.schema, text)).toStrictEqual({ ok: true, value: msg });
        expect(parseMessage(c.schema, new TextEncoder().encode(text))).toStrictEqual({
          ok: true,
          value: msg,
        });
      }),
      RUNS,
    );
  });

  it("a wrong-typed value, a missing required key or v:2 is rejected, naming the mutated path", () => {
    fc.assert(
      fc.property(invalidating(c), ({ msg, mutation }) => {
        const r = parseMessage(c.schema, JSON.stringify(applyMutation(msg, mutation)));
        expect(r.ok).toBe(false);
        if (r.ok) return;
        const expected = formatPath(mutation.path);
        expect(r.error.code).toBe("POLYFLEET_ERR_MESSAGE_INVALID");
        expect(r.issues.length).toBeGreaterThan(0);
        // A single mutation: every issue sits on the mutated path, above it (a union) or below it.
        for (const issue of r.issues)
          expect(related(issue.path, expected), `${issue.path} vs ${expected}`).toBe(true);
        const first = r.issues[0]!;
        expect(r.error.message).toBe(`${first.path}: ${first.message}`);
        expect(r.error.details).toEqual({ issues: r.issues });
      }),
      RUNS,
    );
  });

  it("deleting a key outside the required list keeps the message valid (it is optional or defaulted)", () => {
    const withOptional = c.arb.chain((msg): fc.Arbitrary<{ msg: Msg; path: PathKey[] | undefined }> => {
      const required = new Set(c.required);
      const optional = nodesOf(msg).filter(
        (n) => typeof n.path.at(-1) === "string" && !required.has(patternOf(n.path)),
      );
      return optional.length === 0
        ? fc.constant({ msg, path: undefined })
        : fc.constantFrom(...optional).map((n) => ({ msg, path: n.path }));
    });
    fc.assert(
      fc.property(withOptional, ({ msg, path }) => {
        if (path === undefined) return;
        const r = parseMessage(c.schema, JSON.stringify(applyMutation(msg, { kind: "delete", path })));
        expect(r.ok ? "ok" : r.issues).toBe("ok");
      }),
      RUNS,
    );
  });

  it("a truncated message is POLYFLEET_ERR_MESSAGE_NOT_JSON, never a throw", () => {
    const truncated = c.arb.chain((msg) => {
      const text = JSON.stringify(msg);
      return fc.nat({ max: text.length - 1 }).map((n) => text.slice(0, n));
    });
    fc.assert(
      fc.property(truncated, (text) => {
        const r = parseMessage(c.schema, text);
        expect(r.ok).toBe(false);
        if (r.ok) return;
        expect(r.error.code).toBe("POLYFLEET_ERR_MESSAGE_NOT_JSON");
        expect(r.error.cause).toBeInstanceOf(SyntaxError);
        expect(r.issues).toEqual([{ path: "(root)", message: "not valid JSON" }]);
      }),
      RUNS,
    );
  });
});

describe("parseMessage on arbitrary input", () => {
  const schemas = fc.constantFrom(Telemetry, AgentEvent, AgentState, Ack, Command, CommandResult, Alert);
  const isJson = (text: string): boolean => {
    try {
      JSON.parse(text);
      return true;
    } catch {
      return false;
    }
  };

  it("non-JSON text is POLYFLEET_ERR_MESSAGE_NOT_JSON, JSON of the wrong shape is MESSAGE_INVALID; never throws", () => {
    const texts = fc.oneof(
      fc.string(),
      fc.string({ unit: "binary" }),
      fc.json().map((j) => `${j}}`),
      fc.constantFrom("", " ", "{", "}", "{'v':1}", "undefined", "NaN", '{"v":1,}', "\u0000"),
    );
    fc.assert(
      fc.property(schemas, texts, (schema, text) => {
        const r = parseMessage(schema, text);
        expect(r.ok).toBe(false);
        if (r.ok) return;
        expect(r.error.code).toBe(
          isJson(text) ? "POLYFLEET_ERR_MESSAGE_INVALID" : "POLYFLEET_ERR_MESSAGE_NOT_JSON",
        );
      }),
      { numRuns: 500 },
    );
  });

  it("arbitrary bytes never throw; undecodable or non-JSON bytes are MESSAGE_NOT_JSON", () => {
    fc.assert(
      fc.property(schemas, fc.uint8Array({ maxLength: 256 }), (schema, bytes) => {
        const r = parseMessage(schema, bytes);
        expect(r.ok).toBe(false);
        if (r.ok) return;
        const decoded = Buffer.from(bytes).toString("utf8");
        expect(r.error.code).toBe(
          isJson(decoded) ? "POLYFLEET_ERR_MESSAGE_INVALID" : "POLYFLEET_ERR_MESSAGE_NOT_JSON",
        );
      }),
      { numRuns: 500 },
    );
  });

  it("JSON that is not an object names the root", () => {
    for (const text of ["null", "[]", "42", '"x"', "true"]) {
      const r = parseMessage(Alert, text);
      expect(r.ok).toBe(false);
      if (r.ok) continue;
      expect(r.error.code).toBe("POLYFLEET_ERR_MESSAGE_INVALID");
      expect(r.issues[0]?.path).toBe("(root)");
    }
  });
});
