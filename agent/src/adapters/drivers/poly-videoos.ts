import { type PollError, polyVideoOs } from "@polyfleet/shared";
import type { z } from "zod";
import {
  normalizeVideoOsReading,
  VIDEOOS_SNMP_OIDS,
  type VideoOsAnswers,
  type VideoOsPrevious,
  videoOsSnmpValues,
} from "../../core/normalize-videoos.js";
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
import type { SnmpClient, SnmpCredential } from "../../ports/snmp.js";
import { DeviceLock } from "../http/device-lock.js";
import { BAD_RESPONSES_METRIC, type HttpsJsonClient, type HttpsResult } from "../http/https-client.js";
import { droppedByReboot } from "./poly-ucs.js";

type HttpCredential = Extract<ResolvedCredential, { type: "http" }>;

/** Counter of REST logins (new sessions) the driver made. */
export const VIDEOOS_LOGINS_METRIC = "polyfleet_agent_videoos_logins_total";

export interface PolyVideoOsDriverOptions {
  /** Borrowed, not owned: {@link PolyVideoOsDriver.close} leaves it open (the caller closes it). */
  http: HttpsJsonClient;
  /** Optional: with it, devices that have an SNMP credential also get IF-MIB rates and MIB hardware health. */
  snmp?: SnmpClient | undefined;
  metrics?: Metrics | undefined;
  clock?: Clock | undefined;
  /** Deadline of each HTTPS request (default 5 s). */
  requestTimeoutMs?: number | undefined;
  /** Deadline of the SNMP get (default 3 s). */
  snmpTimeoutMs?: number | undefined;
}

interface Session {
  cookie: string;
  xsrf: string | undefined;
}

interface VideoOsDeviceState {
  lock: DeviceLock;
  /** Where the device was last reached (its connection is closed on forget). */
  origin?: { address: string; port: number } | undefined;
  credentialName?: string | undefined;
  session?: Session | undefined;
  snmpCredentialName?: string | undefined;
  previous: VideoOsPrevious;
}

type Step<T> = { ok: true; value: T } | { ok: false; error: PollError; answered: boolean };

const FATAL = new Set([
  "POLYFLEET_ERR_DEVICE_TIMEOUT",
  "POLYFLEET_ERR_DEVICE_UNREACHABLE",
  "POLYFLEET_ERR_DEVICE_AUTH",
]);
const SNMP_OIDS = Object.values(VIDEOOS_SNMP_OIDS);

function cookieValue(setCookie: string | string[] | undefined, name: string): string | undefined {
  const list = setCookie === undefined ? [] : Array.isArray(setCookie) ? setCookie : [setCookie];
  for (const c of list) {
    const first = c.split(";", 1)[0] ?? "";
    const eq = first.indexOf("=");
    if (eq > 0 && first.slice(0, eq).trim() === name) return first.slice(eq + 1).trim();
  }
  return undefined;
}

function answeredOf(res: Extract<HttpsResult, { ok: false }>): boolean {
  return (
    res.status !== undefined ||
    res.error.code === "POLYFLEET_ERR_DEVICE_BAD_RESPONSE" ||
    res.error.code === "POLYFLEET_ERR_DEVICE_TOO_LARGE"
  );
}

/**
 * `poly-videoos`: Poly Studio X and G7500 over the VideoOS REST API (session login, `session_id` cookie and
 * XSRF token reused across polls, renewed once on 401/403 — a reboot or an idle timeout ends sessions) and,
 * when the device has an SNMP credential and an {@link SnmpClient} was given, SNMP (IF-MIB counters of
 * ifIndex 1 for rates, POLYCOM-ENDPOINT-MIB hardware status). SNMP runs alongside the REST calls; without
 * it the reading is complete except for the network rates.
 */
export class PolyVideoOsDriver implements DeviceDriver {
  readonly name = "poly-videoos" as const;
  private readonly http: HttpsJsonClient;
  private readonly snmp: SnmpClient | undefined;
  private readonly metrics: Metrics | undefined;
  private readonly clock: Clock;
  private readonly requestTimeoutMs: number;
  private readonly snmpTimeoutMs: number;
  private readonly devices = new Map<string, VideoOsDeviceState>();

  /**
   * Firmware updates (poly-devices.md §5.3): auto-update on, its server the agent's provisioning server (and
   * the device's own update time frame off, the rollout has its maintenance windows); the device checks
   * `<server>/polyos/<model>/package.json` at boot, so the trigger is a reboot.
   */
  readonly updates: DeviceUpdateSupport = {
    family: "videoos",
    trigger: "reboot",
    status: (target, opts) => this.updateStatus(target, opts),
    pointingConfig: (baseUrl) => ({
      "upgrade.auto.enable": "true",
      "upgrade.auto.server.address": baseUrl,
      "upgrade.auto.timeFrame.enable": "false",
    }),
    readConfig: (target, names, opts) => this.readConfig(target, names, opts),
    writeConfig: (target, values, opts) => this.writeConfig(target, values, opts),
    triggerUpdate: (target, opts) => this.reboot(target, opts),
  };

  constructor(opts: PolyVideoOsDriverOptions) {
    this.http = opts.http;
    this.snmp = opts.snmp;
    this.metrics = opts.metrics;
    this.clock = opts.clock ?? SYSTEM_CLOCK;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 5000;
    this.snmpTimeoutMs = opts.snmpTimeoutMs ?? 3000;
  }

  /** Drops the device's state and closes its keep-alive connection. */
  forget(deviceId: string): void {
    const st = this.devices.get(deviceId);
    this.devices.delete(deviceId);
    if (st?.origin) void this.http.closeOrigin(st.origin.address, st.origin.port);
  }

  /**
   * Drops every device's state (sessions, previous counters) and closes the keep-alive connections to the
   * devices this driver reached. The injected {@link HttpsJsonClient} stays open: it may be shared with other
   * drivers, and its owner (the composition root) closes it.
   */
  async close(): Promise<void> {
    const origins = [...this.devices.values()].flatMap((st) => (st.origin ? [st.origin] : []));
    this.devices.clear();
    await Promise.allSettled(origins.map((o) => this.http.closeOrigin(o.address, o.port)));
  }

  private state(deviceId: string): VideoOsDeviceState {
    let st = this.devices.get(deviceId);
    if (!st) {
      st = { lock: new DeviceLock(), previous: {} };
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
      [{ code: "POLYFLEET_ERR_DEVICE_TIMEOUT", message: "poll aborted while waiting for the previous one" }],
      false,
    );
  }

  async identify(target: DeviceTarget, opts: PollOptions): Promise<IdentifyResult> {
    const st = this.state(target.deviceId);
    const r = await st.lock.run(opts.signal, async (): Promise<IdentifyResult> => {
      const sys = await this.getParsed(
        target,
        st,
        "GET",
        "/rest/system",
        polyVideoOs.VideoOsSystem,
        opts.signal,
      );
      if (!sys.ok) return { ok: false, error: sys.error };
      // `/rest/system` carries no MAC; the codec's own entry in the device-management list does. Without it
      // (older firmware, an error) the identity is still valid, only without a MAC: discovery then falls back
      // to the ARP-learned one.
      const devices = await this.getParsed(
        target,
        st,
        "POST",
        "/rest/current/devicemanagement/devices",
        polyVideoOs.VideoOsPeripherals,
        opts.signal,
      );
      const { reading } = normalizeVideoOsReading({
        deviceId: target.deviceId,
        address: target.address,
        reachable: true,
        pollLatencyMs: 0,
        nowMs: this.clock.now(),
        answers: { system: sys.value, peripherals: devices.ok ? devices.value : undefined },
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
      const res = await this.rest(target, st, "POST", "/rest/system/reboot", opts.signal, {
        action: "reboot",
      });
      // The reboot ends every session on the device.
      st.session = undefined;
      if (!res.ok && droppedByReboot(res)) {
        return { ok: true, detail: "reboot requested; the device dropped the connection as it went down" };
      }
      if (!res.ok) return { ok: false, error: res.error };
      return { ok: true, detail: "reboot requested" };
    });
    if (r.ran) return r.value;
    return { ok: false, error: { code: "POLYFLEET_ERR_DEVICE_TIMEOUT", message: "reboot aborted" } };
  }

  // ------------------------------------------------------------------ firmware updates

  /** `/rest/system` (version, build, uptime) and `/rest/conferences` (in a call). */
  private async updateStatus(target: DeviceTarget, opts: PollOptions): Promise<DeviceUpdateStatus> {
    const st = this.state(target.deviceId);
    st.origin = { address: target.address, port: target.httpsPort };
    const r = await st.lock.run(opts.signal, async (): Promise<DeviceUpdateStatus> => {
      const sys = await this.getParsed(
        target,
        st,
        "GET",
        "/rest/system",
        polyVideoOs.VideoOsSystem,
        opts.signal,
      );
      if (!sys.ok) return { reachable: sys.answered, error: sys.error };
      const out: DeviceUpdateStatus = {
        reachable: true,
        version: sys.value.softwareVersion,
        build: sys.value.build,
        model: sys.value.model,
        uptimeSec: sys.value.uptime,
        uptimeResolutionSec: 0.01,
      };
      const conf = await this.getParsed(
        target,
        st,
        "GET",
        "/rest/conferences",
        polyVideoOs.VideoOsConferences,
        opts.signal,
      );
      if (conf.ok) out.inCall = conf.value.some((c) => c.isActive !== false);
      return out;
    });
    if (r.ran) return r.value;
    return {
      reachable: false,
      error: { code: "POLYFLEET_ERR_DEVICE_TIMEOUT", message: "status read aborted" },
    };
  }

  /** `POST /rest/config {names}`; parameters the device does not know are left out. */
  private async readConfig(
    target: DeviceTarget,
    names: string[],
    opts: PollOptions,
  ): Promise<ConfigReadResult> {
    const st = this.state(target.deviceId);
    const r = await st.lock.run(opts.signal, async (): Promise<ConfigReadResult> => {
      const path = "/rest/config";
      const res = await this.rest(target, st, "POST", path, opts.signal, { names });
      if (!res.ok) return { ok: false, error: res.error };
      const parsed = polyVideoOs.VideoOsConfigVars.safeParse(res.json);
      if (!parsed.success) return { ok: false, error: this.schemaError("POST", path, "config answer") };
      const values: Record<string, string> = {};
      for (const v of parsed.data.vars) {
        if (v.result === "NOERROR" && names.includes(v.name) && v.value !== undefined)
          values[v.name] = v.value;
      }
      return { ok: true, values };
    });
    if (r.ran) return r.value;
    return { ok: false, error: { code: "POLYFLEET_ERR_DEVICE_TIMEOUT", message: "config read aborted" } };
  }

  /** `POST /rest/config {vars}`; every parameter must come back NOERROR. */
  private async writeConfig(
    target: DeviceTarget,
    values: Record<string, string>,
    opts: PollOptions,
  ): Promise<ActionResult> {
    const st = this.state(target.deviceId);
    const r = await st.lock.run(opts.signal, async (): Promise<ActionResult> => {
      const path = "/rest/config";
      const vars = Object.entries(values).map(([name, value]) => ({ name, value }));
      const res = await this.rest(target, st, "POST", path, opts.signal, { vars });
      if (!res.ok) return { ok: false, error: res.error };
      const parsed = polyVideoOs.VideoOsConfigVars.safeParse(res.json);
      if (!parsed.success) return { ok: false, error: this.schemaError("POST", path, "config answer") };
      const refused = parsed.data.vars.filter((v) => v.result !== "NOERROR");
      if (refused.length > 0 || parsed.data.vars.length < vars.length) {
        return {
          ok: false,
          error: {
            code: "POLYFLEET_ERR_DEVICE_HTTP",
            message: `config write refused: ${refused.map((v) => `${v.name} ${v.result}`).join(", ") || "missing answers"}`,
            endpoint: path,
          },
        };
      }
      return { ok: true };
    });
    if (r.ran) return r.value;
    return { ok: false, error: { code: "POLYFLEET_ERR_DEVICE_TIMEOUT", message: "config write aborted" } };
  }

  // ------------------------------------------------------------------ internals

  private async pollLocked(
    target: DeviceTarget,
    st: VideoOsDeviceState,
    signal: AbortSignal,
    started: number,
  ): Promise<ReadingBody> {
    const errors: PollError[] = [];
    const answers: VideoOsAnswers = {};
    const snmpDone = this.readSnmp(target, st, signal);
    let reachable = false;
    const sys = await this.getParsed(target, st, "GET", "/rest/system", polyVideoOs.VideoOsSystem, signal);
    if (sys.ok) {
      reachable = true;
      answers.system = sys.value;
      let stop = false;
      const take = <T>(s: Step<T>): T | undefined => {
        if (s.ok) return s.value;
        errors.push(s.error);
        if (FATAL.has(s.error.code)) stop = true;
        return undefined;
      };
      answers.status = take(
        await this.getParsed(
          target,
          st,
          "GET",
          "/rest/system/status",
          polyVideoOs.VideoOsSystemStatus,
          signal,
        ),
      );
      if (!stop) {
        answers.peripherals = take(
          await this.getParsed(
            target,
            st,
            "POST",
            "/rest/current/devicemanagement/devices",
            polyVideoOs.VideoOsPeripherals,
            signal,
          ),
        );
      }
      if (!stop) {
        answers.conferences = take(
          await this.getParsed(
            target,
            st,
            "GET",
            "/rest/conferences",
            polyVideoOs.VideoOsConferences,
            signal,
          ),
        );
      }
    } else {
      errors.push(sys.error);
      reachable = sys.answered;
    }
    const snmp = await snmpDone;
    if (snmp) {
      if (snmp.ok) {
        answers.snmp = snmp.value;
        reachable = true;
      } else errors.push(snmp.error);
    }
    return this.normalize(target, st, started, answers, errors, reachable);
  }

  private normalize(
    target: DeviceTarget,
    st: VideoOsDeviceState,
    started: number,
    answers: VideoOsAnswers,
    errors: PollError[],
    reachable: boolean,
  ): ReadingBody {
    const now = this.clock.now();
    const { reading, next } = normalizeVideoOsReading({
      deviceId: target.deviceId,
      address: target.address,
      reachable,
      pollLatencyMs: now - started,
      nowMs: now,
      answers,
      errors,
      previous: st.previous,
    });
    if (reachable) st.previous = next;
    return reading;
  }

  /** SNMP get of the IF-MIB and POLYCOM-ENDPOINT-MIB values; undefined when SNMP is not configured. */
  private async readSnmp(
    target: DeviceTarget,
    st: VideoOsDeviceState,
    signal: AbortSignal,
  ): Promise<
    { ok: true; value: ReturnType<typeof videoOsSnmpValues> } | { ok: false; error: PollError } | undefined
  > {
    const client = this.snmp;
    if (!client) return undefined;
    const creds = target.credentials.filter(
      (c): c is SnmpCredential => c.type === "snmpv2c" || c.type === "snmpv3",
    );
    if (creds.length === 0) return undefined;
    const remembered = creds.find((c) => c.name === st.snmpCredentialName);
    const order = remembered ? [remembered, ...creds.filter((c) => c !== remembered)] : creds;
    let last: PollError | undefined;
    for (const credential of order) {
      if (signal.aborted) break;
      const r = await client.get({ address: target.address, port: target.snmpPort, credential }, SNMP_OIDS, {
        signal,
        timeoutMs: this.snmpTimeoutMs,
      });
      if (r.ok) {
        st.snmpCredentialName = credential.name;
        return { ok: true, value: videoOsSnmpValues(r.value) };
      }
      last = r.error;
      // Only an authentication failure is worth another credential; a timeout would just time out again.
      if (r.error.code !== "POLYFLEET_ERR_SNMP_AUTH") break;
    }
    return {
      ok: false,
      error: last ?? { code: "POLYFLEET_ERR_SNMP_TIMEOUT", message: "SNMP get aborted before it was sent" },
    };
  }

  private async getParsed<S extends z.ZodType>(
    target: DeviceTarget,
    st: VideoOsDeviceState,
    method: "GET" | "POST",
    path: string,
    schema: S,
    signal: AbortSignal,
  ): Promise<Step<z.infer<S>>> {
    const res = await this.rest(target, st, method, path, signal);
    if (!res.ok) return { ok: false, error: res.error, answered: answeredOf(res) };
    const parsed = schema.safeParse(res.json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue ? `${issue.path.join(".") || "(root)"}: ${issue.message}` : "invalid";
      return { ok: false, error: this.schemaError(method, path, where), answered: true };
    }
    return { ok: true, value: parsed.data };
  }

  private schemaError(method: string, path: string, detail: string): PollError {
    this.metrics?.inc(BAD_RESPONSES_METRIC, { reason: "schema" });
    return {
      code: "POLYFLEET_ERR_DEVICE_BAD_RESPONSE",
      message: `${method} ${path}: answer does not match the VideoOS REST schema (${detail.slice(0, 200)})`,
      endpoint: path,
    };
  }

  /**
   * One REST call inside the session: logs in first when there is none, and when the device answers 401/403
   * (session expired, device rebooted, XSRF refused) logs in again once and repeats the call.
   */
  private async rest(
    target: DeviceTarget,
    st: VideoOsDeviceState,
    method: "GET" | "POST",
    path: string,
    signal: AbortSignal,
    body?: unknown,
  ): Promise<HttpsResult> {
    let fresh = false;
    if (!st.session) {
      const login = await this.login(target, st, signal);
      if (!login.ok) return login;
      fresh = true;
    }
    let res = await this.send(target, st, method, path, signal, body);
    if (res.ok || res.error.code !== "POLYFLEET_ERR_DEVICE_AUTH" || fresh || signal.aborted) return res;
    st.session = undefined;
    const login = await this.login(target, st, signal);
    if (!login.ok) return login;
    res = await this.send(target, st, method, path, signal, body);
    return res;
  }

  private send(
    target: DeviceTarget,
    st: VideoOsDeviceState,
    method: "GET" | "POST",
    path: string,
    signal: AbortSignal,
    body?: unknown,
  ): Promise<HttpsResult> {
    const headers: Record<string, string> = {};
    if (st.session) {
      headers.cookie = st.session.cookie;
      if (st.session.xsrf) headers["x-xsrf-token"] = st.session.xsrf;
    }
    return this.http.request({
      address: target.address,
      port: target.httpsPort,
      method,
      path,
      headers,
      body,
      signal,
      timeoutMs: this.requestTimeoutMs,
    });
  }

  /** POST /rest/current/session with the remembered credential, then the others in order on 401. */
  private async login(
    target: DeviceTarget,
    st: VideoOsDeviceState,
    signal: AbortSignal,
  ): Promise<HttpsResult> {
    const path = "/rest/current/session";
    const creds = target.credentials.filter((c): c is HttpCredential => c.type === "http");
    if (creds.length === 0) {
      return {
        ok: false,
        error: {
          code: "POLYFLEET_ERR_DEVICE_AUTH",
          message: `POST ${path}: no http credential configured`,
          endpoint: path,
        },
      };
    }
    const remembered = creds.find((c) => c.name === st.credentialName);
    const order = remembered ? [remembered, ...creds.filter((c) => c !== remembered)] : creds;
    let last: HttpsResult | undefined;
    for (const c of order) {
      if (signal.aborted) break;
      this.metrics?.inc(VIDEOOS_LOGINS_METRIC);
      const res = await this.http.request({
        address: target.address,
        port: target.httpsPort,
        method: "POST",
        path,
        body: { user: c.user, password: c.password },
        signal,
        timeoutMs: this.requestTimeoutMs,
      });
      if (!res.ok) {
        last = res;
        if (res.error.code === "POLYFLEET_ERR_DEVICE_AUTH") continue;
        return res;
      }
      const parsed = polyVideoOs.VideoOsLogin.safeParse(res.json);
      if (!parsed.success) {
        return {
          ok: false,
          error: { ...this.schemaError("POST", path, "login answer"), endpoint: path },
          status: res.status,
        };
      }
      const sid = cookieValue(res.headers["set-cookie"], "session_id") ?? parsed.data.session.sessionId;
      const xsrf = cookieValue(res.headers["set-cookie"], "XSRF-TOKEN");
      st.session = { cookie: xsrf ? `session_id=${sid}; XSRF-TOKEN=${xsrf}` : `session_id=${sid}`, xsrf };
      st.credentialName = c.name;
      return res;
    }
    return (
      last ?? {
        ok: false,
        error: {
          code: "POLYFLEET_ERR_DEVICE_TIMEOUT",
          message: `POST ${path}: aborted before login`,
          endpoint: path,
        },
      }
    );
  }
}
