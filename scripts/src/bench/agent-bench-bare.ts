import { readFileSync } from "node:fs";
import type { SimDevice } from "@polyfleet/shared";
import snmp from "net-snmp";
import { Pool } from "undici";
import { procStats } from "./proc-stats.js";

/**
 * The baseline of `agent-bench`: a bare client, in a process of its own, doing the device requests the
 * agent's drivers do and nothing else (no schema, no normalisation, no outbox, no MQTT), paced like the agent (the
 * same polls per second, spread evenly), and measuring its own CPU time from /proc like the agent's.
 *
 *   node scripts/dist/bench/agent-bench-bare.js JOB.json   → one JSON line ({@link BareResult}) on stdout
 *
 * Modes:
 * - `uc`: one keep-alive undici Pool (1 connection) per phone, HTTP Basic as Polycom, the poly-ucs driver's
 *   request plan: device/info (v2), device/stats, network/stats, lineInfo (v2), pollForStatus, plus
 *   network/info every 10th poll of a phone, mrpair/info on Trio, sessionStats in a call. Bodies JSON.parsed.
 * - `videoos`: one Pool per device, one REST session (login during the warm-up), per poll GET /rest/system,
 *   GET /rest/system/status, POST /rest/current/devicemanagement/devices, GET /rest/conferences (in turn)
 *   and alongside one SNMPv3 get of the 11 OIDs the poly-videoos driver asks.
 * - `snmp-get`: one SNMPv3 (authPriv) get of 10 OIDs per poll.
 * - `snmp-bulk`: one SNMPv3 GETBULK per poll shaped like the snmp-generic driver's (5 non-repeaters,
 *   7 ifTable columns, max-repetitions = ifNumber).
 */
export type BareMode = "uc" | "videoos" | "snmp-get" | "snmp-bulk";

export interface BareJob {
  mode: BareMode;
  devices: SimDevice[];
  /** Polls started per second in the measured window. */
  ratePerSec: number;
  seconds: number;
  timeoutMs: number;
  /** Polls in flight during the (unmeasured) warm-up pass. */
  warmupConcurrency: number;
}

export interface BareResult {
  mode: BareMode;
  devices: number;
  polls: number;
  /** HTTPS requests + SNMP requests made in the measured window. */
  requests: number;
  httpsRequests: number;
  snmpRequests: number;
  failed: number;
  seconds: number;
  cpuMs: number;
  /** The same from /proc/<pid>/stat (10 ms ticks). */
  procCpuMs: number;
  cpuUsPerPoll: number | null;
  cpuUsPerRequest: number | null;
  rssMB: number;
  warmupFailed: number;
}

const UC_INFO = "/api/v2/mgmt/device/info";
const UC_EVERY_POLL = [
  "/api/v1/mgmt/device/stats",
  "/api/v1/mgmt/network/stats",
  "/api/v2/mgmt/lineInfo",
  "/api/v1/mgmt/pollForStatus",
];

/** The OIDs the poly-videoos driver gets (VIDEOOS_SNMP_OIDS in agent/src/core/normalize-videoos.ts). */
const VIDEOOS_OIDS = [
  "1.3.6.1.2.1.1.3.0",
  "1.3.6.1.2.1.2.2.1.5.1",
  "1.3.6.1.2.1.2.2.1.10.1",
  "1.3.6.1.2.1.2.2.1.11.1",
  "1.3.6.1.2.1.2.2.1.16.1",
  "1.3.6.1.2.1.2.2.1.17.1",
  "1.3.6.1.4.1.13885.101.1.3.1.0",
  "1.3.6.1.4.1.13885.101.1.3.5.1.0",
  "1.3.6.1.4.1.13885.101.1.3.6.1.0",
  "1.3.6.1.4.1.13885.101.1.2.8.1.0",
  "1.3.6.1.4.1.13885.101.1.5.1.0",
];

/** A 10-OID get (system group, POLYCOM-ENDPOINT-MIB identity and status, ifNumber), as in sim-bench. */
const GET10_OIDS = [
  "1.3.6.1.2.1.1.1.0",
  "1.3.6.1.2.1.1.3.0",
  "1.3.6.1.2.1.1.5.0",
  "1.3.6.1.4.1.13885.101.1.1.1.0",
  "1.3.6.1.4.1.13885.101.1.1.4.0",
  "1.3.6.1.4.1.13885.101.1.1.5.0",
  "1.3.6.1.4.1.13885.101.1.1.6.0",
  "1.3.6.1.4.1.13885.101.1.3.1.0",
  "1.3.6.1.4.1.13885.101.1.5.1.0",
  "1.3.6.1.2.1.2.1.0",
];

/** The snmp-generic driver's GETBULK: system scalars + ifNumber as non-repeaters, 7 ifTable columns. */
const BULK_NON_REPEATERS = [
  "1.3.6.1.2.1.1.1.0",
  "1.3.6.1.2.1.1.2.0",
  "1.3.6.1.2.1.1.3.0",
  "1.3.6.1.2.1.1.5.0",
  "1.3.6.1.2.1.2.1.0",
];
const BULK_COLUMNS = [2, 3, 8, 10, 11, 16, 17].map((c) => `1.3.6.1.2.1.2.2.1.${c}`);

interface DeviceState {
  d: SimDevice;
  pool: Pool | undefined;
  session: snmp.Session | undefined;
  headers: Record<string, string>;
  polls: number;
  busy: boolean;
  trio: boolean;
  reps: number;
}

interface Counts {
  https: number;
  snmp: number;
  failed: number;
}

async function httpsJson(
  st: DeviceState,
  method: "GET" | "POST",
  path: string,
  timeoutMs: number,
  counts: Counts,
  body?: string,
): Promise<{ status: number; json: unknown; setCookie: string[] }> {
  const pool = st.pool as Pool;
  counts.https++;
  const res = await pool.request({
    path,
    method,
    headers: body === undefined ? st.headers : { ...st.headers, "content-type": "application/json" },
    body,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  const text = await res.body.text();
  const sc = res.headers["set-cookie"];
  return {
    status: res.statusCode,
    json: text.length > 0 ? JSON.parse(text) : undefined,
    setCookie: sc === undefined ? [] : Array.isArray(sc) ? sc : [sc],
  };
}

function snmpGet(st: DeviceState, oids: string[], counts: Counts): Promise<snmp.Varbind[]> {
  const s = st.session as snmp.Session;
  counts.snmp++;
  return new Promise((resolve, reject) => {
    s.get(oids, (err, vbs) => {
      if (err) reject(err);
      else resolve(vbs ?? []);
    });
  });
}

function snmpBulk(st: DeviceState, counts: Counts): Promise<unknown[]> {
  const s = st.session as snmp.Session;
  counts.snmp++;
  return new Promise((resolve, reject) => {
    s.getBulk([...BULK_NON_REPEATERS, ...BULK_COLUMNS], BULK_NON_REPEATERS.length, st.reps, (err, vbs) => {
      if (err) reject(err);
      else resolve((vbs ?? []) as unknown[]);
    });
  });
}

async function ucPoll(st: DeviceState, timeoutMs: number, counts: Counts): Promise<void> {
  const info = await httpsJson(st, "GET", UC_INFO, timeoutMs, counts);
  if (info.status !== 200) throw new Error(`device/info ${info.status}`);
  for (const p of UC_EVERY_POLL) {
    const r = await httpsJson(st, "GET", p, timeoutMs, counts);
    if (r.status !== 200) throw new Error(`${p} ${r.status}`);
  }
  if (st.polls % 10 === 0) await httpsJson(st, "GET", "/api/v1/mgmt/network/info", timeoutMs, counts);
  const appState = (info.json as { data?: { AppState?: unknown } } | undefined)?.data?.AppState;
  if (appState === "AppStateCall")
    await httpsJson(st, "GET", "/api/v1/mgmt/media/sessionStats", timeoutMs, counts);
  if (st.trio) await httpsJson(st, "GET", "/api/v1/mgmt/mrpair/info", timeoutMs, counts);
  st.polls++;
}

async function videoOsLogin(st: DeviceState, timeoutMs: number, counts: Counts): Promise<void> {
  st.headers = { accept: "application/json" };
  const r = await httpsJson(
    st,
    "POST",
    "/rest/current/session",
    timeoutMs,
    counts,
    JSON.stringify({ user: st.d.admin.user, password: st.d.admin.password }),
  );
  if (r.status !== 200 && r.status !== 201 && r.status !== 204) throw new Error(`login ${r.status}`);
  const cookies = r.setCookie.map((c) => c.split(";", 1)[0] ?? "");
  const xsrf = cookies.find((c) => c.startsWith("XSRF-TOKEN="))?.slice("XSRF-TOKEN=".length);
  st.headers = { accept: "application/json", cookie: cookies.join("; ") };
  if (xsrf) st.headers["x-xsrf-token"] = xsrf;
}

async function videoOsPoll(st: DeviceState, timeoutMs: number, counts: Counts): Promise<void> {
  const snmpDone = st.session ? snmpGet(st, VIDEOOS_OIDS, counts) : Promise.resolve([]);
  const calls: ["GET" | "POST", string][] = [
    ["GET", "/rest/system"],
    ["GET", "/rest/system/status"],
    ["POST", "/rest/current/devicemanagement/devices"],
    ["GET", "/rest/conferences"],
  ];
  try {
    for (const [m, p] of calls) {
      const r = await httpsJson(st, m, p, timeoutMs, counts);
      if (r.status !== 200) throw new Error(`${p} ${r.status}`);
    }
  } finally {
    await snmpDone.catch(() => undefined);
  }
  await snmpDone;
}

async function snmpPoll(st: DeviceState, mode: BareMode, counts: Counts): Promise<void> {
  if (mode === "snmp-get") {
    await snmpGet(st, GET10_OIDS, counts);
    return;
  }
  const vbs = await snmpBulk(st, counts);
  const ifNumber = (vbs[4] as snmp.Varbind | undefined)?.value;
  if (typeof ifNumber === "number") st.reps = Math.max(1, Math.min(16, ifNumber));
}

function openDevice(d: SimDevice, mode: BareMode, timeoutMs: number): DeviceState {
  const st: DeviceState = {
    d,
    pool: undefined,
    session: undefined,
    headers: { accept: "application/json" },
    polls: 0,
    busy: false,
    trio: /^trio/i.test(d.model),
    reps: 8,
  };
  if (mode === "uc" || mode === "videoos") {
    st.pool = new Pool(`https://${d.address}:${d.httpsPort}`, {
      connections: 1,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      keepAliveMaxTimeout: 600_000,
      connect: { rejectUnauthorized: false, timeout: timeoutMs },
    });
  }
  if (mode === "uc") {
    st.headers.authorization = `Basic ${Buffer.from(`Polycom:${d.admin.password}`).toString("base64")}`;
  }
  if (mode !== "uc" && d.snmp?.version === "3" && d.snmpPort !== null) {
    st.session = snmp.createV3Session(
      d.address,
      {
        name: d.snmp.user,
        level: snmp.SecurityLevel.authPriv,
        authProtocol: d.snmp.authProtocol === "sha256" ? snmp.AuthProtocols.sha256 : snmp.AuthProtocols.sha,
        authKey: d.snmp.authKey,
        privProtocol: snmp.PrivProtocols.aes,
        privKey: d.snmp.privKey,
      },
      { port: d.snmpPort, timeout: timeoutMs, retries: 0 },
    );
    st.session.on("error", () => {});
  }
  return st;
}

function pollOnce(st: DeviceState, job: BareJob, counts: Counts): Promise<void> {
  switch (job.mode) {
    case "uc":
      return ucPoll(st, job.timeoutMs, counts);
    case "videoos":
      return videoOsPoll(st, job.timeoutMs, counts);
    default:
      return snmpPoll(st, job.mode, counts);
  }
}

export async function runBare(job: BareJob): Promise<BareResult> {
  const states = job.devices.map((d) => openDevice(d, job.mode, job.timeoutMs));
  // Warm-up, not measured: TLS handshakes, REST logins, SNMPv3 engine discovery.
  const warm: Counts = { https: 0, snmp: 0, failed: 0 };
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < states.length) {
      const st = states[next++] as DeviceState;
      try {
        if (job.mode === "videoos") await videoOsLogin(st, job.timeoutMs, warm);
        await pollOnce(st, job, warm);
      } catch {
        warm.failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, job.warmupConcurrency) }, worker));

  // Measured: polls started at an even pace, round robin over the devices, as the agent's scheduler does.
  const counts: Counts = { https: 0, snmp: 0, failed: 0 };
  let polls = 0;
  let inFlight = 0;
  let launched = 0;
  let rr = 0;
  const c0 = procStats(process.pid);
  const u0 = process.cpuUsage();
  const t0 = Date.now();
  const total = Math.max(1, Math.round(job.ratePerSec * job.seconds));
  await new Promise<void>((resolve) => {
    const launch = (): void => {
      launched++;
      const st = states[rr++ % states.length] as DeviceState;
      if (st.busy) {
        if (launched >= total && inFlight === 0) resolve();
        return;
      }
      st.busy = true;
      inFlight++;
      polls++;
      void pollOnce(st, job, counts)
        .catch(() => {
          counts.failed++;
        })
        .finally(() => {
          st.busy = false;
          inFlight--;
          if (launched >= total && inFlight === 0) resolve();
        });
    };
    // One timer per poll, as the agent's scheduler arms one per device: the same wake-ups per poll.
    for (let k = 0; k < total; k++) setTimeout(launch, (k * 1000) / job.ratePerSec);
  });
  const u1 = process.cpuUsage(u0);
  const c1 = procStats(process.pid);
  const seconds = (Date.now() - t0) / 1000;
  // getrusage (µs) — the same kernel counters as /proc/<pid>/stat, which counts 10 ms ticks only.
  const cpuMs = (u1.user + u1.system) / 1000;
  for (const st of states) {
    st.session?.close();
    void st.pool?.destroy().catch(() => undefined);
  }
  const requests = counts.https + counts.snmp;
  const okPolls = polls - counts.failed;
  return {
    mode: job.mode,
    devices: states.length,
    polls,
    requests,
    httpsRequests: counts.https,
    snmpRequests: counts.snmp,
    failed: counts.failed,
    seconds: +seconds.toFixed(2),
    cpuMs: +cpuMs.toFixed(1),
    procCpuMs: c1.cpuMs - c0.cpuMs,
    cpuUsPerPoll: okPolls > 0 ? Math.round((cpuMs * 1000) / polls) : null,
    cpuUsPerRequest: requests > 0 ? Math.round((cpuMs * 1000) / requests) : null,
    rssMB: +(c1.rssBytes / 2 ** 20).toFixed(1),
    warmupFailed: warm.failed,
  };
}

if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) {
  const file = process.argv[2];
  if (!file) {
    console.error("usage: agent-bench-bare.js JOB.json");
    process.exit(2);
  }
  const job = JSON.parse(readFileSync(file, "utf8")) as BareJob;
  const r = await runBare(job);
  console.log(JSON.stringify(r));
  process.exit(0);
}
