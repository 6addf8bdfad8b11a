import type { Alert, AlertNotification } from "@polyfleet/shared";

export interface AlertEmail {
  subject: string;
  text: string;
  html: string;
}

const SEVERITY_ORDER = ["critical", "major", "minor", "warning", "info"];

function rank(sev: string): number {
  const i = SEVERITY_ORDER.indexOf(sev);
  return i === -1 ? SEVERITY_ORDER.length : i;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** One header-safe line: control characters (CR, LF…) become spaces, length is bounded. */
export function headerSafe(value: string, max = 200): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point (header injection)
  const flat = value.replace(/[\u0000-\u001f\u007f]+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

export function escapeHtml(s: string): string {
  return s
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

/** Subject, plain text and HTML of one notification e-mail. */
export function composeAlertEmail(n: AlertNotification, alerts: readonly Alert[]): AlertEmail {
  const sorted = [...alerts].sort((a, b) => rank(a.severity) - rank(b.severity));
  const top = sorted[0];
  const reason = n.reason.toUpperCase();
  const more = alerts.length > 1 ? ` (+${alerts.length - 1} more)` : "";
  const subject = headerSafe(
    `[polyfleet]${top ? `[${top.severity}]` : ""} ${reason}: ${top ? top.summary : n.groupKey}${more}`,
  );

  const text: string[] = [
    `Polyfleet alert notification: ${reason} (${alerts.length} alert${alerts.length === 1 ? "" : "s"})`,
    `Group: ${n.groupKey}`,
    `Time: ${iso(n.ts)}`,
  ];
  if (n.escalationLevel > 0) text.push(`Escalation level: ${n.escalationLevel}`);
  text.push("");
  const html: string[] = [
    "<!DOCTYPE html><html><body>",
    `<h2>Polyfleet: ${escapeHtml(reason)} (${alerts.length})</h2>`,
    `<p>Group: <code>${escapeHtml(n.groupKey)}</code><br>Time: ${iso(n.ts)}${
      n.escalationLevel > 0 ? `<br>Escalation level: ${n.escalationLevel}` : ""
    }</p>`,
    "<ul>",
  ];
  for (const a of sorted) {
    const where = [
      a.siteId ? `Site: ${a.siteId}` : undefined,
      a.agentId ? `Agent: ${a.agentId}` : undefined,
      a.deviceId ? `Device: ${a.deviceId}` : undefined,
    ].filter((x): x is string => x !== undefined);
    const flags = [a.flapping ? "flapping" : undefined, a.silenced ? "silenced" : undefined].filter(
      (x): x is string => x !== undefined,
    );
    const labels = Object.entries(a.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(", ");
    text.push(
      `[${a.severity.toUpperCase()}] ${a.state.toUpperCase()} - rule ${a.rule}${flags.length ? ` (${flags.join(", ")})` : ""}`,
    );
    text.push(a.summary);
    if (where.length) text.push(where.join(" | "));
    text.push(
      `Started: ${iso(a.startsAt)} | Updated: ${iso(a.updatedAt)}${a.endsAt ? ` | Ended: ${iso(a.endsAt)}` : ""}`,
    );
    if (labels) text.push(`Labels: ${labels}`);
    if (a.ack) text.push(`Acknowledged by ${a.ack.by} at ${iso(a.ack.at)}: ${a.ack.comment}`);
    text.push(`Alert id: ${a.id}`, "");

    html.push(
      `<li><p><strong>[${escapeHtml(a.severity.toUpperCase())}] ${escapeHtml(a.state)}</strong> ${escapeHtml(a.rule)}${
        flags.length ? ` <em>(${escapeHtml(flags.join(", "))})</em>` : ""
      }<br>${escapeHtml(a.summary).replace(/\r?\n/g, "<br>")}`,
      where.length ? `<br>${escapeHtml(where.join(" | "))}` : "",
      `<br>Started ${iso(a.startsAt)}${a.endsAt ? `, ended ${iso(a.endsAt)}` : ""}`,
      a.ack ? `<br>Acknowledged by ${escapeHtml(a.ack.by)}: ${escapeHtml(a.ack.comment)}` : "",
      "</p></li>",
    );
  }
  html.push("</ul></body></html>");
  return { subject, text: text.join("\n"), html: html.join("\n") };
}

/** Quoted-printable (RFC 2045) of UTF-8 text, CRLF line ends, lines of at most 76 characters. */
export function encodeQuotedPrintable(input: string): string {
  const out: string[] = [];
  for (const line of input.replace(/\r\n|\r|\n/g, "\n").split("\n")) {
    const bytes = Buffer.from(line, "utf8");
    let cur = "";
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i] as number;
      const last = i === bytes.length - 1;
      let tok: string;
      if ((b >= 33 && b <= 126 && b !== 61) || ((b === 32 || b === 9) && !last)) tok = String.fromCharCode(b);
      else tok = `=${b.toString(16).toUpperCase().padStart(2, "0")}`;
      if (cur.length + tok.length > 75) {
        out.push(`${cur}=`);
        cur = "";
      }
      cur += tok;
    }
    out.push(cur);
  }
  return out.join("\r\n");
}

/** RFC 2047 encoded word when the value is not plain ASCII. */
export function encodeHeaderWord(value: string): string {
  return /^[\u0020-\u007e]*$/.test(value)
    ? value
    : `=?UTF-8?B?${Buffer.from(value, "utf8").toString("base64")}?=`;
}

export interface MimeMessageInput {
  from: string;
  to: readonly string[];
  subject: string;
  text: string;
  html: string;
  date: Date;
  messageId: string;
  extraHeaders?: Record<string, string>;
}

/** A multipart/alternative (text + HTML) RFC 5322 message with CRLF line ends, ready for DATA. */
export function buildMimeMessage(m: MimeMessageInput): string {
  const boundary = `=_polyfleet_${m.messageId.replace(/[^A-Za-z0-9]/g, "")}`;
  const headers = [
    `From: ${headerSafe(m.from, 300)}`,
    `To: ${m.to.map((t) => headerSafe(t, 300)).join(", ")}`,
    `Subject: ${encodeHeaderWord(headerSafe(m.subject))}`,
    `Date: ${m.date.toUTCString()}`,
    `Message-ID: <${headerSafe(m.messageId)}>`,
    "MIME-Version: 1.0",
    `Content-Type: multipart/alternative; boundary="${boundary}"`,
    ...Object.entries(m.extraHeaders ?? {}).map(([k, v]) => `${k}: ${encodeHeaderWord(headerSafe(v))}`),
  ];
  const part = (type: string, body: string): string[] => [
    `--${boundary}`,
    `Content-Type: ${type}; charset=utf-8`,
    "Content-Transfer-Encoding: quoted-printable",
    "",
    encodeQuotedPrintable(body),
  ];
  return [
    ...headers,
    "",
    ...part("text/plain", m.text),
    ...part("text/html", m.html),
    `--${boundary}--`,
    "",
  ].join("\r\n");
}
