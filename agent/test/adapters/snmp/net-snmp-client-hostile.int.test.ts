import dgram from "node:dgram";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NetSnmpClient, SNMP_ERRORS_METRIC } from "../../../src/adapters/snmp/net-snmp-client.js";
import { PromRegistry } from "../../../src/core/prom-registry.js";
import type { SnmpTarget } from "../../../src/ports/snmp.js";
import { communityMessage, parseRequest, type Value, v3PlainMessage, varbind } from "./ber.js";

type Mode =
  | "good"
  | "repeat"
  | "backwards"
  | "wrongid"
  | "garbage"
  | "truncated"
  | "badtype"
  | "otherport"
  | "otheraddr"
  | "endless"
  | "slow-endless"
  | "v3-noauth";

const HOST = "127.0.0.1";
/** A second loopback address, random so parallel files do not collide. */
const OTHER = `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}`;
const TABLE = "1.3.6.1.4.1.99999.1";

interface Responder {
  port: number;
  hits: number;
  close(): Promise<void>;
}

function bind(s: dgram.Socket, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    s.once("error", reject);
    s.bind(0, host, () => resolve());
  });
}

function lastArcPlus(oid: string, n: number): string {
  const a = oid.split(".");
  a[a.length - 1] = String(Number(a[a.length - 1]) + n);
  return a.join(".");
}

/** A UDP "agent" that misbehaves as its mode says (v2c, or v3 for v3-noauth). */
async function responder(mode: Mode): Promise<Responder> {
  const s = dgram.createSocket("udp4");
  await bind(s, HOST);
  let side: dgram.Socket | undefined;
  if (mode === "otherport" || mode === "otheraddr") {
    side = dgram.createSocket("udp4");
    await bind(side, mode === "otheraddr" ? OTHER : HOST);
  }
  const r: Responder = {
    port: s.address().port,
    hits: 0,
    close: async () => {
      await new Promise<void>((res) => s.close(() => res()));
      if (side) await new Promise<void>((res) => side?.close(() => res()));
    },
  };
  s.on("message", (msg, rinfo) => {
    r.hits++;
    let req: ReturnType<typeof parseRequest>;
    try {
      req = parseRequest(msg);
    } catch {
      return;
    }
    const reply = (buf: Buffer, from: dgram.Socket = s) => from.send(buf, rinfo.port, rinfo.address);
    if (mode === "v3-noauth") {
      // Answer the discovery (and anything) with an unauthenticated GetResponse carrying the right msgID.
      reply(
        v3PlainMessage(req.reqId, 0, "", 0xa2, req.pduReqId ?? 0, [
          varbind("1.3.6.1.2.1.1.5.0", { type: "str", v: "spoofed" }),
        ]),
      );
      return;
    }
    const community = req.community ?? "";
    const bulk = req.pduTag === 0xa5;
    const reps = Math.max(1, Math.min(req.maxRepetitions ?? 1, 50));
    const answer = (vbs: Buffer[], id = req.reqId) => communityMessage(1, community, 0xa2, id, vbs);
    const str = (v: string): Value => ({ type: "str", v });
    switch (mode) {
      case "good": {
        if (!bulk) {
          reply(answer(req.oids.map((o) => varbind(o, str(`ok ${o}`)))));
          return;
        }
        // a 10-row table under TABLE, then one object after it
        const rows = Array.from({ length: 10 }, (_, i) => `${TABLE}.${i + 1}`).concat([
          "1.3.6.1.4.1.99999.2.0",
        ]);
        const start = req.oids[0] ?? TABLE;
        const next = rows.filter((o) => cmp(o, start) > 0).slice(0, reps);
        reply(answer(next.map((o) => varbind(o, str(o)))));
        return;
      }
      case "repeat":
        reply(
          answer(req.oids.map((o) => varbind(bulk ? (o === TABLE ? `${TABLE}.1` : o) : o, str("again")))),
        );
        return;
      case "backwards": {
        const o = req.oids[0] ?? TABLE;
        reply(answer([varbind(o === TABLE ? `${TABLE}.5` : `${TABLE}.2`, str("back"))]));
        return;
      }
      case "endless":
      case "slow-endless": {
        const o = req.oids[0] ?? TABLE;
        const first = o === TABLE ? `${TABLE}.1` : lastArcPlus(o, 1);
        const vbs = Array.from({ length: reps }, (_, i) => varbind(lastArcPlus(first, i), str("more")));
        if (mode === "slow-endless") setTimeout(() => reply(answer(vbs)), 60);
        else reply(answer(vbs));
        return;
      }
      case "wrongid":
        reply(answer([varbind(req.oids[0] ?? TABLE, str("x"))], req.reqId + 1));
        return;
      case "garbage":
        reply(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01, 0xde, 0xad, 0xbe, 0xef]));
        return;
      case "truncated": {
        const full = answer(req.oids.map((o) => varbind(o, str("cut short"))));
        reply(full.subarray(0, full.length - 5));
        return;
      }
      case "badtype":
        // well framed, but a value type net-snmp does not know (0x49)
        reply(
          answer(req.oids.map((o) => varbind(o, { type: "raw", tag: 0x49, bytes: Buffer.from([1, 2]) }))),
        );
        return;
      case "otherport":
      case "otheraddr":
        reply(answer(req.oids.map((o) => varbind(o, str("from elsewhere")))), side);
        return;
    }
  });
  return r;
}

function cmp(a: string, b: string): number {
  const x = a.split(".").map(Number);
  const y = b.split(".").map(Number);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = (x[i] as number) - (y[i] as number);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

const v2c = (port: number, address = HOST): SnmpTarget => ({
  address,
  port,
  credential: { name: "t", type: "snmpv2c", community: "public-test" },
});

describe("NetSnmpClient against hostile responders", () => {
  const metrics = new PromRegistry();
  const client = new NetSnmpClient({ metrics, timeoutMs: 250, retries: 0 });
  const responders = new Map<Mode, Responder>();
  const errors = (reason: string) => metrics.get(SNMP_ERRORS_METRIC, { reason });
  const r = (m: Mode) => responders.get(m) as Responder;

  beforeAll(async () => {
    const modes: Mode[] = [
      "good",
      "repeat",
      "backwards",
      "wrongid",
      "garbage",
      "truncated",
      "badtype",
      "otherport",
      "otheraddr",
      "endless",
      "slow-endless",
      "v3-noauth",
    ];
    for (const m of modes) responders.set(m, await responder(m));
  });
  afterAll(async () => {
    await client.close();
    for (const x of responders.values()) await x.close();
  });

  it("a good responder is served (get and walk)", async () => {
    const g = await client.get(v2c(r("good").port), ["1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.1.0"]);
    expect(g).toEqual({
      ok: true,
      value: [
        { oid: "1.3.6.1.2.1.1.5.0", type: "OctetString", value: "ok 1.3.6.1.2.1.1.5.0" },
        { oid: "1.3.6.1.2.1.1.1.0", type: "OctetString", value: "ok 1.3.6.1.2.1.1.1.0" },
      ],
    });
    const w = await client.walk(v2c(r("good").port), TABLE, { maxVarbinds: 100, maxMs: 2000 });
    expect(w.ok).toBe(true);
    if (w.ok)
      expect(w.value.map((v) => v.oid)).toEqual(Array.from({ length: 10 }, (_, i) => `${TABLE}.${i + 1}`));
  });

  it("detects repeating and backwards OIDs in walks (loop), counted", async () => {
    const before = errors("loop");
    const rep = await client.walk(v2c(r("repeat").port), TABLE, { maxVarbinds: 100, maxMs: 2000 });
    expect(rep).toMatchObject({ ok: false, error: { code: "POLYFLEET_ERR_SNMP_WALK_LOOP" } });
    const back = await client.walk(v2c(r("backwards").port), TABLE, { maxVarbinds: 100, maxMs: 2000 });
    expect(back).toMatchObject({ ok: false, error: { code: "POLYFLEET_ERR_SNMP_WALK_LOOP" } });
    expect(errors("loop")).toBe(before + 2);
  });

  it("bounds endless walks by varbinds and by time, counted as limit", async () => {
    const before = errors("limit");
    const many = await client.walk(v2c(r("endless").port), TABLE, { maxVarbinds: 120, maxMs: 10_000 });
    expect(many).toMatchObject({ ok: false, error: { code: "POLYFLEET_ERR_SNMP_WALK_LIMIT" } });
    const hitsBefore = r("slow-endless").hits;
    const slow = await client.walk(v2c(r("slow-endless").port), TABLE, {
      maxVarbinds: 1_000_000,
      maxMs: 400,
    });
    expect(slow).toMatchObject({ ok: false, error: { code: "POLYFLEET_ERR_SNMP_WALK_LIMIT" } });
    // it stopped asking: a handful of round trips, not a million varbinds
    expect(r("slow-endless").hits - hitsBefore).toBeLessThan(20);
    expect(errors("limit")).toBe(before + 2);
  });

  it("rejects answers with a wrong request id, counted; the request times out", async () => {
    const before = errors("wrong_request_id");
    const res = await client.get(v2c(r("wrongid").port), ["1.3.6.1.2.1.1.5.0"]);
    expect(res).toMatchObject({ ok: false, error: { code: "POLYFLEET_ERR_SNMP_TIMEOUT" } });
    expect(errors("wrong_request_id")).toBe(before + 1);
  });

  it("rejects answers from another port and from another address, counted", async () => {
    const before = errors("wrong_source");
    const a = await client.get(v2c(r("otherport").port), ["1.3.6.1.2.1.1.5.0"]);
    const b = await client.get(v2c(r("otheraddr").port), ["1.3.6.1.2.1.1.5.0"]);
    expect(a).toMatchObject({ ok: false, error: { code: "POLYFLEET_ERR_SNMP_TIMEOUT" } });
    expect(b).toMatchObject({ ok: false, error: { code: "POLYFLEET_ERR_SNMP_TIMEOUT" } });
    expect(errors("wrong_source")).toBe(before + 2);
  });

  it("rejects garbage, truncated and undecodable answers as malformed, without crashing", async () => {
    const before = errors("malformed");
    for (const m of ["garbage", "truncated", "badtype"] as const) {
      const res = await client.get(v2c(r(m).port), ["1.3.6.1.2.1.1.5.0"]);
      expect(res, m).toMatchObject({ ok: false, error: { code: "POLYFLEET_ERR_SNMP_MALFORMED" } });
    }
    // each bad datagram counted once (the failed request is not counted a second time)
    expect(errors("malformed")).toBe(before + 3);
  });

  it("refuses an unauthenticated v3 Response to an authPriv request", async () => {
    const before = errors("auth");
    const res = await client.get(
      {
        address: HOST,
        port: r("v3-noauth").port,
        credential: {
          name: "v3",
          type: "snmpv3",
          user: "u",
          level: "authPriv",
          authProtocol: "sha256",
          authKey: "authkey-123",
          privProtocol: "aes128",
          privKey: "privkey-123",
        },
      },
      ["1.3.6.1.2.1.1.5.0"],
    );
    expect(res).toMatchObject({ ok: false, error: { code: "POLYFLEET_ERR_SNMP_AUTH" } });
    expect(errors("auth")).toBe(before + 1);
  });

  it("keeps serving the good target while every hostile one is hit at once", async () => {
    const hostile: Mode[] = [
      "repeat",
      "wrongid",
      "garbage",
      "truncated",
      "badtype",
      "otherport",
      "otheraddr",
      "endless",
    ];
    const bad = hostile.flatMap((m) =>
      Array.from({ length: 5 }, () =>
        m === "repeat" || m === "endless"
          ? client.walk(v2c(r(m).port), TABLE, { maxVarbinds: 50, maxMs: 1000 })
          : client.get(v2c(r(m).port), ["1.3.6.1.2.1.1.5.0"]),
      ),
    );
    const good = Array.from({ length: 40 }, (_, i) =>
      client.get(v2c(r("good").port), [`1.3.6.1.2.1.1.${i + 1}.0`]),
    );
    const [goods, bads] = await Promise.all([Promise.all(good), Promise.all(bad)]);
    expect(goods.every((g) => g.ok)).toBe(true);
    expect(bads.every((b) => !b.ok)).toBe(true);
    const after = await client.get(v2c(r("good").port), ["1.3.6.1.2.1.1.5.0"]);
    expect(after.ok).toBe(true);
  });

  it("honours AbortSignal and invalid OIDs as values", async () => {
    const ctl = new AbortController();
    const p = client.get(v2c(r("wrongid").port), ["1.3.6.1.2.1.1.5.0"], {
      signal: ctl.signal,
      timeoutMs: 10_000,
    });
    setTimeout(() => ctl.abort(), 20);
    const res = await p;
    expect(res).toMatchObject({
      ok: false,
      error: { code: "POLYFLEET_ERR_SNMP_TIMEOUT", message: "aborted" },
    });
    expect(await client.get(v2c(r("good").port), ["1.3.x"])).toMatchObject({
      ok: false,
      error: { code: "POLYFLEET_ERR_COMMAND_INVALID" },
    });
  });

  it("shares UDP sockets between sessions and bounds requests in flight per socket", async () => {
    const m = new PromRegistry();
    const small = new NetSnmpClient({
      metrics: m,
      timeoutMs: 1000,
      retries: 0,
      pool: { targetsPerSocket: 4, maxInFlightPerSocket: 3 },
    });
    try {
      // 8 sessions (different community names = different sessions) → 2 sockets
      const targets = Array.from(
        { length: 8 },
        (_, i): SnmpTarget => ({
          address: HOST,
          port: r("good").port,
          credential: { name: `c${i}`, type: "snmpv2c", community: `comm${i}` },
        }),
      );
      const res = await Promise.all(
        targets.flatMap((t) => Array.from({ length: 10 }, () => small.get(t, ["1.3.6.1.2.1.1.5.0"]))),
      );
      expect(res.every((x) => x.ok)).toBe(true);
      expect(small.stats()).toEqual({ sockets: 2, sessions: 8 });
    } finally {
      await small.close();
    }
    expect(small.stats()).toEqual({ sockets: 0, sessions: 0 });
  });
});
