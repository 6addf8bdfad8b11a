import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { peekSnmp } from "../../../src/adapters/snmp/ber-peek.js";
import { communityMessage, v3PlainMessage, varbind } from "./ber.js";

describe("peekSnmp", () => {
  const vb = [varbind("1.3.6.1.2.1.1.5.0", { type: "str", v: "x".repeat(200) })];

  it("reads version, request id and PDU tag of v1/v2c messages", () => {
    expect(peekSnmp(communityMessage(1, "public", 0xa2, 123456789, vb))).toEqual({
      version: 1,
      reqId: 123456789,
      flags: 0,
      pduTag: 0xa2,
    });
    expect(peekSnmp(communityMessage(0, "c", 0xa2, 7, []))).toEqual({
      version: 0,
      reqId: 7,
      flags: 0,
      pduTag: 0xa2,
    });
    expect(peekSnmp(communityMessage(1, "c", 0xa2, 0xffffffff, vb))?.reqId).toBe(0xffffffff);
  });

  it("reads msgID and flags of v3 messages", () => {
    expect(peekSnmp(v3PlainMessage(4242, 0x04, "u", 0xa8, 1, vb))).toEqual({
      version: 3,
      reqId: 4242,
      flags: 4,
      pduTag: 0xa8,
    });
  });

  it("refuses truncated, padded and non-SNMP datagrams", () => {
    const m = communityMessage(1, "public", 0xa2, 99, vb);
    for (let cut = 0; cut < m.length; cut++) expect(peekSnmp(m.subarray(0, cut))).toBeUndefined();
    expect(peekSnmp(Buffer.concat([m, Buffer.from([0])]))).toBeUndefined();
    expect(peekSnmp(Buffer.from("GET / HTTP/1.1\r\n\r\n"))).toBeUndefined();
    expect(peekSnmp(communityMessage(2, "public", 0xa2, 99, vb))).toBeUndefined();
  });

  it("property: never throws on arbitrary bytes or mutated messages", () => {
    const base = communityMessage(1, "public", 0xa2, 99, vb);
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 600 }),
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        (bytes, at, val) => {
          expect(() => peekSnmp(Buffer.from(bytes))).not.toThrow();
          const mutated = Buffer.from(base);
          mutated[at % mutated.length] = val;
          expect(() => peekSnmp(mutated)).not.toThrow();
        },
      ),
    );
  });
});
