import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import {
  type AgentConfig,
  createLogger,
  isPolyfleetError,
  isProcessEntry,
  type LogLevel,
  PolyfleetError,
} from "@polyfleet/shared";
import {
  loadAgentConfig,
  PROCESS_SECRETS,
  resolveSecret,
  type SecretSources,
} from "./adapters/config/load-config.js";
import type { MqttLinkBroker } from "./adapters/mqtt/mqtt-agent-link.js";
import { type Agent, buildAgent } from "./app.js";
import { resolveSnmpCredential, snmpPolicyWarnings } from "./core/snmp-policy.js";
import { SYSTEM_CLOCK } from "./ports/clock.js";
import type { ResolvedCredential } from "./ports/credentials.js";

export const AGENT_USAGE = `polyfleet-agent — discovers and polls Poly devices on a site network and publishes over MQTT

Usage: polyfleet-agent --config FILE [options]

  -c, --config FILE      the agent configuration (YAML or JSON; see agent/agent.sample.yaml)
  --log-level LEVEL      fatal|error|warn|info|debug|trace|silent (overrides logLevel in the file)
  --check-config         validate the configuration and its secrets, print a summary, and exit
  -v, --version          print the version and exit
  -h, --help             this text

Signals: SIGTERM or SIGINT stop the agent cleanly (it tells the collector it is going offline).
Exit codes: 0 stopped cleanly, 1 crashed, 2 bad arguments or configuration.
`;

const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

/** Resolves every credential profile (secrets from env/files, SNMP policy checked). Errors name the key. */
export function resolveCredentials(
  config: AgentConfig,
  file: string,
  sources: SecretSources,
): Map<string, ResolvedCredential> {
  const out = new Map<string, ResolvedCredential>();
  for (const [name, profile] of Object.entries(config.credentials)) {
    if (profile.type === "http") {
      const password = resolveSecret(profile.password, `credentials.${name}.password`, file, sources);
      out.set(name, { name, type: "http", user: profile.user, password });
    } else {
      out.set(
        name,
        resolveSnmpCredential(name, profile, (ref, key) => resolveSecret(ref, key, file, sources)),
      );
    }
  }
  const known = new Set(out.keys());
  const check = (names: string[], where: string): void => {
    for (const n of names) {
      if (!known.has(n)) {
        throw new PolyfleetError(
          "POLYFLEET_ERR_CONFIG_INVALID",
          `${file}: ${where}: no credential profile named "${n}"`,
        );
      }
    }
  };
  config.devices.forEach((d, i) => {
    check(d.credentials, `devices[${i}].credentials`);
  });
  check(config.discovery.credentials, "discovery.credentials");
  return out;
}

/** Broker settings with the password resolved and the TLS files read. */
export function resolveBroker(config: AgentConfig, file: string, sources: SecretSources): MqttLinkBroker {
  const b = config.broker;
  const read = (path: string, key: string): string => {
    try {
      return sources.readFile(path);
    } catch (cause) {
      throw new PolyfleetError("POLYFLEET_ERR_CONFIG_UNREADABLE", `${file}: ${key}: cannot read ${path}`, {
        cause,
      });
    }
  };
  return {
    url: b.url,
    keepaliveSec: b.keepaliveSec,
    protocolVersion: b.protocolVersion ?? "auto",
    ...(b.username ? { username: b.username } : {}),
    ...(b.password ? { password: resolveSecret(b.password, "broker.password", file, sources) } : {}),
    ...(b.ca ? { ca: read(b.ca, "broker.ca") } : {}),
    ...(b.cert ? { cert: read(b.cert, "broker.cert") } : {}),
    ...(b.key ? { key: read(b.key, "broker.key") } : {}),
  };
}

/** `provisioning.advertisedUrl`, when set, must be an http(s) URL without query: devices resolve paths against it. */
export function checkProvisioning(config: AgentConfig, file: string): void {
  const url = config.provisioning.advertisedUrl;
  if (url === undefined) return;
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (
    !parsed ||
    (parsed.protocol !== "http:" && parsed.protocol !== "https:") ||
    parsed.search ||
    parsed.hash
  ) {
    throw new PolyfleetError(
      "POLYFLEET_ERR_CONFIG_INVALID",
      `${file}: provisioning.advertisedUrl must be an http:// or https:// URL without query, got ${JSON.stringify(url)}`,
    );
  }
}

/** Entry point of `polyfleet-agent`. */
export async function main(argv = process.argv.slice(2)): Promise<void> {
  let values: {
    config?: string;
    "log-level"?: string;
    "check-config"?: boolean;
    version?: boolean;
    help?: boolean;
  };
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        config: { type: "string", short: "c" },
        "log-level": { type: "string" },
        "check-config": { type: "boolean" },
        version: { type: "boolean", short: "v" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    process.stderr.write(
      `polyfleet-agent: ${err instanceof Error ? err.message : String(err)}\n${AGENT_USAGE}`,
    );
    process.exitCode = 2;
    return;
  }
  if (values.help) {
    process.stdout.write(AGENT_USAGE);
    return;
  }
  if (values.version) {
    process.stdout.write(`${version()}\n`);
    return;
  }
  if (!values.config) {
    process.stderr.write(`polyfleet-agent: --config FILE is required\n${AGENT_USAGE}`);
    process.exitCode = 2;
    return;
  }
  const levelFlag = values["log-level"];
  if (levelFlag !== undefined && !LEVELS.includes(levelFlag)) {
    process.stderr.write(
      `polyfleet-agent: --log-level must be one of ${LEVELS.join("|")}, got ${levelFlag}\n`,
    );
    process.exitCode = 2;
    return;
  }

  let config: AgentConfig;
  let credentials: Map<string, ResolvedCredential>;
  let broker: MqttLinkBroker;
  try {
    config = loadAgentConfig(values.config);
    checkProvisioning(config, values.config);
    credentials = resolveCredentials(config, values.config, PROCESS_SECRETS);
    broker = resolveBroker(config, values.config, PROCESS_SECRETS);
  } catch (err) {
    const msg = isPolyfleetError(err) ? `${err.message} [${err.code}]` : String(err);
    process.stderr.write(`polyfleet-agent: ${msg}\n`);
    process.exitCode = 2;
    return;
  }
  const log = createLogger({
    level: (levelFlag ?? config.logLevel) as LogLevel,
    name: "polyfleet-agent",
    base: { agentId: config.agentId, siteId: config.siteId },
  });
  for (const [name, profile] of Object.entries(config.credentials)) {
    if (profile.type !== "http")
      for (const w of snmpPolicyWarnings(name, profile)) log.warn({ profile: name }, w);
  }
  if (values["check-config"]) {
    process.stdout.write(
      `${values.config}: OK — site ${config.siteId}, agent ${config.agentId}, ${config.devices.length} devices, ` +
        `${config.discovery.ranges.length} discovery ranges, ${credentials.size} credential profiles, broker ${config.broker.url}\n`,
    );
    return;
  }

  let agent: Agent;
  try {
    agent = buildAgent({
      config,
      credentials,
      broker,
      version: version(),
      log,
      clock: SYSTEM_CLOCK,
      ...(process.stderr.isTTY ? { progressOut: process.stderr } : {}),
    });
    await agent.start();
  } catch (err) {
    log.fatal({ err }, "agent failed to start");
    process.exitCode = isPolyfleetError(err) && err.code.startsWith("POLYFLEET_ERR_CONFIG") ? 2 : 1;
    return;
  }
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping");
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    void agent
      .stop()
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        log.error({ err }, "stop failed");
        process.exit(1);
      });
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));
  process.on("uncaughtException", (err) => {
    log.fatal({ err }, "uncaught exception");
    process.exit(1);
  });
  process.on("unhandledRejection", (err) => {
    log.error({ err }, "unhandled rejection");
  });
}

if (isProcessEntry(import.meta.url)) await main();
