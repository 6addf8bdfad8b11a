import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSmtpSink } from "@polyfleet/scripts/testing";
import { beforeAll, describe, expect, it } from "vitest";
import { sendSmtpMail } from "../../../src/adapters/notifiers/index.js";

/** A throwaway self-signed certificate for 127.0.0.1 (openssl CLI). */
function selfSigned(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), "polyfleet-smtp-tls-"));
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
      ],
      { stdio: "ignore" },
    );
    return {
      key: readFileSync(join(dir, "key.pem"), "utf8"),
      cert: readFileSync(join(dir, "cert.pem"), "utf8"),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("SMTP client STARTTLS against the sink", () => {
  let tls: { key: string; cert: string };
  beforeAll(() => {
    tls = selfSigned();
  });

  it("upgrades with STARTTLS when offered, verifies the certificate, then authenticates inside TLS", async () => {
    const sink = await startSmtpSink({ tls, requireTls: true, auth: { username: "u", password: "pw" } });
    try {
      const r = await sendSmtpMail(
        {
          host: "127.0.0.1",
          port: sink.port,
          username: "u",
          password: "pw",
          tls: { ca: tls.cert },
          timeoutMs: 5000,
        },
        { from: "a@example.com", to: ["b@example.com"] },
        "Subject: hi\r\n\r\nover TLS\r\n",
      );
      expect(r).toEqual({ ok: true, accepted: ["b@example.com"], rejected: [] });
      const [msg] = await sink.waitFor(1);
      expect(msg?.tls).toBe(true);
      expect(msg?.authUser).toBe("u");
      expect(msg?.data).toContain("over TLS");
    } finally {
      await sink.stop();
    }
  });

  it("refuses an untrusted certificate (no fallback to clear text)", async () => {
    const sink = await startSmtpSink({ tls });
    try {
      const r = await sendSmtpMail(
        { host: "127.0.0.1", port: sink.port, timeoutMs: 5000 },
        { from: "a@example.com", to: ["b@example.com"] },
        "x",
      );
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.stage).toBe("starttls");
      expect(sink.messages).toHaveLength(0);
    } finally {
      await sink.stop();
    }
  });

  it("with startTls=required, fails when the server does not offer it", async () => {
    const sink = await startSmtpSink();
    try {
      const r = await sendSmtpMail(
        { host: "127.0.0.1", port: sink.port, startTls: "required", timeoutMs: 5000 },
        { from: "a@example.com", to: ["b@example.com"] },
        "x",
      );
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.stage).toBe("starttls");
        expect(r.transient).toBe(false);
      }
      expect(sink.messages).toHaveLength(0);
    } finally {
      await sink.stop();
    }
  });
});
