import { PolyfleetError } from "@polyfleet/shared";
import type { FirmwareUpdateBody } from "../../core/update-manager.js";
import type { CommandHandlers } from "../../ports/command.js";

/** What the handler needs: the update manager, or why updates are unavailable on this agent. */
export interface FirmwareUpdateDeps {
  accept(body: FirmwareUpdateBody, commandId: string): Promise<Record<string, unknown>>;
  /** Undefined when updates work; else the reason they do not (journal or provisioning server down). */
  unavailable(): string | undefined;
}

/**
 * The `firmwareUpdate` command: resolves as soon as the update is accepted (the update itself runs in the
 * background and reports `update.progress` events), so it holds a command slot for a moment only.
 */
export function createFirmwareUpdateHandlers(deps: FirmwareUpdateDeps): CommandHandlers {
  return {
    firmwareUpdate: (body, ctx) => {
      const why = deps.unavailable();
      if (why !== undefined) {
        return Promise.reject(
          new PolyfleetError("POLYFLEET_ERR_UPDATE_FAILED", `firmware updates are unavailable: ${why}`),
        );
      }
      return deps.accept(body, ctx.commandId);
    },
  };
}
