import { randomBytes } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import type { DeviceSim } from "../device.js";
import type { FamilyApi, SimRequest, SimResponse } from "../http-types.js";

/**
 * The Poly VideoOS REST API (Studio X30/X50/X70, G7500) as ../shared/poly-devices.md §2 describes it:
 * session login with cookies + XSRF token, identity, health, peripherals, config, reboot.
 * Choices marked "plausible" in README.md are not confirmed by public sources.
 */

export interface VideoosApiOptions {
  /** A session unused this long (device clock) is gone: the next call gets 403. Default 15 min. */
  sessionIdleMs?: number;
}

export const DEFAULT_SESSION_IDLE_MS = 15 * 60 * 1000;

interface Session {
  id: string;
  token: string;
  userId: string;
  location: string;
  createdAt: number;
  lastUsed: number;
}

interface DeviceState {
  generation: number;
  sessions: Map<string, Session>;
  failedLogins: number;
  lastLogin: { client: string; time: number } | undefined;
  /** Boot generation in which a config write asked for a reboot; the flag clears on the next boot. */
  rebootNeededGeneration: number;
}

/** Parameters the simulated device knows besides those already in `device.config` (defaults per §3.1/§5.3). */
const CONFIG_DEFAULTS: Record<string, string> = {
  "snmp.enable": "false",
  "snmp.version1.enable": "false",
  "snmp.version2.enable": "false",
  "snmp.version3.enable": "true",
  "snmp.community": "public",
  "snmp.listeningPort": "161",
  "snmp.transport": "UDP",
  "snmp.contactName": "IT Administrator",
  "snmp.locationName": "",
  "snmp.systemDesc": "Videoconferencing Device",
  "snmp.engineID": "",
  "snmp.auth.userId": "",
  "snmp.auth.algorithm": "SHA",
  "snmp.auth.password": "",
  "snmp.privacyAlgorithm": "CFB-AES128",
  "snmp.privacyPassword": "",
  "snmp.notification.enabled": "false",
  "snmp.trapTarget.1.address": "",
  "snmp.trapTarget.1.enable": "true",
  "snmp.trapTarget.1.port": "162",
  "snmp.trapTarget.1.messageType": "Trap",
  "snmp.trapTarget.1.protocolVersion": "v3",
  "upgrade.auto.enable": "false",
  "upgrade.auto.server.type": "prov_server",
  "upgrade.auto.server.address": "",
  "upgrade.auto.polling.interval": "3600",
  "upgrade.auto.timeFrame.enable": "true",
  "upgrade.auto.timeFrame.startTime": "01:00",
  "upgrade.auto.timeFrame.stopTime": "05:00",
  "upgrade.auto.backwardCompatible": "false",
  "prov.softupdate.https.enable": "false",
  "prov.polling.period": "3600",
  "prov.heartbeat.interval": "600",
  "device.prov.serverName": "",
  "device.prov.user": "",
  "device.prov.password": "",
  "management.provisioning.enabled": "false",
  "management.provisioning.server": "",
  "management.provisioning.domain": "",
  "management.provisioning.authtype": "",
  "management.provisioning.user": "",
  "management.provisioning.password": "",
  "video.camera.autoUpdate.enable": "true",
  "cloud.polycom.analytics.url": "https://api-lens.plcm.cloud",
  "comm.nics.sipnic.sipusername": "",
  "comm.nics.sipnic.proxyserver": "sip.example.com",
  "sec.auth.snmp.password.minLength": "8",
  "sec.auth.admin.password": "",
};

/** Secrets: readable as empty strings only, never echoed back. */
const SECURE = /password|passphrase|privkey|authkey|secret|\.community$/i;
/** Parameters whose change only takes effect after a reboot (plausible subset). */
const NEEDS_REBOOT = /^(comm\.nics\.|device\.net\.|lan\.|snmp\.listeningPort|snmp\.transport)/;

const XSRF_SINCE: readonly number[] = [4, 6, 2];
const SESSION_SINCE: readonly number[] = [4, 0, 0];

/** Parses `a.b.c` into numbers (missing or non-numeric parts count as 0). */
export function parseVideoosVersion(version: string): number[] {
  return version.split(".").map((p) => {
    const n = Number.parseInt(p, 10);
    return Number.isFinite(n) ? n : 0;
  });
}

/** -1, 0 or 1 like a sort comparator, part by part. */
export function compareVideoosVersions(a: string, b: string): number {
  const pa = parseVideoosVersion(a);
  const pb = parseVideoosVersion(b);
  for (let i = 0; i < Math.max(pa.length, pb.length, 3); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

function atLeast(version: string, min: readonly number[]): boolean {
  return compareVideoosVersions(version, min.join(".")) >= 0;
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  if (typeof v === "string") return v;
  if (Array.isArray(v)) return v.join("; ");
  return undefined;
}

function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return out;
}

function parseJsonBody(body: Buffer): { ok: true; value: unknown } | { ok: false } {
  if (body.length === 0) return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(body.toString("utf8")) as unknown };
  } catch {
    return { ok: false };
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function json(status: number, body: unknown, headers?: Record<string, string | string[]>): SimResponse {
  return headers ? { status, json: body, headers } : { status, json: body };
}

const BAD_REQUEST = (message: string): SimResponse =>
  json(400, { success: false, errorCode: "BAD_REQUEST", message });
const NOT_FOUND: SimResponse = { status: 404, json: { success: false, errorCode: "NOT_FOUND" } };
const METHOD_NOT_ALLOWED: SimResponse = {
  status: 405,
  json: { success: false, errorCode: "METHOD_NOT_ALLOWED" },
};

function formatMac(mac: string): string {
  const hex = mac
    .replace(/[^0-9a-fA-F]/g, "")
    .toLowerCase()
    .padEnd(12, "0")
    .slice(0, 12);
  return hex.match(/../g)?.join(":") ?? hex;
}

/** A peripheral's MAC: the codec's with its last byte moved (they share the OUI in the samples). */
function siblingMac(mac: string, delta: number): string {
  const hex = mac
    .replace(/[^0-9a-fA-F]/g, "")
    .toLowerCase()
    .padEnd(12, "0")
    .slice(0, 12);
  const last = (Number.parseInt(hex.slice(10), 16) + delta) & 0xff;
  return formatMac(hex.slice(0, 10) + last.toString(16).padStart(2, "0"));
}

/** TC8 software `version-build`; the two pairs seen in public samples, else a stable synthetic build. */
function touchControllerSoftware(version: string): string {
  const known: Record<string, string> = { "3.10.0": "210644", "3.12.0": "210716" };
  const parts = parseVideoosVersion(version);
  const synthetic = 200000 + (parts[0] ?? 0) * 10000 + (parts[1] ?? 0) * 100 + (parts[2] ?? 0);
  return `${version}-${known[version] ?? String(synthetic)}`;
}

function deviceBuild(device: DeviceSim): string {
  const b = device.firmware.build;
  return b && /^\d+$/.test(b) ? b : "0";
}

function configValue(device: DeviceSim, name: string): string | undefined {
  return device.config.get(name) ?? CONFIG_DEFAULTS[name];
}

/** Creates the VideoOS REST API; the session store lives inside the returned object, per device. */
export function createVideoosApi(options: VideoosApiOptions = {}): FamilyApi {
  const idleMs = options.sessionIdleMs ?? DEFAULT_SESSION_IDLE_MS;
  const states = new WeakMap<DeviceSim, DeviceState>();

  function stateOf(device: DeviceSim): DeviceState {
    let st = states.get(device);
    if (!st) {
      st = {
        generation: device.bootGeneration,
        sessions: new Map(),
        failedLogins: 0,
        lastLogin: undefined,
        rebootNeededGeneration: -1,
      };
      states.set(device, st);
    }
    if (st.generation !== device.bootGeneration) {
      // A reboot drops every session (§2.1 "Reboot drop").
      st.generation = device.bootGeneration;
      st.sessions.clear();
    }
    return st;
  }

  function adminPasswordMatches(device: DeviceSim, user: unknown, password: unknown): boolean {
    // `wrongCredentials`: someone changed the admin password on the device; the fleet's one no longer works.
    if (device.faults.has("wrongCredentials")) return false;
    return user === device.admin.user && password === device.admin.password;
  }

  function loginStatus(st: DeviceState, device: DeviceSim) {
    return {
      failedLogins: st.failedLogins,
      isPasswordAgeLimitReached: false,
      lastLoginClient: st.lastLogin?.client ?? "",
      lastLoginClientType: "WEB",
      lastLoginTime: st.lastLogin?.time ?? device.now(),
      loginResult: "NOLOCKOUT",
    };
  }

  function sessionJson(s: Session, isNew: boolean) {
    return {
      sessionId: s.id,
      userId: s.userId,
      role: "ADMIN",
      clientType: "WEB",
      location: s.location,
      isAuthenticated: true,
      isNew,
      isStale: false,
      isConnected: false,
      creationTime: s.createdAt,
    };
  }

  function login(device: DeviceSim, req: SimRequest): SimResponse {
    const parsed = parseJsonBody(req.body);
    if (!parsed.ok) return BAD_REQUEST("malformed JSON");
    if (!isRecord(parsed.value)) return BAD_REQUEST("expected {user, password}");
    const { user, password } = parsed.value;
    const st = stateOf(device);
    const now = device.now();
    if (!adminPasswordMatches(device, user, password)) {
      st.failedLogins++;
      device.emitTrap({ trap: 17, summary: `failed login for ${String(user).slice(0, 64)}`, kind: "info" });
      return json(401, {
        success: false,
        reason: "INVALID_CREDENTIALS",
        loginStatus: { ...loginStatus(st, device), failedLogins: st.failedLogins, loginResult: "NOLOCKOUT" },
      });
    }
    const previous = loginStatus(st, device);
    const session: Session = {
      id: `PS${randomBytes(16).toString("hex")}`,
      token: randomBytes(24).toString("base64url"),
      userId: device.admin.user,
      location: req.remoteAddress,
      createdAt: now,
      lastUsed: now,
    };
    pruneExpired(st, now);
    st.sessions.set(session.id, session);
    st.failedLogins = 0;
    st.lastLogin = { client: req.remoteAddress, time: now };
    return json(
      200,
      { success: true, session: sessionJson(session, true), loginStatus: previous },
      {
        "set-cookie": [
          `session_id=${session.id}; Path=/; Secure; HttpOnly`,
          `XSRF-TOKEN=${session.token}; Path=/; Secure`,
        ],
      },
    );
  }

  function pruneExpired(st: DeviceState, now: number): void {
    for (const [id, s] of st.sessions) if (now - s.lastUsed > idleMs) st.sessions.delete(id);
  }

  type Auth = { ok: true; session: Session | undefined } | { ok: false; response: SimResponse };

  function authenticate(device: DeviceSim, req: SimRequest): Auth {
    const st = stateOf(device);
    const now = device.now();
    const version = device.firmware.version;
    const cookies = parseCookies(headerValue(req.headers, "cookie"));
    const sid = cookies.get("session_id");
    if (sid !== undefined) {
      const s = st.sessions.get(sid);
      if (!s || now - s.lastUsed > idleMs || device.faults.has("wrongCredentials")) {
        if (s) st.sessions.delete(sid);
        return { ok: false, response: json(403, { success: false, errorCode: "SESSION_EXPIRED" }) };
      }
      if (atLeast(version, XSRF_SINCE) && headerValue(req.headers, "x-xsrf-token") !== s.token) {
        return { ok: false, response: json(403, { success: false, errorCode: "XSRF_TOKEN_MISMATCH" }) };
      }
      s.lastUsed = now;
      return { ok: true, session: s };
    }
    const authz = headerValue(req.headers, "authorization");
    if (authz && !atLeast(version, SESSION_SINCE) && /^basic /i.test(authz)) {
      const decoded = Buffer.from(authz.slice(6).trim(), "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      if (colon >= 0 && adminPasswordMatches(device, decoded.slice(0, colon), decoded.slice(colon + 1))) {
        return { ok: true, session: undefined };
      }
      st.failedLogins++;
    }
    return {
      ok: false,
      response: json(
        401,
        { success: false, errorCode: "NOT_AUTHENTICATED" },
        { "www-authenticate": 'Basic realm="Poly"' },
      ),
    };
  }

  function system(device: DeviceSim): unknown {
    const st = stateOf(device);
    const now = device.now();
    return {
      model: device.spec.model,
      serialNumber: device.serial,
      softwareVersion: device.firmware.version,
      build: deviceBuild(device),
      buildType: "Release",
      hardwareVersion: "1",
      systemName: configValue(device, "system.name") ?? device.spec.model,
      state: "READY",
      rebootNeeded: st.rebootNeededGeneration === device.bootGeneration,
      uptime: Math.round(device.uptimeSec(now) * 100) / 100,
      systemTime: now,
      timeOffset: 0,
      timeServerState: "TIMESERVER_UP",
      lanStatus: { duplex: "FULL", speedMbps: 1000, state: "LAN_UP" },
    };
  }

  function handleConfig(device: DeviceSim, req: SimRequest): SimResponse {
    const parsed = parseJsonBody(req.body);
    if (!parsed.ok) return BAD_REQUEST("malformed JSON");
    const body = parsed.value;
    if (!isRecord(body)) return BAD_REQUEST("expected {names} or {vars}");
    if (Array.isArray(body.names) && body.vars === undefined) {
      const vars = body.names.map((n) => {
        const name = typeof n === "string" ? n : String(n);
        const value = configValue(device, name);
        if (value === undefined) {
          return {
            name,
            value: "",
            result: "UNKNOWN_PARAMETER",
            isEditable: false,
            isHidden: false,
            isSecure: false,
          };
        }
        const isSecure = SECURE.test(name);
        return {
          name,
          value: isSecure ? "" : value,
          result: "NOERROR",
          isEditable: true,
          isHidden: false,
          isSecure,
        };
      });
      return json(200, { vars });
    }
    if (Array.isArray(body.vars) && body.names === undefined) {
      const st = stateOf(device);
      const vars = body.vars.map((v) => {
        if (!isRecord(v) || typeof v.name !== "string")
          return { name: "", result: "INVALID_REQUEST", rebootNeeded: false };
        const name = v.name;
        const isSecure = SECURE.test(name);
        const raw = v.value;
        const value =
          typeof raw === "string"
            ? raw
            : typeof raw === "number" || typeof raw === "boolean"
              ? String(raw)
              : undefined;
        if (configValue(device, name) === undefined) {
          return {
            name,
            requestedValue: isSecure ? "" : (value ?? ""),
            result: "UNKNOWN_PARAMETER",
            rebootNeeded: false,
          };
        }
        if (value === undefined) {
          return { name, requestedValue: "", result: "INVALID_VALUE", rebootNeeded: false };
        }
        const changed = configValue(device, name) !== value;
        device.config.set(name, value);
        const rebootNeeded = changed && NEEDS_REBOOT.test(name);
        if (rebootNeeded) st.rebootNeededGeneration = device.bootGeneration;
        return { name, requestedValue: isSecure ? "" : value, result: "NOERROR", rebootNeeded, isSecure };
      });
      return json(200, { vars, rebootNeeded: st.rebootNeededGeneration === device.bootGeneration });
    }
    return BAD_REQUEST("expected {names} or {vars}");
  }

  function systemStatus(device: DeviceSim): unknown {
    const f = device.faults;
    const provisioned = (configValue(device, "device.prov.serverName") ?? "") !== "";
    const item = (key: string, state: string) => ({
      langtag: `system.status.${key}`,
      name: `system.status.${key}`,
      stateList: [state],
    });
    return [
      item("provisioning", provisioned ? "up" : "off"),
      item("ipnetwork", "up"),
      item("trackablecamera", f.has("cameraDown") ? "down" : "up"),
      item("sipserver", f.has("sipUnregistered") ? "down" : "up"),
      item("gatekeeper", "off"),
      item("mr.camera", f.has("cameraDown") ? "down" : "up"),
      item("mr.audio", f.has("microphoneDown") ? "down" : "up"),
      item("remotecontrol", "up"),
      item("logthreshold", "up"),
      item("autoanswerp2p", "off"),
      item("globaldirectory", "off"),
      item("calendar", "off"),
    ];
  }

  function peripherals(device: DeviceSim): unknown {
    const systemName = configValue(device, "system.name") ?? device.spec.model;
    const codecSerial = device.serial;
    const base = codecSerial.length > 2 ? codecSerial.slice(0, -2) : codecSerial;
    const cameraDown = device.faults.has("cameraDown");
    const builtInCamera = device.spec.series === "StudioX";
    const octets = device.address.split(".");
    const tcIp =
      octets.length === 4 ? `${octets.slice(0, 3).join(".")}.${(Number(octets[3]) + 128) % 254 || 1}` : "";
    return [
      {
        uid: "local-system",
        deviceCategory: "SYSTEM",
        deviceType: "CODEC",
        deviceState: "CONNECTED",
        connectionType: "Unknown",
        productName: device.spec.model,
        serialNumber: codecSerial,
        softwareVersion: device.firmware.version,
        ip: device.address,
        macAddress: formatMac(device.mac),
        networkInterface: "LAN",
        systemName,
      },
      {
        uid: String(100000 + device.index),
        deviceCategory: "MODULE",
        deviceType: "TOUCHCONTROL",
        deviceState: "PAIRED",
        connectionType: "Corp",
        productName: "Poly TC8",
        serialNumber: `${base}FD`,
        softwareVersion: touchControllerSoftware(device.firmware.version),
        ip: tcIp,
        macAddress: siblingMac(device.mac, 1),
        networkInterface: "LAN",
        systemName,
      },
      {
        uid: "local-camera",
        deviceCategory: "CAMERA",
        deviceType: "CAMERA",
        deviceState: cameraDown ? "DISCONNECTED" : "CONNECTED",
        connectionType: builtInCamera ? "Unknown" : "HDCI",
        productName: builtInCamera ? `${device.spec.model} Camera` : "EagleEye IV",
        serialNumber: builtInCamera ? codecSerial : `${base}CA`,
        softwareVersion: builtInCamera ? device.firmware.version : "1.4.2",
        ip: "",
        macAddress: "",
        networkInterface: builtInCamera ? "INTERNAL" : "HDCI",
        systemName,
      },
    ];
  }

  function microphones(device: DeviceSim): unknown {
    if (device.faults.has("microphoneDown")) return [];
    return [
      {
        number: 1,
        state: "MIC_STATE_GREEN",
        typeInString: device.spec.series === "StudioX" ? "Polycom Kitten Mic" : "Polycom Expansion Mic",
        hwVersion: "1",
        swVersion: device.firmware.version,
        mute: false,
      },
    ];
  }

  function cameras(device: DeviceSim): unknown {
    const connected = !device.faults.has("cameraDown");
    const builtIn = device.spec.series === "StudioX";
    return [
      {
        cameraIndex: 1,
        model: builtIn ? "BUILT_IN_1.0" : "EAGLEEYE_IV",
        connected,
        selected: connected,
        trackable: connected,
        ptzcapable: true,
        sourceType: "PEOPLE",
      },
    ];
  }

  function conferences(device: DeviceSim): unknown {
    if (!device.inCall) return [];
    const now = device.now();
    const duration = Math.max(0, Math.floor((now - device.callStartedAt) / 1000));
    return [
      {
        id: 0,
        isActive: true,
        startTime: device.callStartedAt,
        duration,
        connections: [
          {
            id: 0,
            address: `meeting-${device.index}@sip.example.com`,
            callType: "SIP",
            state: "CONNECTED",
            rate: 2048,
            encrypted: true,
            duration,
            incoming: false,
          },
        ],
      },
    ];
  }

  function reboot(device: DeviceSim, req: SimRequest): SimResponse {
    const parsed = parseJsonBody(req.body);
    if (!parsed.ok) return BAD_REQUEST("malformed JSON");
    const body = parsed.value;
    if (body !== undefined && body !== null) {
      if (!isRecord(body)) return BAD_REQUEST("expected {action: reboot}");
      if (body.action !== undefined && body.action !== "reboot") return BAD_REQUEST("unsupported action");
    }
    device.reboot("rest");
    return json(200, { success: true });
  }

  function route(device: DeviceSim, req: SimRequest, session: Session | undefined): SimResponse {
    const m = req.method.toUpperCase();
    const path = req.path.length > 1 ? req.path.replace(/\/+$/, "") : req.path;
    const get = (f: () => unknown): SimResponse => (m === "GET" ? json(200, f()) : METHOD_NOT_ALLOWED);
    switch (path) {
      case "/rest/current/session":
        if (m === "GET") {
          return session ? json(200, { success: true, session: sessionJson(session, false) }) : NOT_FOUND;
        }
        if (m === "DELETE") {
          if (session) stateOf(device).sessions.delete(session.id);
          return json(200, { success: true });
        }
        return METHOD_NOT_ALLOWED;
      case "/rest/current/session/sessions":
        return get(() => ({
          sessionList: [...stateOf(device).sessions.values()].map((s) => sessionJson(s, false)),
        }));
      case "/rest/system":
        return get(() => system(device));
      case "/rest/system/status":
        return get(() => systemStatus(device));
      case "/rest/current/devicemanagement/devices":
        return m === "POST" || m === "GET" ? json(200, peripherals(device)) : METHOD_NOT_ALLOWED;
      case "/rest/config":
        return m === "POST" ? handleConfig(device, req) : METHOD_NOT_ALLOWED;
      case "/rest/system/sipservers": {
        const address = configValue(device, "comm.nics.sipnic.proxyserver") || "sip.example.com";
        return get(() => [
          { address, model: "", state: device.faults.has("sipUnregistered") ? "DOWN" : "UP", version: "" },
        ]);
      }
      case "/rest/system/h323gatekeepers":
        return get(() => []);
      case "/rest/audio": {
        const mics = device.faults.has("microphoneDown") ? 0 : 1;
        return get(() => ({ muted: false, muteLocked: false, numOfMicsConnected: mics, volume: 50 }));
      }
      case "/rest/audio/muted":
        return get(() => false);
      case "/rest/audio/volume":
        return get(() => 50);
      case "/rest/audio/microphones":
        return get(() => microphones(device));
      case "/rest/cameras/near/all":
        return get(() => cameras(device));
      case "/rest/cameras/contentstatus":
        return get(() => ({ contentState: "CONTENT_IDLE" }));
      case "/rest/conferences":
        return get(() => conferences(device));
      case "/rest/system/apps":
      case "/rest/current/system/apps/all":
        return get(() => [
          {
            appName: "Poly Launcher",
            packageName: "com.poly.polylauncher",
            versionInfo: device.firmware.version,
            lastUpdatedOn: device.bootedAt,
          },
        ]);
      case "/rest/system/mode/device":
      case "/rest/system/mode/signage":
        return get(() => ({ result: false }));
      case "/rest/system/reboot":
      case "/rest/current/system/reboot":
        return m === "POST" ? reboot(device, req) : METHOD_NOT_ALLOWED;
      default:
        return NOT_FOUND;
    }
  }

  return {
    handle(device: DeviceSim, req: SimRequest): SimResponse {
      try {
        const path = typeof req.path === "string" ? req.path : "";
        const method = typeof req.method === "string" ? req.method.toUpperCase() : "";
        if (path === "/rest/current/session" && method === "POST") return login(device, req);
        const auth = authenticate(device, req);
        if (!auth.ok) return auth.response;
        return route(device, req, auth.session);
      } catch {
        // Never throw out of a device: a broken request gets the device's own generic error.
        return json(500, { success: false, errorCode: "INTERNAL_ERROR" });
      }
    },
  };
}

/** The default VideoOS API: 15-minute idle sessions. */
export const videoosApi: FamilyApi = createVideoosApi();
