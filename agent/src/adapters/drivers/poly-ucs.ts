import { type PollError, polyUc } from "@polyfleet/shared";
import type { z } from "zod";
import {
  normalizeUcReading,
  parseUcUptimeText,
  type UcAnswers,
  type UcPrevious,
} from "../../core/normalize-uc.js";
import { type Clock, SYSTEM_CLOCK } from "../../ports/clock.js";
import type { ResolvedCredential } from "../../ports/credentials.js";
import type {
  ActionResult,
  ConfigReadResult,
  DeviceDriver,
  DeviceTarget,
  DeviceUpdateStatus,
  DeviceUpdateSupport,
  IdentifyResult,
  PollOptions,
  ReadingBody,
} from "../../ports/driver.js";
import type { Metrics } from "../../ports/metrics.js";
import { DeviceLock } from "../http/device-lock.js";
import { BAD_RESPONSES_METRIC, type HttpsJsonClient, type HttpsResult } from "../http/https-client.js";

type HttpCredential = Extract<ResolvedCredential, { type: "http" }>;

export interface PolyUcsDriverOptions {
  /** Borrowed, not owned: {@link PolyUcsDriver.close} leaves it open (the caller closes it). */
  http: HttpsJsonClient;
  metrics?: Metrics | undefined;
  clock?: Clock | undefined;
  /** Deadline of each HTTPS request (default 5 s); the poll's signal bounds the whole poll. */
  requestTimeoutMs?: number | undefined;
  /** `network/info` (link speed, provisioning server) changes rarely: read it every N polls (default 10). */
  networkInfoEvery?: number | undefined;
  /** Wait before the single retry of an answer "device busy" (403/4001) (default 250 ms). */
  busyRetryMs?: number | undefined;
}

interface UcDeviceState {
  lock: DeviceLock;
  /** Where the device was last reached (its connection is closed on forget). */
  origin?: { address: string; port: number } | undefined;
  /** Name of the credential that worked last. */
  credentialName?: string | undefined;
  authHeader?: string | undefined;
  infoVersion: 1 | 2;
  lineVersion: 1 | 2;
  noMrpair: boolean;
  pollsSinceNetworkInfo: number;
  networkInfo?: UcAnswers["networkInfo"];
  previous: UcPrevious;
}

type Step<T> = { ok: true; value: T } | { ok: false; error: PollError; answered: boolean; status?: number };

/** Errors after which the rest of the poll is skipped: the device is not there or not ours to read. */
const FATAL = new Set([
  "POLYFLEET_ERR_DEVICE_TIMEOUT",
  "POLYFLEET_ERR_DEVICE_UNREACHABLE",
  "POLYFLEET_ERR_DEVICE_AUTH",
]);

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, "utf8").toString("base64")}`;
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * `poly-ucs`: Poly UC Software phones (VVX, Trio, CCX, Edge) over HTTPS REST with HTTP Basic as `Polycom`.
 * Phones serve one request at a time (a second one gets 403 "busy"), so every request to one device goes
 * through a per-device lock and one keep-alive connection. A poll makes 5 requests (device/info,
 * device/stats, network/stats, lineInfo, pollForStatus), plus network/info every N polls, sessionStats in a
 * call and mrpair/info on Trio. `inCall` comes from device/info `AppState` (callStatus is asked only on
 * firmware that lacks it), which saves a request per poll.
 */
export class PolyUcsDriver implements DeviceDriver {
  readonly name = "poly-ucs" as const;
  private readonly http: HttpsJsonClient;
  private readonly metrics: Metrics | undefined;
  private readonly clock: Clock;
  private readonly requestTimeoutMs: number;
  private readonly networkInfoEvery: number;
  private readonly busyRetryMs: number;
  private readonly devices = new Map<string, UcDeviceState>();

  /**
   * Firmware updates (poly-devices.md §5.3): `device.prov.serverName`/`serverType` point the phone at the
   * agent's provisioning server, `POST updateConfiguration` makes it fetch `<mac>.cfg` and the image now.
   */
  readonly updates: DeviceUpdateSupport = {
    family: "uc",
    trigger: "fetch",
    status: (target, opts) => this.updateStatus(target, opts),
    pointingConfig: (baseUrl) => ({
      "device.prov.serverType": baseUrl.startsWith("https:") ? "HTTPS" : "HTTP",
      "device.prov.serverName": baseUrl,
    }),
    readConfig: (target, names, opts) => this.readConfig(target, names, opts),
    writeConfig: (target, values, opts) => this.writeConfig(target, values, opts),
    triggerUpdate: (target, opts) => this.triggerUpdate(target, opts),
  };

  constructor(opts: PolyUcsDriverOptions) {
    this.http = opts.http;
    this.metrics = opts.metrics;
    this.clock = opts.clock ?? SYSTEM_CLOCK;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 5000;
    this.networkInfoEvery = Math.max(1, opts.networkInfoEvery ?? 10);
    this.busyRetryMs = opts.busyRetryMs ?? 250;
  }

  /** Drops the device's state and closes its keep-alive connection. */
  forget(deviceId: string): void {
    const st = this.devices.get(deviceId);
    this.devices.delete(deviceId);
    if (st?.origin) void this.http.closeOrigin(st.origin.address, st.origin.port);
  }

  /**
   * Drops every device's state (remembered credential, API versions, previous counters) and closes the
   * keep-alive connections to the devices this driver reached. The injected {@link HttpsJsonClient} stays
   * open: it may be shared with other drivers, and its owner (the composition root) closes it.
   */
  async close(): Promise<void> {
    const origins = [...this.devices.values()].flatMap((st) => (st.origin ? [st.origin] : []));
    this.devices.clear();
    await Promise.allSettled(origins.map((o) => this.http.closeOrigin(o.address, o.port)));
  }

  private state(deviceId: string): UcDeviceState {
    let st = this.devices.get(deviceId);
    if (!st) {
      st = {
        lock: new DeviceLock(),
        infoVersion: 2,
        lineVersion: 2,
        noMrpair: false,
        pollsSinceNetworkInfo: Number.POSITIVE_INFINITY,
        previous: {},
      };
      this.devices.set(deviceId, st);
    }
    return st;
  }

  async poll(target: DeviceTarget, opts: PollOptions): Promise<ReadingBody> {
    const st = this.state(target.deviceId);
    st.origin = { address: target.address, port: target.httpsPort };
    const started = this.clock.now();
    const r = await st.lock.run(opts.signal, () => this.pollLocked(target, st, opts.signal, started));
    if (r.ran) return r.value;
    return this.normalize(
      target,
      st,
      started,
      {},
      [
        {
          code: "POLYFLEET_ERR_DEVICE_TIMEOUT",
          message: "poll aborted while waiting for the device's previous request",
        },
      ],
      false,
      false,
    );
  }

  async identify(target: DeviceTarget, opts: PollOptions): Promise<IdentifyResult> {
    const st = this.state(target.deviceId);
    const r = await st.lock.run(opts.signal, async (): Promise<IdentifyResult> => {
      const info = await this.deviceInfo(target, st, opts.signal);
      if (!info.ok) return { ok: false, error: info.error };
      const { reading } = normalizeUcReading({
        deviceId: target.deviceId,
        address: target.address,
        reachable: true,
        pollLatencyMs: 0,
        nowMs: this.clock.now(),
        answers: { info: info.value },
        errors: [],
      });
      return { ok: true, identity: reading.identity, driver: this.name, via: ["https"] };
    });
    if (r.ran) return r.value;
    return { ok: false, error: { code: "POLYFLEET_ERR_DEVICE_TIMEOUT", message: "identify aborted" } };
  }

  async reboot(target: DeviceTarget, opts: PollOptions): Promise<ActionResult> {
    const st = this.state(target.deviceId);
    const r = await st.lock.run(opts.signal, async (): Promise<ActionResult> => {
      const path = "/api/v1/mgmt/safeReboot";
      const res = await this.authed(target, st, "POST", path, opts.signal);
      if (!res.ok && droppedByReboot(res)) {
        return {
          ok: true,
          detail: "safe reboot requested; the phone dropped the connection as it went down",
        };
      }
      if (!res.ok) return { ok: false, error: res.error };
      const parsed = polyUc.UcStatusOnly.safeParse(res.json);
      if (!parsed.success || String(parsed.data.Status) !== "2000") {
        return {
          ok: false,
          error: this.schemaError(path, parsed.success ? `REST status ${parsed.data.Status}` : "no Status"),
        };
      }
      return { ok: true, detail: "safe reboot requested (waits for an active call to end)" };
    });
    if (r.ran) return r.value;
    return { ok: false, error: { code: "POLYFLEET_ERR_DEVICE_TIMEOUT", message: "reboot aborted" } };
  }

  // ------------------------------------------------------------------ firmware updates

  /** device/info (v2, or v1 on old firmware) and, when it does not say, the call status. */
  private async updateStatus(target: DeviceTarget, opts: PollOptions): Promise<DeviceUpdateStatus> {
    const st = this.state(target.deviceId);
    st.origin = { address: target.address, port: target.httpsPort };
    const r = await st.lock.run(opts.signal, async (): Promise<DeviceUpdateStatus> => {
      const info = await this.deviceInfo(target, st, opts.signal);
      if (!info.ok) return { reachable: info.answered, error: info.error };
      const out: DeviceUpdateStatus = {
        reachable: true,
        model: infoModel(info.value),
        uptimeResolutionSec: 1,
      };
      if (info.value.v === 2) {
        const d = info.value.data;
        out.version = d.Firmware.Application;
        out.inCall = d.AppState === "AppStateCall";
        const up = uptimeOf(info.value);
        if (up !== undefined) out.uptimeSec = up;
        return out;
      }
      const d = info.value.data;
      if ("FirmwareRelease" in d) {
        out.version = d.FirmwareRelease;
        const up = parseUcUptimeText(d.UpTimeSinceLastReboot);
        if (up !== undefined) out.uptimeSec = up;
      } else {
        const app = (d.Firmware as Record<string, unknown>).Application;
        if (typeof app === "string") out.version = app;
      }
      const cs = await this.getParsed(
        target,
        st,
        "/api/v2/webCallControl/callStatus",
        polyUc.UcCallStatusV2,
        opts.signal,
      );
      if (cs.ok) out.inCall = cs.value.length > 0;
      return out;
    });
    if (r.ran) return r.value;
    return {
      reachable: false,
      error: { code: "POLYFLEET_ERR_DEVICE_TIMEOUT", message: "status read aborted" },
    };
  }

  /** `POST config/get` (at most 20 names per request). */
  private async readConfig(
    target: DeviceTarget,
    names: string[],
    opts: PollOptions,
  ): Promise<ConfigReadResult> {
    const st = this.state(target.deviceId);
    const r = await st.lock.run(opts.signal, async (): Promise<ConfigReadResult> => {
      const values: Record<string, string> = {};
      for (let i = 0; i < names.length; i += 20) {
        const path = "/api/v1/mgmt/config/get";
        const res = await this.authed(target, st, "POST", path, opts.signal, {
          data: names.slice(i, i + 20),
        });
        if (!res.ok) return { ok: false, error: res.error };
        const parsed = polyUc.UcConfigGet.safeParse(res.json);
        if (!parsed.success) return { ok: false, error: this.schemaError(path, "config/get answer") };
        for (const [k, v] of Object.entries(parsed.data.data)) values[k] = v.Value;
      }
      return { ok: true, values };
    });
    if (r.ran) return r.value;
    return { ok: false, error: { code: "POLYFLEET_ERR_DEVICE_TIMEOUT", message: "config read aborted" } };
  }

  /** `POST config/set` (all or nothing on the phone; at most 20 per request). */
  private async writeConfig(
    target: DeviceTarget,
    values: Record<string, string>,
    opts: PollOptions,
  ): Promise<ActionResult> {
    const st = this.state(target.deviceId);
    const r = await st.lock.run(opts.signal, async (): Promise<ActionResult> => {
      const entries = Object.entries(values);
      for (let i = 0; i < entries.length; i += 20) {
        const path = "/api/v1/mgmt/config/set";
        const res = await this.authed(target, st, "POST", path, opts.signal, {
          data: Object.fromEntries(entries.slice(i, i + 20)),
        });
        const failed = this.statusFailure(path, res);
        if (failed) return failed;
      }
      return { ok: true };
    });
    if (r.ran) return r.value;
    return { ok: false, error: { code: "POLYFLEET_ERR_DEVICE_TIMEOUT", message: "config write aborted" } };
  }

  /** `POST updateConfiguration`: the phone fetches its master config and the image now. */
  private async triggerUpdate(target: DeviceTarget, opts: PollOptions): Promise<ActionResult> {
    const st = this.state(target.deviceId);
    const r = await st.lock.run(opts.signal, async (): Promise<ActionResult> => {
      const path = "/api/v1/mgmt/updateConfiguration";
      const res = await this.authed(target, st, "POST", path, opts.signal);
      return this.statusFailure(path, res) ?? { ok: true, detail: "updateConfiguration accepted" };
    });
    if (r.ran) return r.value;
    return { ok: false, error: { code: "POLYFLEET_ERR_DEVICE_TIMEOUT", message: "trigger aborted" } };
  }

  /** The failure of a POST answered with `{Status}`, or undefined when it is 2000. */
  private statusFailure(path: string, res: HttpsResult): Extract<ActionResult, { ok: false }> | undefined {
    if (!res.ok) return { ok: false, error: res.error };
    const parsed = polyUc.UcStatusOnly.safeParse(res.json);
    if (!parsed.success || String(parsed.data.Status) !== "2000") {
      return {
        ok: false,
        error: this.schemaError(path, parsed.success ? `REST status ${parsed.data.Status}` : "no Status"),
      };
    }
    return undefined;
  }

  // ------------------------------------------------------------------ internals

  private async pollLocked(
    target: DeviceTarget,
    st: UcDeviceState,
    signal: AbortSignal,
    started: number,
  ): Promise<ReadingBody> {
    const errors: PollError[] = [];
    const answers: UcAnswers = {};
    const info = await this.deviceInfo(target, st, signal);
    if (!info.ok) {
      errors.push(info.error);
      return this.normalize(target, st, started, answers, errors, info.answered, false);
    }
    answers.info = info.value;
    let stop = false;
    const take = <T>(s: Step<T>): T | undefined => {
      if (s.ok) return s.value;
      errors.push(s.error);
      if (FATAL.has(s.error.code)) stop = true;
      return undefined;
    };
    answers.stats = take(
      await this.getParsed(target, st, "/api/v1/mgmt/device/stats", polyUc.UcDeviceStats, signal),
    );
    if (!stop) {
      answers.networkStats = take(
        await this.getParsed(target, st, "/api/v1/mgmt/network/stats", polyUc.UcNetworkStats, signal),
      );
    }
    if (!stop) answers.lines = take(await this.lineInfo(target, st, signal));
    if (!stop) {
      answers.pollForStatus = take(
        await this.getParsed(target, st, "/api/v1/mgmt/pollForStatus", polyUc.UcPollForStatus, signal),
      );
    }
    // network/info changes rarely; re-read after a reboot too (uptime below the last one).
    const prevUptime = st.previous.counters?.uptimeSec;
    const uptimeNow = uptimeOf(answers.info);
    const rebooted = prevUptime !== undefined && uptimeNow !== undefined && uptimeNow < prevUptime;
    if (!stop && (st.pollsSinceNetworkInfo >= this.networkInfoEvery || rebooted)) {
      const ni = take(
        await this.getParsed(target, st, "/api/v1/mgmt/network/info", polyUc.UcNetworkInfo, signal),
      );
      if (ni) {
        st.networkInfo = ni;
        st.pollsSinceNetworkInfo = 0;
      }
    }
    st.pollsSinceNetworkInfo++;
    answers.networkInfo = st.networkInfo;
    const appState = answers.info.v === 2 ? answers.info.data.AppState : undefined;
    let inCall = appState ? appState === "AppStateCall" : undefined;
    if (!stop && inCall === undefined) {
      const cs = await this.getParsed(
        target,
        st,
        "/api/v2/webCallControl/callStatus",
        polyUc.UcCallStatusV2,
        signal,
      );
      if (cs.ok) {
        answers.callStatus = cs.value;
        inCall = cs.value.length > 0;
      } else if (cs.status !== 404) take(cs);
    }
    if (!stop && inCall) {
      answers.sessionStats = take(
        await this.getParsed(target, st, "/api/v1/mgmt/media/sessionStats", polyUc.UcSessionStats, signal),
      );
    }
    if (!stop && !st.noMrpair && /^trio/i.test(infoModel(answers.info))) {
      const mr = await this.getParsed(target, st, "/api/v1/mgmt/mrpair/info", polyUc.UcMrPair, signal);
      if (mr.ok) answers.mrpair = mr.value;
      else if (mr.status === 404) st.noMrpair = true;
      else take(mr);
    }
    return this.normalize(target, st, started, answers, errors, true, true);
  }

  private normalize(
    target: DeviceTarget,
    st: UcDeviceState,
    started: number,
    answers: UcAnswers,
    errors: PollError[],
    reachable: boolean,
    remember: boolean,
  ): ReadingBody {
    const now = this.clock.now();
    const { reading, next } = normalizeUcReading({
      deviceId: target.deviceId,
      address: target.address,
      reachable,
      pollLatencyMs: now - started,
      nowMs: now,
      answers,
      errors,
      previous: st.previous,
    });
    if (remember || reachable) st.previous = next;
    return reading;
  }

  /** device/info: v2, falling back to v1 on 404 (old firmware); tries the credentials in order on 401. */
  private async deviceInfo(
    target: DeviceTarget,
    st: UcDeviceState,
    signal: AbortSignal,
  ): Promise<Step<NonNullable<UcAnswers["info"]>>> {
    if (st.infoVersion === 2) {
      const v2 = await this.getParsed(target, st, "/api/v2/mgmt/device/info", polyUc.UcDeviceInfoV2, signal);
      if (v2.ok) return { ok: true, value: { v: 2, data: v2.value } };
      if (v2.status !== 404) return v2;
      st.infoVersion = 1;
    }
    const v1 = await this.getParsed(target, st, "/api/v1/mgmt/device/info", polyUc.UcDeviceInfoV1, signal);
    if (v1.ok) return { ok: true, value: { v: 1, data: v1.value } };
    if (v1.status === 404) st.infoVersion = 2;
    return v1;
  }

  private async lineInfo(
    target: DeviceTarget,
    st: UcDeviceState,
    signal: AbortSignal,
  ): Promise<Step<NonNullable<UcAnswers["lines"]>>> {
    if (st.lineVersion === 2) {
      const v2 = await this.getParsed(target, st, "/api/v2/mgmt/lineInfo", polyUc.UcLineInfoV2, signal);
      if (v2.ok) return { ok: true, value: { v: 2, data: v2.value } };
      if (v2.status !== 404) return v2;
      st.lineVersion = 1;
    }
    const v1 = await this.getParsed(target, st, "/api/v1/mgmt/lineInfo", polyUc.UcLineInfoV1, signal);
    if (v1.ok) return { ok: true, value: { v: 1, data: v1.value } };
    return v1;
  }

  /** GET + envelope schema; returns `data`. */
  private async getParsed<S extends z.ZodType<{ data: unknown }>>(
    target: DeviceTarget,
    st: UcDeviceState,
    path: string,
    schema: S,
    signal: AbortSignal,
  ): Promise<Step<z.infer<S>["data"]>> {
    const res = await this.authed(target, st, "GET", path, signal);
    if (!res.ok) {
      const answered =
        res.status !== undefined ||
        res.error.code === "POLYFLEET_ERR_DEVICE_BAD_RESPONSE" ||
        res.error.code === "POLYFLEET_ERR_DEVICE_TOO_LARGE";
      const step: Step<never> = { ok: false, error: res.error, answered };
      if (res.status !== undefined) step.status = res.status;
      return step;
    }
    const parsed = schema.safeParse(res.json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue ? `${issue.path.join(".") || "(root)"}: ${issue.message}` : "invalid";
      return { ok: false, error: this.schemaError(path, where), answered: true, status: res.status };
    }
    return { ok: true, value: (parsed.data as { data: z.infer<S>["data"] }).data };
  }

  private schemaError(path: string, detail: string): PollError {
    this.metrics?.inc(BAD_RESPONSES_METRIC, { reason: "schema" });
    return {
      code: "POLYFLEET_ERR_DEVICE_BAD_RESPONSE",
      message: `GET ${path}: answer does not match the UC REST schema (${detail.slice(0, 200)})`,
      endpoint: path,
    };
  }

  /**
   * One request with the remembered credential; on 401 the other `http` credentials are tried in order and
   * the first accepted one is remembered. A "busy" answer is retried once after a short pause.
   */
  private async authed(
    target: DeviceTarget,
    st: UcDeviceState,
    method: "GET" | "POST",
    path: string,
    signal: AbortSignal,
    body?: unknown,
  ): Promise<HttpsResult> {
    const creds = target.credentials.filter((c): c is HttpCredential => c.type === "http");
    if (creds.length === 0) {
      return {
        ok: false,
        error: {
          code: "POLYFLEET_ERR_DEVICE_AUTH",
          message: `${method} ${path}: no http credential configured`,
          endpoint: path,
        },
      };
    }
    let current =
      st.credentialName === undefined ? undefined : creds.find((c) => c.name === st.credentialName);
    if (!current || !st.authHeader) {
      current = creds[0] as HttpCredential;
      st.credentialName = current.name;
      st.authHeader = basic(current.user || "Polycom", current.password);
    }
    let res = await this.send(target, method, path, st.authHeader, signal, body);
    if (!res.ok && res.error.code === "POLYFLEET_ERR_DEVICE_BUSY" && !signal.aborted) {
      await delay(this.busyRetryMs, signal);
      res = await this.send(target, method, path, st.authHeader, signal, body);
    }
    if (res.ok || res.error.code !== "POLYFLEET_ERR_DEVICE_AUTH" || creds.length === 1) return res;
    for (const c of creds) {
      if (c.name === current.name || signal.aborted) continue;
      const header = basic(c.user || "Polycom", c.password);
      const r = await this.send(target, method, path, header, signal, body);
      if (r.ok || r.error.code !== "POLYFLEET_ERR_DEVICE_AUTH") {
        st.credentialName = c.name;
        st.authHeader = header;
        return r;
      }
    }
    return res;
  }

  private send(
    target: DeviceTarget,
    method: "GET" | "POST",
    path: string,
    auth: string,
    signal: AbortSignal,
    body?: unknown,
  ): Promise<HttpsResult> {
    return this.http.request({
      address: target.address,
      port: target.httpsPort,
      method,
      path,
      headers: { authorization: auth },
      ...(body === undefined ? {} : { body }),
      signal,
      timeoutMs: this.requestTimeoutMs,
    });
  }
}

/**
 * A device that reboots at once may close the connection before its answer leaves: the request was
 * written and the socket closed by the peer, which is as good as an acknowledgement.
 */
export function droppedByReboot(res: HttpsResult): boolean {
  return !res.ok && res.sent === true && (res.netCode === "UND_ERR_SOCKET" || res.netCode === "ECONNRESET");
}

function uptimeOf(info: NonNullable<UcAnswers["info"]>): number | undefined {
  if (info.v !== 2) return undefined;
  const u = info.data.UpTime;
  const s = Number(u.Days) * 86_400 + Number(u.Hours) * 3600 + Number(u.Minutes) * 60 + Number(u.Seconds);
  return Number.isFinite(s) ? s : undefined;
}

function infoModel(info: NonNullable<UcAnswers["info"]>): string {
  return info.data.ModelNumber;
}
