import { execFile } from "node:child_process";
import dgram from "node:dgram";
import { freeUdpPort, waitFor } from "@polyfleet/scripts/testing";
import { AgentEvent } from "@polyfleet/shared";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  SnmpTrapReceiver,
  TRAPS_RECEIVED_METRIC,
  TRAPS_REJECTED_METRIC,
} from "../../../src/adapters/snmp/trap-receiver.js";
import { PromRegistry } from "../../../src/core/prom-registry.js";
import type { ResolvedCredential } from "../../../src/ports/credentials.js";
import type { EventBody, TelemetrySink } from "../../../src/ports/sink.js";
import { communityMessage, oid, tlv, varbind } from "./ber.js";
import { type SimHandle, simV3Credential, startSim } from "./sim.js";

const N = "1.3.6.1.4.1.13885.101.0";
const COMMUNITY = `trap-${Math.random().toString(36).slice(2, 10)}`;
const V3_USER: Extract<ResolvedCredential, { type: "snmpv3" }> = {
  name: "cli-v3",
  type: "snmpv3",
  user: "trapper",
  level: "authPriv",
  authProtocol: "sha256",
  authKey: "trap-auth-key-1",
  privProtocol: "aes128",
  privKey: "trap-priv-key-1",
};

class MemorySink implements TelemetrySink {
  events: EventBody[] = [];
  appendReading(): number {
    throw new Error("no readings expected");
  }
  appendEvent(e: EventBody): number {
    this.events.push(e);
    return this.events.length;
  }
}

type Trap = Extract<EventBody, { type: "trap" }>;

function snmptrap(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      "/usr/bin/snmptrap",
      ["-M", "/dev/null", "-m", "", ...args],
      { timeout: 10_000, env: { ...process.env, MIBS: "" } },
      (err) => (err ? reject(err) : resolve()),
    );
  });
}

describe("SnmpTrapReceiver", () => {
  let sim: SimHandle;
  let port: number;
  let receiver: SnmpTrapReceiver;
  const sink = new MemorySink();
  const metrics = new PromRegistry();
  const rejected = (reason: string) => metrics.get(TRAPS_REJECTED_METRIC, { reason });
  const traps = () => sink.events.filter((e): e is Trap => e.type === "trap");

  beforeAll(async () => {
    port = await freeUdpPort();
    sim = await startSim(["--devices", "2", "--models", "videoos", "--trap-target", `127.0.0.1:${port}`]);
    const [d0] = sim.manifest.devices;
    if (!d0) throw new Error("no device");
    const byAddress = new Map(sim.manifest.devices.map((d) => [d.address, d.id]));
    receiver = new SnmpTrapReceiver({
      host: "127.0.0.1",
      port,
      // device 0's v3 user (device 1 has the same user name with other keys: its traps must be refused)
      credentials: [simV3Credential(d0), V3_USER, { name: "v2", type: "snmpv2c", community: COMMUNITY }],
      sink,
      metrics,
      lookupDevice: (a) => byAddress.get(a),
    });
    await receiver.start();
  });
  afterAll(async () => {
    await receiver?.stop();
    await sim?.stop();
  });

  it("turns a simulator v3 trap (control API) into a contract-valid trap event with the deviceId", async () => {
    const d0 = sim.manifest.devices[0];
    const res = await fetch(`${sim.manifest.control}/devices/${d0?.id}/trap`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ trap: 95, kind: "problem", summary: "provisioning server unreachable" }),
    });
    expect(res.status).toBe(202);
    await waitFor(() => traps().some((t) => t.trapOid === `${N}.95`), 5000, "trap 95");
    const t = traps().find((x) => x.trapOid === `${N}.95`) as Trap;
    expect(t).toMatchObject({
      name: "provisioningServerDown",
      kind: "problem",
      source: d0?.address,
      deviceId: d0?.id,
    });
    expect(t.varbinds.some((v) => v.value === "provisioning server unreachable")).toBe(true);
    expect(AgentEvent.safeParse({ v: 1, agentId: "a", siteId: "s", seq: 1, ts: 1, ...t }).success).toBe(true);
  });

  it("gets primaryCameraDown/OK from the cameraDown fault", async () => {
    const d0 = sim.manifest.devices[0];
    const post = (body: unknown) =>
      fetch(`${sim.manifest.control}/devices/${d0?.id}/faults`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    expect((await post({ add: ["cameraDown"] })).ok).toBe(true);
    await waitFor(() => traps().some((t) => t.name === "primaryCameraDown"), 5000, "trap 76");
    expect((await post({ remove: ["cameraDown"] })).ok).toBe(true);
    await waitFor(() => traps().some((t) => t.name === "primaryCameraOK"), 5000, "trap 77");
    expect(traps().find((t) => t.name === "primaryCameraOK")).toMatchObject({
      kind: "resolution",
      deviceId: d0?.id,
    });
  });

  it("accepts the other device's trap too (the fleet shares one v3 user and keys) with its own deviceId", async () => {
    const d1 = sim.manifest.devices[1];
    await fetch(`${sim.manifest.control}/devices/${d1?.id}/trap`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ trap: 72, kind: "problem", summary: "sip" }),
    });
    await waitFor(() => traps().some((t) => t.trapOid === `${N}.72`), 5000, "trap 72");
    expect(traps().find((t) => t.trapOid === `${N}.72`)).toMatchObject({
      name: "sipRegistrationFailed",
      source: d1?.address,
      deviceId: d1?.id,
    });
  });

  it("receives snmptrap (Net-SNMP CLI) v2c and v3 authPriv SHA-256/AES", async () => {
    await snmptrap([
      "-v2c",
      "-c",
      COMMUNITY,
      `127.0.0.1:${port}`,
      "",
      `${N}.85`,
      "1.3.6.1.4.1.13885.101.1.99.6.0",
      "s",
      "loss 12%",
    ]);
    await waitFor(() => traps().some((t) => t.trapOid === `${N}.85`), 5000, "v2c trap");
    expect(traps().find((t) => t.trapOid === `${N}.85`)).toMatchObject({
      name: "packetLossExcessive",
      kind: "problem",
      severity: "warning",
      source: "127.0.0.1",
      varbinds: [{ oid: "1.3.6.1.4.1.13885.101.1.99.6.0", value: "loss 12%" }],
    });
    expect(traps().find((t) => t.trapOid === `${N}.85`)?.deviceId).toBeUndefined();
    await snmptrap([
      "-v3",
      "-l",
      "authPriv",
      "-u",
      V3_USER.user,
      "-a",
      "SHA-256",
      "-A",
      V3_USER.authKey,
      "-x",
      "AES",
      "-X",
      V3_USER.privKey,
      "-e",
      "0x8000000001020304",
      `127.0.0.1:${port}`,
      "",
      `${N}.86`,
    ]);
    await waitFor(() => traps().some((t) => t.trapOid === `${N}.86`), 5000, "v3 trap");
    expect(traps().find((t) => t.trapOid === `${N}.86`)).toMatchObject({
      name: "packetLossOK",
      kind: "resolution",
    });
  });

  it("rejects and counts a wrong community, an unknown v3 user and a wrong v3 key", async () => {
    const b = { c: rejected("unknown_community"), u: rejected("unknown_user"), a: rejected("bad_auth") };
    const count = traps().length;
    await snmptrap(["-v2c", "-c", "not-our-community", `127.0.0.1:${port}`, "", `${N}.72`]);
    const v3 = (user: string, key: string) =>
      snmptrap([
        "-v3",
        "-l",
        "authPriv",
        "-u",
        user,
        "-a",
        "SHA-256",
        "-A",
        key,
        "-x",
        "AES",
        "-X",
        V3_USER.privKey,
        "-e",
        "0x8000000001020305",
        `127.0.0.1:${port}`,
        "",
        `${N}.72`,
      ]);
    await v3("nobody", V3_USER.authKey);
    await v3(V3_USER.user, "wrong-auth-key");
    await waitFor(
      () =>
        rejected("unknown_community") > b.c && rejected("unknown_user") > b.u && rejected("bad_auth") > b.a,
      5000,
      "three rejections",
    );
    expect(traps().length).toBe(count);
  });

  it("fuzz: random and truncated datagrams never stop the receiver and are each counted", async () => {
    const s = dgram.createSocket("udp4");
    await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
    const valid = communityMessage(1, COMMUNITY, 0xa7, 1, [
      tlv(0x30, oid("1.3.6.1.2.1.1.3.0"), tlv(0x43, Buffer.from([1]))),
      tlv(0x30, oid("1.3.6.1.6.3.1.1.4.1.0"), oid(`${N}.81`)),
      varbind("1.3.6.1.4.1.13885.101.1.99.6.0", { type: "str", v: "jitter" }),
    ]);
    const total = () => metrics.total(TRAPS_REJECTED_METRIC);
    const received = () => metrics.total(TRAPS_RECEIVED_METRIC);
    const before = total();
    const receivedBefore = received();
    let sent = 0;
    let framingBroken = 0;
    const datagrams = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 300 }).map((a) => Buffer.from(a)),
      fc.integer({ min: 1, max: valid.length - 1 }).map((n) => valid.subarray(0, n)),
      fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })).map(([at, v]) => {
        const m = Buffer.from(valid);
        m[at % m.length] = v;
        return m; // may still be a valid trap (a changed character in a value)
      }),
      fc.uint8Array({ minLength: 1, maxLength: 4 }).map((tail) => Buffer.concat([valid, Buffer.from(tail)])),
    );
    const malformedBefore = rejected("malformed");
    await fc.assert(
      fc.asyncProperty(datagrams, async (d) => {
        await new Promise<void>((r) => s.send(d, port, "127.0.0.1", () => r()));
        sent++;
        if (d.length > valid.length || (d.length < valid.length && valid.subarray(0, d.length).equals(d)))
          framingBroken++;
      }),
      { numRuns: 300 },
    );
    // every datagram is either a trap event or a counted rejection
    await waitFor(() => total() - before + (received() - receivedBefore) >= sent, 10_000, `${sent} outcomes`);
    expect(total() - before + (received() - receivedBefore)).toBe(sent);
    // truncated ones and ones with trailing bytes are all malformed
    expect(rejected("malformed") - malformedBefore).toBeGreaterThanOrEqual(framingBroken);
    expect(framingBroken).toBeGreaterThan(0);
    // still receiving
    await new Promise<void>((r) => s.send(valid, port, "127.0.0.1", () => r()));
    await waitFor(() => traps().some((t) => t.trapOid === `${N}.81`), 5000, "valid trap after fuzz");
    await new Promise<void>((r) => s.close(() => r()));
  });

  it("start() rejects when the port is taken, stop() is idempotent", async () => {
    const other = new SnmpTrapReceiver({ host: "127.0.0.1", port, credentials: [], sink, metrics });
    await expect(other.start()).rejects.toThrow(/EADDRINUSE/);
    await other.stop();
    await other.stop();
  });
});
