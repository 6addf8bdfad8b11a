import type { ErrorCode } from "@polyfleet/shared";
import type { UpdateImage, UpdateRecord } from "../core/update-state.js";
import type { UpdateFamily } from "./driver.js";

/**
 * The firmware update journal (port): one record per update command, durable on return, so a repeated
 * command is answered without pushing twice and an agent restart ends every update in a known state.
 * Adapters: `SqliteUpdateJournal` (`<provisioning.dir>/updates.db`), `InMemoryUpdateJournal` (tests).
 */
export interface UpdateJournal {
  /** The record of a command id. */
  get(commandId: string): UpdateRecord | undefined;
  /** The device's update that has not ended, if any (at most one per device). */
  activeFor(deviceId: string): UpdateRecord | undefined;
  /** Every update that has not ended (succeeded/failed), oldest first. */
  unfinished(): UpdateRecord[];
  /** Ended updates whose device config still has to be put back. */
  pendingRestores(): UpdateRecord[];
  /** Inserts or replaces the record of `record.commandId`; durable on return. */
  put(record: UpdateRecord): void;
  /** Drops ended records older than `olderThan` (epoch ms) and, beyond `keep`, the oldest ended ones. */
  prune(olderThan: number, keep: number): number;
}

export type ImageResult = { ok: true } | { ok: false; code: ErrorCode; reason: string };

/**
 * The verified image cache (port): images by sha256 under `<provisioning.dir>/images`, downloaded from the
 * collector at most once at a time per image, verified while streaming, least recently used removed first
 * beyond the cache size — never one a running update pinned.
 */
export interface ImageCache {
  /** Whether a verified copy is on disk. */
  has(sha256: string): boolean;
  /**
   * Makes sure the verified image is on disk: resolves at once when cached, else downloads it (sharing a
   * download in progress). `onProgress(bytes, total)` follows the download. Never rejects; aborting
   * `signal` resolves with `aborted: true` as a failed result (code UPDATE_INTERRUPTED).
   */
  ensure(
    image: UpdateImage,
    opts: { signal: AbortSignal; onProgress?: (bytes: number, total: number) => void },
  ): Promise<ImageResult>;
  /** Keeps the image from being evicted while an update uses it (counted). */
  pin(sha256: string): void;
  unpin(sha256: string): void;
}

/** What the provisioning server offers one device (see core/update-provisioning.ts for the URL space). */
export interface ProvisioningEntry {
  deviceId: string;
  family: UpdateFamily;
  /** VideoOS model, as the device puts it in its manifest URL. */
  model?: string | undefined;
  image: { sha256: string; fileName: string; length: number };
  target: { version: string; build?: string | undefined };
  /**
   * `target`: offer the update. `current`: offer nothing new — a VideoOS manifest names `current`, a UC
   * master config names no image — so a check the device makes before its trigger reboot, or after the
   * update ended, finds nothing to do (and no "update server down" either).
   */
  offer: "target" | "current";
  current?: { version: string; build?: string | undefined } | undefined;
  /** The image went out in full once: later image requests get 404 (a device never installs twice). */
  delivered: boolean;
  /** Called when the image has gone out in full to the device (first time only). */
  onDelivered?: ((at: number) => void) | undefined;
}

/** The site provisioning server (port): which device sees which update. */
export interface Provisioning {
  /** Whether it is listening (updates are refused otherwise). */
  readonly available: boolean;
  /** The device's own base URL, `<advertised>/d/<deviceId>/`. */
  urlFor(deviceId: string): string;
  /** Offers (or replaces) the entry of `entry.deviceId`. */
  publish(entry: ProvisioningEntry): void;
  /** Stops offering anything to the device. */
  withdraw(deviceId: string): void;
}
