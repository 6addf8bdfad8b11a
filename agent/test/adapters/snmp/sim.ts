import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runSimulator } from "@polyfleet/scripts";
import { type SimManifest, SimManifest as SimManifestSchema } from "@polyfleet/shared";
import type { SnmpCredential } from "../../../src/ports/snmp.js";

/** A random loopback /24 so parallel test files never share addresses. */
export function randomSubnet(): string {
  return `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.0/24`;
}

/** A port outside the kernel's ephemeral range. */
export function randomPort(): number {
  return 20_000 + Math.floor(Math.random() * 10_000);
}

export interface SimHandle {
  manifest: SimManifest;
  stop(): Promise<void>;
}

/** Starts the simulator in this process, as scripts/test/simulator/sim-harness.ts does. */
export async function startSim(args: string[]): Promise<SimHandle> {
  const dir = await mkdtemp(join(tmpdir(), "polyfleet-agent-snmp-sim-"));
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
    async stop() {
      await sim.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The v3 credential of a simulated VideoOS device, as the agent would resolve it. */
export function simV3Credential(
  d: SimManifest["devices"][number],
  name = "sim-v3",
): Extract<SnmpCredential, { type: "snmpv3" }> {
  const s = d.snmp;
  if (s?.version !== "3") throw new Error(`${d.id} has no SNMPv3`);
  return {
    name,
    type: "snmpv3",
    user: s.user,
    level: "authPriv",
    authProtocol: s.authProtocol === "sha" ? "sha1" : "sha256",
    authKey: s.authKey,
    privProtocol: "aes128",
    privKey: s.privKey,
  };
}
