import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { freeTcpPort, waitFor } from "@polyfleet/scripts/testing";
import { afterEach, describe, expect, it } from "vitest";
import { WebhookNotifier, type WebhookNotifierOptions } from "../../../src/adapters/notifiers/index.js";
import { CountingMetrics, makeAlert, makeNotification, memoryLogger } from "./fixtures.js";

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  res: ServerResponse;
}

/** A local webhook receiver; `respond` decides each answer (or holds it when it returns undefined). */
async function startReceiver(
  respond: (n: number, r: Received) => { status: number; headers?: Record<string, string> } | undefined,
): Promise<{ url: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const r: Received = { headers: req.headers, body: Buffer.concat(chunks).toString("utf8"), res };
      received.push(r);
      const answer = respond(received.length, r);
      if (answer) {
        res.writeHead(answer.status, answer.headers);
        res.end("{}");
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/T0KEN-abc123`,
    received,
    server,
  };
}

describe("WebhookNotifier against a local HTTP server", () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setup(
    respond: Parameters<typeof startReceiver>[0],
    opts: Partial<WebhookNotifierOptions> = {},
  ): Promise<{
    notifier: WebhookNotifier;
    received: Received[];
    metrics: CountingMetrics;
    logText: () => string;
  }> {
    const rx = await startReceiver(respond);
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          rx.server.closeAllConnections();
          rx.server.close(() => r());
        }),
    );
    const metrics = new CountingMetrics();
    const { log, text } = memoryLogger();
    const notifier = new WebhookNotifier({
      name: "hook",
      url: rx.url,
      metrics,
      log,
      baseDelayMs: 5,
      maxDelayMs: 50,
      ...opts,
    });
    cleanups.push(() => notifier.stop());
    return { notifier, received: rx.received, metrics, logText: text };
  }

  it("signs the default body (notification + alerts) with HMAC-SHA256 and stamps it", async () => {
    const secret = "s3cr3t-webhook-key";
    const { notifier, received, metrics } = await setup(() => ({ status: 204 }), { secret });
    const alerts = [makeAlert(), makeAlert({ severity: "major" })];
    const n = makeNotification(alerts);
    await notifier.notify(n, alerts);
    await notifier.idle();
    expect(received).toHaveLength(1);
    const r = received[0] as Received;
    expect(r.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(r.body)).toEqual({ ...n, alerts });
    const expected = Buffer.from(`sha256=${createHmac("sha256", secret).update(r.body).digest("hex")}`);
    const given = Buffer.from(String(r.headers["x-polyfleet-signature"]));
    expect(given.length).toBe(expected.length);
    expect(timingSafeEqual(given, expected)).toBe(true);
    // A tampered body would not verify.
    expect(createHmac("sha256", secret).update(`${r.body} `).digest("hex")).not.toBe(
      String(r.headers["x-polyfleet-signature"]).slice(7),
    );
    expect(String(r.headers["x-polyfleet-timestamp"])).toMatch(/^\d{13}$/);
    expect(r.headers["x-polyfleet-delivery"]).toBeTruthy();
    expect(metrics.get("polyfleet_notifier_sent_total", { notifier: "hook" })).toBe(1);
  });

  it("sends no signature header without a secret", async () => {
    const { notifier, received } = await setup(() => ({ status: 200 }));
    const a = makeAlert();
    await notifier.notify(makeNotification([a]), [a]);
    await notifier.idle();
    expect(received[0]?.headers["x-polyfleet-signature"]).toBeUndefined();
  });

  it("fills the template", async () => {
    const template =
      '{"text": "[{{alert.severity}}] {{alert.summary}} ({{count}} alerts, {{reason}})", "group": "{{groupKey}}", "ids": {{alertIds}}, "first": {{alerts.0}}}';
    const { notifier, received } = await setup(() => ({ status: 200 }), { template });
    const a = makeAlert({ summary: 'Mic "ceiling" \\ muted\nsecond line' });
    const b = makeAlert();
    const n = makeNotification([a, b], { reason: "escalated" });
    await notifier.notify(n, [a, b]);
    await notifier.idle();
    expect(JSON.parse(received[0]?.body ?? "")).toEqual({
      text: `[critical] ${a.summary} (2 alerts, escalated)`,
      group: n.groupKey,
      ids: [a.id, b.id],
      first: a,
    });
  });

  it("retries after 500s with backoff, then succeeds", async () => {
    const { notifier, received, metrics } = await setup((i) => ({ status: i <= 2 ? 500 : 200 }), {
      secret: "k",
    });
    const a = makeAlert();
    await notifier.notify(makeNotification([a]), [a]);
    await notifier.idle();
    expect(received).toHaveLength(3);
    // Every attempt carries the same body and a valid signature.
    expect(new Set(received.map((r) => r.body)).size).toBe(1);
    for (const r of received) {
      expect(r.headers["x-polyfleet-signature"]).toBe(
        `sha256=${createHmac("sha256", "k").update(r.body).digest("hex")}`,
      );
    }
    expect(metrics.get("polyfleet_notifier_retries_total")).toBe(2);
    expect(metrics.get("polyfleet_notifier_sent_total")).toBe(1);
    expect(metrics.get("polyfleet_notifier_failed_total")).toBe(0);
  });

  it("gives up after maxRetries", async () => {
    const { notifier, received, metrics } = await setup(() => ({ status: 503 }), { maxRetries: 3 });
    const a = makeAlert();
    await notifier.notify(makeNotification([a]), [a]);
    await notifier.idle();
    expect(received).toHaveLength(4);
    expect(metrics.get("polyfleet_notifier_failed_total", { reason: "retries_exhausted" })).toBe(1);
    expect(metrics.get("polyfleet_notifier_sent_total")).toBe(0);
  });

  it("does not retry a 4xx", async () => {
    const { notifier, received, metrics } = await setup(() => ({ status: 400 }), { maxRetries: 5 });
    const a = makeAlert();
    await notifier.notify(makeNotification([a]), [a]);
    await notifier.idle();
    expect(received).toHaveLength(1);
    expect(metrics.get("polyfleet_notifier_failed_total", { reason: "http_400" })).toBe(1);
  });

  it("retries a 429, honouring Retry-After", async () => {
    const { notifier, received, metrics } = await setup((i) =>
      i === 1 ? { status: 429, headers: { "retry-after": "0" } } : { status: 200 },
    );
    const a = makeAlert();
    await notifier.notify(makeNotification([a]), [a]);
    await notifier.idle();
    expect(received).toHaveLength(2);
    expect(metrics.get("polyfleet_notifier_sent_total")).toBe(1);
  });

  it("retries network errors and timeouts", async () => {
    const port = await freeTcpPort();
    const metrics = new CountingMetrics();
    const refused = new WebhookNotifier({
      name: "down",
      url: `http://127.0.0.1:${port}/x`,
      metrics,
      maxRetries: 2,
      baseDelayMs: 5,
    });
    cleanups.push(() => refused.stop());
    const a = makeAlert();
    await refused.notify(makeNotification([a]), [a]);
    await refused.idle();
    expect(metrics.get("polyfleet_notifier_retries_total", { notifier: "down" })).toBe(2);
    expect(
      metrics.get("polyfleet_notifier_failed_total", { notifier: "down", reason: "retries_exhausted" }),
    ).toBe(1);

    // The first request is never answered: it times out, the retry succeeds.
    const slow = await setup((i) => (i === 1 ? undefined : { status: 200 }), {
      timeoutMs: 300,
      maxRetries: 2,
    });
    await slow.notifier.notify(makeNotification([a]), [a]);
    await slow.notifier.idle();
    expect(slow.received).toHaveLength(2);
    expect(slow.metrics.get("polyfleet_notifier_sent_total")).toBe(1);
    expect(slow.metrics.get("polyfleet_notifier_retries_total")).toBe(1);
  });

  it("never blocks the caller and bounds its queue, dropping the oldest", async () => {
    const held: Received[] = [];
    const { notifier, received, metrics } = await setup(
      (_i, r) => {
        held.push(r);
        return undefined;
      },
      { queueSize: 2, timeoutMs: 30_000 },
    );
    const a = makeAlert();
    // notify resolves while the endpoint holds the first request open.
    for (let i = 1; i <= 5; i++) await notifier.notify(makeNotification([a], { groupKey: `g${i}` }), [a]);
    await waitFor(() => held.length === 1, 5000, "first request arrives");
    expect(notifier.pending()).toBe(2);
    expect(metrics.get("polyfleet_notifier_dropped_total", { notifier: "hook", reason: "queue_full" })).toBe(
      2,
    );
    // Release: answer every held and future request.
    const release = (): void => {
      for (const r of held.splice(0)) {
        r.res.writeHead(200);
        r.res.end();
      }
    };
    release();
    await waitFor(
      () => {
        release();
        return received.length === 3 && held.length === 0 && notifier.pending() === 0;
      },
      5000,
      "queue drained",
    );
    await notifier.idle();
    expect(received.map((r) => (JSON.parse(r.body) as { groupKey: string }).groupKey)).toEqual([
      "g1",
      "g4",
      "g5",
    ]);
    expect(metrics.get("polyfleet_notifier_sent_total")).toBe(3);
  });

  it("never logs the secret or the URL's token", async () => {
    const { notifier, logText } = await setup(() => ({ status: 500 }), {
      secret: "TOPSECRET-HMAC",
      maxRetries: 1,
    });
    const a = makeAlert();
    await notifier.notify(makeNotification([a]), [a]);
    await notifier.idle();
    const text = logText();
    expect(text).toContain("webhook delivery gave up");
    expect(text).not.toContain("TOPSECRET-HMAC");
    expect(text).not.toContain("T0KEN-abc123");
  });
});
