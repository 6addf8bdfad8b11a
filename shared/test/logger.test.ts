import { Writable } from "node:stream";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createLogger, type LogLevel } from "../src/index.js";

/** pino's test `sink()`: a stream that keeps every line written, raw and parsed. */
function sink(): { stream: Writable; raw: () => string; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  const raw = (): string => chunks.join("");
  const lines = (): Record<string, unknown>[] =>
    raw()
      .split("\n")
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { stream, raw, lines };
}

function logWith(level: LogLevel = "info") {
  const s = sink();
  return { ...s, log: createLogger({ level, name: "test" }, s.stream) };
}

const SECRET_KEYS = ["password", "community", "authKey", "privKey", "token", "secret"] as const;
const REDACTED = "[redacted]";

/** `{ a: { b: { [key]: secret } } }` for containers ["a", "b"]. */
function nest(containers: readonly string[], key: string, secret: string): Record<string, unknown> {
  let obj: Record<string, unknown> = { [key]: secret };
  for (const c of [...containers].reverse()) obj = { [c]: obj };
  return obj;
}

function at(obj: unknown, path: readonly string[]): unknown {
  return path.reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], obj);
}

describe("createLogger", () => {
  it("writes one JSON object per line with level, ISO time, name and message", () => {
    const { log, lines } = logWith("debug");
    log.debug({ deviceId: "0004f2abcdef" }, "polled");
    log.trace("not written at debug");
    const [line, ...rest] = lines();
    expect(rest).toEqual([]);
    expect(line).toMatchObject({ level: 20, name: "test", deviceId: "0004f2abcdef", msg: "polled" });
    expect(new Date(line?.time as string).toISOString()).toBe(line?.time);
  });

  it("defaults to level info and adds base fields", () => {
    const s = sink();
    const log = createLogger({ base: { service: "agent" } }, s.stream);
    log.debug("hidden");
    log.info("shown");
    expect(s.lines()).toMatchObject([{ level: 30, service: "agent", msg: "shown" }]);
  });

  it("redacts every secret key at the top level, one and two levels down", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...SECRET_KEYS),
        fc.array(fc.constantFrom("device", "cfg", "snmp", "profile", "broker", "x"), { maxLength: 2 }),
        fc.stringMatching(/^[A-Za-z0-9]{12,24}$/),
        (key, containers, random) => {
          const secret = `s3cret-${random}`;
          const { log, raw, lines } = logWith();
          log.info(nest(containers, key, secret), "with a secret");
          expect(at(lines()[0], [...containers, key])).toBe(REDACTED);
          expect(raw()).not.toContain(secret);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("redacts each secret key at each depth (explicit cases)", () => {
    for (const key of SECRET_KEYS) {
      for (const containers of [[], ["device"], ["config", "snmp"]]) {
        const secret = `top-secret-${key}-${containers.length}`;
        const { log, raw, lines } = logWith();
        log.warn({ ...nest(containers, key, secret), deviceId: "d1" }, "poll failed");
        expect(at(lines()[0], [...containers, key]), `${[...containers, key].join(".")}`).toBe(REDACTED);
        expect(lines()[0]?.deviceId).toBe("d1");
        expect(raw()).not.toContain(secret);
      }
    }
  });

  it("redacts req.headers.authorization and cookies, keeping other headers", () => {
    const { log, raw, lines } = logWith();
    log.info(
      {
        req: {
          method: "GET",
          url: "/api/v1/devices",
          headers: { authorization: "Bearer tok-abc123", cookie: "sid=cookie-xyz", "user-agent": "curl/8" },
        },
      },
      "request",
    );
    log.info({ headers: { authorization: "Basic UG9seWNvbTo0NTY=" } }, "outbound");
    const [req, outbound] = lines();
    expect(at(req, ["req", "headers", "authorization"])).toBe(REDACTED);
    expect(at(req, ["req", "headers", "cookie"])).toBe(REDACTED);
    expect(at(req, ["req", "headers", "user-agent"])).toBe("curl/8");
    expect(at(outbound, ["headers", "authorization"])).toBe(REDACTED);
    for (const s of ["tok-abc123", "cookie-xyz", "UG9seWNvbTo0NTY="]) expect(raw()).not.toContain(s);
  });

  it("redacts secrets in a child logger's bindings and in every line of the child", () => {
    const { log, raw, lines } = logWith();
    const child = log.child({ component: "snmp-poller", profile: { community: "child-community-1" } });
    child.info({ target: { privKey: "child-priv-2" } }, "walk");
    const [line] = lines();
    expect(line).toMatchObject({ component: "snmp-poller", msg: "walk" });
    expect(at(line, ["profile", "community"])).toBe(REDACTED);
    expect(at(line, ["target", "privKey"])).toBe(REDACTED);
    expect(raw()).not.toContain("child-community-1");
    expect(raw()).not.toContain("child-priv-2");
  });

  it("does not touch the logged object (redaction works on the serialised copy)", () => {
    const { log } = logWith();
    const obj = { device: { password: "keep-me" } };
    log.info(obj, "x");
    expect(obj.device.password).toBe("keep-me");
  });
});
