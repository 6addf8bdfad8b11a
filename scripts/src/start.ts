import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { parse, stringify } from "yaml";
import { runSimulator } from "./simulator/cli.js";
import { simBaselineReleases, writeSignedCatalog } from "./testing/firmware.js";
import { freeTcpPort, freeUdpPort, waitFor } from "./testing/free-port.js";

/**
 * `npm start`: the whole system on embedded defaults, on this machine — the collector (embedded aedes broker,
 * SQLite, in-memory metrics, API + dashboard), one agent, and a simulated fleet with a few faults so that
 * alerts appear within a minute. Ctrl-C stops everything. Extra arguments go to the simulator.
 */
const root = resolve(new URL("../..", import.meta.url).pathname);
const dir = resolve(".polyfleet");
mkdirSync(dir, { recursive: true });

async function preferredPort(port: number): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((done) => {
    const s = createServer();
    s.once("error", () => void freeTcpPort().then(done));
    s.listen(port, "127.0.0.1", () => s.close(() => done(port)));
  });
}

const brokerPort = await preferredPort(1883);
const apiPort = await preferredPort(8080);
const agentOpsPort = await preferredPort(9465);
const trapPort = await freeUdpPort();
// The bootstrap token only takes effect in an empty state database, so it is kept for the next start.
const tokenFile = resolve(dir, "admin-token");
const token =
  process.env.POLYFLEET_ADMIN_TOKEN ??
  (existsSync(tokenFile)
    ? readFileSync(tokenFile, "utf8").trim()
    : `pf_${randomBytes(24).toString("base64url")}`);
writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });

// A demo firmware catalog for the simulated models (one newer release each, the baseline), signed 2-of-3 by
// throw-away keys, so a rollout can be tried from the dashboard. Made once; a real one comes from
// `polyfleet-catalog`.
const firmwareDir = resolve(dir, "demo-firmware");
if (!existsSync(resolve(firmwareDir, "catalog.json")))
  writeSignedCatalog(firmwareDir, {
    releases: simBaselineReleases().map((r) => ({ ...r, bytes: 256 * 1024 })),
  });

writeFileSync(
  resolve(dir, "collector.yaml"),
  stringify({
    broker: { type: "embedded", host: "127.0.0.1", port: brokerPort },
    store: { type: "sqlite", path: resolve(dir, "state.db") },
    metrics: { type: "embedded", retentionMinutes: 360 },
    http: { host: "127.0.0.1", port: apiPort },
    api: { bootstrapToken: { env: "POLYFLEET_ADMIN_TOKEN" } },
    firmware: {
      rootFile: resolve(firmwareDir, "root.json"),
      catalogFile: resolve(firmwareDir, "catalog.json"),
      imagesDir: resolve(firmwareDir, "images"),
    },
  }),
);

const children: ChildProcess[] = [];
function launch(name: string, script: string, args: string[]): ChildProcess {
  const child = spawn(process.execPath, [resolve(root, script), ...args], {
    env: { ...process.env, POLYFLEET_ADMIN_TOKEN: token },
    stdio: ["ignore", "ignore", "inherit"],
    // Its own process group: Ctrl-C reaches only this launcher, which stops the children in order.
    detached: true,
  });
  child.once("exit", (code, signal) => {
    if (!stopping) {
      console.error(`${name} exited (${signal ?? code}); stopping`);
      void stop(1);
    }
  });
  children.push(child);
  return child;
}

let stopping = false;
let sim: Awaited<ReturnType<typeof runSimulator>>;
async function stop(code = 0): Promise<void> {
  if (stopping) return;
  stopping = true;
  // The agent first (it tells the collector it is going offline through the broker), then the collector.
  for (const c of [...children].reverse()) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill("SIGTERM");
    await exited;
  }
  await sim?.stop();
  process.exit(code);
}
process.once("SIGINT", () => void stop());
process.once("SIGTERM", () => void stop());
process.once("exit", () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
});

launch("collector", "collector/dist/main.js", [
  "--config",
  resolve(dir, "collector.yaml"),
  "--log-level",
  "warn",
]);
await waitFor(
  async () => {
    try {
      return (await fetch(`http://127.0.0.1:${apiPort}/healthz`)).ok;
    } catch {
      return false;
    }
  },
  30_000,
  "the collector",
);

sim = await runSimulator(
  [
    "--devices",
    "24",
    "--subnet",
    "127.0.10.0/24",
    "--manifest",
    resolve(dir, "sim-manifest.json"),
    "--agent-config",
    resolve(dir, "agent.yaml"),
    "--broker",
    `mqtt://127.0.0.1:${brokerPort}`,
    "--agent-trap-port",
    String(trapPort),
    "--poll-interval",
    "10",
    "--fault",
    "noAnswer=1",
    "--fault",
    "cameraDown=1",
    "--fault",
    "sipUnregistered=1",
    "--fault",
    "highCpu=1",
    "--log-level",
    "warn",
    ...process.argv.slice(2),
  ],
  () => {},
);
const agentFile = resolve(dir, "agent.yaml");
const agentCfg = parse(readFileSync(agentFile, "utf8")) as {
  http: { port: number };
  outbox: { dir: string };
  provisioning?: Record<string, unknown>;
};
agentCfg.http.port = agentOpsPort;
agentCfg.outbox.dir = resolve(dir, "agent-outbox");
agentCfg.provisioning = {
  ...agentCfg.provisioning,
  host: "127.0.0.1",
  port: await preferredPort(8085),
  dir: resolve(dir, "agent-firmware"),
};
writeFileSync(agentFile, stringify(agentCfg), { mode: 0o600 });
launch("agent", "agent/dist/main.js", ["--config", agentFile, "--log-level", "warn"]);

console.log(`polyfleet is running (Ctrl-C stops everything)
  dashboard + API   http://127.0.0.1:${apiPort}        (API docs: http://127.0.0.1:${apiPort}/docs)
  admin API token   ${token}
  MQTT broker       mqtt://127.0.0.1:${brokerPort}
  agent             http://127.0.0.1:${agentOpsPort}/healthz   http://127.0.0.1:${agentOpsPort}/metrics
  simulated fleet   24 devices on 127.0.10.1-24, control API ${sim?.control}
  faults            one device not answering, one camera down, one SIP line unregistered, one high CPU:
                    alerts appear on the dashboard within a minute
  firmware          demo catalog (${firmwareDir}): one newer release per simulated model; try a
                    rollout from the dashboard's Rollouts view
  state             ${dir}`);
