import type { AgentRecord, AgentState, DeviceRecord, FirmwareComponent, Reading } from "@polyfleet/shared";

/** A device's inventory record plus the timestamp of the reading it was last merged from. */
export interface DeviceState {
  record: DeviceRecord;
  /** `ts` of the newest reading applied (reachable or not): older readings are ignored. */
  readingTs: number;
}

/**
 * The main software version of a device: the `application` component on UC phones, the `system` component on
 * VideoOS, else the first component.
 */
export function mainFirmware(firmware: readonly FirmwareComponent[]): FirmwareComponent | undefined {
  for (const c of firmware) if (c.component === "application" || c.component === "system") return c;
  return firmware[0];
}

/**
 * Keeps only the newest reading of each device (highest `ts`, then highest `seq`); the result keeps the
 * order of first appearance. Returns the input array itself when every device appears once.
 */
export function newestPerDevice(readings: readonly Reading[]): readonly Reading[] {
  const byId = new Map<string, number>();
  let dup = false;
  for (let i = 0; i < readings.length; i++) {
    const r = readings[i] as Reading;
    const j = byId.get(r.deviceId);
    if (j === undefined) {
      byId.set(r.deviceId, i);
      continue;
    }
    dup = true;
    const prev = readings[j] as Reading;
    if (r.ts > prev.ts || (r.ts === prev.ts && r.seq > prev.seq)) byId.set(r.deviceId, i);
  }
  if (!dup) return readings;
  const keep = [...byId.values()].sort((a, b) => a - b);
  return keep.map((i) => readings[i] as Reading);
}

/**
 * Merges one reading into a device's state (pure). Returns undefined when the reading is older than the one
 * last applied (a late replay must not roll the state back).
 *
 * A reachable reading sets identity (fields the reading lacks keep their last known value), firmware (an
 * empty list keeps the last known one), software version/build, health, peripherals, lines, metrics,
 * `lastSeen` and the agent/site. An unreachable reading only flips `reachable` (identity, firmware, metrics
 * and `lastSeen` keep their last known values); for a device never seen before it creates a record from the
 * reading's identity. `firstSeen` and `tags` are always kept.
 */
export function applyReading(prev: DeviceState | undefined, r: Reading): DeviceState | undefined {
  if (prev && r.ts < prev.readingTs) return undefined;
  const p = prev?.record;
  if (p && !r.reachable) {
    return { record: p.reachable ? { ...p, reachable: false } : p, readingTs: r.ts };
  }
  const id = r.identity;
  const firmware = r.firmware.length > 0 || !p ? r.firmware : p.firmware;
  const main = mainFirmware(firmware);
  const rec: DeviceRecord = {
    deviceId: r.deviceId,
    siteId: r.siteId,
    agentId: r.agentId,
    address: id.address,
    family: id.family,
    driver: r.driver,
    firmware,
    health: r.health,
    peripherals: r.peripherals,
    lines: r.lines,
    reachable: r.reachable,
    tags: p?.tags ?? [],
    firstSeen: p ? Math.min(p.firstSeen, r.ts) : r.ts,
    lastSeen: p ? Math.max(p.lastSeen, r.ts) : r.ts,
  };
  setOpt(rec, "model", id.model ?? p?.model);
  setOpt(rec, "serial", id.serial ?? p?.serial);
  setOpt(rec, "mac", id.mac ?? p?.mac);
  setOpt(rec, "partNumber", id.partNumber ?? p?.partNumber);
  setOpt(rec, "systemName", id.systemName ?? p?.systemName);
  setOpt(rec, "softwareVersion", main?.version ?? p?.softwareVersion);
  setOpt(rec, "softwareBuild", main ? main.build : p?.softwareBuild);
  if (r.reachable) {
    setOpt(rec, "cpuPct", r.cpuPct);
    setOpt(rec, "memPct", r.memPct);
    setOpt(rec, "packetLossPct", r.network.packetLossPct);
    setOpt(rec, "uptimeSec", r.uptimeSec);
    setOpt(rec, "inCall", r.inCall);
    rec.lastPollLatencyMs = r.pollLatencyMs;
  }
  return { record: rec, readingTs: r.ts };
}

function setOpt<K extends keyof DeviceRecord>(
  rec: DeviceRecord,
  key: K,
  v: DeviceRecord[K] | undefined,
): void {
  if (v !== undefined) rec[key] = v;
}

/** The record of an agent first known from its stream (no birth seen yet). */
export function newAgent(agentId: string, siteId: string, ts: number, ackedSeq: number): AgentRecord {
  return {
    agentId,
    siteId,
    status: "online",
    sessionId: "",
    capabilities: [],
    since: ts,
    lastSeen: ts,
    ackedSeq,
  };
}

/**
 * The agent record after a birth/Will (shared by every adapter). A birth sets online with its session; an
 * offline state applies only to the current session (undefined = ignored as stale).
 */
export function nextAgentRecord(
  cur: AgentRecord | undefined,
  state: AgentState,
  receivedAt: number,
): AgentRecord | undefined {
  if (state.status === "online") {
    const same = cur?.status === "online" && cur.sessionId === state.sessionId;
    const rec: AgentRecord = {
      agentId: state.agentId,
      siteId: state.siteId,
      status: "online",
      sessionId: state.sessionId,
      version: state.version,
      capabilities: [...state.capabilities],
      protocolVersion: state.protocolVersion,
      since: same && cur ? cur.since : receivedAt,
      lastSeen: Math.max(receivedAt, cur?.lastSeen ?? 0),
      ackedSeq: cur?.ackedSeq ?? 0,
    };
    if (state.hostname !== undefined) rec.hostname = state.hostname;
    return rec;
  }
  if (!cur || cur.sessionId !== state.sessionId) return undefined;
  if (cur.status === "offline") return cur;
  return { ...cur, status: "offline", since: receivedAt };
}
