// Builds the agent's firmware update stack (journal, image cache, provisioning server, manager, real
// drivers) on a directory, against simulated devices, with a capturing sink: what buildAgent wires, minus
// MQTT, so tests can stop it and build it again on the same directory.
import type { UpdateProgress } from "@polyfleet/shared";
import { createLogger, SYSTEM_CLOCK } from "@polyfleet/shared";
import { destination } from "pino";
import { PolyUcsDriver } from "../../../src/adapters/drivers/poly-ucs.js";
import { PolyVideoOsDriver } from "../../../src/adapters/drivers/poly-videoos.js";
import {
  type HttpsJsonClient,
  type HttpsRequest,
  type HttpsResult,
  UndiciHttpsClient,
} from "../../../src/adapters/http/https-client.js";
import { ProvisioningServer } from "../../../src/adapters/provisioning/provisioning-server.js";
import { FileImageStore } from "../../../src/adapters/update/image-store.js";
import { SqliteUpdateJournal } from "../../../src/adapters/update/update-journal.js";
import { PromRegistry } from "../../../src/core/prom-registry.js";
import { type FirmwareUpdateBody, UpdateManager } from "../../../src/core/update-manager.js";
import type { DeviceDriver, DeviceTarget, DriverName } from "../../../src/ports/driver.js";
import type { EventBody, TelemetrySink } from "../../../src/ports/sink.js";
import { type SimDevice, targetOf } from "../../helpers/sim.js";

export type Progress = Extract<EventBody, { type: "update.progress" }>;

/** Counts device requests by `METHOD path`. */
export class CountingClient implements HttpsJsonClient {
  readonly calls: string[] = [];
  constructor(private readonly inner: HttpsJsonClient) {}
  request(req: HttpsRequest): Promise<HttpsResult> {
    this.calls.push(`${req.address} ${req.method} ${req.path}`);
    return this.inner.request(req);
  }
  count(address: string, what: string): number {
    return this.calls.filter((c) => c === `${address} ${what}`).length;
  }
  peerFingerprint(a: string, p: number): string | undefined {
    return this.inner.peerFingerprint(a, p);
  }
  closeOrigin(a: string, p: number): Promise<void> {
    return this.inner.closeOrigin(a, p);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

export interface UpdateStack {
  manager: UpdateManager;
  provisioning: ProvisioningServer;
  images: FileImageStore;
  journal: SqliteUpdateJournal;
  metrics: PromRegistry;
  http: CountingClient;
  events: Progress[];
  /** Adds simulated devices the stack knows (as the scheduler would). */
  known: Map<string, { target: DeviceTarget; driver: DriverName }>;
  accept(body: Omit<FirmwareUpdateBody, "type">, commandId: string): Promise<Record<string, unknown>>;
  /** Progress events of one command, phases in order. */
  phases(commandId: string): string[];
  last(commandId: string): Progress | undefined;
  stop(): Promise<void>;
}

export function knowDevice(stack: UpdateStack, d: SimDevice): DeviceTarget {
  const target = targetOf(d);
  stack.known.set(d.id, { target, driver: d.family === "uc" ? "poly-ucs" : "poly-videoos" });
  return target;
}

/** Builds and starts the stack on `dir`. */
export async function startUpdateStack(
  dir: string,
  opts: {
    watchIntervalMs?: number;
    maxCachedImages?: number;
    devices?: SimDevice[];
    /** Called synchronously as each progress event is stored. */
    onEvent?: (e: Progress) => void;
  } = {},
): Promise<UpdateStack> {
  const metrics = new PromRegistry();
  const debugFile = process.env.PF_UPDATE_DEBUG;
  const log = debugFile
    ? createLogger({ level: "debug" }, destination({ dest: debugFile, append: true, sync: true }))
    : createLogger({ level: "silent" });
  const clock = SYSTEM_CLOCK;
  const http = new CountingClient(new UndiciHttpsClient({ metrics, timeoutMs: 2000 }));
  const drivers: Partial<Record<DriverName, DeviceDriver>> = {
    "poly-ucs": new PolyUcsDriver({ http, metrics, clock, requestTimeoutMs: 2000 }),
    "poly-videoos": new PolyVideoOsDriver({ http, metrics, clock, requestTimeoutMs: 2000 }),
  };
  const journal = new SqliteUpdateJournal(dir);
  journal.open();
  const images = new FileImageStore({
    dir: `${dir}/images`,
    maxCached: opts.maxCachedImages ?? 8,
    metrics,
    log,
    download: { backoffMs: 30, maxBackoffMs: 200, maxAttempts: 4, idleTimeoutMs: 5000 },
  });
  images.open();
  const provisioning = new ProvisioningServer({ host: "127.0.0.1", port: 0, images, clock, metrics, log });
  await provisioning.start();
  const events: Progress[] = [];
  const sink: TelemetrySink = {
    appendReading: () => 0,
    appendEvent: (e) => {
      if (e.type === "update.progress") {
        events.push(e);
        opts.onEvent?.(e);
      }
      return events.length;
    },
  };
  const known = new Map<string, { target: DeviceTarget; driver: DriverName }>();
  const manager = new UpdateManager(
    {
      journal,
      images,
      provisioning,
      drivers,
      device: (id) => known.get(id),
      sink,
      clock,
      metrics,
      log,
    },
    { watchIntervalMs: opts.watchIntervalMs ?? 150, requestTimeoutMs: 2000, restoreRetryMs: 500 },
  );
  const stack: UpdateStack = {
    manager,
    provisioning,
    images,
    journal,
    metrics,
    http,
    events,
    known,
    accept: (body, commandId) => manager.accept({ type: "firmwareUpdate", ...body }, commandId),
    phases: (commandId) => events.filter((e) => e.commandId === commandId).map((e) => e.phase),
    last: (commandId) => events.filter((e) => e.commandId === commandId).at(-1),
    async stop() {
      await manager.stop();
      await provisioning.stop();
      for (const d of Object.values(drivers)) await d?.close();
      await http.close();
      journal.close();
    },
  };
  for (const d of opts.devices ?? []) knowDevice(stack, d);
  manager.start();
  return stack;
}

/** Resolves once the command's update has ended (succeeded or failed). */
export async function waitForEnd(
  stack: UpdateStack,
  commandId: string,
  timeoutMs = 30_000,
): Promise<Progress> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const last = stack.last(commandId);
    if (last && (last.phase === "succeeded" || last.phase === "failed")) return last;
    if (Date.now() > until) {
      throw new Error(
        `update ${commandId} did not end in ${timeoutMs} ms: ${stack.phases(commandId).join(" → ")}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string) {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export type { UpdateProgress };
