import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runSimulator } from "@polyfleet/scripts";
import { freeTcpPort, freeUdpPort } from "@polyfleet/scripts/testing";
import { type SimManifest, SimManifest as SimManifestSchema } from "@polyfleet/shared";
import type { ResolvedCredential } from "../../../src/ports/credentials.js";

export interface SimFleet {
  manifest: SimManifest;
  subnet: string;
  httpsPort: number;
  snmpPort: number;
  stop(): Promise<void>;
}

/** A random loopback /24 (127.x.y.0/24) so parallel test files never share addresses. */
export function randomLoopback24(): string {
  return `127.${20 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.0/24`;
}

/** Starts the simulator in this process, as `polyfleet-sim` would, on a random loopback /24. */
export async function startFleet(args: string[]): Promise<SimFleet> {
  const dir = await mkdtemp(join(tmpdir(), "polyfleet-disc-test-"));
  const file = join(dir, "manifest.json");
  const subnet = randomLoopback24();
  const httpsPort = await freeTcpPort();
  const snmpPort = await freeUdpPort();
  const sim = await runSimulator(
    [
      "--subnet",
      subnet,
      "--https-port",
      String(httpsPort),
      "--snmp-port",
      String(snmpPort),
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
    subnet,
    httpsPort,
    snmpPort,
    async stop() {
      await sim.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The fleet's credentials as main.ts would resolve them: the phones' and video bars' admin, SNMPv3. */
export function fleetCredentials(m: SimManifest): ResolvedCredential[] {
  const creds: ResolvedCredential[] = [];
  const uc = m.devices.find((d) => d.family === "uc");
  const video = m.devices.find((d) => d.family === "videoos");
  if (uc) creds.push({ name: "phones", type: "http", user: uc.admin.user, password: uc.admin.password });
  if (video)
    creds.push({ name: "video", type: "http", user: video.admin.user, password: video.admin.password });
  const v3 = m.devices.find((d) => d.snmp?.version === "3")?.snmp;
  if (v3?.version === "3") {
    creds.push({
      name: "sim-v3",
      type: "snmpv3",
      user: v3.user,
      level: "authPriv",
      authProtocol: v3.authProtocol === "sha" ? "sha1" : "sha256",
      authKey: v3.authKey,
      privProtocol: "aes128",
      privKey: v3.privKey,
    });
  }
  return creds;
}
