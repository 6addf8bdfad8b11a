import { createSocket, type Socket } from "node:dgram";
import { isIPv4, isIPv6 } from "node:net";

/** Record data of the types the tests ask for. */
export type ZoneRecord =
  | { type: "A"; address: string; ttl?: number }
  | { type: "AAAA"; address: string; ttl?: number }
  | { type: "CNAME"; target: string }
  | { type: "NS"; target: string }
  | { type: "PTR"; target: string }
  | { type: "MX"; priority: number; exchange: string }
  | { type: "TXT"; chunks: string[] }
  | { type: "SRV"; priority: number; weight: number; port: number; target: string };

const TYPE_CODE = { A: 1, NS: 2, CNAME: 5, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33 } as const;

/** name (lower case, no trailing dot) → records; a name absent from the zone answers NXDOMAIN. */
export type Zone = Record<string, ZoneRecord[]>;

export interface TinyDnsServer {
  /** `127.0.0.1:<port>`, for Resolver.setServers. */
  address: string;
  /** Questions received, as `name TYPE`. */
  queries: string[];
  close(): Promise<void>;
}

/**
 * A minimal authoritative DNS server over UDP on 127.0.0.1 (RFC 1035 wire format, no compression in
 * record data), enough to test every record type the dnsLookup tool asks for. Names under `servfail.` get
 * SERVFAIL, names under `refused.` REFUSED.
 */
export function startTinyDnsServer(zone: Zone): Promise<TinyDnsServer> {
  const socket: Socket = createSocket("udp4");
  const queries: string[] = [];
  socket.on("message", (msg, rinfo) => {
    const reply = answer(zone, msg, queries);
    if (reply) socket.send(reply, rinfo.port, rinfo.address);
  });
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => {
      resolve({
        address: `127.0.0.1:${socket.address().port}`,
        queries,
        close: () => new Promise((r) => socket.close(() => r())),
      });
    });
  });
}

function answer(zone: Zone, msg: Buffer, queries: string[]): Buffer | null {
  if (msg.length < 12) return null;
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  if (msg.readUInt16BE(4) !== 1) return null;
  const q = readName(msg, 12);
  if (!q) return null;
  const qtype = msg.readUInt16BE(q.end);
  const questionEnd = q.end + 4;
  const name = q.name.toLowerCase();
  const typeName = Object.entries(TYPE_CODE).find(([, c]) => c === qtype)?.[0] ?? String(qtype);
  queries.push(`${name} ${typeName}`);
  let rcode = 0;
  let records: ZoneRecord[] = [];
  if (name.endsWith("servfail.test")) rcode = 2;
  else if (name.endsWith("refused.test")) rcode = 5;
  else if (!(name in zone)) rcode = 3;
  else records = (zone[name] ?? []).filter((r) => TYPE_CODE[r.type] === qtype || r.type === "CNAME");
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  // QR=1, opcode copied, AA=1, RD copied, RA=1, rcode.
  header.writeUInt16BE(0x8000 | (flags & 0x7900) | 0x0400 | 0x0080 | rcode, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(records.length, 6);
  const parts = [header, msg.subarray(12, questionEnd)];
  for (const r of records) parts.push(encodeRecord(r));
  return Buffer.concat(parts);
}

function encodeRecord(r: ZoneRecord): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(TYPE_CODE[r.type], 0);
  fixed.writeUInt16BE(1, 2); // class IN
  fixed.writeUInt32BE("ttl" in r && r.ttl !== undefined ? r.ttl : 300, 4);
  const rdata = encodeRdata(r);
  fixed.writeUInt16BE(rdata.length, 8);
  return Buffer.concat([Buffer.from([0xc0, 0x0c]), fixed, rdata]); // name: pointer to the question
}

function encodeRdata(r: ZoneRecord): Buffer {
  switch (r.type) {
    case "A":
      if (!isIPv4(r.address)) throw new Error(`not IPv4: ${r.address}`);
      return Buffer.from(r.address.split(".").map(Number));
    case "AAAA":
      if (!isIPv6(r.address)) throw new Error(`not IPv6: ${r.address}`);
      return ipv6Bytes(r.address);
    case "CNAME":
    case "NS":
    case "PTR":
      return encodeName(r.target);
    case "MX": {
      const p = Buffer.alloc(2);
      p.writeUInt16BE(r.priority, 0);
      return Buffer.concat([p, encodeName(r.exchange)]);
    }
    case "TXT":
      return Buffer.concat(
        r.chunks.map((c) => Buffer.concat([Buffer.from([Buffer.byteLength(c)]), Buffer.from(c)])),
      );
    case "SRV": {
      const f = Buffer.alloc(6);
      f.writeUInt16BE(r.priority, 0);
      f.writeUInt16BE(r.weight, 2);
      f.writeUInt16BE(r.port, 4);
      return Buffer.concat([f, encodeName(r.target)]);
    }
  }
}

function encodeName(name: string): Buffer {
  const labels = name
    .replace(/\.$/, "")
    .split(".")
    .filter((l) => l.length > 0);
  return Buffer.concat([
    ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
    Buffer.from([0]),
  ]);
}

function readName(msg: Buffer, offset: number): { name: string; end: number } | null {
  const labels: string[] = [];
  let i = offset;
  while (i < msg.length) {
    const len = msg[i] ?? 0;
    if (len === 0) return { name: labels.join("."), end: i + 1 };
    if (len >= 0xc0) return null; // no compression in questions from c-ares
    labels.push(msg.subarray(i + 1, i + 1 + len).toString("latin1"));
    i += 1 + len;
  }
  return null;
}

function ipv6Bytes(address: string): Buffer {
  const [head = "", tail = ""] = address.split("::");
  const h = head ? head.split(":") : [];
  const t = address.includes("::") && tail ? tail.split(":") : [];
  const groups = address.includes("::") ? [...h, ...Array(8 - h.length - t.length).fill("0"), ...t] : h;
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => {
    b.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  });
  return b;
}
