import { describe, expect, it } from "vitest";
import { isProtocolRefusal, reconnectDelayMs, replayTimeoutMs } from "../../src/core/mqtt-link-policy.js";

describe("mqtt link policy", () => {
  it("backs off exponentially with equal jitter, capped", () => {
    const o = { minMs: 500, maxMs: 30_000 };
    expect(reconnectDelayMs(0, o, () => 0)).toBe(250);
    expect(reconnectDelayMs(0, o, () => 0.999999)).toBe(500);
    expect(reconnectDelayMs(3, o, () => 0)).toBe(2000);
    expect(reconnectDelayMs(50, o, () => 0.999999)).toBe(30_000);
  });
  it("recognises a broker that refuses MQTT 5", () => {
    expect(isProtocolRefusal(1)).toBe(true);
    expect(isProtocolRefusal(132)).toBe(true);
    expect(isProtocolRefusal(5)).toBe(false);
    expect(isProtocolRefusal(undefined)).toBe(false);
  });
  it("doubles the replay timeout per fruitless replay, capped", () => {
    expect(replayTimeoutMs(15_000, 0, 300_000)).toBe(15_000);
    expect(replayTimeoutMs(15_000, 2, 300_000)).toBe(60_000);
    expect(replayTimeoutMs(15_000, 40, 300_000)).toBe(300_000);
  });
});
