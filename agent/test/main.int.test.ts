import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const MAIN = new URL("../dist/main.js", import.meta.url).pathname;
const SAMPLE = new URL("../agent.sample.yaml", import.meta.url).pathname;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "polyfleet-agent-main-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function agent(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [MAIN, ...args], {
      env: { PATH: process.env.PATH ?? "", ...env },
      timeout: 20_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? -1, stdout: err.stdout ?? "", stderr: err.stderr ?? "" };
  }
}

const SECRETS = {
  POLYFLEET_BROKER_PASSWORD: "broker-secret-1",
  POLY_PHONE_ADMIN_PASSWORD: "phone-secret-2",
  POLY_SNMP_AUTH_KEY: "snmp-auth-secret-3",
  POLY_SNMP_PRIV_KEY: "snmp-priv-secret-4",
};

async function config(name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

describe("polyfleet-agent CLI", () => {
  it("--help documents every flag", async () => {
    const r = await agent(["--help"]);
    expect(r.code).toBe(0);
    for (const flag of ["--config", "--log-level", "--check-config", "--version", "--help"])
      expect(r.stdout).toContain(flag);
  });

  it("--check-config validates the sample config once its secrets resolve, printing no secret", async () => {
    const pwFile = join(dir, "video.pw");
    await writeFile(pwFile, "video-secret-5\n");
    const text = (await import("node:fs"))
      .readFileSync(SAMPLE, "utf8")
      .replace("/etc/polyfleet/video-admin.pw", pwFile)
      .replace(/^\s+ca: .*$/m, "");
    const file = await config("sample.yaml", text);
    const r = await agent(["--config", file, "--check-config"], SECRETS);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("OK — site hq-berlin");
    for (const s of [...Object.values(SECRETS), "video-secret-5"])
      expect(r.stdout + r.stderr).not.toContain(s);
  });

  it("a missing secret stops the agent naming the file and key, exit 2", async () => {
    const file = await config(
      "nosecret.yaml",
      "siteId: s\nagentId: a\nbroker: { url: 'mqtt://127.0.0.1:1' }\ncredentials:\n  p: { type: http, user: Polycom, password: { env: NOT_SET_ANYWHERE } }\n",
    );
    const r = await agent(["--config", file, "--check-config"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `${file}: credentials.p.password: environment variable NOT_SET_ANYWHERE is not set`,
    );
  });

  it("refuses MD5 SNMPv3 and unknown profile names with a clear error, without echoing keys", async () => {
    const md5 = await config(
      "md5.yaml",
      "siteId: s\nagentId: a\nbroker: { url: 'mqtt://127.0.0.1:1' }\ncredentials:\n  v3: { type: snmpv3, user: u, authProtocol: md5, authKey: topsecretkey1, privKey: topsecretkey2 }\n",
    );
    const r = await agent(["--config", md5, "--check-config"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/v3.*MD5|MD5.*v3/i);
    expect(r.stderr).toContain("POLYFLEET_ERR_SNMP_INSECURE");
    expect(r.stderr).not.toContain("topsecretkey");

    const unknown = await config(
      "unknown.yaml",
      "siteId: s\nagentId: a\nbroker: { url: 'mqtt://127.0.0.1:1' }\ndevices:\n  - { address: 10.0.0.1, credentials: [nope] }\n",
    );
    const u = await agent(["--config", unknown, "--check-config"]);
    expect(u.code).toBe(2);
    expect(u.stderr).toContain(`${unknown}: devices[0].credentials: no credential profile named "nope"`);
  });

  it("a typo in the file names the key; a bad flag is a usage error", async () => {
    const file = await config("typo.yaml", "siteId: s\nagentId: a\nbrokr: { url: 'mqtt://127.0.0.1:1' }\n");
    const r = await agent(["--config", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file}: brokr`);
    expect((await agent(["--config", file, "--log-level", "loud"])).code).toBe(2);
    expect((await agent(["--bogus"])).code).toBe(2);
  });
});
