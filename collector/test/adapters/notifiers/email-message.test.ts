import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  buildMimeMessage,
  composeAlertEmail,
  dotStuff,
  encodeHeaderWord,
  encodeQuotedPrintable,
  mayAuthenticate,
  smtpAddress,
} from "../../../src/adapters/notifiers/index.js";
import { makeAlert, makeNotification } from "./fixtures.js";
import { decodeQuotedPrintable } from "./mime.js";

describe("encodeQuotedPrintable", () => {
  it("round-trips any text with lines of at most 76 characters (property)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 400 }), (s) => {
        const enc = encodeQuotedPrintable(s);
        for (const line of enc.split("\r\n")) expect(line.length).toBeLessThanOrEqual(76);
        expect(enc).toMatch(/^[\x20-\x7e\r\n]*$/);
        expect(decodeQuotedPrintable(enc)).toBe(s.replace(/\r\n|\r|\n/g, "\r\n"));
      }),
    );
  });
});

describe("dotStuff", () => {
  it("doubles leading dots and normalises line ends", () => {
    expect(dotStuff(".a\nb\r\n.\r..c")).toBe("..a\r\nb\r\n..\r\n...c\r\n");
  });
});

describe("composeAlertEmail / buildMimeMessage", () => {
  it("puts the top-severity summary into a header-safe subject", () => {
    const a = makeAlert({ severity: "warning", summary: "minor thing" });
    const b = makeAlert({ severity: "critical", summary: "Bad\r\nBcc: victim@example.com" });
    const mail = composeAlertEmail(makeNotification([a, b]), [a, b]);
    expect(mail.subject).toBe("[polyfleet][critical] FIRING: Bad Bcc: victim@example.com (+1 more)");
    expect(mail.text).toContain("minor thing");
    expect(mail.html).not.toContain("<victim");
    const raw = buildMimeMessage({
      from: "noc@example.com",
      to: ["a@example.com"],
      subject: mail.subject,
      text: mail.text,
      html: mail.html,
      date: new Date(0),
      messageId: "x@polyfleet",
    });
    const headerBlock = raw.slice(0, raw.indexOf("\r\n\r\n"));
    expect(headerBlock.split("\r\n").filter((l) => l.startsWith("Bcc:"))).toEqual([]);
  });

  it("encodes non-ASCII subjects as RFC 2047 words", () => {
    expect(encodeHeaderWord("plain")).toBe("plain");
    const w = encodeHeaderWord("Kamera ausgefallen – Büro");
    expect(w).toMatch(/^=\?UTF-8\?B\?[A-Za-z0-9+/=]+\?=$/);
    expect(Buffer.from(w.slice(10, -2), "base64").toString("utf8")).toBe("Kamera ausgefallen – Büro");
  });

  it("extracts envelope addresses", () => {
    expect(smtpAddress("NOC <noc@example.com>")).toBe("noc@example.com");
    expect(smtpAddress("noc@example.com")).toBe("noc@example.com");
    expect(smtpAddress("noc@example.com>\r\nRCPT TO:<x@y>")).toBeUndefined();
    expect(smtpAddress("not an address")).toBeUndefined();
  });
});

describe("mayAuthenticate", () => {
  it("sends credentials in clear text only to loopback hosts or when explicitly allowed", () => {
    expect(mayAuthenticate("smtp.example.com", true)).toBe(true);
    expect(mayAuthenticate("smtp.example.com", false)).toBe(false);
    expect(mayAuthenticate("10.0.0.5", false)).toBe(false);
    expect(mayAuthenticate("smtp.example.com", false, true)).toBe(true);
    for (const h of ["127.0.0.1", "127.8.9.10", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"]) {
      expect(mayAuthenticate(h, false)).toBe(true);
    }
  });
});
