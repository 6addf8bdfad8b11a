// A small InfluxDB 1.x line-protocol reader for tests, written after the server's own rules
// (models/points.go and pkg/escape): a backslash makes the scanner skip the next character; tag keys, tag
// values, field keys and measurements are then unescaped for `\,` `\"` `\ ` `\=` only; string fields for
// `\\` and `\"` only. The integration test checks this reader against the real influxd.

export interface ParsedPoint {
  measurement: string;
  tags: Record<string, string>;
  fields: Record<string, number | boolean | string>;
  ts: number;
}

export function parseLine(line: string): ParsedPoint {
  let i = 0;
  const scan = (stops: string): string => {
    const start = i;
    while (i < line.length) {
      const c = line[i] as string;
      if (c === "\\") {
        i += 2;
        continue;
      }
      if (stops.includes(c)) break;
      i++;
    }
    return line.slice(start, Math.min(i, line.length));
  };
  const measurement = unescapeKey(scan(", "));
  if (measurement === "") throw new Error(`missing measurement: ${line}`);
  const tags: Record<string, string> = {};
  while (line[i] === ",") {
    i++;
    const key = scan("=");
    if (line[i] !== "=") throw new Error(`tag without '=': ${line}`);
    i++;
    const value = scan(", ");
    if (key === "" || value === "") throw new Error(`empty tag key or value: ${line}`);
    tags[unescapeKey(key)] = unescapeKey(value);
  }
  if (line[i] !== " ") throw new Error(`expected a space before fields: ${line}`);
  i++;
  const fields: Record<string, number | boolean | string> = {};
  for (;;) {
    const key = scan("=");
    if (line[i] !== "=" || key === "") throw new Error(`bad field key: ${line}`);
    i++;
    if (line[i] === '"') {
      i++;
      const start = i;
      while (i < line.length && line[i] !== '"') i += line[i] === "\\" ? 2 : 1;
      if (line[i] !== '"') throw new Error(`unterminated string field: ${line}`);
      fields[unescapeKey(key)] = unescapeString(line.slice(start, i));
      i++;
    } else {
      const raw = scan(", ");
      fields[unescapeKey(key)] = parseScalar(raw, line);
    }
    if (line[i] === ",") {
      i++;
      continue;
    }
    break;
  }
  if (line[i] !== " ") throw new Error(`expected a space before the timestamp: ${line}`);
  const tsText = line.slice(i + 1);
  if (!/^-?\d+$/.test(tsText)) throw new Error(`bad timestamp "${tsText}"`);
  return { measurement, tags, fields, ts: Number(tsText) };
}

/** A float as InfluxDB accepts it (no NaN, no Infinity), or a boolean. */
export const FLOAT_SYNTAX = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

function parseScalar(raw: string, line: string): number | boolean {
  if (/^(t|T|true|True|TRUE)$/.test(raw)) return true;
  if (/^(f|F|false|False|FALSE)$/.test(raw)) return false;
  if (!FLOAT_SYNTAX.test(raw)) throw new Error(`bad field value "${raw}" in ${line}`);
  const v = Number(raw);
  if (!Number.isFinite(v)) throw new Error(`non-finite field value "${raw}"`);
  return v;
}

function unescapeKey(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    const n = s[i + 1];
    if (c === "\\" && (n === "," || n === '"' || n === " " || n === "=")) {
      out += n;
      i++;
    } else out += c;
  }
  return out;
}

function unescapeString(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    const n = s[i + 1];
    if (c === "\\" && (n === "\\" || n === '"')) {
      out += n;
      i++;
    } else out += c;
  }
  return out;
}

/**
 * What a tag key/value or measurement reads back as, by the encoder's documented rule: line breaks become
 * spaces, and a backslash that ends the text or precedes `,` `=` space, a line break or `"` becomes `/`.
 */
export function expectedTagText(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    const n = s[i + 1];
    if (c === "\n" || c === "\r") out += " ";
    else if (c === "\\" && (n === undefined || ',= \n\r"'.includes(n))) out += "/";
    else out += c;
  }
  return out;
}
