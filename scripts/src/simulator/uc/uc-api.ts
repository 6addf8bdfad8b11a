import type { DeviceSim } from "../device.js";
import type { FamilyApi, SimRequest, SimResponse } from "../http-types.js";
import {
  startUcUpdate,
  type UcProvisioningOptions,
  ucRebootPending,
  ucSafeReboot,
  ucSettle,
  ucUpdateStatus,
} from "./provisioning.js";

/**
 * The UC Software (VVX, Trio, CCX) REST API of a simulated phone, shapes per poly-devices.md §1.
 * The HTTPS server in front has applied the transport faults and the one-request-at-a-time rule already.
 * Choices where public sources are silent are listed in ./README.md.
 */

/** Documented REST status codes (poly-devices.md §1.1), with the HTTP status the simulator pairs them with. */
export const UC_STATUS = {
  "2000": { http: 200, text: "API executed successfully" },
  "4000": { http: 400, text: "Invalid input parameters" },
  "4001": { http: 403, text: "Device busy" },
  "4002": { http: 400, text: "Line not registered" },
  "4003": { http: 403, text: "Operation not allowed" },
  "4004": { http: 404, text: "Operation not supported" },
  "4005": { http: 404, text: "Line does not exist" },
  "4006": { http: 400, text: "URLs not configured" },
  "4007": { http: 404, text: "Call does not exist" },
  "4009": { http: 400, text: "Input size limit exceeded" },
  "4010": { http: 400, text: "Default password not allowed" },
  "5000": { http: 500, text: "Failed to process request" },
} as const;
export type UcStatusCode = keyof typeof UC_STATUS;

export interface UcApiOptions {
  provisioning?: UcProvisioningOptions;
}

/** Most parameters one config/get or config/set call takes (Poly docs: 20). */
export const MAX_CONFIG_PARAMS = 20;
/** Larger JSON bodies are refused with 4009. */
const MAX_JSON_BODY = 64 * 1024;
const MAX_PARAM_VALUE = 2048;
const PARAM_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,127}$/;

/** Defaults of the parameters the simulator knows (config/get answers these with Source "default"). */
const PARAM_DEFAULTS = new Map<string, string>([
  ["apps.restapi.enabled", "0"],
  ["device.prov.serverName", ""],
  ["device.prov.serverType", "FTP"],
  ["device.prov.user", "PlcmSpIp"],
  ["device.prov.tagSerialNo", "0"],
  ["prov.polling.enabled", "0"],
  ["prov.polling.mode", "abs"],
  ["prov.polling.period", "86400"],
  ["prov.polling.time", "03:00"],
  ["prov.polling.timeRandomEnd", ""],
  ["upgrade.custom.server.url", ""],
  ["call.DefaultTransferType", "Consultative"],
  ["tcpIpApp.sntp.address", ""],
  ["tcpIpApp.sntp.gmtOffset", "0"],
  ["device.syslog.serverName", ""],
  ["device.syslog.transport", "UDP"],
  ["device.syslog.renderLevel", "6"],
  ["device.syslog.facility", "16"],
  ["device.syslog.prependMac", "0"],
  ["device.dns.domain", ""],
  ["device.dns.serverAddress", ""],
  ["device.dns.altSrvAddress", ""],
  ["device.cdp.enabled", "1"],
  ["device.lldp.enabled", "1"],
  ["device.tr069.enabled", "0"],
  ["device.tr069.acs.url", ""],
  ["device.tr069.periodicInform.enabled", "0"],
  ["device.tr069.periodicInform.interval", "18000"],
]);
/** Write-protected through REST: the credential the API itself authenticates with. */
const REST_READ_ONLY = new Set(["device.auth.localAdminPassword", "device.auth.localUserPassword"]);

/** Parameters written through REST config/set report Source "web" (the same local layer as the web UI). */
const restSetParams = new WeakMap<DeviceSim, Set<string>>();
/** Remote party of the current call (dial through REST sets it; a call started elsewhere gets a default). */
const callParties = new WeakMap<DeviceSim, { name: string; number: string; type: "Incoming" | "Outgoing" }>();

interface Ctx {
  device: DeviceSim;
  req: SimRequest;
  now: number;
  opts: UcApiOptions;
}

type Handler = (ctx: Ctx) => SimResponse;
interface Route {
  method: "GET" | "POST";
  handle: Handler;
}

function envelope(code: UcStatusCode, data?: unknown): SimResponse {
  const json: Record<string, unknown> = { Status: code };
  if (data !== undefined) json.data = data;
  return { status: UC_STATUS[code].http, json };
}

const ok = (data?: unknown): SimResponse => envelope("2000", data);

/** Creates the UC REST API; `ucApi` is the instance with default options. */
export function createUcApi(opts: UcApiOptions = {}): FamilyApi {
  return {
    handle(device: DeviceSim, req: SimRequest): SimResponse {
      let res: SimResponse;
      try {
        // isUp() settles a finished reboot (the pending firmware becomes `device.firmware`); the server
        // layer calls it too, but the API must not depend on that.
        device.isUp();
        res = route(device, req, opts);
      } catch {
        res = envelope("5000");
      }
      try {
        // A safe reboot deferred behind a call happens once the call is over; checked after answering.
        ucSettle(device);
      } catch {
        // A failing "rebooted" listener must not turn the answer into an exception.
      }
      return res;
    },
  };
}

export const ucApi: FamilyApi = createUcApi();

function route(device: DeviceSim, req: SimRequest, opts: UcApiOptions): SimResponse {
  if (!device.restEnabled()) {
    // Modelled plausibly (UNCONFIRMED): with apps.restapi.enabled=0 the phone's web server has no /api
    // handler, so every API path is a plain 404 before authentication.
    return {
      status: 404,
      headers: { "Content-Type": "text/html" },
      body: "<html><body><h1>404 Not Found</h1></body></html>",
    };
  }
  if (!authorized(device, req.headers.authorization)) {
    return {
      status: 401,
      headers: { "WWW-Authenticate": 'Basic realm="API Authentication"', "Content-Type": "text/html" },
      body: "<html><body><h1>401 Unauthorized</h1></body></html>",
    };
  }
  const path =
    typeof req.path === "string" && req.path.length > 1 ? req.path.replace(/\/$/, "") : String(req.path);
  const r = ROUTES.get(path);
  if (!r) return envelope("4004");
  if (req.method !== r.method) return envelope("4000");
  return r.handle({ device, req, now: device.now(), opts });
}

/** HTTP Basic with user `Polycom` and the admin password; `wrongCredentials` = the password was changed. */
function authorized(device: DeviceSim, header: unknown): boolean {
  if (typeof header !== "string") return false;
  const m = /^\s*basic\s+([A-Za-z0-9+/=_-]*)\s*$/i.exec(header);
  if (!m?.[1]) return false;
  const decoded = Buffer.from(m[1], "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return false;
  const user = decoded.slice(0, colon);
  const password = decoded.slice(colon + 1);
  if (device.faults.has("wrongCredentials")) return false;
  return user === "Polycom" && password === device.admin.password;
}

/** Parses `{"data": …}`; a string is the 4000/4009 answer. */
function readData(req: SimRequest): { data: unknown } | SimResponse {
  const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  if (body.length > MAX_JSON_BODY) return envelope("4009");
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    return envelope("4000");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed) || !("data" in parsed)) {
    return envelope("4000");
  }
  return { data: (parsed as { data: unknown }).data };
}

function isResponse(v: { data: unknown } | SimResponse): v is SimResponse {
  return "status" in v;
}

// ---------------------------------------------------------------- formatting helpers

const s = (v: number | string | boolean): string =>
  typeof v === "boolean" ? (v ? "True" : "False") : typeof v === "number" ? String(Math.floor(v)) : v;
const pad2 = (n: number): string => String(n).padStart(2, "0");

function splitUptime(sec: number): { d: number; h: number; m: number; s: number } {
  const t = Math.floor(sec);
  return {
    d: Math.floor(t / 86_400),
    h: Math.floor((t % 86_400) / 3600),
    m: Math.floor((t % 3600) / 60),
    s: t % 60,
  };
}

/** Parses the leading numeric parts of a UC version (`5.9.7.4477`, `5.4.3AA`). */
function versionParts(v: string): number[] {
  return v.split(".").map((p) => Number.parseInt(p, 10) || 0);
}

function versionBelow(v: string, major: number, minor: number): boolean {
  const [a = 0, b = 0] = versionParts(v);
  return a < major || (a === major && b < minor);
}

function ipv4(address: string): number[] | undefined {
  const parts = address.split(".").map((p) => Number(p));
  return parts.length === 4 && parts.every((p) => Number.isInteger(p) && p >= 0 && p <= 255)
    ? parts
    : undefined;
}

function neighbour(address: string, last: number): string {
  const p = ipv4(address);
  return p ? `${p[0]}.${p[1]}.${p[2]}.${last}` : "0.0.0.0";
}

function cfg(device: DeviceSim, name: string): string {
  return device.config.get(name) ?? PARAM_DEFAULTS.get(name) ?? "";
}

function isTrio(device: DeviceSim): boolean {
  return device.spec.series === "Trio";
}

function callHandle(device: DeviceSim): string {
  return `0x${((device.callStartedAt ^ (device.index * 0x9e3779b1)) >>> 0).toString(16).padStart(8, "0")}`;
}

function callParty(device: DeviceSim): { name: string; number: string; type: "Incoming" | "Outgoing" } {
  return (
    callParties.get(device) ?? {
      name: "Conference Room",
      number: String(2000 + (device.index % 100)),
      type: "Incoming",
    }
  );
}

function callDurationSec(ctx: Ctx): number {
  return Math.max(0, Math.floor((ctx.now - ctx.device.callStartedAt) / 1000));
}

function isoLocal(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19);
}

// ---------------------------------------------------------------- endpoints

function deviceInfoV2(ctx: Ctx): Record<string, unknown> {
  const { device } = ctx;
  const up = splitUptime(device.uptimeSec(ctx.now));
  return {
    ModelNumber: device.spec.model,
    DeviceType: "HardwareEndpoint",
    DeviceVendor: "Polycom",
    MACAddress: device.mac,
    Firmware: {
      Application: `${device.firmware.version} ${device.firmware.date}`.trim(),
      Updater: device.updaterVersion,
      BootBlock: device.bootBlock,
    },
    UpTime: { Days: s(up.d), Hours: s(up.h), Minutes: s(up.m), Seconds: s(up.s) },
    IPAddress: device.address,
    IPStack: "IPv4 Only",
    PreferredNetwork: "IPv4",
    IPv6Address: "::",
    IPv6LinkAddress: "::",
    IPv6ULAAddress: "::",
    AppState: device.inCall ? "AppStateCall" : "AppStateMenu",
    ReadyToUse: s(true),
    CanApplyShutdownRequest: s(!device.inCall),
    IntendToShutdown: s(ucRebootPending(device)),
    AttachedHardware: device.spec.series === "VVX" ? { EM: [] } : {},
  };
}

function deviceInfoV1(ctx: Ctx): SimResponse {
  const { device } = ctx;
  // S5: a 5.7.1 phone still answered the legacy shape, so the object shape starts at 5.8 here.
  if (!versionBelow(device.firmware.version, 5, 8)) return ok(deviceInfoV2(ctx));
  const up = splitUptime(device.uptimeSec(ctx.now));
  return ok({
    ModelNumber: device.spec.model,
    FirmwareRelease: device.firmware.version,
    UpTimeSinceLastReboot: `${up.d} Day ${pad2(up.h)}:${pad2(up.m)}:${pad2(up.s)}`,
    IPV4Address: device.address,
    IPV6Address: "::",
    MACAddress: device.mac,
    DeviceType: "hardwareEndpoint",
    DeviceVendor: "Polycom",
    AttachedHardware: {},
  });
}

function deviceStats(ctx: Ctx): SimResponse {
  const { device } = ctx;
  const cpu = device.cpu(ctx.now);
  const mem = device.memory();
  const heap = (share: number): Record<string, string> => {
    const arena = Math.floor(mem.used * share);
    const used = Math.floor(arena * 0.82);
    return {
      arena: s(arena),
      hblkhd: s(Math.floor(arena * 0.1)),
      uordblks: s(used),
      fordblks: s(arena - used),
    };
  };
  return ok({
    CPU: { Current: s(cpu.current), Average: s(cpu.average) },
    Memory: {
      Total: s(mem.total),
      Used: s(mem.used),
      Free: s(mem.free),
      Cached: s(mem.cached),
      SReclaim: s(mem.sreclaim),
      ComAS: s(Math.floor(mem.used * 1.35)),
      polyapp: heap(0.3),
      pgui: heap(0.12),
    },
    RAMDiskSize: s(32 * 1024 * 1024),
  });
}

function networkInfo(ctx: Ctx): SimResponse {
  const { device } = ctx;
  return ok({
    IPV4Address: device.address,
    SubnetMask: "255.255.255.0",
    DefaultGateway: neighbour(device.address, 1),
    DHCP: "enabled",
    DHCPServer: neighbour(device.address, 1),
    DNSServer: cfg(device, "device.dns.serverAddress") || neighbour(device.address, 1),
    AlternateDNSServer: cfg(device, "device.dns.altSrvAddress") || "0.0.0.0",
    DNSDomain: cfg(device, "device.dns.domain"),
    SNTPAddress: cfg(device, "tcpIpApp.sntp.address"),
    VLANID: "",
    VLANIDOption: "129",
    VLANDiscoveryMode: "Fixed",
    LANSpeed: "1000MB",
    LANPortStatus: "active",
    LLDP: cfg(device, "device.lldp.enabled") === "1" ? "enabled" : "disabled",
    CDPCompatibility: cfg(device, "device.cdp.enabled") === "1" ? "enabled" : "disabled",
    ProvServerAddress: cfg(device, "device.prov.serverName"),
    ProvServerType: cfg(device, "device.prov.serverType"),
    ProvServerUser: cfg(device, "device.prov.user"),
    UpgradeServer: cfg(device, "upgrade.custom.server.url"),
    ZTPStatus: "disabled",
    DHCPBootServerOption: "66",
    DHCPBootServerOptionType: "String",
    DHCPBootServerUseOption: "Default",
    DHCPOption60Format: "RFC 3925 Binary",
    IPV6Address: "::",
  });
}

function networkStats(ctx: Ctx): SimResponse {
  const { device } = ctx;
  const c = device.packetCounters(ctx.now);
  const up = splitUptime(device.uptimeSec(ctx.now));
  return ok({
    RxPackets: s(c.rx),
    TxPackets: s(c.tx),
    UpTime: `${up.d} day ${up.h}:${pad2(up.m)}:${pad2(up.s)}`,
  });
}

function registration(device: DeviceSim, line: DeviceSim["lines"][number]): string {
  return device.lineRegistered(line) ? "registered" : "unregistered";
}

function proxyOf(address: string): string {
  const at = address.lastIndexOf("@");
  return at >= 0 ? address.slice(at + 1) : address;
}

function lineInfoV1(ctx: Ctx): SimResponse {
  const { device } = ctx;
  return ok(
    device.lines.map((l) => ({
      LineNumber: s(l.number),
      RegistrationStatus: registration(device, l),
      LineType: "private",
      SIPAddress: l.address,
      Protocol: "SIP",
      Label: l.label,
      UserID: l.userId,
      ProxyAddress: proxyOf(l.address),
      Port: "5060",
    })),
  );
}

function lineInfoV2(ctx: Ctx): SimResponse {
  const { device } = ctx;
  return ok(
    device.lines.map((l) => ({
      LineNumber: s(l.number),
      Username: l.userId,
      Label: l.label,
      SIPAddress: l.address,
      LineType: "private",
      Protocol: "SIP",
      RegistrationStatus: registration(device, l),
      CallServers: [
        {
          Address: proxyOf(l.address),
          Port: "5060",
          Transport: "UDPOnly",
          Expires: "3600",
          RegistrationStatus: registration(device, l),
        },
      ],
    })),
  );
}

function pollForStatus(ctx: Ctx): SimResponse {
  const { device } = ctx;
  const problems: string[] = [];
  for (const l of device.lines) {
    if (!device.lineRegistered(l)) problems.push(`Line ${l.number} (${l.address}) not registered`);
  }
  if (device.faults.has("highCpu")) problems.push(`CPU usage ${device.cpu(ctx.now).current}%`);
  if (device.faults.has("highMemory")) {
    const m = device.memory();
    problems.push(`Memory usage ${Math.round((m.used / m.total) * 100)}%`);
  }
  if (problems.length > 0) return ok({ State: "Error", StateData: problems.join("; ") });
  const update = ucUpdateStatus(device).state;
  if (update === "downloading" || update === "checking") {
    return ok({ State: "Updating", StateData: "Software update in progress" });
  }
  if (device.inCall) return ok({ State: "InCall", StateData: `CallHandle ${callHandle(device)}` });
  return ok({ State: "Ready", StateData: "" });
}

function runningConfig(ctx: Ctx): SimResponse {
  const { device } = ctx;
  const enabled = (name: string): string => (cfg(device, name) === "1" ? "Enabled" : "Disabled");
  return ok({
    Network: {
      IPAddress: device.address,
      SubnetMask: "255.255.255.0",
      IPGateway: neighbour(device.address, 1),
      IPStack: "IPv4 Only",
      VLAN: "",
      CDP: enabled("device.cdp.enabled"),
      LLDP: enabled("device.lldp.enabled"),
      StormFiltering: "Enabled",
      LANPortMode: "Auto",
      PCPortMode: "Auto",
    },
    DHCP: {
      Feature: "Enabled",
      BootServerOption: "66",
      BootServerOptionType: "String",
      BootServerUseOption: "Default",
      VLANDiscovery: "Fixed",
      Option60Format: "RFC 3925 Binary",
    },
    Provisioning: {
      Server: cfg(device, "device.prov.serverName"),
      ServerType: cfg(device, "device.prov.serverType"),
      User: cfg(device, "device.prov.user"),
      FileTxTries: "3",
      RetryWait: "1",
      MaxServers: "1",
      NetworkEnv: "Normal",
      TagSerialNo: enabled("device.prov.tagSerialNo"),
    },
    DNS: {
      Domain: cfg(device, "device.dns.domain"),
      PrimaryServer: cfg(device, "device.dns.serverAddress") || neighbour(device.address, 1),
      SecondaryServer: cfg(device, "device.dns.altSrvAddress"),
    },
    SNTP: {
      Server: cfg(device, "tcpIpApp.sntp.address"),
      GMTOffsetHours: cfg(device, "tcpIpApp.sntp.gmtOffset"),
      ResyncPeriod: "86400",
      DaylightSavings: "Enabled",
    },
    Syslog: {
      Server: cfg(device, "device.syslog.serverName"),
      Transport: cfg(device, "device.syslog.transport"),
      RenderLevel: cfg(device, "device.syslog.renderLevel"),
      Facility: cfg(device, "device.syslog.facility"),
      PrependMAC: enabled("device.syslog.prependMac"),
    },
    TR069: {
      Feature: enabled("device.tr069.enabled"),
      ACSURL: cfg(device, "device.tr069.acs.url"),
      ACSUsername: "",
      CPEUsername: "",
      PeriodicInform: enabled("device.tr069.periodicInform.enabled"),
      InformInterval: cfg(device, "device.tr069.periodicInform.interval"),
      UpgradeManagement: "Disabled",
    },
  });
}

function paramSource(device: DeviceSim, name: string, value: string): string {
  if (restSetParams.get(device)?.has(name)) return "web";
  return PARAM_DEFAULTS.get(name) === value ? "default" : "configFiles";
}

function lineParam(device: DeviceSim, name: string): string | undefined {
  const m = /^reg\.(\d+)\.(address|label|auth\.userId)$/.exec(name);
  if (!m) return undefined;
  const line = device.lines.find((l) => l.number === Number(m[1]));
  if (!line) return undefined;
  return m[2] === "address" ? line.address : m[2] === "label" ? line.label : line.userId;
}

function configGet(ctx: Ctx): SimResponse {
  const parsed = readData(ctx.req);
  if (isResponse(parsed)) return parsed;
  const names = parsed.data;
  if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === "string")) {
    return envelope("4000");
  }
  if (names.length > MAX_CONFIG_PARAMS) return envelope("4009");
  const out: Record<string, { Value: string; Source: string }> = {};
  for (const name of names as string[]) {
    if (!PARAM_NAME.test(name) || REST_READ_ONLY.has(name)) continue;
    const fromLine = lineParam(ctx.device, name);
    const value = ctx.device.config.get(name) ?? fromLine ?? PARAM_DEFAULTS.get(name);
    if (value === undefined) continue;
    const source =
      fromLine !== undefined && !ctx.device.config.has(name)
        ? "configFiles"
        : paramSource(ctx.device, name, value);
    // PARAM_NAME starts with a letter, so `__proto__` never reaches this assignment.
    out[name] = { Value: value, Source: source };
  }
  return ok(out);
}

function configSet(ctx: Ctx): SimResponse {
  const parsed = readData(ctx.req);
  if (isResponse(parsed)) return parsed;
  const data = parsed.data;
  if (typeof data !== "object" || data === null || Array.isArray(data)) return envelope("4000");
  const entries = Object.entries(data as Record<string, unknown>);
  if (entries.length === 0) return envelope("4000");
  if (entries.length > MAX_CONFIG_PARAMS) return envelope("4009");
  const writes: [string, string][] = [];
  for (const [name, raw] of entries) {
    if (!PARAM_NAME.test(name)) return envelope("4000");
    if (REST_READ_ONLY.has(name)) return envelope("4003");
    if (typeof raw !== "string" && typeof raw !== "number" && typeof raw !== "boolean")
      return envelope("4000");
    const value = typeof raw === "boolean" ? (raw ? "1" : "0") : String(raw);
    if (value.length > MAX_PARAM_VALUE) return envelope("4009");
    writes.push([name, value]);
  }
  // All or nothing: nothing is written when one parameter is refused.
  let set = restSetParams.get(ctx.device);
  if (!set) {
    set = new Set();
    restSetParams.set(ctx.device, set);
  }
  for (const [name, value] of writes) {
    ctx.device.config.set(name, value);
    set.add(name);
  }
  return ok();
}

function safeReboot(ctx: Ctx): SimResponse {
  ucSafeReboot(ctx.device, "safeReboot");
  return ok();
}

function safeRestart(ctx: Ctx): SimResponse {
  ucSafeReboot(ctx.device, "safeRestart");
  return ok();
}

function updateConfiguration(ctx: Ctx): SimResponse {
  const started = startUcUpdate(ctx.device, ctx.opts.provisioning);
  return started.ok ? ok() : envelope(started.code);
}

function callStatusV1(ctx: Ctx): SimResponse {
  const { device } = ctx;
  if (!device.inCall) return envelope("4007");
  const party = callParty(device);
  const duration = callDurationSec(ctx);
  const newer = !versionBelow(device.firmware.version, 5, 7);
  return ok({
    CallHandle: callHandle(device),
    Type: party.type,
    Protocol: "SIP",
    CallState: "Connected",
    LineId: "1",
    RemotePartyName: party.name,
    RemotePartyNumber: party.number,
    ...(newer ? { DurationSeconds: s(duration) } : { DurationInSeconds: s(duration) }),
  });
}

function callStatusV2(ctx: Ctx): SimResponse {
  const { device } = ctx;
  if (!device.inCall) return ok([]);
  const party = callParty(device);
  return ok([
    {
      CallHandle: callHandle(device),
      Type: party.type,
      Protocol: "SIP",
      CallState: "Connected",
      Ringing: "0",
      Muted: "0",
      "Media Direction": "sendrecv",
      "Remote Connection IP": neighbour(device.address, 200),
      RTPPort: "2222",
      RTCPPort: "2223",
      UIAppearanceIndex: "1*",
      StartTime: isoLocal(device.callStartedAt),
      LineID: "1",
      CallSequence: "1",
      DurationSeconds: s(callDurationSec(ctx)),
      RemotePartyName: party.name,
      RemotePartyNumber: party.number,
    },
  ]);
}

function sessionStats(ctx: Ctx): SimResponse {
  const { device } = ctx;
  if (!device.inCall) return ok([]);
  const sec = callDurationSec(ctx);
  // 20 ms packetisation: 50 packets a second each way.
  const expected = sec * 50;
  const lost = Math.round((expected * device.packetLossPct()) / 100);
  const received = expected - lost;
  const mos = device.packetLossPct() > 0 ? "2.9" : "4.2";
  return ok([
    {
      Ref: callHandle(device),
      Streams: [
        {
          Category: "0:Voice",
          TxCodec: "3:G.722.1",
          RxCodec: "3:G.722.1",
          PacketsSent: s(expected),
          PacketsReceived: s(received),
          PacketsExpected: s(expected),
          PacketsLost: s(lost),
          Jitter: device.packetLossPct() > 0 ? "38" : "4",
          MaxJitter: device.packetLossPct() > 0 ? "95" : "12",
          Latency: "22",
          OctetsSent: s(expected * 160),
          OctetsReceived: s(received * 160),
          TxMOSLQ: mos,
          RxMOSLQ: mos,
          TxMOSCQ: mos,
          RxMOSCQ: mos,
        },
      ],
    },
  ]);
}

function mrpairInfo(ctx: Ctx): SimResponse {
  const { device } = ctx;
  if (!isTrio(device)) return envelope("4004");
  // Every other Trio has a Trio Visual+ paired (camera + display); cameraDown drops the camera component.
  if (device.index % 2 === 1) return ok({ ConnectedDeviceList: [] });
  const serial = `8G${device.mac.slice(-8).toUpperCase()}`;
  const components = [
    {
      componentType: "displayUI",
      componentName: "Trio Visual+",
      componentDetail: "HDMI 1080p",
      componentSerialNumber: serial,
      componentUri: `usb://visualplus/${serial}/display`,
    },
    {
      componentType: "audioSrcSink",
      componentName: "Trio Visual+",
      componentDetail: "HDMI audio",
      componentSerialNumber: serial,
      componentUri: `usb://visualplus/${serial}/audio`,
    },
  ];
  if (!device.faults.has("cameraDown")) {
    components.unshift({
      componentType: "cameraSrc",
      componentName: "EagleEye Mini",
      componentDetail: "USB camera",
      componentSerialNumber: `${serial}C`,
      componentUri: `usb://visualplus/${serial}/camera`,
    });
  }
  return ok({ ConnectedDeviceList: [{ ComponentList: components }] });
}

function transferType(ctx: Ctx): SimResponse {
  return ok({ Type: cfg(ctx.device, "call.DefaultTransferType") || "Consultative" });
}

function dial(ctx: Ctx): SimResponse {
  const parsed = readData(ctx.req);
  if (isResponse(parsed)) return parsed;
  const d = parsed.data as Record<string, unknown> | null;
  if (typeof d !== "object" || d === null || Array.isArray(d)) return envelope("4000");
  const dest = d.Dest;
  if (typeof dest !== "string" || dest.length === 0 || dest.length > 256) return envelope("4000");
  const lineNo = d.Line === undefined ? 1 : Number(d.Line);
  const line = ctx.device.lines.find((l) => l.number === lineNo);
  if (!line) return envelope("4005");
  if (!ctx.device.lineRegistered(line)) return envelope("4002");
  if (ctx.device.inCall) return envelope("4001");
  ctx.device.setCall(true);
  callParties.set(ctx.device, { name: dest, number: dest, type: "Outgoing" });
  return ok();
}

function endCall(ctx: Ctx): SimResponse {
  const parsed = readData(ctx.req);
  if (isResponse(parsed)) return parsed;
  const d = parsed.data as Record<string, unknown> | null;
  if (typeof d !== "object" || d === null || typeof d.Ref !== "string") return envelope("4000");
  if (!ctx.device.inCall || d.Ref !== callHandle(ctx.device)) return envelope("4007");
  ctx.device.setCall(false);
  callParties.delete(ctx.device);
  return ok();
}

const ROUTES = new Map<string, Route>([
  ["/api/v1/mgmt/device/info", { method: "GET", handle: deviceInfoV1 }],
  ["/api/v2/mgmt/device/info", { method: "GET", handle: (ctx) => ok(deviceInfoV2(ctx)) }],
  ["/api/v1/mgmt/device/stats", { method: "GET", handle: deviceStats }],
  ["/api/v1/mgmt/network/info", { method: "GET", handle: networkInfo }],
  ["/api/v1/mgmt/network/stats", { method: "GET", handle: networkStats }],
  ["/api/v1/mgmt/lineInfo", { method: "GET", handle: lineInfoV1 }],
  ["/api/v2/mgmt/lineInfo", { method: "GET", handle: lineInfoV2 }],
  ["/api/v1/mgmt/pollForStatus", { method: "GET", handle: pollForStatus }],
  ["/api/v1/mgmt/device/runningConfig", { method: "GET", handle: runningConfig }],
  ["/api/v1/mgmt/config/get", { method: "POST", handle: configGet }],
  ["/api/v1/mgmt/config/set", { method: "POST", handle: configSet }],
  ["/api/v1/mgmt/safeReboot", { method: "POST", handle: safeReboot }],
  ["/api/v1/mgmt/safeRestart", { method: "POST", handle: safeRestart }],
  ["/api/v1/mgmt/updateConfiguration", { method: "POST", handle: updateConfiguration }],
  ["/api/v1/webCallControl/callStatus", { method: "GET", handle: callStatusV1 }],
  ["/api/v2/webCallControl/callStatus", { method: "GET", handle: callStatusV2 }],
  ["/api/v1/mgmt/media/sessionStats", { method: "GET", handle: sessionStats }],
  ["/api/v1/mgmt/mrpair/info", { method: "GET", handle: mrpairInfo }],
  ["/api/v1/mgmt/transferType/get", { method: "GET", handle: transferType }],
  ["/api/v1/callctrl/dial", { method: "POST", handle: dial }],
  ["/api/v1/callctrl/endCall", { method: "POST", handle: endCall }],
]);
