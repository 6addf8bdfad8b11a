import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  type AlertRulesFile,
  CollectorConfig,
  createLogger,
  isPolyfleetError,
  isProcessEntry,
  type LogLevel,
  loadConfigFile,
  PolyfleetError,
  resolveSecret,
  SYSTEM_CLOCK,
} from "@polyfleet/shared";
import { buildCollector, type Collector } from "./app.js";
import { loadRules, rulesFile } from "./core/alerts/index.js";

export const COLLECTOR_USAGE = `polyfleet-collector — ingest, inventory, alerts, audit, REST API and NOC dashboard

Usage: polyfleet-collector [--config FILE] [options]

  -c, --config FILE      collector configuration (YAML/JSON; see collector/collector.sample.yaml);
                         without it the embedded defaults are used (aedes broker on 127.0.0.1:1883,
                         SQLite in ./.polyfleet, in-memory metrics, API on 127.0.0.1:8080)
  --log-level LEVEL      fatal|error|warn|info|debug|trace|silent (overrides logLevel in the file)
  --check-config         validate the configuration, rules and secrets, then exit
  -v, --version          print the version and exit
  -h, --help             this text

Exit codes: 0 stopped cleanly, 1 crashed, 2 bad arguments or configuration.
`;

function version(): string {
  return (
    JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
  ).version;
}

/** Loads the config and the rules file; errors name the file, the key and the reason. */
export function loadCollectorConfig(file: string | undefined): {
  config: CollectorConfig;
  rules: AlertRulesFile;
  file: string;
} {
  const config = file ? loadConfigFile(CollectorConfig, file) : CollectorConfig.parse({});
  let rules: AlertRulesFile;
  const rulesPath = config.alerts.rulesFile;
  if (rulesPath) {
    let text: string;
    try {
      text = readFileSync(rulesPath, "utf8");
    } catch (cause) {
      throw new PolyfleetError(
        "POLYFLEET_ERR_CONFIG_UNREADABLE",
        `${rulesPath}: cannot read the rules file (alerts.rulesFile)`,
        { cause },
      );
    }
    rules = loadRules(text, rulesPath);
  } else {
    rules = rulesFile({});
  }
  return { config, rules, file: file ?? "(defaults)" };
}

/** Entry point of `polyfleet-collector`. Returns the running collector (tests) or undefined. */
export async function main(argv = process.argv.slice(2)): Promise<Collector | undefined> {
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
      `polyfleet-collector: ${err instanceof Error ? err.message : String(err)}\n${COLLECTOR_USAGE}`,
    );
    process.exitCode = 2;
    return undefined;
  }
  if (values.help) {
    process.stdout.write(COLLECTOR_USAGE);
    return undefined;
  }
  if (values.version) {
    process.stdout.write(`${version()}\n`);
    return undefined;
  }
  const levels = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];
  const level = values["log-level"];
  if (level !== undefined && !levels.includes(level)) {
    process.stderr.write(
      `polyfleet-collector: --log-level must be one of ${levels.join("|")}, got ${level}\n`,
    );
    process.exitCode = 2;
    return undefined;
  }
  let loaded: ReturnType<typeof loadCollectorConfig>;
  try {
    loaded = loadCollectorConfig(values.config);
  } catch (err) {
    process.stderr.write(
      `polyfleet-collector: ${isPolyfleetError(err) ? `${err.message} [${err.code}]` : String(err)}\n`,
    );
    process.exitCode = 2;
    return undefined;
  }
  const { config, rules, file } = loaded;
  const log = createLogger({ level: (level ?? config.logLevel) as LogLevel, name: "polyfleet-collector" });
  const stateDir =
    config.store.type === "sqlite" ? dirname(resolve(config.store.path)) : resolve(".polyfleet");
  let collector: Collector;
  try {
    collector = buildCollector({
      config,
      rules,
      stateDir,
      resolveSecret: (ref, key) => resolveSecret(ref, key, file),
      version: version(),
      log,
      clock: SYSTEM_CLOCK,
    });
    if (values["check-config"]) {
      process.stdout.write(
        `${file}: OK — store ${config.store.type}, metrics ${config.metrics.type}, broker ${config.broker.type}, ${rules.rules.length} rules\n`,
      );
      return undefined;
    }
    await collector.start();
  } catch (err) {
    const configError = isPolyfleetError(err) && /CONFIG|SECRET/.test(err.code);
    if (configError) process.stderr.write(`polyfleet-collector: ${(err as Error).message}\n`);
    log.fatal({ err }, "collector failed to start");
    process.exitCode = configError ? 2 : 1;
    return undefined;
  }
  process.stdout.write(
    `polyfleet collector: API and dashboard ${collector.apiUrl}   broker ${collector.brokerUrl}\n`,
  );
  return collector;
}

/** Stops on SIGTERM/SIGINT. */
export function stopOnSignals(stop: () => Promise<void>, log?: { error(o: object, m: string): void }): void {
  let stopping = false;
  const handler = (): void => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    void stop()
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        log?.error({ err }, "stop failed");
        process.exit(1);
      });
  };
  process.once("SIGTERM", handler);
  process.once("SIGINT", handler);
}

if (isProcessEntry(import.meta.url)) {
  const collector = await main();
  if (collector)
    stopOnSignals(() => collector.stop(), {
      error: (o, m) => process.stderr.write(`${m}: ${JSON.stringify(o)}\n`),
    });
}
