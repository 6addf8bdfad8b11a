/**
 * A cheap BER look at an SNMP message header, done before net-snmp parses it: enough to route a response
 * to the session whose request it answers and to drop obvious garbage. It checks that the outer SEQUENCE
 * length matches the datagram exactly (a truncated or padded datagram fails) and decodes:
 * - v1/v2c: version, community length, PDU tag, request-id;
 * - v3: version, msgID, msgFlags and, when the scoped PDU is in clear text, its PDU tag.
 */
export interface SnmpPeek {
  /** 0 = v1, 1 = v2c, 3 = v3. */
  version: number;
  /** request-id (v1/v2c) or msgID (v3): the key net-snmp registers requests under. */
  reqId: number;
  /** v3 msgFlags (bit 0 auth, bit 1 priv, bit 2 reportable); 0 for v1/v2c. */
  flags: number;
  /** PDU tag (0xa2 response, 0xa7 trapV2, 0xa8 report...) when readable; undefined for encrypted v3. */
  pduTag: number | undefined;
}

export const PDU_GET_RESPONSE = 0xa2;
export const PDU_REPORT = 0xa8;

interface Tlv {
  tag: number;
  /** Offset of the value. */
  start: number;
  /** Offset after the value. */
  end: number;
}

function readTlv(b: Buffer, at: number, limit: number): Tlv | undefined {
  if (at + 2 > limit) return undefined;
  const tag = b[at] as number;
  let len = b[at + 1] as number;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (b[start + i] as number);
    start += n;
  }
  const end = start + len;
  if (end > limit) return undefined;
  return { tag, start, end };
}

function readInt(b: Buffer, t: Tlv): number | undefined {
  const n = t.end - t.start;
  if (t.tag !== 0x02 || n < 1 || n > 5) return undefined;
  let v = (b[t.start] as number) & 0x80 ? -1 : 0;
  for (let i = t.start; i < t.end; i++) v = v * 256 + (b[i] as number);
  if (n === 5 && (b[t.start] as number) !== 0) return undefined;
  return v;
}

/** Decodes the header of an SNMP message, or undefined when the datagram is not a well-framed SNMP message. */
export function peekSnmp(b: Buffer): SnmpPeek | undefined {
  const outer = readTlv(b, 0, b.length);
  if (outer?.tag !== 0x30 || outer.end !== b.length) return undefined;
  const ver = readTlv(b, outer.start, outer.end);
  if (!ver) return undefined;
  const version = readInt(b, ver);
  if (version === undefined) return undefined;
  if (version === 0 || version === 1) {
    const community = readTlv(b, ver.end, outer.end);
    if (community?.tag !== 0x04) return undefined;
    const pdu = readTlv(b, community.end, outer.end);
    if (!pdu || pdu.tag < 0xa0 || pdu.tag > 0xa8 || pdu.end !== outer.end) return undefined;
    if (pdu.tag === 0xa4) return { version, reqId: 0, flags: 0, pduTag: pdu.tag }; // v1 Trap-PDU has no request-id
    const id = readTlv(b, pdu.start, pdu.end);
    if (!id) return undefined;
    const reqId = readInt(b, id);
    if (reqId === undefined) return undefined;
    return { version, reqId, flags: 0, pduTag: pdu.tag };
  }
  if (version !== 3) return undefined;
  const global = readTlv(b, ver.end, outer.end);
  if (global?.tag !== 0x30) return undefined;
  const msgId = readTlv(b, global.start, global.end);
  if (!msgId) return undefined;
  const reqId = readInt(b, msgId);
  if (reqId === undefined) return undefined;
  const maxSize = readTlv(b, msgId.end, global.end);
  if (maxSize?.tag !== 0x02) return undefined;
  const flagsTlv = readTlv(b, maxSize.end, global.end);
  if (flagsTlv?.tag !== 0x04 || flagsTlv.end - flagsTlv.start !== 1) return undefined;
  const flags = b[flagsTlv.start] as number;
  const model = readTlv(b, flagsTlv.end, global.end);
  if (model?.tag !== 0x02 || model.end !== global.end) return undefined;
  const sec = readTlv(b, global.end, outer.end);
  if (sec?.tag !== 0x04) return undefined;
  const scoped = readTlv(b, sec.end, outer.end);
  if (!scoped || scoped.end !== outer.end) return undefined;
  if (flags & 0x02) {
    if (scoped.tag !== 0x04) return undefined;
    return { version, reqId, flags, pduTag: undefined };
  }
  if (scoped.tag !== 0x30) return undefined;
  const ctxEngine = readTlv(b, scoped.start, scoped.end);
  if (ctxEngine?.tag !== 0x04) return undefined;
  const ctxName = readTlv(b, ctxEngine.end, scoped.end);
  if (ctxName?.tag !== 0x04) return undefined;
  const pdu = readTlv(b, ctxName.end, scoped.end);
  if (!pdu || pdu.tag < 0xa0 || pdu.tag > 0xa8) return undefined;
  return { version, reqId, flags, pduTag: pdu.tag };
}
