import http from "node:http";
import https from "node:https";
import type { DeviceSim, FirmwareState } from "../device.js";
import { parseSimImageHeader, type SimImageHeader } from "../image.js";

/**
 * UC Software provisioning-server firmware update, as a phone runs it after `POST updateConfiguration`
 * (poly-devices.md §5.3): fetch `<mac>.cfg` (fallback `000000000000.cfg`), read `APP_FILE_PATH[_<model>]`,
 * read the image header, download the image when its version differs, reboot into it.
 * Choices where public sources are silent are listed in ./README.md.
 */

export interface UcProvisioningOptions {
  /** Deadline of each provisioning HTTP request (cfg or image), in ms. */
  timeoutMs?: number;
}

export const DEFAULT_PROVISIONING_TIMEOUT_MS = 30_000;
/** The master cfg is a small XML file; anything larger is refused. */
const MAX_CFG_BYTES = 1024 * 1024;
/** A simulator image header fits in the first KiB (see image.ts). */
const HEADER_WINDOW = 1024;

export type UcUpdateState =
  | "idle"
  | "checking"
  | "downloading"
  | "rebooting"
  | "updated"
  | "upToDate"
  | "failed";

/** The last update attempt of one phone, for the control API. `at` is the device clock (ms). */
export interface UcUpdateStatus {
  state: UcUpdateState;
  reason?: string;
  /** Version the attempt moves to (set once the image header was read). */
  target?: string;
  /** The application image URL the attempt used. */
  image?: string;
  at: number;
}

interface UpdateEntry {
  status: UcUpdateStatus;
  inFlight?: Promise<UcUpdateStatus> | undefined;
  /** The reboot into the new image has been issued (not just deferred behind a call). */
  rebootIssued?: boolean;
}

const updates = new WeakMap<DeviceSim, UpdateEntry>();
const pendingReboots = new WeakMap<DeviceSim, { reason: string; firmware?: FirmwareState | undefined }>();

/** `FileTransport PolycomVVX-VVX_500-UA/5.9.7.4477 Type/Application` (series-model, `_` for spaces). */
export function ucUserAgent(device: DeviceSim, type: "Application" | "Updater" = "Application"): string {
  const model = device.spec.model.replace(/ /g, "_");
  return `FileTransport Polycom${device.spec.series}-${model}-UA/${device.firmware.version} Type/${type}`;
}

/**
 * Reboots now, or, during a call, once the call ends ("safe" reboot). Returns whether it was deferred.
 * A deferred reboot is applied by `ucSettle()`.
 */
export function ucSafeReboot(
  device: DeviceSim,
  reason: string,
  firmware?: FirmwareState,
): "now" | "deferred" {
  if (device.inCall) {
    const prev = pendingReboots.get(device);
    pendingReboots.set(device, { reason, firmware: firmware ?? prev?.firmware });
    return "deferred";
  }
  pendingReboots.delete(device);
  device.reboot(reason, firmware);
  markRebootIssued(device);
  return "now";
}

/** Whether a safe reboot waits for the current call to end. */
export function ucRebootPending(device: DeviceSim): boolean {
  return pendingReboots.has(device);
}

/**
 * Applies a deferred safe reboot once the phone is idle. DeviceSim has no call-ended event, so this runs
 * lazily: after each REST request and when the update status is read.
 */
export function ucSettle(device: DeviceSim): void {
  const pending = pendingReboots.get(device);
  if (!pending || device.inCall) return;
  pendingReboots.delete(device);
  device.reboot(pending.reason, pending.firmware);
  markRebootIssued(device);
}

function markRebootIssued(device: DeviceSim): void {
  const entry = updates.get(device);
  if (entry?.status.state === "rebooting") entry.rebootIssued = true;
}

/** The last update attempt of a phone (`idle` when none ran). Resolves `rebooting` once the phone is back. */
export function ucUpdateStatus(device: DeviceSim): UcUpdateStatus {
  ucSettle(device);
  const entry = updates.get(device);
  if (!entry) return { state: "idle", at: device.now() };
  const s = entry.status;
  if (s.state === "rebooting" && entry.rebootIssued && device.isUp() && !device.updating) {
    const running = device.firmware.version;
    entry.status =
      running === s.target
        ? { ...s, state: "updated", reason: undefined, at: device.now() }
        : {
            ...s,
            state: "failed",
            reason: `came back running ${running}, expected ${s.target}`,
            at: device.now(),
          };
  }
  return { ...entry.status };
}

/** The running update flow of a phone, if any (tests and the control API await it). */
export function ucUpdateInFlight(device: DeviceSim): Promise<UcUpdateStatus> | undefined {
  return updates.get(device)?.inFlight;
}

export type StartUpdateResult = { ok: true } | { ok: false; code: "4001" | "4006"; message: string };

/**
 * Starts the update flow in the background (what `POST updateConfiguration` does). Refuses with 4006 when
 * no provisioning server is configured and 4001 while a previous attempt is still checking/downloading.
 */
export function startUcUpdate(device: DeviceSim, opts: UcProvisioningOptions = {}): StartUpdateResult {
  const server = (device.config.get("device.prov.serverName") ?? "").trim();
  if (server === "") return { ok: false, code: "4006", message: "URLs not configured" };
  const entry = updates.get(device);
  if (entry?.inFlight !== undefined) return { ok: false, code: "4001", message: "Device busy" };
  const next: UpdateEntry = { status: { state: "checking", at: device.now() } };
  updates.set(device, next);
  const flow = runUcUpdate(device, opts).finally(() => {
    next.inFlight = undefined;
  });
  next.inFlight = flow;
  void flow;
  return { ok: true };
}

/**
 * Runs one update attempt to the end and returns its outcome. Never rejects: every failure becomes a
 * `failed` status (and trap 69).
 */
export async function runUcUpdate(
  device: DeviceSim,
  opts: UcProvisioningOptions = {},
): Promise<UcUpdateStatus> {
  let entry = updates.get(device);
  if (!entry) {
    entry = { status: { state: "checking", at: device.now() } };
    updates.set(device, entry);
  }
  const e = entry;
  const set = (status: Omit<UcUpdateStatus, "at">): UcUpdateStatus => {
    e.status = { ...status, at: device.now() };
    return { ...e.status };
  };
  const fail = (reason: string, extra: Partial<UcUpdateStatus> = {}): UcUpdateStatus => {
    device.emitTrap({
      trap: 69,
      summary: `software update failed: ${reason}`,
      kind: "problem",
    });
    return set({ ...extra, state: "failed", reason });
  };
  try {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_PROVISIONING_TIMEOUT_MS;
    const base = provisioningBase(device);
    if (typeof base === "string") return fail(base);
    const ua = ucUserAgent(device);
    const bootGeneration = device.bootGeneration;

    // 1. Master config: <mac>.cfg, falling back to 000000000000.cfg on 404.
    let cfg = await getSmall(new URL(`${device.mac}.cfg`, base), ua, timeoutMs);
    if (cfg.status === 404) cfg = await getSmall(new URL("000000000000.cfg", base), ua, timeoutMs);
    if (cfg.status !== 200) return fail(`master config: HTTP ${cfg.status}`);
    const appFile = selectAppFile(cfg.body.toString("utf8"), device.spec.model, device.spec.partNumber);
    if (!appFile) return set({ state: "upToDate", reason: "master config names no application image" });

    // 2. Image: read the header, stop there when the version is the running one, else download it all.
    const imageUrl = new URL(appFile, base);
    const image = imageUrl.toString();
    const outcome = await downloadImage(device, imageUrl, ua, timeoutMs, {
      onDifferent: (header) => {
        set({ state: "downloading", target: header.version, image });
        device.emitTrap({
          trap: 67,
          summary: `software update started: ${device.firmware.version} -> ${header.version}`,
          kind: "info",
        });
      },
    });
    if (!outcome.ok)
      return fail(outcome.reason, { image, ...(outcome.target ? { target: outcome.target } : {}) });
    const header = outcome.header;
    if (!outcome.different) return set({ state: "upToDate", target: header.version, image });
    if (device.bootGeneration !== bootGeneration) {
      return fail("device rebooted during the download", { image, target: header.version });
    }

    // 3. Reboot into the new image (after the current call, like a safe reboot).
    const firmware: FirmwareState = {
      version: header.version,
      build: header.build ?? header.version.split(".")[3],
      date: header.date ?? formatUcDate(device.now()),
    };
    const result = set({ state: "rebooting", target: header.version, image });
    device.emitTrap({
      trap: 68,
      summary: `software update downloaded: ${header.version}, rebooting`,
      kind: "info",
    });
    const when = ucSafeReboot(device, "update", firmware);
    if (when === "deferred") return set({ ...result, reason: "waiting for the call to end" });
    return result;
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }
}

/** The provisioning base URL, or the reason there is none usable. */
function provisioningBase(device: DeviceSim): URL | string {
  const raw = (device.config.get("device.prov.serverName") ?? "").trim();
  if (raw === "") return "URLs not configured";
  const type = (device.config.get("device.prov.serverType") ?? "HTTP").trim().toLowerCase();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `${type}://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme.endsWith("/") ? withScheme : `${withScheme}/`);
  } catch {
    return `bad provisioning server address ${JSON.stringify(raw)}`;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return `provisioning protocol ${url.protocol.replace(":", "").toUpperCase()} is not simulated (HTTP/HTTPS only)`;
  }
  return url;
}

/**
 * The application image the master cfg names for this model: `APP_FILE_PATH_<partNumber>` or
 * `APP_FILE_PATH_<MODEL>` (e.g. `VVX350`, `VVX_350`) win over the plain `APP_FILE_PATH`.
 */
export function selectAppFile(xml: string, model: string, partNumber: string): string | undefined {
  const tag = /<APPLICATION\b([^>]*)>/i.exec(xml);
  if (!tag?.[1]) return undefined;
  const attrs = new Map<string, string>();
  for (const m of tag[1].matchAll(/([A-Za-z0-9_.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
    if (m[1]) attrs.set(m[1].toUpperCase(), (m[2] ?? m[3] ?? "").trim());
  }
  const compact = model.replace(/[\s_-]/g, "").toUpperCase();
  const underscored = model.replace(/\s+/g, "_").toUpperCase();
  const keys = [partNumber.toUpperCase(), compact, underscored].map((k) => `APP_FILE_PATH_${k}`);
  keys.push("APP_FILE_PATH");
  for (const k of keys) {
    const v = attrs.get(k);
    if (v) return v;
  }
  return undefined;
}

type DownloadOutcome =
  | { ok: true; header: SimImageHeader; different: boolean }
  | { ok: false; reason: string; target?: string | undefined };

async function downloadImage(
  device: DeviceSim,
  url: URL,
  ua: string,
  timeoutMs: number,
  hooks: { onDifferent(header: SimImageHeader): void },
): Promise<DownloadOutcome> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
  timer.unref();
  try {
    const res = await openGet(url, ua, ac.signal);
    if (res.statusCode !== 200) {
      res.resume();
      return { ok: false, reason: `image ${url.pathname}: HTTP ${res.statusCode ?? 0}` };
    }
    const expected = parseLength(res.headers["content-length"]);
    const failMidway = device.faults.has("updateDownloadFails");
    const failAt = expected !== undefined ? Math.max(1, Math.floor(expected / 2)) : HEADER_WINDOW * 2;
    let head = Buffer.alloc(0);
    let header: SimImageHeader | undefined;
    let received = 0;
    const decide = (): DownloadOutcome | "continue" => {
      header = parseSimImageHeader(head);
      if (header?.family !== "uc") return { ok: false, reason: "not a UC Software application image" };
      if (!modelMatches(header.model, device)) {
        return {
          ok: false,
          reason: `image is for ${header.model}, not ${device.spec.model}`,
          target: header.version,
        };
      }
      if (header.version === device.firmware.version) return { ok: true, header, different: false };
      hooks.onDifferent(header);
      return "continue";
    };
    for await (const chunk of res as AsyncIterable<Buffer>) {
      received += chunk.length;
      if (!header) {
        head = Buffer.concat([head, chunk.subarray(0, HEADER_WINDOW * 2)]);
        if (head.subarray(0, HEADER_WINDOW).includes(0x0a) || head.length >= HEADER_WINDOW) {
          const d = decide();
          // Leaving the loop destroys the response: the rest of the image is never fetched.
          if (d !== "continue") return d;
        }
      }
      if (header && failMidway && received >= failAt) {
        return {
          ok: false,
          reason: `connection lost after ${received} of ${expected ?? "?"} bytes`,
          target: header.version,
        };
      }
    }
    if (!header) {
      const d = decide();
      if (d !== "continue") return d;
    }
    const h = header as SimImageHeader | undefined;
    if (!h) return { ok: false, reason: "not a UC Software application image" };
    if (expected !== undefined && received !== expected) {
      return {
        ok: false,
        reason: `received ${received} bytes, Content-Length ${expected}`,
        target: h.version,
      };
    }
    return { ok: true, header: h, different: true };
  } catch (err) {
    const reason = ac.signal.aborted
      ? String((ac.signal.reason as Error | undefined)?.message ?? "timed out")
      : errText(err);
    return { ok: false, reason };
  } finally {
    clearTimeout(timer);
  }
}

function modelMatches(imageModel: string, device: DeviceSim): boolean {
  const norm = (s: string): string => s.replace(/[\s_-]/g, "").toUpperCase();
  const m = norm(imageModel);
  // A combined `sip.ld` carries every model; the simulator marks such an image `model=all`.
  return m === "ALL" || m === norm(device.spec.model) || m === norm(device.spec.partNumber);
}

async function getSmall(url: URL, ua: string, timeoutMs: number): Promise<{ status: number; body: Buffer }> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
  timer.unref();
  try {
    const res = await openGet(url, ua, ac.signal);
    const status = res.statusCode ?? 0;
    if (status !== 200) {
      res.resume();
      return { status, body: Buffer.alloc(0) };
    }
    const parts: Buffer[] = [];
    let size = 0;
    for await (const chunk of res as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_CFG_BYTES) throw new Error(`${url.pathname} is larger than ${MAX_CFG_BYTES} bytes`);
      parts.push(chunk);
    }
    return { status, body: Buffer.concat(parts) };
  } catch (err) {
    if (ac.signal.aborted) throw new Error(`${url.pathname}: timed out after ${timeoutMs} ms`);
    throw new Error(`${url.pathname}: ${errText(err)}`);
  } finally {
    clearTimeout(timer);
  }
}

function openGet(url: URL, ua: string, signal: AbortSignal): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const headers = { "User-Agent": ua, Accept: "*/*", Connection: "close" };
    const req =
      url.protocol === "https:"
        ? // Simulated phones trust any provisioning certificate (real ones check their CA list).
          https.request(url, { method: "GET", headers, signal, rejectUnauthorized: false }, resolve)
        : http.request(url, { method: "GET", headers, signal }, resolve);
    req.on("error", reject);
    req.end();
  });
}

function parseLength(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}

function errText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code ? `${code} ${err.message}` : err.message;
  }
  return String(err);
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** `DD-Mon-YY HH:MM`, the build-date format of `Firmware.Application` (UTC). */
export function formatUcDate(ms: number): string {
  const d = new Date(ms);
  const p = (n: number): string => String(n).padStart(2, "0");
  return `${p(d.getUTCDate())}-${MONTHS[d.getUTCMonth()]}-${p(d.getUTCFullYear() % 100)} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}`;
}
