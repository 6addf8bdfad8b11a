import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SYSTEM_CLOCK } from "@polyfleet/shared";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProvisioningServer } from "../../../src/adapters/provisioning/provisioning-server.js";
import { PromRegistry } from "../../../src/core/prom-registry.js";
import type { ProvisioningEntry } from "../../../src/ports/update.js";

const SHA = "d".repeat(64);
const OTHER_SHA = "e".repeat(64);
const quiet = { debug: () => {}, info: () => {}, warn: () => {} };

/** One raw HTTP/1.1 request (no client-side URL normalisation): status and body. */
function raw(port: number, method: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    sock.on("data", (c) => chunks.push(c));
    sock.on("error", reject);
    sock.on("close", () => {
      const text = Buffer.concat(chunks).toString("latin1");
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ status, body: text.slice(text.indexOf("\r\n\r\n") + 4) });
    });
    sock.end(`${method} ${path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n`);
  });
}

describe("ProvisioningServer", () => {
  let dir: string;
  let server: ProvisioningServer;
  let port: number;
  let image: Buffer;
  const metrics = new PromRegistry();
  const delivered: number[] = [];
  let uc: ProvisioningEntry;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "polyfleet-prov-"));
    image = Buffer.alloc(16 * 1024 * 1024, 7);
    await writeFile(join(dir, SHA), image);
    await writeFile(join(dir, OTHER_SHA), Buffer.from("secret of another device"));
    server = new ProvisioningServer({
      host: "127.0.0.1",
      port: 0,
      images: {
        pathOf: (sha) => (sha === SHA || sha === OTHER_SHA ? join(dir, sha) : undefined),
        touch: () => {},
      },
      clock: SYSTEM_CLOCK,
      metrics,
      log: quiet,
    });
    const url = await server.start();
    port = Number(new URL(url).port);
    uc = {
      deviceId: "64167f000001",
      family: "uc",
      image: { sha256: SHA, fileName: "a.sip.ld", length: image.length },
      target: { version: "8.1.0.1000" },
      offer: "target",
      delivered: false,
      onDelivered: (at) => delivered.push(at),
    };
    server.publish(uc);
    server.publish({
      deviceId: "00e0db000002",
      family: "videoos",
      model: "StudioX30",
      image: { sha256: OTHER_SHA, fileName: "x.pkg", length: 24 },
      target: { version: "4.2.0", build: "420001" },
      current: { version: "4.1.0", build: "401117" },
      offer: "current",
      delivered: false,
    });
  });
  afterAll(async () => {
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("advertises per-device base URLs", () => {
    expect(server.urlFor("64167f000001")).toBe(`http://127.0.0.1:${port}/d/64167f000001/`);
    expect(server.available).toBe(true);
  });

  it("serves a phone its master config under any MAC name, and nothing for another family's files", async () => {
    for (const name of ["64167f000001.cfg", "000000000000.cfg", "64167F000001.cfg"]) {
      const r = await fetch(`${server.urlFor("64167f000001")}${name}`);
      expect(r.status).toBe(200);
      expect(await r.text()).toContain(`APP_FILE_PATH="images/${SHA}/a.sip.ld"`);
    }
    expect((await fetch(`${server.urlFor("64167f000001")}polyos/StudioX30/package.json`)).status).toBe(404);
    expect((await fetch(`${server.urlFor("00e0db000002")}000000000000.cfg`)).status).toBe(404);
  });

  it("serves a VideoOS manifest for the device's model, offering what the entry says", async () => {
    const r = await fetch(`${server.urlFor("00e0db000002")}polyos/StudioX30/package.json`);
    expect(await r.json()).toEqual({
      version: "4.1.0",
      build: "401117",
      file: `images/${OTHER_SHA}/x.pkg`,
      size: 24,
    });
    expect((await fetch(`${server.urlFor("00e0db000002")}polyos/G7500/package.json`)).status).toBe(404);
  });

  it("answers HEAD with headers only and refuses other methods", async () => {
    const head = await fetch(`${server.urlFor("64167f000001")}images/${SHA}/a.sip.ld`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String(image.length));
    expect(delivered).toEqual([]);
    for (const m of ["POST", "PUT", "DELETE"]) {
      expect((await fetch(`${server.urlFor("64167f000001")}000000000000.cfg`, { method: m })).status).toBe(
        405,
      );
    }
  });

  it("does not count a transfer the device broke off as delivered", async () => {
    const res = await fetch(`${server.urlFor("64167f000001")}images/${SHA}/a.sip.ld`);
    const reader = res.body?.getReader();
    await reader?.read();
    await reader?.cancel();
    await new Promise((r) => setTimeout(r, 50));
    expect(delivered).toEqual([]);
  });

  it("streams the image once in full, reports it, then refuses it", async () => {
    const res = await fetch(`${server.urlFor("64167f000001")}images/${SHA}/a.sip.ld`);
    expect(res.headers.get("content-length")).toBe(String(image.length));
    expect(Buffer.from(await res.arrayBuffer()).equals(image)).toBe(true);
    for (let i = 0; i < 20 && delivered.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(delivered).toHaveLength(1);
    expect((await fetch(`${server.urlFor("64167f000001")}images/${SHA}/a.sip.ld`)).status).toBe(404);
    expect(metrics.get("polyfleet_agent_provisioning_requests_total", { kind: "image", status: "404" })).toBe(
      1,
    );
  });

  it("serves nothing to a device that is not being updated, nor after withdraw", async () => {
    expect((await fetch(`${server.urlFor("64167f000009")}000000000000.cfg`)).status).toBe(404);
    server.publish({ ...uc, deviceId: "64167f000003", delivered: false, onDelivered: undefined });
    expect((await fetch(`${server.urlFor("64167f000003")}000000000000.cfg`)).status).toBe(200);
    server.withdraw("64167f000003");
    expect((await fetch(`${server.urlFor("64167f000003")}000000000000.cfg`)).status).toBe(404);
  });

  it("never serves another device's image, a file outside the store or anything unknown (fuzz)", async () => {
    server.publish({ ...uc, deviceId: "64167f000004", delivered: false, onDelivered: undefined });
    const base = "/d/64167f000004/";
    const pieces = [
      base,
      "/d/00e0db000002/",
      `images/${SHA}/a.sip.ld`,
      `images/${OTHER_SHA}/x.pkg`,
      `images/${OTHER_SHA}/a.sip.ld`,
      "..",
      "../",
      "%2e%2e/",
      "%2E%2E%2F",
      "%2f",
      "%5c",
      "%00",
      "/etc/passwd",
      SHA,
      OTHER_SHA,
      "000000000000.cfg",
      "polyos/StudioX30/package.json",
      "images/",
      "/",
      "//",
      "?x=1",
      "#f",
      ";a",
    ];
    const visible = fc.string({ maxLength: 12 }).map((s) => s.replace(/[^\x21-\x7e]/g, "x"));
    const arb = fc
      .array(fc.oneof(fc.constantFrom(...pieces), visible), { minLength: 1, maxLength: 6 })
      .map((a) => {
        const p = a.join("");
        return p.startsWith("/") ? p : `/${p}`;
      });
    const samples = fc.sample(arb, { numRuns: 400, seed: 4242 });
    const otherSecret = "secret of another device";
    for (const path of samples) {
      const r = await raw(port, "GET", path);
      expect(r.body.includes(otherSecret) && !path.startsWith("/d/00e0db000002/"), path).toBe(false);
      if (r.status === 200) {
        // Only the device's own files: its master config or its own image.
        expect(path.startsWith(base) || path.startsWith("/d/00e0db000002/"), path).toBe(true);
      } else {
        expect([400, 404], path).toContain(r.status);
      }
    }
  });
});
