import {
  Command,
  type CommandBody,
  CommandId,
  type CommandResult,
  type CommandType,
  type ErrorCode,
  isPolyfleetError,
  PolyfleetError,
  parseMessage,
  redactDeep,
} from "@polyfleet/shared";
import type { Clock, TimerHandle } from "../ports/clock.js";
import type { CommandHandler, CommandHandlers } from "../ports/command.js";
import type { Metrics } from "../ports/metrics.js";

/** The pino-compatible subset the runner logs through (object first, then the message). */
export interface CommandLogger {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

export interface CommandRunnerOptions {
  /** This agent's id: commands for another agent are ignored. */
  agentId: string;
  handlers: CommandHandlers;
  clock: Clock;
  metrics: Metrics;
  /** Publishes a result on the agent's result topic. May reject: the runner logs and carries on. */
  publish: (result: CommandResult) => void | Promise<void>;
  log: CommandLogger;
  /** Commands running at once (default 16); more wait in a FIFO queue. */
  maxConcurrent?: number;
  /** Commands waiting at most (default 1,000); beyond, a command is refused with POLYFLEET_ERR_RATE_LIMITED. */
  maxQueued?: number;
  /** Results kept for idempotency (default 10,000 command ids, least recently used dropped first). */
  resultCacheSize?: number;
  /** How long a result is kept for idempotency (default 24 h). */
  resultTtlMs?: number;
  /** Time limit of a command type whose body carries none (default 60 s). */
  defaultTimeoutMs?: number;
  /** Added to a body's own `timeoutMs`/`maxMs`, so the handler's own timeout answers first (default 2 s). */
  timeoutGraceMs?: number;
}

/** Every command type the contract knows: metric labels use only these (or `unknown`). */
const KNOWN_TYPES: ReadonlySet<string> = new Set<CommandType>([
  "ping",
  "tcpConnect",
  "httpProbe",
  "dnsLookup",
  "traceroute",
  "snmpGet",
  "snmpWalk",
  "rediscover",
  "reboot",
  "firmwareUpdate",
]);

export const COMMANDS_TOTAL = "polyfleet_agent_commands_total";
export const COMMAND_DURATION = "polyfleet_agent_command_duration_seconds";
export const COMMANDS_RUNNING = "polyfleet_agent_commands_running";
export const COMMANDS_QUEUED = "polyfleet_agent_commands_queued";

/** Values of the `result` label of `polyfleet_agent_commands_total`. */
export type CommandOutcome =
  | "ok"
  | "error"
  | "invalid"
  | "expired"
  | "timeout"
  | "unsupported"
  | "duplicate"
  | "wrong_agent"
  | "rejected";

/**
 * The time limit the runner enforces for a command: the body's own `timeoutMs` (or `maxMs` for a walk) plus
 * a grace period, else the default.
 */
export function commandTimeoutMs(body: CommandBody, defaultMs: number, graceMs: number): number {
  if ("timeoutMs" in body && typeof body.timeoutMs === "number") return body.timeoutMs + graceMs;
  if (body.type === "snmpWalk") return body.maxMs + graceMs;
  return defaultMs;
}

interface Job {
  cmd: Command;
  resolve: () => void;
}

interface Running {
  controller: AbortController;
  timer: TimerHandle | undefined;
  /** Ends the run now (stop()): the handler's late answer is ignored. */
  cancel: () => void;
}

/**
 * Runs commands from the agent's command topic: validates them, runs each command id at most once (results
 * are kept and re-published to a repeated id), answers expired, foreign and unsupported commands, enforces a
 * per-command time limit through the handler's AbortSignal and bounds how many run at once. `handleRaw`
 * never throws and never rejects.
 */
export class CommandRunner {
  private readonly agentId: string;
  private readonly handlers: CommandHandlers;
  private readonly clock: Clock;
  private readonly metrics: Metrics;
  private readonly publishResult: (result: CommandResult) => void | Promise<void>;
  private readonly log: CommandLogger;
  private readonly maxConcurrent: number;
  private readonly maxQueued: number;
  private readonly cacheSize: number;
  private readonly ttlMs: number;
  private readonly defaultTimeoutMs: number;
  private readonly graceMs: number;
  /** Finished results by command id, least recently used first (Map keeps insertion order). */
  private readonly done = new Map<string, { result: CommandResult; storedAt: number }>();
  /** Ids queued or running: a repeat is not started twice. */
  private readonly inFlight = new Set<string>();
  private readonly running = new Map<string, Running>();
  private readonly queue: Job[] = [];
  private stopped = false;

  constructor(opts: CommandRunnerOptions) {
    this.agentId = opts.agentId;
    this.handlers = opts.handlers;
    this.clock = opts.clock;
    this.metrics = opts.metrics;
    this.publishResult = opts.publish;
    this.log = opts.log;
    this.maxConcurrent = opts.maxConcurrent ?? 16;
    this.maxQueued = opts.maxQueued ?? 1000;
    this.cacheSize = opts.resultCacheSize ?? 10_000;
    this.ttlMs = opts.resultTtlMs ?? 24 * 3600_000;
    this.defaultTimeoutMs = opts.defaultTimeoutMs ?? 60_000;
    this.graceMs = opts.timeoutGraceMs ?? 2000;
  }

  /** Number of commands running now. */
  get runningCount(): number {
    return this.running.size;
  }

  /** Number of commands waiting for a slot. */
  get queuedCount(): number {
    return this.queue.length;
  }

  /**
   * Handles one payload from the command topic. Resolves once the command is answered (or ignored); a
   * repeat of a command still in flight resolves at once. Never rejects.
   */
  async handleRaw(payload: Uint8Array): Promise<void> {
    try {
      await this.handle(payload);
    } catch (err) {
      // A bug in the runner itself: logged, never propagated to the MQTT client's message loop.
      this.log.error({ err }, "command handling failed");
    }
  }

  /**
   * Stops taking commands: queued ones are dropped unanswered, running ones are aborted and their results
   * not published, and their ids forgotten so a redelivery after a restart runs them.
   */
  stop(): void {
    this.stopped = true;
    for (const job of this.queue.splice(0)) {
      this.inFlight.delete(job.cmd.commandId);
      job.resolve();
    }
    for (const [id, r] of this.running) {
      if (r.timer) this.clock.clearTimeout(r.timer);
      r.controller.abort(new PolyfleetError("POLYFLEET_ERR_COMMAND_FAILED", "agent is stopping"));
      r.cancel();
      this.inFlight.delete(id);
    }
    this.updateGauges();
  }

  private async handle(payload: Uint8Array): Promise<void> {
    if (this.stopped) return;
    const parsed = parseMessage(Command, payload);
    if (!parsed.ok) {
      await this.rejectInvalid(payload, parsed.error);
      return;
    }
    const cmd = parsed.value;
    const type = cmd.body.type;
    if (cmd.agentId !== this.agentId) {
      this.count(type, "wrong_agent");
      this.log.warn(
        { commandId: cmd.commandId, agentId: cmd.agentId, type },
        "command for another agent ignored",
      );
      return;
    }
    const stored = this.lookup(cmd.commandId);
    if (stored) {
      this.count(type, "duplicate");
      this.log.info({ commandId: cmd.commandId, type }, "repeated command: re-publishing its result");
      await this.send(stored);
      return;
    }
    if (this.inFlight.has(cmd.commandId)) {
      this.count(type, "duplicate");
      this.log.info({ commandId: cmd.commandId, type }, "repeated command still running: not started again");
      return;
    }
    if (this.isExpired(cmd)) {
      await this.finish(cmd, this.errorResult(cmd, "POLYFLEET_ERR_COMMAND_EXPIRED", 0), "expired");
      return;
    }
    if (!this.handlers[type]) {
      const result = this.errorResult(
        cmd,
        "POLYFLEET_ERR_COMMAND_UNSUPPORTED",
        0,
        `command type ${type} is not supported by this agent`,
      );
      await this.finish(cmd, result, "unsupported");
      return;
    }
    if (this.running.size >= this.maxConcurrent && this.queue.length >= this.maxQueued) {
      this.count(type, "rejected");
      this.log.warn({ commandId: cmd.commandId, type, queued: this.queue.length }, "command queue full");
      // Not kept for idempotency: the collector may retry the same id once the agent has room.
      await this.send(
        this.errorResult(cmd, "POLYFLEET_ERR_RATE_LIMITED", 0, "too many commands waiting; retry later"),
      );
      return;
    }
    this.inFlight.add(cmd.commandId);
    await new Promise<void>((resolve) => {
      this.queue.push({ cmd, resolve });
      this.pump();
    });
  }

  private pump(): void {
    while (!this.stopped && this.running.size < this.maxConcurrent) {
      const job = this.queue.shift();
      if (!job) break;
      void this.run(job);
    }
    this.updateGauges();
  }

  private async run(job: Job): Promise<void> {
    const { cmd } = job;
    const type = cmd.body.type;
    const controller = new AbortController();
    const entry: Running = { controller, timer: undefined, cancel: () => {} };
    this.running.set(cmd.commandId, entry);
    this.updateGauges();
    const started = this.clock.now();
    try {
      // It may have waited in the queue past its expiry.
      if (this.isExpired(cmd)) {
        await this.finish(cmd, this.errorResult(cmd, "POLYFLEET_ERR_COMMAND_EXPIRED", 0), "expired");
        return;
      }
      const outcome = await this.execute(cmd, entry, started);
      if (this.stopped) return;
      await this.finish(cmd, outcome.result, outcome.outcome);
      this.metrics.observe(COMMAND_DURATION, outcome.result.durationMs / 1000, { type });
    } catch (err) {
      this.log.error({ err, commandId: cmd.commandId, type }, "command run failed");
    } finally {
      if (entry.timer) this.clock.clearTimeout(entry.timer);
      this.running.delete(cmd.commandId);
      this.inFlight.delete(cmd.commandId);
      job.resolve();
      this.pump();
    }
  }

  /** Runs the handler against the time limit; the first of (handler settles, time is up) decides. */
  private execute(
    cmd: Command,
    entry: Running,
    started: number,
  ): Promise<{ result: CommandResult; outcome: CommandOutcome }> {
    const body = cmd.body;
    const handler = this.handlers[body.type] as CommandHandler | undefined;
    const limitMs = commandTimeoutMs(body, this.defaultTimeoutMs, this.graceMs);
    return new Promise((resolve) => {
      let settled = false;
      const settle = (r: { result: CommandResult; outcome: CommandOutcome }): void => {
        if (settled) return;
        settled = true;
        resolve(r);
      };
      entry.timer = this.clock.setTimeout(() => {
        const error = new PolyfleetError(
          "POLYFLEET_ERR_COMMAND_TIMEOUT",
          `${body.type} did not finish within ${limitMs} ms`,
        );
        entry.controller.abort(error);
        // The slot is freed now even if the handler ignores its signal: one stuck tool must not block the
        // agent's other commands.
        const durationMs = Math.max(0, this.clock.now() - started);
        settle({ result: this.errorResult(cmd, error.code, durationMs, error.message), outcome: "timeout" });
      }, limitMs);
      entry.cancel = () =>
        settle({
          result: this.errorResult(cmd, "POLYFLEET_ERR_COMMAND_FAILED", 0, "agent is stopping"),
          outcome: "error",
        });
      if (!handler) {
        settle({
          result: this.errorResult(cmd, "POLYFLEET_ERR_COMMAND_UNSUPPORTED", 0),
          outcome: "unsupported",
        });
        return;
      }
      let pending: Promise<Record<string, unknown>>;
      try {
        pending = handler(body, { commandId: cmd.commandId, signal: entry.controller.signal });
      } catch (err) {
        pending = Promise.reject(err);
      }
      pending.then(
        (data) => {
          const durationMs = Math.max(0, this.clock.now() - started);
          settle({
            result: {
              v: 1,
              agentId: this.agentId,
              commandId: cmd.commandId,
              status: "ok",
              ts: this.clock.now(),
              durationMs,
              data: toData(data),
            },
            outcome: "ok",
          });
        },
        (err: unknown) => {
          const durationMs = Math.max(0, this.clock.now() - started);
          if (isPolyfleetError(err)) {
            this.log.info({ commandId: cmd.commandId, type: body.type, code: err.code }, "command failed");
            settle({ result: this.errorResult(cmd, err.code, durationMs, err.message), outcome: "error" });
          } else {
            // An unexpected exception is a bug: its message may say anything, so only the log sees it.
            this.log.error({ err, commandId: cmd.commandId, type: body.type }, "command handler threw");
            settle({
              result: this.errorResult(
                cmd,
                "POLYFLEET_ERR_INTERNAL",
                durationMs,
                "internal error running the command",
              ),
              outcome: "error",
            });
          }
        },
      );
    });
  }

  private async rejectInvalid(payload: Uint8Array, error: PolyfleetError): Promise<void> {
    const hint = salvage(payload);
    const type = hint.type !== undefined && KNOWN_TYPES.has(hint.type) ? hint.type : "unknown";
    this.count(type, "invalid");
    this.log.warn(
      { commandId: hint.commandId, type, code: error.code, reason: error.message, bytes: payload.byteLength },
      "invalid command rejected",
    );
    if (hint.commandId === undefined) return;
    if (hint.agentId !== undefined && hint.agentId !== this.agentId) return;
    // A malformed repeat of an id that already ran must not overwrite the real answer.
    if (this.inFlight.has(hint.commandId) || this.lookup(hint.commandId)) return;
    const message =
      error.code === "POLYFLEET_ERR_MESSAGE_NOT_JSON" ? "(root): not valid JSON" : error.message;
    await this.send({
      v: 1,
      agentId: this.agentId,
      commandId: hint.commandId,
      status: "error",
      ts: this.clock.now(),
      durationMs: 0,
      error: { code: "POLYFLEET_ERR_COMMAND_INVALID", message: truncate(message, 500) },
    });
  }

  private isExpired(cmd: Command): boolean {
    return cmd.expiresAt !== undefined && cmd.expiresAt < this.clock.now();
  }

  /** Stores the result for idempotency, counts it, publishes it. */
  private async finish(cmd: Command, result: CommandResult, outcome: CommandOutcome): Promise<void> {
    this.remember(cmd.commandId, result);
    this.count(cmd.body.type, outcome);
    if (outcome === "expired") {
      this.log.warn(
        { commandId: cmd.commandId, type: cmd.body.type, expiresAt: cmd.expiresAt },
        "command expired",
      );
    }
    await this.send(result);
  }

  private async send(result: CommandResult): Promise<void> {
    try {
      await this.publishResult(result);
    } catch (err) {
      this.log.warn({ err, commandId: result.commandId }, "publishing a command result failed");
    }
  }

  private lookup(id: string): CommandResult | undefined {
    const hit = this.done.get(id);
    if (!hit) return undefined;
    this.done.delete(id);
    if (this.clock.now() - hit.storedAt > this.ttlMs) return undefined;
    this.done.set(id, hit); // most recently used
    return hit.result;
  }

  private remember(id: string, result: CommandResult): void {
    const now = this.clock.now();
    this.done.delete(id);
    this.done.set(id, { result, storedAt: now });
    for (const [oldId, e] of this.done) {
      if (this.done.size <= this.cacheSize && now - e.storedAt <= this.ttlMs) break;
      this.done.delete(oldId);
    }
  }

  private errorResult(cmd: Command, code: ErrorCode, durationMs: number, message?: string): CommandResult {
    return {
      v: 1,
      agentId: this.agentId,
      commandId: cmd.commandId,
      status: "error",
      ts: this.clock.now(),
      durationMs,
      error: { code, message: truncate(message ?? new PolyfleetError(code).message, 500) },
    };
  }

  private count(type: string, result: CommandOutcome): void {
    this.metrics.inc(COMMANDS_TOTAL, { type, result });
  }

  private updateGauges(): void {
    this.metrics.set(COMMANDS_RUNNING, this.running.size);
    this.metrics.set(COMMANDS_QUEUED, this.queue.length);
  }
}

/** Handler data as a JSON-safe record with every secret-named key redacted (defence in depth). */
function toData(data: unknown): Record<string, unknown> {
  const clean = redactDeep(data);
  return clean !== null && typeof clean === "object" && !Array.isArray(clean)
    ? (clean as Record<string, unknown>)
    : { value: clean };
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/** What an invalid command still tells: its id (when well-formed), agent id and type, for the answer and the metric. */
function salvage(payload: Uint8Array): { commandId?: string; agentId?: string; type?: string } {
  let data: unknown;
  try {
    data = JSON.parse(new TextDecoder("utf-8").decode(payload));
  } catch {
    return {};
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) return {};
  const obj = data as Record<string, unknown>;
  const out: { commandId?: string; agentId?: string; type?: string } = {};
  if (CommandId.safeParse(obj.commandId).success) out.commandId = obj.commandId as string;
  if (typeof obj.agentId === "string") out.agentId = obj.agentId;
  const body = obj.body;
  if (body !== null && typeof body === "object" && !Array.isArray(body)) {
    const t = (body as Record<string, unknown>).type;
    if (typeof t === "string") out.type = t;
  }
  return out;
}
