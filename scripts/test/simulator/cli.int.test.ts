import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSimArgs } from "../../src/simulator/cli.js";
import { type SimHandle, startSim } from "./sim-harness.js";

const run = promisify(execFile);
let sim: SimHandle;

beforeAll(async () => {
  sim = await startSim([
    "--devices",
    "30",
    "--seed",
    "5",
    "--snmp-v2c",
    "--fault",
    "cameraDown=1",
    "--fault",
    "noAnswer=10%",
  ]);
});
afterAll(async () => {
  await sim?.stop();
});

const phone = () => {
  const d = sim.manifest.devices.find((x) => x.family === "uc" && x.faults.length === 0);
  if (!d) throw new Error("no healthy phone");
  return d;
};
const videoBar = () => {
  const d = sim.manifest.devices.find((x) => x.family === "videoos" && !x.faults.includes("noAnswer"));
  if (d?.snmp?.version !== "3" || d.snmpPort === null) throw new Error("no video device with SNMP");
  return { d, snmp: d.snmp, port: d.snmpPort };
};

async function control(
  path: string,
  method = "GET",
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const r = await fetch(`${sim.manifest.control}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, json: await r.json() };
}

describe("polyfleet-sim as a user runs it", () => {
  it("writes a manifest describing every device, with faults as asked", () => {
    const m = sim.manifest;
    expect(m.devices).toHaveLength(30);
    expect(new Set(m.devices.map((d) => d.address)).size).toBe(30);
    expect(new Set(m.devices.map((d) => d.mac)).size).toBe(30);
    expect(m.devices.filter((d) => d.faults.includes("noAnswer"))).toHaveLength(3);
    const cam = m.devices.filter((d) => d.faults.includes("cameraDown"));
    expect(cam).toHaveLength(1);
    expect(cam[0]?.family).toBe("videoos");
    for (const d of m.devices) {
      expect(d.snmpPort === null).toBe(d.family === "uc");
    }
  });

  it("curl talks to a simulated phone exactly as to a real one", async () => {
    const d = phone();
    const { stdout } = await run("curl", [
      "-sk",
      "-u",
      `Polycom:${d.admin.password}`,
      `https://${d.address}:${d.httpsPort}/api/v2/mgmt/device/info`,
    ]);
    const body = JSON.parse(stdout) as { Status: string; data: { ModelNumber: string; MACAddress: string } };
    expect(body.Status).toBe("2000");
    expect(body.data.ModelNumber).toBe(d.model);
    expect(body.data.MACAddress).toBe(d.mac);
  });

  it("snmpget and snmpwalk (Net-SNMP) talk to a simulated video bar over v3 authPriv and v2c", async () => {
    const { d, snmp, port } = videoBar();
    if (snmp.version !== "3") throw new Error("v3 expected");
    const v3 = [
      "-v3",
      "-l",
      "authPriv",
      "-u",
      snmp.user,
      "-a",
      snmp.authProtocol === "sha256" ? "SHA-256" : "SHA",
      "-A",
      snmp.authKey,
      "-x",
      "AES",
      "-X",
      snmp.privKey,
      "-On",
      "-t",
      "2",
      "-r",
      "1",
    ];
    const get = await run("snmpget", [
      ...v3,
      `${d.address}:${port}`,
      "1.3.6.1.2.1.1.5.0",
      "1.3.6.1.4.1.13885.101.1.1.5.0",
    ]);
    expect(get.stdout).toContain(d.serial);
    const walk = await run("snmpwalk", [...v3, `${d.address}:${port}`, "1.3.6.1.4.1.13885.101.1.1"]);
    expect(walk.stdout.split("\n").filter(Boolean).length).toBeGreaterThanOrEqual(5);
    const v2 = await run("snmpget", [
      "-v2c",
      "-c",
      snmp.community ?? "",
      "-On",
      "-t",
      "2",
      "-r",
      "1",
      `${d.address}:${port}`,
      "1.3.6.1.2.1.1.3.0",
    ]);
    expect(v2.stdout).toMatch(/Timeticks/);
  });

  it("the control API switches faults at run time, with the effect visible to clients", async () => {
    const d = phone();
    const url = `https://${d.address}:${d.httpsPort}/api/v1/mgmt/lineInfo`;
    const curl = async () =>
      JSON.parse((await run("curl", ["-sk", "-u", `Polycom:${d.admin.password}`, url])).stdout) as {
        data: { RegistrationStatus: string }[];
      };
    expect((await curl()).data[0]?.RegistrationStatus).toBe("registered");
    const set = await control(`/devices/${d.address}/faults`, "POST", { add: ["sipUnregistered"] });
    expect(set.status).toBe(200);
    expect((await curl()).data[0]?.RegistrationStatus).toBe("unregistered");
    await control(`/devices/${d.id}/faults`, "PUT", { faults: [] });
    expect((await curl()).data[0]?.RegistrationStatus).toBe("registered");
    const listed = (await control("/devices")).json as { devices: { id: string; faults: string[] }[] };
    expect(listed.devices.find((x) => x.id === d.id)?.faults).toEqual([]);
  });

  it("the control API rejects a bad body naming the field, and unknown devices with 404", async () => {
    const bad = await control(`/devices/${phone().id}/faults`, "POST", { add: ["notAFault"] });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.json)).toContain("add[0]");
    expect((await control("/devices/nope/reboot", "POST", {})).status).toBe(404);
  });

  it("a control-API reboot takes the device away and brings it back with uptime reset", async () => {
    const d = phone();
    const before = (await control(`/devices/${d.id}`)).json as { uptimeSec: number };
    expect(before.uptimeSec).toBeGreaterThan(3000);
    expect((await control(`/devices/${d.id}/reboot`, "POST", { reason: "test" })).status).toBe(202);
    const during = (await control(`/devices/${d.id}`)).json as { up: boolean };
    expect(during.up).toBe(false);
  });
});

describe("polyfleet-sim arguments", () => {
  it("names the bad flag", () => {
    expect(() => parseSimArgs(["--devices", "0"])).toThrow(/--devices/);
    expect(() => parseSimArgs(["--fault", "fire"])).toThrow(/--fault "fire"/);
    expect(() => parseSimArgs(["--trap-target", "nohost"])).toThrow(/--trap-target/);
    expect(() => parseSimArgs(["--bogus"])).toThrow(/bogus/);
  });
  it("parses fault selectors", () => {
    const a = parseSimArgs([
      "--fault",
      "noAnswer=10%",
      "--fault",
      "slow=3",
      "--fault",
      "cameraDown@127.0.10.5,127.0.10.6",
      "--fault",
      "http500",
    ]);
    expect(a.fleet.faults).toEqual([
      { fault: "noAnswer", percent: 10 },
      { fault: "slow", count: 3 },
      { fault: "cameraDown", targets: ["127.0.10.5", "127.0.10.6"] },
      { fault: "http500", count: 1 },
    ]);
  });
});
