/** Test helpers: decode what the e-mail notifier encodes. */

export function decodeQuotedPrintable(s: string): string {
  const joined = s.replace(/=\r\n/g, "");
  const bytes: number[] = [];
  for (let i = 0; i < joined.length; i++) {
    const ch = joined.charAt(i);
    if (ch === "=" && /^[0-9A-F]{2}$/.test(joined.slice(i + 1, i + 3))) {
      bytes.push(Number.parseInt(joined.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(joined.charCodeAt(i));
  }
  return Buffer.from(bytes).toString("utf8");
}

export interface ParsedMail {
  headers: Record<string, string>;
  text: string;
  html: string;
}

/** Splits the notifier's multipart/alternative message into headers and decoded parts. */
export function parseMail(raw: string): ParsedMail {
  const sep = raw.indexOf("\r\n\r\n");
  const headers: Record<string, string> = {};
  for (const line of raw.slice(0, sep).split("\r\n")) {
    const i = line.indexOf(":");
    headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  const boundary = /boundary="([^"]+)"/.exec(headers["content-type"] ?? "")?.[1] ?? "";
  const parts = raw
    .slice(sep + 4)
    .split(`--${boundary}`)
    .slice(1, -1)
    .map((p) => {
      const body = p.slice(p.indexOf("\r\n\r\n") + 4).replace(/\r\n$/, "");
      return { type: /Content-Type: ([^;\r\n]+)/.exec(p)?.[1] ?? "", body: decodeQuotedPrintable(body) };
    });
  return {
    headers,
    text: parts.find((p) => p.type === "text/plain")?.body ?? "",
    html: parts.find((p) => p.type === "text/html")?.body ?? "",
  };
}
