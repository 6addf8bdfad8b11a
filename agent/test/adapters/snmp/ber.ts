// Just enough BER to read SNMP requests and forge answers in tests (hostile responders, trap fuzzing).

export interface Node {
  tag: number;
  /** Raw value bytes. */
  value: Buffer;
  children?: Node[];
}

function isConstructed(tag: number): boolean {
  return tag === 0x30 || (tag >= 0xa0 && tag <= 0xa8);
}

/** Decodes a sequence of TLVs (throws on bad framing). */
export function decode(b: Buffer): Node[] {
  const out: Node[] = [];
  let i = 0;
  while (i < b.length) {
    const tag = b[i] as number;
    let len = b[i + 1] as number;
    let start = i + 2;
    if (len === undefined) throw new Error("truncated");
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let k = 0; k < n; k++) len = len * 256 + (b[start + k] as number);
      start += n;
    }
    const value = b.subarray(start, start + len);
    if (value.length !== len) throw new Error("truncated");
    const node: Node = { tag, value };
    if (isConstructed(tag)) node.children = decode(value);
    out.push(node);
    i = start + len;
  }
  return out;
}

export function intOf(n: Node): number {
  let v = (n.value[0] as number) & 0x80 ? -1 : 0;
  for (const x of n.value) v = v * 256 + x;
  return v;
}

export function oidOf(n: Node): string {
  const b = n.value;
  const first = b[0] as number;
  const arcs = [Math.floor(first / 40), first % 40];
  let v = 0;
  for (let i = 1; i < b.length; i++) {
    const x = b[i] as number;
    v = v * 128 + (x & 0x7f);
    if (!(x & 0x80)) {
      arcs.push(v);
      v = 0;
    }
  }
  return arcs.join(".");
}

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  while (n > 0) {
    bytes.unshift(n & 0xff);
    n = Math.floor(n / 256);
  }
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
}

export function int(v: number, tag = 0x02): Buffer {
  const bytes: number[] = [];
  let x = v;
  do {
    bytes.unshift(x & 0xff);
    x = Math.floor(x / 256);
  } while (x > 0 && x !== -1);
  if (v >= 0 && (bytes[0] as number) & 0x80) bytes.unshift(0);
  return tlv(tag, Buffer.from(bytes));
}

export function octets(s: string | Buffer, tag = 0x04): Buffer {
  return tlv(tag, typeof s === "string" ? Buffer.from(s) : s);
}

export function oid(s: string): Buffer {
  const arcs = s.split(".").map(Number);
  const bytes: number[] = [(arcs[0] as number) * 40 + (arcs[1] as number)];
  for (const a of arcs.slice(2)) {
    const enc: number[] = [a & 0x7f];
    let x = Math.floor(a / 128);
    while (x > 0) {
      enc.unshift((x & 0x7f) | 0x80);
      x = Math.floor(x / 128);
    }
    bytes.push(...enc);
  }
  return tlv(0x06, Buffer.from(bytes));
}

export type Value =
  | { type: "str"; v: string }
  | { type: "int"; v: number }
  | { type: "raw"; tag: number; bytes: Buffer };

export function varbind(o: string, value: Value): Buffer {
  const v =
    value.type === "str"
      ? octets(value.v)
      : value.type === "int"
        ? int(value.v)
        : tlv(value.tag, value.bytes);
  return tlv(0x30, oid(o), v);
}

/** A v1/v2c message: version 0/1, community, PDU tag, request-id, varbinds. */
export function communityMessage(
  version: number,
  community: string,
  pduTag: number,
  reqId: number,
  varbinds: Buffer[],
): Buffer {
  return tlv(
    0x30,
    int(version),
    octets(community),
    tlv(pduTag, int(reqId), int(0), int(0), tlv(0x30, ...varbinds)),
  );
}

/** A v3 message with no authentication and no privacy (flags as given) carrying a clear-text scoped PDU. */
export function v3PlainMessage(
  msgId: number,
  flags: number,
  user: string,
  pduTag: number,
  reqId: number,
  varbinds: Buffer[],
): Buffer {
  const secParams = tlv(
    0x30,
    octets(Buffer.from("8000b98380aabbccdd", "hex")),
    int(1),
    int(100),
    octets(user),
    octets(""),
    octets(""),
  );
  return tlv(
    0x30,
    int(3),
    tlv(0x30, int(msgId), int(65507), octets(Buffer.from([flags])), int(3)),
    octets(secParams),
    tlv(0x30, octets(""), octets(""), tlv(pduTag, int(reqId), int(0), int(0), tlv(0x30, ...varbinds))),
  );
}

export interface ParsedRequest {
  version: number;
  community?: string;
  /** request-id (v1/v2c) or msgID (v3). */
  reqId: number;
  /** v3 only. */
  flags?: number;
  pduTag?: number;
  pduReqId?: number;
  nonRepeaters?: number;
  maxRepetitions?: number;
  oids: string[];
}

/** Parses a v1/v2c request, or a v3 request whose scoped PDU is in clear text (discovery). */
export function parseRequest(b: Buffer): ParsedRequest {
  const [msg] = decode(b);
  const parts = msg?.children ?? [];
  const version = intOf(parts[0] as Node);
  if (version === 3) {
    const global = parts[1]?.children ?? [];
    const flags = (global[2]?.value[0] ?? 0) as number;
    const out: ParsedRequest = { version, reqId: intOf(global[0] as Node), flags, oids: [] };
    const scoped = parts[3];
    if (scoped?.tag === 0x30) {
      const pdu = scoped.children?.[2];
      if (pdu) {
        out.pduTag = pdu.tag;
        out.pduReqId = intOf(pdu.children?.[0] as Node);
        out.oids = (pdu.children?.[3]?.children ?? []).map((vb) => oidOf(vb.children?.[0] as Node));
      }
    }
    return out;
  }
  const pdu = parts[2] as Node;
  const kids = pdu.children ?? [];
  return {
    version,
    community: (parts[1] as Node).value.toString(),
    reqId: intOf(kids[0] as Node),
    pduTag: pdu.tag,
    nonRepeaters: intOf(kids[1] as Node),
    maxRepetitions: intOf(kids[2] as Node),
    oids: (kids[3]?.children ?? []).map((vb) => oidOf(vb.children?.[0] as Node)),
  };
}
