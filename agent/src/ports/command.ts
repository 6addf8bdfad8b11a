import type { CommandBody } from "@polyfleet/shared";

export interface CommandContext {
  commandId: string;
  /** Aborted when the command's time is up or the agent stops. */
  signal: AbortSignal;
}

/**
 * Runs one command type. Resolves with the result data; rejects with a PolyfleetError (code + message) for
 * an expected failure (host not found, refused...). Never includes a secret in its result.
 */
export type CommandHandler<T extends CommandBody["type"] = CommandBody["type"]> = (
  body: Extract<CommandBody, { type: T }>,
  ctx: CommandContext,
) => Promise<Record<string, unknown>>;

export type CommandHandlers = { [T in CommandBody["type"]]?: CommandHandler<T> };
