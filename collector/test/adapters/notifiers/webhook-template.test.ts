import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  defaultWebhookBody,
  parseRetryAfter,
  renderWebhookTemplate,
  signWebhookBody,
  webhookTemplateContext,
} from "../../../src/adapters/notifiers/index.js";
import { makeAlert, makeNotification } from "./fixtures.js";

describe("renderWebhookTemplate", () => {
  it("fills paths inside strings JSON-escaped and outside strings as JSON values", () => {
    const a = makeAlert({ summary: 'Camera "main" down\nline 2 \\ {{groupKey}}' });
    const n = makeNotification([a]);
    const ctx = webhookTemplateContext("hook", n, [a]);
    const out = renderWebhookTemplate(
      '{"text": "[{{alerts.0.severity}}] {{alert.summary}}", "n": {{count}}, "ids": {{alertIds}}, "end": {{alert.endsAt}}, "missing": "{{nope.x}}", "labels": "{{alert.labels}}", "esc": "a\\"{{reason}}"}',
      ctx,
    );
    expect(JSON.parse(out)).toEqual({
      text: `[critical] ${a.summary}`,
      n: 1,
      ids: [a.id],
      end: null,
      missing: "",
      labels: JSON.stringify(a.labels),
      esc: 'a"firing',
    });
  });

  it("always yields valid JSON for arbitrary string values (property)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), fc.string(), (summary, groupKey) => {
        const a = makeAlert({ summary });
        const n = makeNotification([a], { groupKey });
        const out = renderWebhookTemplate(
          '{"s": "{{alert.summary}}", "g": "<{{groupKey}}>", "a": {{alerts}}}',
          webhookTemplateContext("h", n, [a]),
        );
        const parsed = JSON.parse(out) as { s: string; g: string; a: unknown };
        expect(parsed.s).toBe(summary);
        expect(parsed.g).toBe(`<${groupKey}>`);
        expect(parsed.a).toEqual([a]);
      }),
    );
  });

  it("default body is the notification with its alerts", () => {
    const a = makeAlert();
    const n = makeNotification([a]);
    expect(JSON.parse(defaultWebhookBody(n, [a]))).toEqual({ ...n, alerts: [a] });
  });
});

describe("signWebhookBody / parseRetryAfter", () => {
  it("signs with HMAC-SHA256 hex (RFC 4231 test case 2)", () => {
    expect(signWebhookBody("Jefe", "what do ya want for nothing?")).toBe(
      "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    );
  });

  it("parses delta-seconds and HTTP dates", () => {
    expect(parseRetryAfter("3", 0)).toBe(3000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(parseRetryAfter("soon", 0)).toBeUndefined();
    expect(parseRetryAfter(undefined, 0)).toBeUndefined();
  });
});
