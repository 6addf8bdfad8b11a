import {
  freeTcpPort,
  type SmtpSinkHandle,
  type SmtpSinkOptions,
  startSmtpSink,
} from "@polyfleet/scripts/testing";
import { afterEach, describe, expect, it } from "vitest";
import {
  EmailNotifier,
  type EmailNotifierOptions,
  sendSmtpMail,
} from "../../../src/adapters/notifiers/index.js";
import { CountingMetrics, makeAlert, makeNotification, memoryLogger } from "./fixtures.js";
import { parseMail } from "./mime.js";

const RECIPIENTS = ["noc@example.com", "Site Lead <lead@example.com>", "oncall@example.org"];

describe("EmailNotifier against the local SMTP sink", () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setup(
    sinkOpts: SmtpSinkOptions = {},
    opts: Partial<EmailNotifierOptions> = {},
  ): Promise<{
    sink: SmtpSinkHandle;
    notifier: EmailNotifier;
    metrics: CountingMetrics;
    logText: () => string;
  }> {
    const sink = await startSmtpSink(sinkOpts);
    cleanups.push(() => sink.stop());
    const metrics = new CountingMetrics();
    const { log, text } = memoryLogger();
    const notifier = new EmailNotifier({
      host: sink.host,
      port: sink.port,
      from: "Polyfleet <polyfleet@example.com>",
      to: RECIPIENTS,
      metrics,
      log,
      baseDelayMs: 5,
      maxDelayMs: 20,
      timeoutMs: 5000,
      ...opts,
    });
    cleanups.push(() => notifier.stop());
    return { sink, notifier, metrics, logText: text };
  }

  it("delivers one message per notification to every recipient, with the alert summary in subject, text and HTML", async () => {
    const { sink, notifier, metrics } = await setup();
    const a = makeAlert({ summary: "Camera of VideoBar vb-7 is down", severity: "major" });
    const b = makeAlert({
      summary: "Line 2 of CCX500 dev-9 unregistered",
      severity: "warning",
      siteId: "site-b",
    });
    await notifier.notify(makeNotification([a, b]), [a, b]);
    const [msg] = await sink.waitFor(1);
    await notifier.idle();
    expect(msg?.from).toBe("polyfleet@example.com");
    expect(msg?.to).toEqual(["noc@example.com", "lead@example.com", "oncall@example.org"]);
    const mail = parseMail(msg?.data ?? "");
    expect(mail.headers.subject).toBe("[polyfleet][major] FIRING: Camera of VideoBar vb-7 is down (+1 more)");
    expect(mail.headers.to).toBe(RECIPIENTS.join(", "));
    expect(mail.headers["mime-version"]).toBe("1.0");
    expect(mail.text).toContain("Camera of VideoBar vb-7 is down");
    expect(mail.text).toContain("Line 2 of CCX500 dev-9 unregistered");
    expect(mail.text).toContain("Site: site-b");
    expect(mail.html).toContain("Camera of VideoBar vb-7 is down");
    expect(metrics.get("polyfleet_notifier_sent_total", { notifier: "email" })).toBe(1);
    expect(sink.messages).toHaveLength(1);
  });

  it("dot-stuffs: lines starting with a dot (even a lone dot) arrive intact", async () => {
    const { sink, notifier } = await setup();
    const summary = ".hidden first line\n.\n..two dots\nafter the lone dot";
    const a = makeAlert({ summary });
    await notifier.notify(makeNotification([a]), [a]);
    const [msg] = await sink.waitFor(1);
    const mail = parseMail(msg?.data ?? "");
    expect(mail.text).toContain(summary.replace(/\n/g, "\r\n"));
    // The message was not cut at the lone dot: the HTML part and the closing boundary made it through.
    expect(mail.html).toContain("after the lone dot");
    expect(msg?.data.trimEnd().endsWith("--")).toBe(true);
  });

  it("authenticates with AUTH PLAIN when a username is set", async () => {
    const { sink, notifier, logText } = await setup(
      { auth: { username: "mailer", password: "pa55-w0rd!" } },
      { username: "mailer", password: "pa55-w0rd!" },
    );
    const a = makeAlert();
    await notifier.notify(makeNotification([a]), [a]);
    const [msg] = await sink.waitFor(1);
    expect(msg?.authUser).toBe("mailer");
    expect(msg?.authMechanism).toBe("PLAIN");
    expect(sink.authAttempts).toEqual([{ mechanism: "PLAIN", username: "mailer", ok: true }]);
    expect(logText()).not.toContain("pa55-w0rd!");
  });

  it("falls back to AUTH LOGIN when PLAIN is not offered", async () => {
    const { sink, notifier } = await setup(
      { auth: { username: "mailer", password: "secret" }, authMechanisms: ["LOGIN"] },
      { username: "mailer", password: "secret" },
    );
    const a = makeAlert();
    await notifier.notify(makeNotification([a]), [a]);
    const [msg] = await sink.waitFor(1);
    expect(msg?.authMechanism).toBe("LOGIN");
  });

  it("does not retry refused credentials, counts it, and never logs the password", async () => {
    const { sink, notifier, metrics, logText } = await setup(
      { auth: { username: "mailer", password: "right" } },
      { username: "mailer", password: "wrong-Pw-123" },
    );
    const a = makeAlert();
    await notifier.notify(makeNotification([a]), [a]);
    await notifier.idle();
    expect(sink.messages).toHaveLength(0);
    expect(sink.connections()).toBe(1);
    expect(metrics.get("polyfleet_notifier_failed_total", { reason: "smtp_auth" })).toBe(1);
    expect(logText()).toContain("e-mail refused");
    expect(logText()).not.toContain("wrong-Pw-123");
  });

  it("retries a transient 451 and delivers on a later attempt", async () => {
    const { sink, notifier, metrics } = await setup({ failFirst: 2, failMode: "451" });
    const a = makeAlert();
    await notifier.notify(makeNotification([a]), [a]);
    await notifier.idle();
    expect(sink.connections()).toBe(3);
    expect(sink.messages).toHaveLength(1);
    expect(metrics.get("polyfleet_notifier_retries_total")).toBe(2);
    expect(metrics.get("polyfleet_notifier_sent_total")).toBe(1);
  });

  it("retries a dropped connection", async () => {
    const { sink, notifier } = await setup({ failFirst: 1, failMode: "drop" });
    const a = makeAlert();
    await notifier.notify(makeNotification([a]), [a]);
    await notifier.idle();
    expect(sink.connections()).toBe(2);
    expect(sink.messages).toHaveLength(1);
  });

  it("gives up after maxRetries", async () => {
    const { sink, notifier, metrics } = await setup({ failFirst: 100 }, { maxRetries: 2 });
    const a = makeAlert();
    await notifier.notify(makeNotification([a]), [a]);
    await notifier.idle();
    expect(sink.connections()).toBe(3);
    expect(sink.messages).toHaveLength(0);
    expect(metrics.get("polyfleet_notifier_failed_total", { reason: "retries_exhausted" })).toBe(1);
  });

  it("delivers to the accepted recipients when one is refused", async () => {
    const { sink, notifier, metrics } = await setup({ rejectRecipients: ["lead@example.com"] });
    const a = makeAlert();
    await notifier.notify(makeNotification([a]), [a]);
    await notifier.idle();
    expect(sink.messages[0]?.to).toEqual(["noc@example.com", "oncall@example.org"]);
    expect(metrics.get("polyfleet_notifier_failed_total", { reason: "recipient_refused" })).toBe(1);
  });

  it("reports a refused connection as a transient failure value", async () => {
    const port = await freeTcpPort();
    const r = await sendSmtpMail(
      { host: "127.0.0.1", port, username: "u", password: "p4ssw0rd", timeoutMs: 2000 },
      { from: "a@example.com", to: ["b@example.com"] },
      "x",
    );
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.stage).toBe("connect");
      expect(r.transient).toBe(true);
      expect(r.message).not.toContain("p4ssw0rd");
    }
  });
});
