import { createServer, type Server } from "node:net";
import { freeTcpPort } from "@polyfleet/scripts/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTcpConnectHandler } from "../../../src/adapters/tools/tcp-connect.js";

const ctx = (signal = new AbortController().signal) => ({ commandId: "cmd-tcp-00001", signal });
let server: Server;
let port = 0;
let accepted = 0;

beforeAll(async () => {
  server = createServer((s) => {
    accepted++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const a = server.address();
  port = typeof a === "object" && a ? a.port : 0;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});

describe("tcpConnect", () => {
  it("connects to an open port and reports the latency", async () => {
    const before = accepted;
    const r = await createTcpConnectHandler()(
      { type: "tcpConnect", host: "127.0.0.1", port, timeoutMs: 2000 },
      ctx(),
    );
    expect(r).toMatchObject({
      host: "127.0.0.1",
      port,
      connected: true,
      remoteAddress: "127.0.0.1",
      error: null,
    });
    expect(r.latencyMs as number).toBeGreaterThanOrEqual(0);
    await new Promise((res) => setTimeout(res, 50));
    expect(accepted).toBe(before + 1);
  });

  it("reports a closed port as connected: false with ECONNREFUSED", async () => {
    const closed = await freeTcpPort();
    const r = await createTcpConnectHandler()(
      { type: "tcpConnect", host: "127.0.0.1", port: closed, timeoutMs: 2000 },
      ctx(),
    );
    expect(r).toMatchObject({ connected: false, error: { code: "ECONNREFUSED" } });
  });

  it("reports a host name that does not resolve with its resolver code", async () => {
    const r = await createTcpConnectHandler()(
      { type: "tcpConnect", host: "no-such-host.invalid", port: 80, timeoutMs: 3000 },
      ctx(),
    );
    expect(r.connected).toBe(false);
    expect((r.error as { code: string }).code).toMatch(/^(ENOTFOUND|EAI_AGAIN)$/);
  });

  it("resolves localhost through the system resolver", async () => {
    const r = await createTcpConnectHandler()(
      { type: "tcpConnect", host: "localhost", port, timeoutMs: 2000 },
      ctx(),
    );
    expect(r.connected).toBe(true);
  });

  it("stops when the command is aborted", async () => {
    const ac = new AbortController();
    ac.abort();
    const r = await createTcpConnectHandler()(
      { type: "tcpConnect", host: "127.0.0.1", port, timeoutMs: 2000 },
      ctx(ac.signal),
    );
    expect(r).toMatchObject({ connected: false, error: { code: "ECANCELED" } });
  });
});
