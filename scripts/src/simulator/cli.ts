import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { createLogger, type LogLevel } from "@polyfleet/shared";
import { type AgentConfigOptions, agentConfigFor, writeAgentConfig } from "./agent-config.js";
import { ControlApi } from "./control-api.js";
import { DEFAULT_TIMING } from "./device.js";
import { createFleet, DEFAULT_FLEET, type FleetOptions, parseFaultSpec } from "./fleet.js";

export const SIM_USAGE = `polyfleet-sim — simulated Poly phones and video bars on loopback

Usage: polyfleet-sim [options]

  --devices N             number of devices (default ${DEFAULT_FLEET.devices})
  --subnet CIDR           loopback range, one address per device (default ${DEFAULT_FLEET.subnet});
                          2,000 devices need a /21, e.g. 127.0.8.0/21
  --manifest FILE         where to write the JSON manifest once every device listens
                          (default ./sim-manifest.json)
  --https-port PORT       HTTPS port of every device (default ${DEFAULT_FLEET.httpsPort}; 443 as on real devices)
  --snmp-port PORT        SNMP UDP port of the VideoOS devices (default ${DEFAULT_FLEET.snmpPort}; 161 as on real
                          devices); --no-snmp disables their SNMP agents
  --snmp-v2c              also answer SNMPv2c (real devices default to v3 only)
  --snmp-auth sha|sha256  SNMPv3 authentication of the devices (default sha256)
  --trap-target HOST:PORT send SNMP traps there (enables snmp.notification on VideoOS devices)
  --control-port PORT     fault control API on 127.0.0.1 (default: a free port, printed and in the manifest)
  --fault SPEC            start with a fault, repeatable: <fault>, <fault>=<count>, <fault>=<percent>%,
                          <fault>@<address|id|serial>,...  e.g. --fault noAnswer=10% --fault cameraDown=2
  --models LIST           only these models or families, comma-separated (e.g. "Trio 8800,videoos")
  --rest-disabled-pct P   percent of phones with the REST API off, as shipped (default 0)
  --reboot-ms MS          how long a reboot keeps a device away (default ${DEFAULT_TIMING.rebootDownMs})
  --flap-period-ms MS     flapping period, half up and half away (default ${DEFAULT_TIMING.flapPeriodMs})
  --slow-ms MS            extra latency of the slow fault (default ${DEFAULT_TIMING.slowMs})
  --agent-config FILE     also write a ready agent config (agent.yaml) for this fleet
  --broker URL            broker URL put in that config (default mqtt://127.0.0.1:1883)
  --agent-id ID --site-id ID   ids put in that config (default sim-agent / sim-site)
  --agent-trap-port PORT  where that agent listens for traps; the devices send theirs there (default 10162)
  --poll-interval SEC     poll interval put in that config (default 30)
  --seed N                fleet seed: same seed, same fleet (default ${DEFAULT_FLEET.seed})
  --log-level LEVEL       fatal|error|warn|info|debug|trace|silent (default info)
  -h, --help              this text

Faults: noAnswer slow flapping http500 malformedJson truncatedJson wrongCredentials cameraDown
microphoneDown sipUnregistered highCpu highMemory packetLoss rebootLoop updateDownloadFails
updateBootsOldVersion updateNeverReturns
`;

function int(name: string, value: string | undefined, fallback: number, min = 0, max = 65_535): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`--${name} must be an integer ${min}..${max}, got ${value}`);
  return n;
}

/** Parses argv into fleet options (exported for tests). Throws with a message naming the bad flag. */
export function parseSimArgs(argv: string[]): {
  fleet: FleetOptions;
  agent: (AgentConfigOptions & { file: string }) | undefined;
  manifest: string;
  controlPort: number;
  logLevel: LogLevel;
  help: boolean;
} {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      devices: { type: "string" },
      subnet: { type: "string" },
      manifest: { type: "string" },
      "https-port": { type: "string" },
      "snmp-port": { type: "string" },
      "no-snmp": { type: "boolean" },
      "snmp-v2c": { type: "boolean" },
      "snmp-auth": { type: "string" },
      "trap-target": { type: "string" },
      "control-port": { type: "string" },
      fault: { type: "string", multiple: true },
      models: { type: "string" },
      "rest-disabled-pct": { type: "string" },
      "reboot-ms": { type: "string" },
      "flap-period-ms": { type: "string" },
      "slow-ms": { type: "string" },
      seed: { type: "string" },
      "log-level": { type: "string" },
      "agent-config": { type: "string" },
      broker: { type: "string" },
      "agent-id": { type: "string" },
      "site-id": { type: "string" },
      "agent-trap-port": { type: "string" },
      "poll-interval": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  let trapTarget: FleetOptions["trapTarget"];
  const agentTrapPort = int("agent-trap-port", values["agent-trap-port"], 10162, 1);
  if (values["agent-config"] && !values["trap-target"])
    trapTarget = { host: "127.0.0.1", port: agentTrapPort };
  if (values["trap-target"]) {
    const m = /^(.+):(\d+)$/.exec(values["trap-target"]);
    if (!m) throw new Error(`--trap-target must be HOST:PORT, got ${values["trap-target"]}`);
    trapTarget = { host: m[1] as string, port: int("trap-target", m[2], 162, 1) };
  }
  const auth = values["snmp-auth"] ?? DEFAULT_FLEET.snmpAuth;
  if (auth !== "sha" && auth !== "sha256") throw new Error(`--snmp-auth must be sha or sha256, got ${auth}`);
  const level = values["log-level"] ?? "info";
  if (!["fatal", "error", "warn", "info", "debug", "trace", "silent"].includes(level)) {
    throw new Error(`--log-level must be fatal|error|warn|info|debug|trace|silent, got ${level}`);
  }
  const fleet: FleetOptions = {
    devices: int("devices", values.devices, DEFAULT_FLEET.devices, 1, 16_000),
    subnet: values.subnet ?? DEFAULT_FLEET.subnet,
    httpsPort: int("https-port", values["https-port"], DEFAULT_FLEET.httpsPort, 1),
    snmpPort: values["no-snmp"]
      ? null
      : int("snmp-port", values["snmp-port"], DEFAULT_FLEET.snmpPort ?? 1161, 1),
    seed: int("seed", values.seed, DEFAULT_FLEET.seed, 0, 2 ** 31),
    faults: (values.fault ?? []).map(parseFaultSpec),
    timing: {
      ...DEFAULT_TIMING,
      rebootDownMs: int("reboot-ms", values["reboot-ms"], DEFAULT_TIMING.rebootDownMs, 0, 3_600_000),
      flapPeriodMs: int(
        "flap-period-ms",
        values["flap-period-ms"],
        DEFAULT_TIMING.flapPeriodMs,
        2,
        3_600_000,
      ),
      slowMs: int("slow-ms", values["slow-ms"], DEFAULT_TIMING.slowMs, 0, 600_000),
    },
    snmpV2c: values["snmp-v2c"] ?? false,
    snmpAuth: auth,
    trapTarget,
    restDisabledPct: int("rest-disabled-pct", values["rest-disabled-pct"], 0, 0, 100),
    models: values.models
      ?.split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  };
  const broker = values.broker ?? "mqtt://127.0.0.1:1883";
  if (!/^mqtts?:\/\/\S+$/.test(broker))
    throw new Error(`--broker must be mqtt://host:port or mqtts://host:port, got ${broker}`);
  return {
    fleet,
    agent: values["agent-config"]
      ? {
          file: resolve(values["agent-config"]),
          broker,
          siteId: values["site-id"] ?? "sim-site",
          agentId: values["agent-id"] ?? "sim-agent",
          trapPort: agentTrapPort,
          pollIntervalSec: int("poll-interval", values["poll-interval"], 30, 5, 86_400),
          outboxDir: resolve(".polyfleet", `outbox-${values["agent-id"] ?? "sim-agent"}`),
          opsPort: 9465,
        }
      : undefined,
    manifest: resolve(values.manifest ?? "sim-manifest.json"),
    controlPort: int("control-port", values["control-port"], 0),
    logLevel: level as LogLevel,
    help: values.help ?? false,
  };
}

export interface RunningSim {
  control: string;
  manifest: string;
  stop(): Promise<void>;
}

/** Starts a fleet, its control API and writes the manifest. */
export async function runSimulator(
  argv: string[],
  out: (line: string) => void = console.log,
): Promise<RunningSim | undefined> {
  const args = parseSimArgs(argv);
  if (args.help) {
    out(SIM_USAGE);
    return undefined;
  }
  const log = createLogger({ level: args.logLevel, name: "polyfleet-sim" });
  const fleet = createFleet(args.fleet);
  log.info({ devices: fleet.devices.length, subnet: args.fleet.subnet }, "starting simulated devices");
  await fleet.start();
  const control = new ControlApi(fleet, args.controlPort);
  const controlUrl = await control.start();
  await fleet.writeManifest(args.manifest, controlUrl);
  if (args.agent)
    await writeAgentConfig(args.agent.file, agentConfigFor(fleet.manifest(controlUrl), args.agent));
  const byModel = new Map<string, number>();
  for (const d of fleet.devices) byModel.set(d.spec.model, (byModel.get(d.spec.model) ?? 0) + 1);
  const first = fleet.devices[0];
  const last = fleet.devices[fleet.devices.length - 1];
  out(`polyfleet-sim: ${fleet.devices.length} devices on ${first?.address} .. ${last?.address}`);
  out(`  models: ${[...byModel].map(([m, n]) => `${m} ×${n}`).join(", ")}`);
  out(
    `  HTTPS :${args.fleet.httpsPort}${args.fleet.snmpPort === null ? "" : `, SNMP (VideoOS) udp/${args.fleet.snmpPort}`}`,
  );
  out(`  control API: ${controlUrl}   manifest: ${args.manifest}`);
  if (args.agent)
    out(
      `  agent config: ${args.agent.file} (broker ${args.agent.broker}, traps to udp/${args.agent.trapPort})`,
    );
  if (first) {
    out(
      first.family === "uc"
        ? `  try: curl -k -u Polycom:${first.admin.password} https://${first.address}:${first.httpsPort}/api/v2/mgmt/device/info`
        : `  try: curl -k -X POST https://${first.address}:${first.httpsPort}/rest/current/session -d '{"user":"admin","password":"${first.admin.password}"}'`,
    );
  }
  return {
    control: controlUrl,
    manifest: args.manifest,
    async stop() {
      await control.stop();
      await fleet.close();
    },
  };
}

/** Entry point of the `polyfleet-sim` bin. */
export async function main(argv = process.argv.slice(2)): Promise<void> {
  let sim: RunningSim | undefined;
  try {
    sim = await runSimulator(argv);
  } catch (err) {
    console.error(`polyfleet-sim: ${err instanceof Error ? err.message : String(err)}`);
    console.error("run polyfleet-sim --help for usage");
    process.exitCode = 2;
    return;
  }
  if (!sim) return;
  const running = sim;
  const shutdown = (): void => {
    void running.stop().then(() => process.exit(0));
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
}
