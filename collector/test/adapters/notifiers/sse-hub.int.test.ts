import { createServer, get, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { waitFor } from "@polyfleet/scripts/testing";
import { Alert } from "@polyfleet/shared";
import Fastify from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { SseHub, type SseHubOptions } from "../../../src/adapters/notifiers/index.js";
import { CountingMetrics, makeAlert } from "./fixtures.js";

interface SseEvent {
  event: string | undefined;
  id: string | undefined;
  data: string;
}

interface SseClient {
  res: IncomingMessage;
  status: number;
  events: SseEvent[];
  comments: string[];
  ended: () => boolean;
  close: () => void;
}

/** A real streaming SSE client on http.get that parses frames as they arrive. */
function connect(
  url: string,
  headers: Record<string, string> = {},
  opts: { paused?: boolean } = {},
): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req = get(url, { headers: { accept: "text/event-stream", ...headers } }, (res) => {
      const events: SseEvent[] = [];
      const comments: string[] = [];
      let ended = false;
      let buf = "";
      res.setEncoding("utf8");
      res.on("end", () => {
        ended = true;
      });
      res.on("close", () => {
        ended = true;
      });
      res.on("error", () => {
        ended = true;
      });
      if (opts.paused) res.pause();
      else
        res.on("data", (chunk: string) => {
          buf += chunk;
          for (let i = buf.indexOf("\n\n"); i !== -1; i = buf.indexOf("\n\n")) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const ev: SseEvent = { event: undefined, id: undefined, data: "" };
            let isEvent = false;
            for (const line of frame.split("\n")) {
              if (line.startsWith(":")) comments.push(line.slice(1).trim());
              else if (line.startsWith("event: ")) {
                ev.event = line.slice(7);
                isEvent = true;
              } else if (line.startsWith("data: ")) ev.data += line.slice(6);
              else if (line.startsWith("id: ")) ev.id = line.slice(4);
            }
            if (isEvent) events.push(ev);
          }
        });
      resolve({
        res,
        status: res.statusCode ?? 0,
        events,
        comments,
        ended: () => ended,
        close: () => req.destroy(),
      });
    });
    req.on("error", (err) => reject(err));
  });
}

describe("SseHub over a real node:http server", () => {
  let server: Server | undefined;
  let hub: SseHub | undefined;
  const clients: SseClient[] = [];

  async function start(opts: SseHubOptions = {}): Promise<string> {
    hub = new SseHub(opts);
    const h = hub;
    server = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const scope = url.searchParams.get("scope");
      h.handle(req, res, scope === null || scope === "*" ? "*" : scope.split(","));
    });
    const srv = server;
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(srv.address() as AddressInfo).port}/alerts/stream`;
  }

  async function open(
    url: string,
    headers?: Record<string, string>,
    opts?: { paused?: boolean },
  ): Promise<SseClient> {
    const c = await connect(url, headers, opts);
    clients.push(c);
    return c;
  }

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await hub?.stop();
    const srv = server;
    if (srv) await new Promise<void>((r) => srv.close(() => r()));
    server = undefined;
    hub = undefined;
  });

  it("streams published alerts as `event: alert` with increasing ids and schema-valid data", async () => {
    const url = await start();
    const c = await open(url);
    expect(c.status).toBe(200);
    expect(c.res.headers["content-type"]).toContain("text/event-stream");
    await waitFor(() => hub?.clients() === 1, 5000, "client registered");
    const sent = [makeAlert(), makeAlert({ severity: "info", state: "resolved", endsAt: 1_700_000_100_000 })];
    for (const a of sent) hub?.publish(a);
    await waitFor(() => c.events.length === 2, 5000, "2 events");
    expect(c.events.map((e) => e.event)).toEqual(["alert", "alert"]);
    expect(c.events.map((e) => e.id)).toEqual(["1", "2"]);
    const data = c.events.map((e) => Alert.parse(JSON.parse(e.data)));
    expect(data).toEqual(sent);
  });

  it("filters by site scope: listed sites only, `*` sees everything including site-less alerts", async () => {
    const url = await start();
    const scoped = await open(`${url}?scope=site-a,site-c`);
    const all = await open(`${url}?scope=*`);
    await waitFor(() => hub?.clients() === 2, 5000, "2 clients");
    const alerts = [
      makeAlert({ siteId: "site-a" }),
      makeAlert({ siteId: "site-b" }),
      makeAlert({ siteId: undefined }),
      makeAlert({ siteId: "site-c" }),
    ];
    const notifier = hub as SseHub;
    await notifier.notify(
      { v: 1, groupKey: "g", reason: "firing", escalationLevel: 0, ts: 1, alertIds: ["x"] },
      alerts,
    );
    await waitFor(() => all.events.length === 4 && scoped.events.length >= 2, 5000, "events");
    const siteOf = (e: SseEvent): string | undefined => (JSON.parse(e.data) as Alert).siteId;
    expect(scoped.events.map(siteOf)).toEqual(["site-a", "site-c"]);
    expect(all.events.map(siteOf)).toEqual(["site-a", "site-b", undefined, "site-c"]);
    // Ids are the hub's sequence, so a scoped client sees gaps (its Last-Event-ID still works).
    expect(scoped.events.map((e) => e.id)).toEqual(["1", "4"]);
  });

  it("replays after Last-Event-ID from the ring buffer, then continues live", async () => {
    const url = await start({ replayBufferSize: 4 });
    const alerts = Array.from({ length: 6 }, () => makeAlert());
    for (const a of alerts) hub?.publish(a);
    const resumed = await open(url, { "last-event-id": "3" });
    const fromStart = await open(url, { "last-event-id": "0" });
    const fresh = await open(url);
    await waitFor(() => hub?.clients() === 3, 5000, "3 clients");
    hub?.publish(alerts[0] as Alert);
    await waitFor(
      () => resumed.events.length === 4 && fromStart.events.length === 5 && fresh.events.length === 1,
      5000,
      "replay + live",
    );
    expect(resumed.events.map((e) => e.id)).toEqual(["4", "5", "6", "7"]);
    // Only the last 4 are kept: ids 1 and 2 are gone.
    expect(fromStart.events.map((e) => e.id)).toEqual(["3", "4", "5", "6", "7"]);
    expect(fresh.events.map((e) => e.id)).toEqual(["7"]);
    expect(resumed.events.slice(0, 3).map((e) => (JSON.parse(e.data) as Alert).id)).toEqual(
      alerts.slice(3).map((a) => a.id),
    );
  });

  it("a Last-Event-ID from before a restart (ahead of the hub) replays everything held", async () => {
    const url = await start();
    hub?.publish(makeAlert());
    hub?.publish(makeAlert());
    const c = await open(url, { "last-event-id": "900" });
    await waitFor(() => c.events.length === 2, 5000, "replay");
    expect(c.events.map((e) => e.id)).toEqual(["1", "2"]);
  });

  it("sends heartbeat comments", async () => {
    const url = await start({ heartbeatMs: 50 });
    const c = await open(url);
    await waitFor(() => c.comments.filter((x) => x === "heartbeat").length >= 2, 5000, "2 heartbeats");
  });

  it("drops a client that stops reading, counts it, and keeps serving the others", async () => {
    const metrics = new CountingMetrics();
    const url = await start({ metrics, maxClientBacklogBytes: 64 * 1024 });
    const slow = await open(url, {}, { paused: true });
    const fast = await open(url);
    await waitFor(() => hub?.clients() === 2, 5000, "2 clients");
    const big = "x".repeat(16 * 1024);
    let published = 0;
    // Kernel socket buffers absorb a few MB first; keep publishing until the hub gives up on the slow one.
    while ((hub?.clients() ?? 0) === 2 && published < 4000) {
      hub?.publish(makeAlert({ summary: big }));
      published += 1;
      await new Promise((r) => setImmediate(r));
    }
    expect(hub?.clients()).toBe(1);
    expect(metrics.get("polyfleet_notifier_dropped_total", { notifier: "sse", reason: "slow_client" })).toBe(
      1,
    );
    // Once it reads again it finds its stream cut off (what it had buffered, then the end).
    slow.res.resume();
    await waitFor(() => slow.ended(), 10_000, "slow client's connection closed");
    await waitFor(() => fast.events.length === published, 20_000, "fast client got everything");
    expect(fast.ended()).toBe(false);
  });

  it("stop() ends every stream and refuses new clients with 503", async () => {
    const url = await start();
    const c = await open(url);
    await waitFor(() => hub?.clients() === 1, 5000, "client");
    await hub?.stop();
    await waitFor(() => c.ended(), 5000, "stream ended");
    expect(hub?.clients()).toBe(0);
    const late = await open(url);
    expect(late.status).toBe(503);
  });
});

describe("SseHub behind fastify (reply.hijack + reply.raw)", () => {
  it("streams through a hijacked fastify reply", async () => {
    const hub = new SseHub();
    const app = Fastify();
    app.get("/alerts/stream", (request, reply) => {
      reply.hijack();
      hub.handle(request.raw, reply.raw, ["site-a"]);
    });
    await app.listen({ host: "127.0.0.1", port: 0 });
    const port = (app.server.address() as AddressInfo).port;
    const c = await connect(`http://127.0.0.1:${port}/alerts/stream`);
    try {
      await waitFor(() => hub.clients() === 1, 5000, "client");
      hub.publish(makeAlert({ siteId: "site-b" }));
      const a = makeAlert({ siteId: "site-a" });
      hub.publish(a);
      await waitFor(() => c.events.length === 1, 5000, "event");
      expect(JSON.parse(c.events[0]?.data ?? "null")).toEqual(a);
    } finally {
      c.close();
      await hub.stop();
      await app.close();
    }
  });
});
