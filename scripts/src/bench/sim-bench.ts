import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent, request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type SimDevice, SimManifest } from "@polyfleet/shared";
import snmp from "net-snmp";
import { procStats } from "./proc-stats.js";

/**
 * Benchmark of the device simulator: starts N devices in one child process, measures its RSS, then drives
 * HTTPS (keep-alive, one request at a time per phone as the real ones need) and SNMPv3 load at it and reports
 * requests/s and the simulator's CPU time per request.
 *
 *   node scripts/dist/bench/sim-bench.js [--devices 2000] [--seconds 10] [--concurrency 256]
 */
const { values } = parseArgs({
  options: {
    devices: { type: "string", default: "2000" },
    subnet: { type: "string", default: "127.0.8.0/21" },
    seconds: { type: "string", default: "10" },
    concurrency: { type: "string", default: "256" },
  },
});
const DEVICES = Number(values.devices);
const SECONDS = Number(values.seconds);
const CONCURRENCY = Number(values.concurrency);

const dir = mkdtempSync(join(tmpdir(), "polyfleet-sim-bench-"));
const manifestFile = join(dir, "manifest.json");
const cli = new URL("../simulator/cli-main.js", import.meta.url).pathname;

function startSim(): { child: ChildProcess; ready: Promise<number> } {
  const t0 = Date.now();
  const child = spawn(
    process.execPath,
    [
      cli,
      "--devices",
      String(DEVICES),
      "--subnet",
      values.subnet,
      "--manifest",
      manifestFile,
      "--https-port",
      "18443",
      "--snmp-port",
      "11161",
      "--log-level",
      "warn",
      "--seed",
      "7",
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  const ready = new Promise<number>((resolve, reject) => {
    const timer = setInterval(() => {
      if (existsSync(manifestFile)) {
        clearInterval(timer);
        resolve(Date.now() - t0);
      }
    }, 50);
    child.once("exit", (code) => {
      clearInterval(timer);
      reject(new Error(`simulator exited with ${code}`));
    });
  });
  return { child, ready };
}

interface Load {
  ok: number;
  failed: number;
}

function httpsGet(
  agent: Agent,
  d: SimDevice,
  path: string,
  headers: Record<string, string>,
  method = "GET",
  body?: string,
) {
  return new Promise<{
    status: number;
    headers: Record<string, string | string[] | undefined>;
    body: string;
  }>((resolve, reject) => {
    const req = request(
      {
        host: d.address,
        port: d.httpsPort,
        path,
        method,
        headers,
        agent,
        rejectUnauthorized: false,
        timeout: 5000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end(body);
  });
}

/** One keep-alive connection per device; each worker serves a slice of the devices in turn. */
async function httpLoad(devices: SimDevice[], untilMs: number): Promise<Load> {
  const load: Load = { ok: 0, failed: 0 };
  const state = new Map<string, { agent: Agent; headers: Record<string, string> }>();
  for (const d of devices) {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const headers: Record<string, string> = {};
    if (d.family === "uc")
      headers.authorization = `Basic ${Buffer.from(`Polycom:${d.admin.password}`).toString("base64")}`;
    state.set(d.id, { agent, headers });
  }
  const login = async (d: SimDevice) => {
    const s = state.get(d.id);
    if (!s) return;
    const r = await httpsGet(
      s.agent,
      d,
      "/rest/current/session",
      { "content-type": "application/json" },
      "POST",
      JSON.stringify({ user: d.admin.user, password: d.admin.password }),
    );
    const cookies = ([] as string[]).concat(r.headers["set-cookie"] ?? []).map((c) => c.split(";")[0] ?? "");
    const xsrf = cookies.find((c) => c.startsWith("XSRF-TOKEN="))?.slice("XSRF-TOKEN=".length) ?? "";
    s.headers = { cookie: cookies.join("; "), "x-xsrf-token": xsrf };
  };
  await Promise.all(
    devices.filter((d) => d.family === "videoos").map((d) => login(d).catch(() => undefined)),
  );
  let next = 0;
  const worker = async (): Promise<void> => {
    while (Date.now() < untilMs) {
      const d = devices[next++ % devices.length] as SimDevice;
      const s = state.get(d.id);
      if (!s) continue;
      const path = d.family === "uc" ? "/api/v2/mgmt/device/info" : "/rest/system";
      try {
        const r = await httpsGet(s.agent, d, path, s.headers);
        if (r.status === 200) load.ok++;
        else load.failed++;
      } catch {
        load.failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  for (const s of state.values()) s.agent.destroy();
  return load;
}

const OIDS = [
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

async function snmpLoad(devices: SimDevice[], untilMs: number): Promise<Load> {
  const load: Load = { ok: 0, failed: 0 };
  const sessions = devices.flatMap((d) => {
    if (d.snmp?.version !== "3" || d.snmpPort === null) return [];
    const auth = d.snmp.authProtocol === "sha256" ? snmp.AuthProtocols.sha256 : snmp.AuthProtocols.sha;
    const user = {
      name: d.snmp.user,
      level: snmp.SecurityLevel.authPriv,
      authProtocol: auth,
      authKey: d.snmp.authKey,
      privProtocol: snmp.PrivProtocols.aes,
      privKey: d.snmp.privKey,
    };
    return [snmp.createV3Session(d.address, user, { port: d.snmpPort, timeout: 2000, retries: 0 })];
  });
  if (sessions.length === 0) return load;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (Date.now() < untilMs) {
      const s = sessions[next++ % sessions.length] as snmp.Session;
      await new Promise<void>((resolve) => {
        s.get(OIDS, (err) => {
          if (err) load.failed++;
          else load.ok++;
          resolve();
        });
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(64, sessions.length) }, worker));
  for (const s of sessions) s.close();
  return load;
}

async function main(): Promise<void> {
  const { child, ready } = startSim();
  const pid = child.pid as number;
  try {
    const startupMs = await ready;
    const manifest = SimManifest.parse(JSON.parse(readFileSync(manifestFile, "utf8")));
    const idle = procStats(pid);
    const families: Record<string, number> = {};
    for (const d of manifest.devices) families[d.family] = (families[d.family] ?? 0) + 1;

    const h0 = procStats(pid);
    const t0 = Date.now();
    const http = await httpLoad(manifest.devices, t0 + SECONDS * 1000);
    const h1 = procStats(pid);
    const httpSec = (Date.now() - t0) / 1000;

    const s0 = procStats(pid);
    const t1 = Date.now();
    const snmpRes = await snmpLoad(manifest.devices, t1 + SECONDS * 1000);
    const s1 = procStats(pid);
    const snmpSec = (Date.now() - t1) / 1000;

    const result = {
      bench: "simulator",
      devices: manifest.devices.length,
      families,
      startupMs,
      idleRssMB: +(idle.rssBytes / 2 ** 20).toFixed(1),
      rssAfterLoadMB: +(s1.rssBytes / 2 ** 20).toFixed(1),
      https: {
        requestsPerSec: Math.round(http.ok / httpSec),
        failed: http.failed,
        simCpuUsPerRequest: http.ok ? Math.round(((h1.cpuMs - h0.cpuMs) * 1000) / http.ok) : null,
      },
      snmpV3Get10: {
        requestsPerSec: Math.round(snmpRes.ok / snmpSec),
        failed: snmpRes.failed,
        simCpuUsPerRequest: snmpRes.ok ? Math.round(((s1.cpuMs - s0.cpuMs) * 1000) / snmpRes.ok) : null,
      },
    };
    console.log(`simulator: ${result.devices} devices (${JSON.stringify(families)}) up in ${startupMs} ms`);
    console.log(`  RSS idle ${result.idleRssMB} MB, after load ${result.rssAfterLoadMB} MB`);
    console.log(
      `  HTTPS: ${result.https.requestsPerSec} req/s, ${result.https.simCpuUsPerRequest} µs simulator CPU/request, ${http.failed} failed`,
    );
    console.log(
      `  SNMPv3 GET (10 OIDs): ${result.snmpV3Get10.requestsPerSec} req/s, ${result.snmpV3Get10.simCpuUsPerRequest} µs simulator CPU/request, ${snmpRes.failed} failed`,
    );
    console.log(JSON.stringify(result));
  } finally {
    child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
