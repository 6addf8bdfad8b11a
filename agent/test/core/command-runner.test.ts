import { type CommandInput, CommandResult, PolyfleetError } from "@polyfleet/shared";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { command as validCommand } from "../../../shared/test/arbitraries.js";
import {
  COMMANDS_QUEUED,
  COMMANDS_RUNNING,
  COMMANDS_TOTAL,
  CommandRunner,
  type CommandRunnerOptions,
  commandTimeoutMs,
} from "../../src/core/command-runner.js";
import { PromRegistry } from "../../src/core/prom-registry.js";
import type { Clock, TimerHandle } from "../../src/ports/clock.js";
import type { CommandContext, CommandHandler, CommandHandlers } from "../../src/ports/command.js";

const AGENT = "agent-1";
const T0 = 1_764_000_000_000;

/** A clock whose time moves only when the test says so; due timers fire in order. */
class FakeClock implements Clock {
  private t = T0;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + ms, fn });
    return { id };
  }
  clearTimeout(h: TimerHandle): void {
    this.timers.delete(h.id as number);
  }
  get pendingTimers(): number {
    return this.timers.size;
  }
  advance(ms: number): void {
    const until = this.t + ms;
    for (;;) {
      const due = [...this.timers.entries()]
        .filter(([, t]) => t.at <= until)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = due[1].at;
      due[1].fn();
    }
    this.t = until;
  }
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}
function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

interface LogLine {
  level: string;
  obj: Record<string, unknown>;
  msg: string;
}

function setup(handlers: CommandHandlers, opts: Partial<CommandRunnerOptions> = {}) {
  const clock = new FakeClock();
  const metrics = new PromRegistry();
  const published: CommandResult[] = [];
  const logs: LogLine[] = [];
  const logAt =
    (level: string) =>
    (obj: Record<string, unknown>, msg: string): void => {
      logs.push({ level, obj, msg });
    };
  const runner = new CommandRunner({
    agentId: AGENT,
    handlers,
    clock,
    metrics,
    publish: (r) => {
      // Every answer the runner sends must satisfy the result contract.
      expect(CommandResult.safeParse(r).success, JSON.stringify(r)).toBe(true);
      published.push(r);
    },
    log: { debug: logAt("debug"), info: logAt("info"), warn: logAt("warn"), error: logAt("error") },
    ...opts,
  });
  return { runner, clock, metrics, published, logs };
}

let idCounter = 0;
function cmd(body: CommandInput["body"], extra: Partial<CommandInput> = {}): CommandInput {
  idCounter++;
  return {
    v: 1,
    commandId: `cmd-${String(idCounter).padStart(6, "0")}`,
    agentId: AGENT,
    issuedBy: "noc@example.com",
    issuedAt: T0 - 1000,
    body,
    ...extra,
  };
}
const bytes = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));
const tcp = { type: "tcpConnect" as const, host: "10.0.0.1", port: 443, timeoutMs: 1000 };
/** Lets queued promise callbacks run. */
const flush = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

describe("CommandRunner", () => {
  it("runs a command and publishes an ok result with its data and duration", async () => {
    const { runner, clock, published, metrics } = setup({
      tcpConnect: (body) => {
        clock.advance(40);
        return Promise.resolve({ host: body.host, port: body.port, connected: true });
      },
    });
    const c = cmd(tcp);
    await runner.handleRaw(bytes(c));
    expect(published).toEqual([
      {
        v: 1,
        agentId: AGENT,
        commandId: c.commandId,
        status: "ok",
        ts: T0 + 40,
        durationMs: 40,
        data: { host: "10.0.0.1", port: 443, connected: true },
      },
    ]);
    expect(metrics.get(COMMANDS_TOTAL, { type: "tcpConnect", result: "ok" })).toBe(1);
  });

  it("runs a repeated command id once and re-publishes the same result", async () => {
    let calls = 0;
    const { runner, published, metrics } = setup({
      tcpConnect: () => {
        calls++;
        return Promise.resolve({ connected: calls === 1 });
      },
    });
    const c = cmd(tcp);
    await runner.handleRaw(bytes(c));
    await runner.handleRaw(bytes(c));
    expect(calls).toBe(1);
    expect(published).toHaveLength(2);
    expect(published[1]).toEqual(published[0]);
    expect(published[0]).toMatchObject({ status: "ok", data: { connected: true } });
    expect(metrics.get(COMMANDS_TOTAL, { type: "tcpConnect", result: "duplicate" })).toBe(1);
  });

  it("does not start a repeat of a command that is still running", async () => {
    const gate = deferred<Record<string, unknown>>();
    let calls = 0;
    const { runner, published, metrics } = setup({
      tcpConnect: () => {
        calls++;
        return gate.promise;
      },
    });
    const c = cmd(tcp);
    const first = runner.handleRaw(bytes(c));
    await flush();
    await runner.handleRaw(bytes(c)); // resolves at once: nothing to do
    expect(calls).toBe(1);
    expect(published).toHaveLength(0);
    gate.resolve({ ok: 1 });
    await first;
    expect(published).toHaveLength(1);
    expect(metrics.get(COMMANDS_TOTAL, { type: "tcpConnect", result: "duplicate" })).toBe(1);
    // Afterwards a third copy gets the stored answer.
    await runner.handleRaw(bytes(c));
    expect(calls).toBe(1);
    expect(published).toHaveLength(2);
    expect(published[1]).toEqual(published[0]);
  });

  it("answers an expired command with POLYFLEET_ERR_COMMAND_EXPIRED without running it", async () => {
    let calls = 0;
    const { runner, published, metrics } = setup({
      tcpConnect: () => {
        calls++;
        return Promise.resolve({});
      },
    });
    const c = cmd(tcp, { issuedAt: T0 - 10_000, expiresAt: T0 - 1 });
    await runner.handleRaw(bytes(c));
    await runner.handleRaw(bytes(c));
    expect(calls).toBe(0);
    expect(published).toHaveLength(2);
    expect(published[0]).toMatchObject({
      status: "error",
      commandId: c.commandId,
      error: { code: "POLYFLEET_ERR_COMMAND_EXPIRED" },
    });
    expect(metrics.get(COMMANDS_TOTAL, { type: "tcpConnect", result: "expired" })).toBe(1);
    // expiresAt == now is still in time.
    await runner.handleRaw(bytes(cmd(tcp, { expiresAt: T0 })));
    expect(calls).toBe(1);
  });

  it("expires a command that waited in the queue past its expiresAt", async () => {
    const gate = deferred<Record<string, unknown>>();
    let calls = 0;
    const { runner, clock, published } = setup(
      {
        tcpConnect: () => {
          calls++;
          return gate.promise;
        },
      },
      { maxConcurrent: 1 },
    );
    const blocker = runner.handleRaw(bytes(cmd(tcp)));
    const late = cmd(tcp, { expiresAt: T0 + 500 });
    const waiting = runner.handleRaw(bytes(late));
    await flush();
    expect(runner.queuedCount).toBe(1);
    clock.advance(600);
    gate.resolve({});
    await Promise.all([blocker, waiting]);
    expect(calls).toBe(1);
    expect(published.find((r) => r.commandId === late.commandId)).toMatchObject({
      error: { code: "POLYFLEET_ERR_COMMAND_EXPIRED" },
    });
  });

  it("ignores and counts commands addressed to another agent", async () => {
    let calls = 0;
    const { runner, published, metrics, logs } = setup({
      tcpConnect: () => {
        calls++;
        return Promise.resolve({});
      },
    });
    await runner.handleRaw(bytes(cmd(tcp, { agentId: "agent-2" })));
    expect(calls).toBe(0);
    expect(published).toEqual([]);
    expect(metrics.get(COMMANDS_TOTAL, { type: "tcpConnect", result: "wrong_agent" })).toBe(1);
    expect(logs.some((l) => l.level === "warn" && l.obj.agentId === "agent-2")).toBe(true);
  });

  it("answers a command type without a handler with POLYFLEET_ERR_COMMAND_UNSUPPORTED", async () => {
    const { runner, published, metrics } = setup({});
    const c = cmd({ type: "reboot", deviceId: "64167fa1b2c3", reason: "test" });
    await runner.handleRaw(bytes(c));
    expect(published).toEqual([
      expect.objectContaining({
        commandId: c.commandId,
        status: "error",
        error: { code: "POLYFLEET_ERR_COMMAND_UNSUPPORTED", message: expect.stringContaining("reboot") },
      }),
    ]);
    expect(metrics.get(COMMANDS_TOTAL, { type: "reboot", result: "unsupported" })).toBe(1);
  });

  it("turns a PolyfleetError into its code and message, and any other exception into a generic error", async () => {
    const { runner, published, logs, metrics } = setup({
      tcpConnect: () =>
        Promise.reject(new PolyfleetError("POLYFLEET_ERR_COMMAND_FAILED", "refused by 10.0.0.1")),
      ping: () => {
        throw new Error("bug with password=hunter2 in it");
      },
    });
    await runner.handleRaw(bytes(cmd(tcp)));
    await runner.handleRaw(bytes(cmd({ type: "ping", target: "10.0.0.1", count: 1, timeoutMs: 1000 })));
    expect(published[0]).toMatchObject({
      status: "error",
      error: { code: "POLYFLEET_ERR_COMMAND_FAILED", message: "refused by 10.0.0.1" },
    });
    expect(published[1]).toMatchObject({ status: "error", error: { code: "POLYFLEET_ERR_INTERNAL" } });
    expect(JSON.stringify(published)).not.toContain("hunter2");
    expect(logs.some((l) => l.level === "error" && l.obj.err instanceof Error)).toBe(true);
    expect(metrics.get(COMMANDS_TOTAL, { type: "ping", result: "error" })).toBe(1);
  });

  it("never puts a secret-named field of handler data into a result", async () => {
    const { runner, published } = setup({
      tcpConnect: async () => ({
        user: "admin",
        password: "s3cret",
        nested: { community: "public", ok: true },
      }),
    });
    await runner.handleRaw(bytes(cmd(tcp)));
    const text = JSON.stringify(published);
    expect(text).not.toContain("s3cret");
    expect(text).not.toContain("public");
    expect(published[0]).toMatchObject({ data: { user: "admin", nested: { ok: true } } });
  });

  it("aborts a command at its time limit, answers POLYFLEET_ERR_COMMAND_TIMEOUT and frees its slot", async () => {
    let seen: CommandContext | undefined;
    let calls = 0;
    const { runner, clock, published, metrics } = setup(
      {
        // Ignores its signal on purpose: the runner must not wait for it.
        tcpConnect: (_b, ctx) => {
          calls++;
          seen = ctx;
          return new Promise(() => {});
        },
      },
      { maxConcurrent: 1, timeoutGraceMs: 500 },
    );
    const c = cmd({ ...tcp, timeoutMs: 3000 });
    const p = runner.handleRaw(bytes(c));
    await flush();
    expect(seen?.signal.aborted).toBe(false);
    clock.advance(3499);
    await flush();
    expect(published).toHaveLength(0);
    clock.advance(1);
    await p;
    expect(seen?.signal.aborted).toBe(true);
    expect(seen?.signal.reason).toBeInstanceOf(PolyfleetError);
    expect(published).toEqual([
      expect.objectContaining({
        commandId: c.commandId,
        status: "error",
        durationMs: 3500,
        error: { code: "POLYFLEET_ERR_COMMAND_TIMEOUT", message: expect.stringContaining("3500 ms") },
      }),
    ]);
    expect(metrics.get(COMMANDS_TOTAL, { type: "tcpConnect", result: "timeout" })).toBe(1);
    expect(runner.runningCount).toBe(0);
    // The slot is free: the next command starts.
    void runner.handleRaw(bytes(cmd(tcp)));
    await flush();
    expect(calls).toBe(2);
  });

  it("uses the body's own time limit plus grace, a walk's maxMs, or the default", () => {
    expect(commandTimeoutMs({ type: "ping", target: "h", count: 3, timeoutMs: 5000 }, 60_000, 2000)).toBe(
      7000,
    );
    expect(
      commandTimeoutMs(
        { type: "snmpWalk", target: { deviceId: "d1" }, rootOid: "1.3", maxVarbinds: 10, maxMs: 9000 },
        60_000,
        2000,
      ),
    ).toBe(11_000);
    expect(commandTimeoutMs({ type: "dnsLookup", name: "h", rrtype: "A" }, 60_000, 2000)).toBe(60_000);
  });

  it("bounds how many commands run at once and runs the queue in order", async () => {
    const gates = new Map<string, Deferred<Record<string, unknown>>>();
    const started: string[] = [];
    let running = 0;
    let maxRunning = 0;
    const handler: CommandHandler<"tcpConnect"> = async (_b, ctx) => {
      started.push(ctx.commandId);
      running++;
      maxRunning = Math.max(maxRunning, running);
      const g = deferred<Record<string, unknown>>();
      gates.set(ctx.commandId, g);
      try {
        return await g.promise;
      } finally {
        running--;
      }
    };
    const { runner, published, metrics } = setup({ tcpConnect: handler }, { maxConcurrent: 3 });
    const cmds = Array.from({ length: 8 }, () => cmd(tcp));
    const all = cmds.map((c) => runner.handleRaw(bytes(c)));
    await flush();
    expect(runner.runningCount).toBe(3);
    expect(runner.queuedCount).toBe(5);
    expect(metrics.get(COMMANDS_RUNNING)).toBe(3);
    expect(metrics.get(COMMANDS_QUEUED)).toBe(5);
    // Release them one by one, always the oldest running.
    while (published.length < cmds.length) {
      const id = started.find((s) => gates.has(s) && !published.some((r) => r.commandId === s));
      if (id === undefined) throw new Error("nothing running");
      gates.get(id)?.resolve({ id });
      await flush();
    }
    await Promise.all(all);
    expect(maxRunning).toBe(3);
    expect(started).toEqual(cmds.map((c) => c.commandId));
    expect(published.map((r) => r.commandId)).toEqual(cmds.map((c) => c.commandId));
    expect(metrics.get(COMMANDS_RUNNING)).toBe(0);
  });

  it("refuses commands beyond the queue bound with POLYFLEET_ERR_RATE_LIMITED and runs the id on a retry", async () => {
    const gate = deferred<Record<string, unknown>>();
    let calls = 0;
    const { runner, published, metrics } = setup(
      {
        tcpConnect: () => {
          calls++;
          return gate.promise;
        },
      },
      { maxConcurrent: 1, maxQueued: 1 },
    );
    const a = runner.handleRaw(bytes(cmd(tcp)));
    const b = runner.handleRaw(bytes(cmd(tcp)));
    const c = cmd(tcp);
    await runner.handleRaw(bytes(c));
    expect(published).toEqual([
      expect.objectContaining({
        commandId: c.commandId,
        error: expect.objectContaining({ code: "POLYFLEET_ERR_RATE_LIMITED" }),
      }),
    ]);
    expect(metrics.get(COMMANDS_TOTAL, { type: "tcpConnect", result: "rejected" })).toBe(1);
    gate.resolve({ done: true });
    await Promise.all([a, b]);
    await runner.handleRaw(bytes(c));
    expect(calls).toBe(3);
    expect(published.filter((r) => r.commandId === c.commandId).map((r) => r.status)).toEqual([
      "error",
      "ok",
    ]);
  });

  it("forgets results after their TTL and beyond the cache size (least recently used first)", async () => {
    const calls = new Map<string, number>();
    const { runner, clock } = setup(
      {
        tcpConnect: (_b, ctx) => {
          calls.set(ctx.commandId, (calls.get(ctx.commandId) ?? 0) + 1);
          return Promise.resolve({});
        },
      },
      { resultCacheSize: 2, resultTtlMs: 10_000 },
    );
    const [a, b, c] = [cmd(tcp), cmd(tcp), cmd(tcp)];
    await runner.handleRaw(bytes(a));
    await runner.handleRaw(bytes(b));
    await runner.handleRaw(bytes(a)); // a is now the most recently used
    await runner.handleRaw(bytes(c)); // evicts b
    await runner.handleRaw(bytes(a));
    expect(calls.get(a.commandId)).toBe(1);
    await runner.handleRaw(bytes(b));
    expect(calls.get(b.commandId)).toBe(2);
    clock.advance(10_001);
    await runner.handleRaw(bytes(a));
    expect(calls.get(a.commandId)).toBe(2);
  });

  it("keeps going when publishing fails", async () => {
    const clock = new FakeClock();
    const warnings: string[] = [];
    const runner = new CommandRunner({
      agentId: AGENT,
      handlers: { tcpConnect: async () => ({}) },
      clock,
      metrics: new PromRegistry(),
      publish: () => Promise.reject(new Error("broker down")),
      log: { debug: () => {}, info: () => {}, warn: (_o, m) => warnings.push(m), error: () => {} },
    });
    await expect(runner.handleRaw(bytes(cmd(tcp)))).resolves.toBeUndefined();
    expect(warnings).toContain("publishing a command result failed");
  });

  it("on stop drops the queue, aborts running commands and publishes nothing more", async () => {
    let signal: AbortSignal | undefined;
    let calls = 0;
    const { runner, published } = setup(
      {
        tcpConnect: (_b, ctx) => {
          calls++;
          signal = ctx.signal;
          return new Promise(() => {});
        },
      },
      { maxConcurrent: 1 },
    );
    const running = runner.handleRaw(bytes(cmd(tcp)));
    const queued = runner.handleRaw(bytes(cmd(tcp)));
    await flush();
    runner.stop();
    await Promise.all([running, queued]);
    expect(signal?.aborted).toBe(true);
    expect(calls).toBe(1);
    expect(published).toEqual([]);
    await runner.handleRaw(bytes(cmd(tcp)));
    expect(calls).toBe(1);
  });

  describe("invalid commands", () => {
    it("counts and logs a payload that is not JSON, without answering", async () => {
      const { runner, published, metrics, logs } = setup({});
      await runner.handleRaw(new TextEncoder().encode("{not json"));
      expect(published).toEqual([]);
      expect(metrics.get(COMMANDS_TOTAL, { type: "unknown", result: "invalid" })).toBe(1);
      expect(logs.some((l) => l.level === "warn" && l.msg === "invalid command rejected")).toBe(true);
    });

    it("answers an invalid command that has a usable id with POLYFLEET_ERR_COMMAND_INVALID naming the field", async () => {
      const { runner, published, metrics } = setup({ ping: async () => ({}) });
      const bad = {
        ...cmd({ type: "ping", target: "10.0.0.1" }),
        body: { type: "ping", target: "-f", count: 3 },
      };
      await runner.handleRaw(bytes(bad));
      expect(published).toEqual([
        expect.objectContaining({
          commandId: bad.commandId,
          agentId: AGENT,
          status: "error",
          error: { code: "POLYFLEET_ERR_COMMAND_INVALID", message: expect.stringMatching(/^body\.target: /) },
        }),
      ]);
      expect(metrics.get(COMMANDS_TOTAL, { type: "ping", result: "invalid" })).toBe(1);
      // An unknown type is labelled `unknown`, never with the sender's string.
      const weird = { ...cmd(tcp), body: { type: "rm -rf", host: "x" } };
      await runner.handleRaw(bytes(weird));
      expect(metrics.get(COMMANDS_TOTAL, { type: "unknown", result: "invalid" })).toBe(1);
      expect(published[1]).toMatchObject({ error: { code: "POLYFLEET_ERR_COMMAND_INVALID" } });
    });

    it("does not answer an invalid command for another agent, nor one reusing the id of a command that ran", async () => {
      const { runner, published } = setup({ tcpConnect: async () => ({ ran: true }) });
      await runner.handleRaw(bytes({ ...cmd(tcp, { agentId: "agent-9" }), body: { type: "tcpConnect" } }));
      expect(published).toEqual([]);
      const c = cmd(tcp);
      await runner.handleRaw(bytes(c));
      await runner.handleRaw(bytes({ ...c, body: { type: "tcpConnect", port: -1 } }));
      expect(published).toHaveLength(1);
      expect(published[0]).toMatchObject({ status: "ok" });
    });

    it("never throws and counts every message exactly once, whatever the payload (property)", async () => {
      const { runner, metrics, published } = setup({
        ping: async () => ({ ok: true }),
        tcpConnect: async () => ({ ok: true }),
        dnsLookup: async () => ({ ok: true }),
      });
      const payloads = fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc.jsonValue({ maxDepth: 4 }).map(bytes),
        validCommand.map((c) => bytes({ ...c, agentId: AGENT })),
        // A valid command with one field replaced by anything.
        fc
          .tuple(
            validCommand,
            fc.constantFrom("v", "commandId", "agentId", "issuedAt", "expiresAt", "body", "issuedBy"),
            fc.jsonValue({ maxDepth: 2 }),
          )
          .map(([c, k, v]) => bytes({ ...c, agentId: AGENT, [k]: v })),
        fc.tuple(validCommand, fc.jsonValue({ maxDepth: 2 })).map(([c, v]) =>
          bytes({
            ...c,
            agentId: AGENT,
            body: {
              ...c.body,
              ...(typeof v === "object" && v !== null && !Array.isArray(v) ? v : { type: v }),
            },
          }),
        ),
        // Truncated valid commands.
        validCommand.chain((c) => {
          const b = bytes({ ...c, agentId: AGENT });
          return fc.nat(b.length).map((n) => b.slice(0, n));
        }),
      );
      let messages = 0;
      await fc.assert(
        fc.asyncProperty(payloads, async (p) => {
          messages++;
          await expect(runner.handleRaw(p)).resolves.toBeUndefined();
          expect(metrics.total(COMMANDS_TOTAL)).toBe(messages);
        }),
        { numRuns: 400 },
      );
      // Results were checked against the contract as they were published (see setup()).
      expect(published.length).toBeGreaterThan(0);
    });
  });
});
