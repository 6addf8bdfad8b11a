import { writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { AgentConfig, type AgentConfigInput, type SimManifest } from "@polyfleet/shared";
import { stringify } from "yaml";

export interface AgentConfigOptions {
  broker: string;
  siteId: string;
  agentId: string;
  /** Where the agent listens for the simulated devices' traps. */
  trapPort: number;
  pollIntervalSec: number;
  outboxDir: string;
  opsPort: number;
}

/**
 * A ready `agent.yaml` for a simulated fleet: one credential profile per kind, every device listed with its
 * driver and ports, discovery over the fleet's subnet. Validated by the shared AgentConfig schema.
 */
export function agentConfigFor(manifest: SimManifest, opts: AgentConfigOptions): AgentConfigInput {
  const phone = manifest.devices.find((d) => d.family === "uc");
  const video = manifest.devices.find((d) => d.family === "videoos");
  const snmp = manifest.devices.find((d) => d.snmp?.version === "3")?.snmp;
  const credentials: NonNullable<AgentConfigInput["credentials"]> = {};
  if (phone)
    credentials["sim-phones"] = { type: "http", user: phone.admin.user, password: phone.admin.password };
  if (video)
    credentials["sim-video-rest"] = { type: "http", user: video.admin.user, password: video.admin.password };
  if (snmp?.version === "3") {
    credentials["sim-video-snmp"] = {
      type: "snmpv3",
      user: snmp.user,
      authProtocol: snmp.authProtocol === "sha" ? "sha1" : "sha256",
      allowLegacySha1: snmp.authProtocol === "sha",
      authKey: snmp.authKey,
      privProtocol: "aes128",
      privKey: snmp.privKey,
    };
  }
  const config: AgentConfigInput = {
    siteId: opts.siteId,
    agentId: opts.agentId,
    broker: { url: opts.broker },
    credentials,
    devices: manifest.devices.map((d) => ({
      address: d.address,
      driver: d.family === "uc" ? ("poly-ucs" as const) : ("poly-videoos" as const),
      httpsPort: d.httpsPort,
      ...(d.snmpPort !== null ? { snmpPort: d.snmpPort } : {}),
      credentials:
        d.family === "uc"
          ? ["sim-phones"]
          : d.snmp
            ? ["sim-video-rest", "sim-video-snmp"]
            : ["sim-video-rest"],
      tags: ["simulated", d.model],
    })),
    discovery: {
      ranges: [manifest.subnet],
      credentials: Object.keys(credentials),
      httpsPorts: [...new Set(manifest.devices.map((d) => d.httpsPort))],
      snmpPorts: [...new Set(manifest.devices.flatMap((d) => (d.snmpPort === null ? [] : [d.snmpPort])))],
      intervalSec: 0,
    },
    polling: { intervalSec: opts.pollIntervalSec },
    outbox: { dir: opts.outboxDir },
    // The site provisioning server the simulated devices fetch firmware from: loopback, a free port,
    // images beside the outbox.
    provisioning: { host: "127.0.0.1", port: 0, dir: join(dirname(opts.outboxDir), "firmware") },
    traps: { enabled: true, host: "127.0.0.1", port: opts.trapPort },
    http: { host: "127.0.0.1", port: opts.opsPort },
  };
  AgentConfig.parse(config);
  return config;
}

/** Writes the config as YAML, mode 0600 (it holds the devices' credentials). */
export async function writeAgentConfig(file: string, config: AgentConfigInput): Promise<void> {
  const header = "# Written by polyfleet-sim --agent-config: a ready agent config for the simulated fleet.\n";
  await writeFile(file, header + stringify(config), { mode: 0o600 });
}
