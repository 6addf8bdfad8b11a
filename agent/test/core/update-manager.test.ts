import { isPolyfleetError, PolyfleetError, SYSTEM_CLOCK } from "@polyfleet/shared";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { InMemoryUpdateJournal } from "../../src/adapters/update/update-journal.js";
import { PromRegistry } from "../../src/core/prom-registry.js";
import { type FirmwareUpdateBody, UpdateManager } from "../../src/core/update-manager.js";
import type { UpdateRecord } from "../../src/core/update-state.js";
import type {
  ActionResult,
  ConfigReadResult,
  DeviceDriver,
  DeviceTarget,
  DeviceUpdateStatus,
  DeviceUpdateSupport,
  DriverName,
} from "../../src/ports/driver.js";
import type { EventBody } from "../../src/ports/sink.js";
import type { ImageCache, ImageResult, Provisioning, ProvisioningEntry } from "../../src/ports/update.js";

type Progress = Extract<EventBody, { type: "update.progress" }>;

class FakeUpdater implements DeviceUpdateSupport {
  readonly calls: string[] = [];
  st: DeviceUpdateStatus = {
    reachable: true,
    version: "7.0.0.1 01-Jan-24 10:00",
    uptimeSec: 5000,
    uptimeResolutionSec: 1,
  };
  config: Record<string, string> = { "prov.server": "ftp://customer", "prov.type": "FTP" };
  onTrigger: (() => void) | undefined;
  writeFails = false;
  constructor(
    readonly family: "uc" | "videoos" = "uc",
    readonly trigger: "fetch" | "reboot" = "fetch",
  ) {}
  status(): Promise<DeviceUpdateStatus> {
    this.calls.push("status");
    return Promise.resolve({ ...this.st });
  }
  pointingConfig(baseUrl: string): Record<string, string> {
    return { "prov.server": baseUrl, "prov.type": "HTTP" };
  }
  readConfig(_t: DeviceTarget, names: string[]): Promise<ConfigReadResult> {
    this.calls.push(`read ${names.join(",")}`);
    return Promise.resolve({
      ok: true,
      values: Object.fromEntries(names.filter((n) => n in this.config).map((n) => [n, this.config[n] ?? ""])),
    });
  }
  writeConfig(_t: DeviceTarget, values: Record<string, string>): Promise<ActionResult> {
    this.calls.push(`write ${JSON.stringify(values)}`);
    if (this.writeFails)
      return Promise.resolve({ ok: false, error: { code: "POLYFLEET_ERR_DEVICE_HTTP", message: "no" } });
    Object.assign(this.config, values);
    return Promise.resolve({ ok: true });
  }
  triggerUpdate(): Promise<ActionResult> {
    this.calls.push("trigger");
    this.onTrigger?.();
    return Promise.resolve({ ok: true });
  }
}

class FakeImages implements ImageCache {
  readonly cached = new Set<string>();
  readonly pins = new Map<string, number>();
  result: ImageResult = { ok: true };
  /** Resolves the download when set; else the download finishes at once. */
  gate: Promise<void> | undefined;
  ensures = 0;
  has(sha: string): boolean {
    return this.cached.has(sha);
  }
  async ensure(
    image: { sha256: string; length: number },
    opts: { signal: AbortSignal; onProgress?: (b: number, t: number) => void },
  ): Promise<ImageResult> {
    this.ensures++;
    for (let b = 1000; b < image.length; b += 1000) opts.onProgress?.(b, image.length);
    if (this.gate !== undefined) {
      const aborted = new Promise<void>((r) =>
        opts.signal.addEventListener("abort", () => r(), { once: true }),
      );
      await Promise.race([this.gate, aborted]);
      if (opts.signal.aborted)
        return { ok: false, code: "POLYFLEET_ERR_UPDATE_INTERRUPTED", reason: "aborted" };
    }
    if (this.result.ok) this.cached.add(image.sha256);
    return this.result;
  }
  pin(sha: string): void {
    this.pins.set(sha, (this.pins.get(sha) ?? 0) + 1);
  }
  unpin(sha: string): void {
    this.pins.set(sha, (this.pins.get(sha) ?? 0) - 1);
  }
}

class FakeProvisioning implements Provisioning {
  available = true;
  readonly entries = new Map<string, ProvisioningEntry>();
  readonly offers: string[] = [];
  urlFor(id: string): string {
    return `http://agent:8085/d/${id}/`;
  }
  publish(e: ProvisioningEntry): void {
    this.entries.set(e.deviceId, e);
    this.offers.push(e.offer);
  }
  withdraw(id: string): void {
    this.entries.delete(id);
  }
  /** The device downloads the whole image. */
  deliver(id: string): void {
    const e = this.entries.get(id);
    if (!e || e.delivered) throw new Error("nothing to deliver");
    e.delivered = true;
    e.onDelivered?.(Date.now());
  }
}

const SHA = "b".repeat(64);
const body = (over: Partial<FirmwareUpdateBody> = {}): FirmwareUpdateBody => ({
  type: "firmwareUpdate",
  deviceId: "64167f000001",
  rolloutId: "r-1",
  targetVersion: "8.1.0.1000",
  image: { url: "http://collector/i", fileName: "a.sip.ld", length: 10_000, sha256: SHA },
  timeoutMs: 60_000,
  ...over,
});

interface World {
  manager: UpdateManager;
  journal: InMemoryUpdateJournal;
  images: FakeImages;
  prov: FakeProvisioning;
  dev: FakeUpdater;
  events: Progress[];
  phases(id: string): string[];
}

function world(
  opts: { journal?: InMemoryUpdateJournal; dev?: FakeUpdater; driver?: DriverName; images?: FakeImages } = {},
): World {
  const journal = opts.journal ?? new InMemoryUpdateJournal();
  const images = opts.images ?? new FakeImages();
  const prov = new FakeProvisioning();
  const dev = opts.dev ?? new FakeUpdater();
  const events: Progress[] = [];
  const driver = { name: "poly-ucs", updates: dev } as unknown as DeviceDriver;
  const plain = { name: "snmp-generic" } as unknown as DeviceDriver;
  const target: DeviceTarget = {
    deviceId: "ip-10.0.0.1",
    address: "10.0.0.1",
    httpsPort: 443,
    snmpPort: 161,
    credentials: [],
    tags: [],
  };
  const log = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
  const manager = new UpdateManager(
    {
      journal,
      images,
      provisioning: prov,
      drivers: { "poly-ucs": driver, "snmp-generic": plain },
      device: (id) =>
        id === "64167f000001" || id === "ip-10.0.0.1"
          ? { target, driver: opts.driver ?? "poly-ucs" }
          : id === "plain-1"
            ? { target, driver: "snmp-generic" }
            : undefined,
      sink: {
        appendReading: () => 0,
        appendEvent: (e) => {
          if (e.type === "update.progress") events.push(e);
          return events.length;
        },
      },
      clock: SYSTEM_CLOCK,
      metrics: new PromRegistry(),
      log,
    },
    { watchIntervalMs: 1000, requestTimeoutMs: 500, restoreAttempts: 2, restoreRetryMs: 10_000 },
  );
  return {
    manager,
    journal,
    images,
    prov,
    dev,
    events,
    phases: (id) => events.filter((e) => e.commandId === id).map((e) => e.phase),
  };
}

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return isPolyfleetError(err) ? err.code : String(err);
  }
}

describe("UpdateManager", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("refuses what it cannot run, with the catalog's codes", async () => {
    const w = world();
    w.manager.start();
    expect(await code(w.manager.accept(body({ deviceId: "nobody" }), "cmd-00000001"))).toBe(
      "POLYFLEET_ERR_NOT_FOUND",
    );
    expect(await code(w.manager.accept(body({ deviceId: "plain-1" }), "cmd-00000002"))).toBe(
      "POLYFLEET_ERR_DEVICE_ACTION_UNSUPPORTED",
    );
    expect(await code(w.manager.accept(body({ targetVersion: "8.1" }), "cmd-00000003"))).toBe(
      "POLYFLEET_ERR_VERSION_INVALID",
    );
    expect(
      await code(w.manager.accept(body({ image: { ...body().image, fileName: ".." } }), "cmd-00000004")),
    ).toBe("POLYFLEET_ERR_COMMAND_INVALID");
    w.dev.st = { reachable: false, error: { code: "POLYFLEET_ERR_DEVICE_UNREACHABLE", message: "refused" } };
    expect(await code(w.manager.accept(body(), "cmd-00000005"))).toBe("POLYFLEET_ERR_DEVICE_UNREACHABLE");
    w.dev.st = { reachable: true, version: "7.0.0.1", inCall: true };
    expect(await code(w.manager.accept(body(), "cmd-00000006"))).toBe("POLYFLEET_ERR_DEVICE_IN_CALL");
    w.prov.available = false;
    expect(await code(w.manager.accept(body(), "cmd-00000007"))).toBe("POLYFLEET_ERR_UPDATE_FAILED");
    expect(w.events).toEqual([]);
    expect(w.journal.unfinished()).toEqual([]);
    expect(w.dev.calls.filter((c) => c.startsWith("write"))).toEqual([]);
    await w.manager.stop();
  });

  it("runs an update end to end: config saved, pointed, triggered, watched, config put back", async () => {
    const w = world();
    w.manager.start();
    w.dev.onTrigger = () => {
      w.prov.deliver("64167f000001");
      w.dev.st = { reachable: false };
    };
    const answer = await w.manager.accept(body(), "cmd-00000010");
    expect(answer).toEqual({
      accepted: true,
      deviceId: "64167f000001",
      commandId: "cmd-00000010",
      phase: "accepted",
      targetVersion: "8.1.0.1000",
      rolloutId: "r-1",
    });
    await vi.advanceTimersByTimeAsync(0);
    // The first watch read comes right after the trigger: the phone is away with the image.
    expect(w.phases("cmd-00000010").filter((p) => p !== "downloading")).toEqual([
      "accepted",
      "staged",
      "installing",
      "rebooting",
    ]);
    expect(w.events.filter((e) => e.phase === "downloading").map((e) => e.bytes)).toEqual([
      0, 3000, 6000, 9000,
    ]);
    expect(w.dev.calls).toEqual([
      "status",
      "status",
      "read prov.server,prov.type",
      `write ${JSON.stringify({ "prov.server": "http://agent:8085/d/64167f000001/", "prov.type": "HTTP" })}`,
      "trigger",
      "status",
    ]);
    expect(w.journal.get("cmd-00000010")).toMatchObject({
      phase: "rebooting",
      previousConfig: { "prov.server": "ftp://customer", "prov.type": "FTP" },
      scheduledId: "ip-10.0.0.1",
    });
    expect(w.images.pins.get(SHA)).toBe(1);
    w.dev.st = {
      reachable: true,
      version: "8.1.0.1000 01-Feb-24 10:00",
      uptimeSec: 1,
      uptimeResolutionSec: 1,
    };
    await vi.advanceTimersByTimeAsync(1000);
    expect(w.phases("cmd-00000010").slice(-3)).toEqual(["rebooting", "verifying", "succeeded"]);
    expect(w.events.at(-1)).toMatchObject({
      phase: "succeeded",
      reportedVersion: "8.1.0.1000",
      rolloutId: "r-1",
    });
    expect(w.dev.config).toEqual({ "prov.server": "ftp://customer", "prov.type": "FTP" });
    expect(w.prov.entries.size).toBe(0);
    expect(w.images.pins.get(SHA)).toBe(0);
    expect(w.journal.get("cmd-00000010")).toMatchObject({ phase: "succeeded", configRestored: true });
    // Repeated: the journal answers, nothing runs again.
    const calls = w.dev.calls.length;
    expect(await w.manager.accept(body(), "cmd-00000010")).toMatchObject({ phase: "succeeded" });
    expect(w.dev.calls.length).toBe(calls);
    await w.manager.stop();
  });

  it("throttles download progress to a few events", async () => {
    const w = world();
    w.manager.start();
    await w.manager.accept(body({ image: { ...body().image, length: 10_000_000 } }), "cmd-00000011");
    await vi.advanceTimersByTimeAsync(0);
    const dl = w.events.filter((e) => e.phase === "downloading");
    expect(dl.length).toBeLessThanOrEqual(5);
    expect(dl[0]).toMatchObject({ bytes: 0, totalBytes: 10_000_000 });
    await w.manager.stop();
  });

  it("offers a VideoOS device nothing new until its trigger reboot is under way", async () => {
    const dev = new FakeUpdater("videoos", "reboot");
    dev.st = {
      reachable: true,
      version: "4.1.0",
      build: "401117",
      uptimeSec: 100,
      uptimeResolutionSec: 0.01,
    };
    const w = world({ dev });
    w.manager.start();
    let offerAtTrigger: string | undefined;
    dev.onTrigger = () => {
      offerAtTrigger = w.prov.entries.get("64167f000001")?.offer;
    };
    await w.manager.accept(body({ targetVersion: "4.2.0-420001" }), "cmd-00000012");
    await vi.advanceTimersByTimeAsync(0);
    expect(offerAtTrigger).toBe("current");
    const entry = w.prov.entries.get("64167f000001");
    expect(entry).toMatchObject({
      offer: "target",
      target: { version: "4.2.0", build: "420001" },
      current: { version: "4.1.0", build: "401117" },
    });
    await w.manager.stop();
  });

  it("refuses a second update on the device, not a repeat of the same command", async () => {
    const w = world();
    w.images.gate = new Promise(() => {});
    w.manager.start();
    const [a, b] = await Promise.all([
      w.manager.accept(body(), "cmd-00000020"),
      w.manager.accept(body(), "cmd-00000020"),
    ]);
    expect(a).toEqual(b);
    expect(await code(w.manager.accept(body(), "cmd-00000021"))).toBe("POLYFLEET_ERR_UPDATE_IN_PROGRESS");
    expect(w.phases("cmd-00000020").filter((p) => p === "accepted")).toHaveLength(1);
    await w.manager.stop();
  });

  it("fails a download with its code and never touches the device", async () => {
    const w = world();
    w.images.result = { ok: false, code: "POLYFLEET_ERR_IMAGE_MISMATCH", reason: "sha256 differs" };
    w.manager.start();
    await w.manager.accept(body(), "cmd-00000030");
    await vi.advanceTimersByTimeAsync(0);
    expect(w.events.at(-1)).toMatchObject({
      phase: "failed",
      code: "POLYFLEET_ERR_IMAGE_MISMATCH",
      reason: "sha256 differs",
    });
    expect(w.dev.calls.filter((c) => c !== "status")).toEqual([]);
    expect(w.journal.activeFor("64167f000001")).toBeUndefined();
    await w.manager.stop();
  });

  it("defers a device that went into a call during the download (DEVICE_IN_CALL), untouched", async () => {
    const w = world();
    let release: () => void = () => {};
    w.images.gate = new Promise((r) => {
      release = r;
    });
    w.manager.start();
    await w.manager.accept(body(), "cmd-00000031");
    w.dev.st = { ...w.dev.st, inCall: true };
    release();
    await vi.advanceTimersByTimeAsync(0);
    expect(w.events.at(-1)).toMatchObject({ phase: "failed", code: "POLYFLEET_ERR_DEVICE_IN_CALL" });
    expect(w.dev.calls.filter((c) => c.startsWith("write"))).toEqual([]);
    await w.manager.stop();
  });

  it("puts the config back when pointing fails half-way", async () => {
    const w = world();
    w.dev.writeFails = true;
    w.manager.start();
    await w.manager.accept(body(), "cmd-00000032");
    await vi.advanceTimersByTimeAsync(3000);
    expect(w.events.at(-1)).toMatchObject({ phase: "failed", code: "POLYFLEET_ERR_UPDATE_FAILED" });
    // Restore tried (twice, both refused here): owed, and retried later.
    expect(w.journal.pendingRestores().map((r) => r.commandId)).toEqual(["cmd-00000032"]);
    w.dev.writeFails = false;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(w.journal.pendingRestores()).toEqual([]);
    expect(w.dev.config).toEqual({ "prov.server": "ftp://customer", "prov.type": "FTP" });
    await w.manager.stop();
  });

  it("times out a device that never takes the update", async () => {
    const w = world();
    w.manager.start();
    await w.manager.accept(body({ timeoutMs: 5000 }), "cmd-00000033");
    await vi.advanceTimersByTimeAsync(6000);
    expect(w.events.at(-1)).toMatchObject({ phase: "failed", code: "POLYFLEET_ERR_UPDATE_TIMEOUT" });
    expect(w.dev.config["prov.server"]).toBe("ftp://customer");
    await w.manager.stop();
  });

  it("after a restart ends every unfinished update in a known state", async () => {
    const journal = new InMemoryUpdateJournal();
    const now = Date.now();
    const base: UpdateRecord = {
      commandId: "cmd-00000040",
      deviceId: "64167f000001",
      scheduledId: "ip-10.0.0.1",
      family: "uc",
      targetVersion: "8.1.0.1000",
      image: body().image,
      phase: "downloading",
      configRestored: false,
      acceptedAt: now,
      deadline: now + 60_000,
      updatedAt: now,
    };
    journal.put(base);
    const w = world({ journal });
    w.manager.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(w.events).toMatchObject([
      { commandId: "cmd-00000040", phase: "failed", code: "POLYFLEET_ERR_UPDATE_INTERRUPTED" },
    ]);
    expect(w.dev.calls).toEqual([]);
    await w.manager.stop();

    // Pointed, image delivered before the restart: only watched; config put back at the end.
    journal.put({
      ...base,
      commandId: "cmd-00000041",
      phase: "installing",
      previousConfig: { "prov.server": "ftp://customer" },
      triggeredAt: now,
      imageServedAt: now,
    });
    const w2 = world({ journal });
    w2.dev.config["prov.server"] = "http://agent:8085/d/64167f000001/";
    w2.dev.st = { reachable: true, version: "8.1.0.1000", uptimeSec: 3, uptimeResolutionSec: 1 };
    w2.manager.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(w2.phases("cmd-00000041")).toEqual(["rebooting", "verifying", "succeeded"]);
    expect(w2.dev.calls).not.toContain("trigger");
    expect(w2.dev.config["prov.server"]).toBe("ftp://customer");
    await w2.manager.stop();

    // Pointed but the image never went out: triggered once more, then watched to the original deadline.
    journal.put({
      ...base,
      commandId: "cmd-00000042",
      phase: "installing",
      triggeredAt: now,
      deadline: now + 4000,
    });
    const w3 = world({ journal });
    w3.manager.start();
    await vi.advanceTimersByTimeAsync(5000);
    expect(w3.dev.calls.filter((c) => c === "trigger")).toHaveLength(1);
    expect(w3.events.at(-1)).toMatchObject({
      commandId: "cmd-00000042",
      code: "POLYFLEET_ERR_UPDATE_TIMEOUT",
    });
    await w3.manager.stop();
  });

  it("stops mid-download without ending the update (the next start does)", async () => {
    const w = world();
    w.images.gate = new Promise(() => {});
    w.manager.start();
    await w.manager.accept(body(), "cmd-00000050");
    await vi.advanceTimersByTimeAsync(0);
    await w.manager.stop();
    expect(w.journal.get("cmd-00000050")?.phase).toBe("downloading");
    expect(w.phases("cmd-00000050")).not.toContain("failed");
    expect(w.journal.activeFor("64167f000001")?.commandId).toBe("cmd-00000050");
  });

  it("answers a device already on the target with succeeded, journaled", async () => {
    const w = world();
    w.dev.st = { reachable: true, version: "8.1.0.1000 01-Jan-24 10:00" };
    w.manager.start();
    expect(await w.manager.accept(body(), "cmd-00000060")).toMatchObject({
      phase: "succeeded",
      reportedVersion: "8.1.0.1000",
    });
    expect(w.phases("cmd-00000060")).toEqual(["succeeded"]);
    expect(w.images.ensures).toBe(0);
    await w.manager.stop();
  });

  it("never lets an exception escape as a rejected handler other than a PolyfleetError", async () => {
    const w = world();
    w.dev.status = () => Promise.reject(new Error("driver bug"));
    w.manager.start();
    const err = await w.manager.accept(body(), "cmd-00000070").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolyfleetError);
    await w.manager.stop();
  });
});
