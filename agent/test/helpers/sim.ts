import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runSimulator } from "@polyfleet/scripts";
import { type SimManifest, SimManifest as SimManifestSchema } from "@polyfleet/shared";
import type { ResolvedCredential } from "../../src/ports/credentials.js";
import type { DeviceTarget } from "../../src/ports/driver.js";

export type SimDevice = SimManifest["devices"][number];

/** A random loopback /24 so parallel test files never share addresses. */
export function randomSubnet(): string {
  return `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.0/24`;
}

/** A port in a range the kernel does not hand out as ephemeral ports (those start at 32768). */
export function randomPort(): number {
  return 20_000 + Math.floor(Math.random() * 10_000);
}

export interface SimHandle {
  manifest: SimManifest;
  /** Calls the simulator's control API (faults, reboot, call) and returns the parsed JSON answer. */
  control(method: "GET" | "POST" | "PUT", path: string, body?: unknown): Promise<unknown>;
  stop(): Promise<void>;
}

/** Starts the simulator exactly as the CLI does (in this process) and reads back its manifest. */
export async function startSim(args: string[]): Promise<SimHandle> {
  const dir = await mkdtemp(join(tmpdir(), "polyfleet-agent-sim-"));
  const file = join(dir, "manifest.json");
  const sim = await runSimulator(
    [
      "--subnet",
      randomSubnet(),
      "--https-port",
      String(randomPort()),
      "--snmp-port",
      String(randomPort()),
      "--log-level",
      "silent",
      "--manifest",
      file,
      ...args,
    ],
    () => {},
  );
  if (!sim) throw new Error("simulator did not start");
  const manifest = SimManifestSchema.parse(JSON.parse(await readFile(file, "utf8")));
  return {
    manifest,
    async control(method, path, body) {
      const res = await fetch(`${manifest.control}${path}`, {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`control ${method} ${path}: ${res.status} ${text}`);
      return text ? (JSON.parse(text) as unknown) : undefined;
    },
    async stop() {
      await sim.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The agent's view of a simulated device: address, ports and the credentials from the manifest. */
export function targetOf(
  d: SimDevice,
  opts: { withSnmp?: boolean; extraCredentials?: ResolvedCredential[] } = {},
): DeviceTarget {
  const credentials: ResolvedCredential[] = [...(opts.extraCredentials ?? [])];
  credentials.push({ name: "admin", type: "http", user: d.admin.user, password: d.admin.password });
  const snmp = d.snmp;
  if (opts.withSnmp !== false && snmp) {
    if (snmp.version === "3") {
      credentials.push({
        name: "snmp",
        type: "snmpv3",
        user: snmp.user,
        level: "authPriv",
        authProtocol: snmp.authProtocol === "sha" ? "sha1" : "sha256",
        authKey: snmp.authKey,
        privProtocol: "aes128",
        privKey: snmp.privKey,
      });
    } else {
      credentials.push({ name: "snmp", type: "snmpv2c", community: snmp.community });
    }
  }
  return {
    deviceId: d.id,
    address: d.address,
    httpsPort: d.httpsPort,
    snmpPort: d.snmpPort ?? 161,
    credentials,
    tags: [],
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A poll signal that aborts after `ms` (the scheduler's per-device timeout). */
export function pollOpts(ms = 10_000): { signal: AbortSignal } {
  return { signal: AbortSignal.timeout(ms) };
}
