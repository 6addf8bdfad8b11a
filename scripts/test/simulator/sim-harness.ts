import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type SimManifest, SimManifest as SimManifestSchema } from "@polyfleet/shared";
import { runSimulator } from "../../src/simulator/cli.js";

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
  stop(): Promise<void>;
}

/** Starts the simulator exactly as the CLI does (in this process) and reads back its manifest. */
export async function startSim(args: string[]): Promise<SimHandle> {
  const dir = await mkdtemp(join(tmpdir(), "polyfleet-sim-test-"));
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
