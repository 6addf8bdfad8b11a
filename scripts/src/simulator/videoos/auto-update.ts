import http from "node:http";
import https from "node:https";
import type { DeviceSim } from "../device.js";
import { parseSimImageHeader } from "../image.js";

/**
 * VideoOS automatic software update, pulled by the device (../shared/poly-devices.md §5.3):
 * config `upgrade.auto.enable` = "true" and `upgrade.auto.server.address` = base URL. The device fetches
 *
 *   <server>/polyos/<model>/package.json   ->  {"version":"4.1.0","build":"401117","file":"polyos/StudioX30/x.pkg","size":4096}
 *
 * (this manifest format is UNCONFIRMED: Poly's real package layout is not public; see README.md), and when
 * version/build differ from what it runs downloads `<server>/<file>`, checks the length against `size` and
 * Content-Length, reads the simulator image header and reboots into it. SNMP traps 67/68/69
 * (softwareUpdateStarted/Complete/Failed) and 93/94 (softwareUpdateServerDown/OK) go out on the way.
 */

export type VideoosUpdateOutcome =
  | "disabled"
  | "noServer"
  | "deviceDown"
  | "upToDate"
  | "updated"
  | "serverError"
  | "failed";

export interface VideoosUpdateResult {
  outcome: VideoosUpdateOutcome;
  /** What the server offered, when it answered. */
  offered?: { version: string; build?: string | undefined };
  error?: string;
}

export interface VideoosUpdateStatus {
  state: "idle" | "checking" | "downloading" | "rebooting";
  /** Device-clock time of the last completed check. */
  lastCheckAt: number | undefined;
  lastResult: VideoosUpdateResult | undefined;
  /** The update server did not answer on the last check (trap 93 sent, 94 when it answers again). */
  serverDown: boolean;
  /** Last update attempt failed (SNMP externalIntegrationSoftwareUpdateStatus = failed). */
  lastUpdateFailed: boolean;
}

export interface CheckOptions {
  /** HTTP timeout per request, ms. Default 30 s. */
  timeoutMs?: number;
  /** Largest package accepted, bytes. Default 4 GiB. */
  maxBytes?: number;
}

interface UpdateState extends VideoosUpdateStatus {
  inFlight: Promise<VideoosUpdateResult> | undefined;
}

/** The package manifest the simulated update server publishes per model (UNCONFIRMED format). */
export interface VideoosPackageManifest {
  version: string;
  build?: string | undefined;
  date?: string | undefined;
  file: string;
  size: number;
}

const states = new WeakMap<DeviceSim, UpdateState>();

function stateOf(device: DeviceSim): UpdateState {
  let st = states.get(device);
  if (!st) {
    st = {
      state: "idle",
      lastCheckAt: undefined,
      lastResult: undefined,
      serverDown: false,
      lastUpdateFailed: false,
      inFlight: undefined,
    };
    states.set(device, st);
  }
  return st;
}

/** The device's update state, for the simulator control API and the SNMP agent. */
export function videoosUpdateStatus(device: DeviceSim): VideoosUpdateStatus {
  const st = stateOf(device);
  const state = st.state === "rebooting" && !device.updating && device.isUp() ? "idle" : st.state;
  return {
    state,
    lastCheckAt: st.lastCheckAt,
    lastResult: st.lastResult ? { ...st.lastResult } : undefined,
    serverDown: st.serverDown,
    lastUpdateFailed: st.lastUpdateFailed,
  };
}

/** Validates a package.json answer; undefined when it is not a usable manifest. */
export function parsePackageManifest(value: unknown): VideoosPackageManifest | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.version !== "string" || !/^\d+\.\d+\.\d+$/.test(v.version)) return undefined;
  if (v.build !== undefined && (typeof v.build !== "string" || !/^\d+$/.test(v.build))) return undefined;
  if (typeof v.file !== "string" || v.file.length === 0) return undefined;
  if (typeof v.size !== "number" || !Number.isSafeInteger(v.size) || v.size <= 0) return undefined;
  const date = typeof v.date === "string" ? v.date : undefined;
  return { version: v.version, build: v.build, date, file: v.file, size: v.size };
}

function baseUrl(server: string): URL | undefined {
  try {
    const u = new URL(server.endsWith("/") ? server : `${server}/`);
    return u.protocol === "http:" || u.protocol === "https:" ? u : undefined;
  } catch {
    return undefined;
  }
}

interface Fetched {
  status: number;
  contentLength: number | undefined;
  received: number;
  head: Buffer;
}

/**
 * GETs a URL, keeping only the first `keepBytes` of the body and counting the rest, so a big package costs
 * no memory. `abortAfterFirstChunk` models a download that breaks off (fault updateDownloadFails).
 */
function fetchCounting(
  url: URL,
  opts: {
    timeoutMs: number;
    keepBytes: number;
    maxBytes: number;
    abortAfterFirstChunk?: boolean;
    signal: AbortSignal;
  },
): Promise<Fetched> {
  if (opts.signal.aborted) return Promise.reject(new RebootedError());
  return new Promise((resolve, reject) => {
    let settled = false;
    const onAbort = (): void => fail(new RebootedError());
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      opts.signal.removeEventListener("abort", onAbort);
      reject(err);
      req.destroy();
    };
    const lib = url.protocol === "https:" ? https : http;
    // Simulated devices talk to a lab update server with a self-signed certificate (plausible; README).
    const req = lib.get(url, {
      timeout: opts.timeoutMs,
      rejectUnauthorized: false,
      headers: { "user-agent": "PolyOS" },
    });
    opts.signal.addEventListener("abort", onAbort, { once: true });
    req.on("timeout", () => fail(new Error(`timeout after ${opts.timeoutMs} ms`)));
    req.on("error", (err) => fail(err));
    req.on("response", (res) => {
      const status = res.statusCode ?? 0;
      const cl = res.headers["content-length"];
      const contentLength = cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
      const chunks: Buffer[] = [];
      let kept = 0;
      let received = 0;
      res.on("data", (chunk: Buffer) => {
        if (settled) return;
        received += chunk.length;
        if (kept < opts.keepBytes) {
          const part = chunk.subarray(0, opts.keepBytes - kept);
          chunks.push(part);
          kept += part.length;
        }
        if (received > opts.maxBytes) fail(new Error(`download larger than ${opts.maxBytes} bytes`));
        else if (opts.abortAfterFirstChunk) fail(new Error("download interrupted"));
      });
      res.on("error", (err) => fail(err));
      res.on("close", () => {
        if (!res.complete) fail(new Error("connection closed before the end of the body"));
      });
      res.on("end", () => {
        if (settled) return;
        settled = true;
        opts.signal.removeEventListener("abort", onAbort);
        resolve({ status, contentLength, received, head: Buffer.concat(chunks) });
      });
    });
  });
}

/** The device rebooted while a request of its check was under way: a real device's updater dies with it. */
class RebootedError extends Error {
  constructor() {
    super("device rebooted during the update check");
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * One update check, as the device does at boot and every `upgrade.auto.polling.interval` seconds. Concurrent
 * calls for the same device share the check in progress. Never rejects.
 */
export function checkForUpdate(device: DeviceSim, opts: CheckOptions = {}): Promise<VideoosUpdateResult> {
  const st = stateOf(device);
  if (st.inFlight !== undefined) return st.inFlight;
  // A reboot (the agent's REST reboot, say) ends the check under way, as it would on a real device: it does
  // not go on to fetch the package, or a package it fetched while going down, behind the reboot.
  const rebooted = new AbortController();
  const onRebooted = (): void => rebooted.abort();
  device.events.on("rebooted", onRebooted);
  const p = runCheck(device, st, opts, rebooted.signal)
    .catch((err: unknown): VideoosUpdateResult => ({ outcome: "failed", error: errorText(err) }))
    .then((result) => {
      device.events.off("rebooted", onRebooted);
      st.inFlight = undefined;
      if (st.state !== "rebooting") st.state = "idle";
      st.lastResult = result;
      st.lastCheckAt = device.now();
      return result;
    });
  st.inFlight = p;
  return p;
}

async function runCheck(
  device: DeviceSim,
  st: UpdateState,
  opts: CheckOptions,
  signal: AbortSignal,
): Promise<VideoosUpdateResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const maxBytes = opts.maxBytes ?? 4 * 1024 * 1024 * 1024;
  if (device.config.get("upgrade.auto.enable") !== "true") return { outcome: "disabled" };
  if (!device.isUp()) return { outcome: "deviceDown" };
  const base = baseUrl(device.config.get("upgrade.auto.server.address") ?? "");
  if (!base) return { outcome: "noServer" };
  st.state = "checking";

  let manifest: VideoosPackageManifest | undefined;
  try {
    const url = new URL(`polyos/${encodeURIComponent(device.spec.model)}/package.json`, base);
    const res = await fetchCounting(url, { timeoutMs, keepBytes: 64 * 1024, maxBytes: 64 * 1024, signal });
    if (res.status !== 200) throw new Error(`package.json: HTTP ${res.status}`);
    try {
      manifest = parsePackageManifest(JSON.parse(res.head.toString("utf8")));
    } catch {
      manifest = undefined;
    }
    if (!manifest) throw new Error("package.json: not a package manifest");
  } catch (err) {
    if (err instanceof RebootedError) return { outcome: "deviceDown", error: err.message };
    if (!st.serverDown) {
      st.serverDown = true;
      device.emitTrap({ trap: 93, summary: "software update server down", kind: "problem" });
    }
    return { outcome: "serverError", error: errorText(err) };
  }
  if (st.serverDown) {
    st.serverDown = false;
    device.emitTrap({ trap: 94, summary: "software update server ok", kind: "resolution" });
  }

  const offered = { version: manifest.version, build: manifest.build };
  const running = device.firmware;
  if (
    manifest.version === running.version &&
    (manifest.build === undefined || manifest.build === running.build)
  ) {
    return { outcome: "upToDate", offered };
  }

  const label = manifest.build ? `${manifest.version}-${manifest.build}` : manifest.version;
  device.emitTrap({ trap: 67, summary: `software update to ${label} started`, kind: "info" });
  st.state = "downloading";
  const fail = (error: string): VideoosUpdateResult => {
    st.lastUpdateFailed = true;
    device.emitTrap({ trap: 69, summary: `software update to ${label} failed: ${error}`, kind: "problem" });
    return { outcome: "failed", offered, error };
  };
  try {
    const url = new URL(manifest.file, base);
    const res = await fetchCounting(url, {
      timeoutMs,
      keepBytes: 1024,
      maxBytes: Math.min(maxBytes, manifest.size),
      abortAfterFirstChunk: device.faults.has("updateDownloadFails"),
      signal,
    });
    if (res.status !== 200) return fail(`HTTP ${res.status}`);
    if (res.contentLength === undefined) return fail("no Content-Length");
    if (res.contentLength !== manifest.size)
      return fail(`Content-Length ${res.contentLength} != size ${manifest.size}`);
    if (res.received !== manifest.size) return fail(`received ${res.received} of ${manifest.size} bytes`);
    const header = parseSimImageHeader(res.head);
    if (!header) return fail("not a package image");
    if (header.family !== "videoos" || header.model !== device.spec.model) {
      return fail(`package is for ${header.family}/${header.model}`);
    }
    if (
      header.version !== manifest.version ||
      (manifest.build !== undefined && header.build !== manifest.build)
    ) {
      return fail(`package header says ${header.version}${header.build ? `-${header.build}` : ""}`);
    }
    if (signal.aborted || !device.isUp()) return fail("device went down during the download");
    st.lastUpdateFailed = false;
    st.state = "rebooting";
    device.emitTrap({ trap: 68, summary: `software update to ${label} complete`, kind: "info" });
    device.reboot("update", {
      version: header.version,
      build: header.build ?? manifest.build,
      date: header.date ?? manifest.date ?? new Date(device.now()).toISOString().slice(0, 10),
    });
    return { outcome: "updated", offered };
  } catch (err) {
    return fail(errorText(err));
  }
}

export interface AutoUpdateOptions extends CheckOptions {
  /** Real-time period at which the device looks at its clock and config. Default 1000 ms. */
  intervalMs?: number;
  log?: (msg: string) => void;
}

/**
 * Runs the device's update loop: a check once the device is up after each reboot, and every
 * `upgrade.auto.polling.interval` seconds of device time. The timer is unref'd; `stop()` ends the loop.
 */
export function startAutoUpdate(device: DeviceSim, opts: AutoUpdateOptions = {}): { stop(): void } {
  const st = stateOf(device);
  let bootCheckPending = true;
  const onRebooted = (): void => {
    bootCheckPending = true;
  };
  device.events.on("rebooted", onRebooted);

  const tick = (): void => {
    try {
      if (st.inFlight !== undefined || device.config.get("upgrade.auto.enable") !== "true") return;
      if (!device.isUp()) return;
      if (st.state === "rebooting") st.state = "idle";
      const pollSec = Number(device.config.get("upgrade.auto.polling.interval") ?? "3600");
      const periodMs = Number.isFinite(pollSec) && pollSec > 0 ? pollSec * 1000 : 3_600_000;
      const due = st.lastCheckAt === undefined || device.now() - st.lastCheckAt >= periodMs;
      if (!bootCheckPending && !due) return;
      bootCheckPending = false;
      void checkForUpdate(device, opts).then((r) => {
        if (r.outcome !== "upToDate" && r.outcome !== "disabled") {
          opts.log?.(`${device.id}: update check ${r.outcome}${r.error ? `: ${r.error}` : ""}`);
        }
      });
    } catch (err) {
      opts.log?.(`${device.id}: update tick failed: ${errorText(err)}`);
    }
  };
  const timer = setInterval(tick, opts.intervalMs ?? 1000);
  timer.unref();
  return {
    stop(): void {
      clearInterval(timer);
      device.events.off("rebooted", onRebooted);
    },
  };
}
