import { AgentEvent } from "@polyfleet/shared";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  classifyTrap,
  MAX_TRAP_VARBINDS,
  POLY_ENDPOINT_NOTIFICATIONS,
  POLY_TRAPS,
  polyTrap,
  toTrapEvent,
  v1TrapOid,
} from "../../src/core/trap-map.js";

const HEADER = { v: 1 as const, agentId: "a1", siteId: "s1", seq: 1, ts: 1 };
const N = POLY_ENDPOINT_NOTIFICATIONS;

describe("trap-map", () => {
  it("knows every POLYCOM-ENDPOINT-MIB notification of poly-devices.md §3.3", () => {
    const ns = POLY_TRAPS.map((t) => t.n).sort((a, b) => a - b);
    const expected = [17, 19, 21, 22, 23, 24, 25, ...Array.from({ length: 102 - 67 + 1 }, (_, i) => 67 + i)];
    expect(ns).toEqual(expected);
    expect(new Set(POLY_TRAPS.map((t) => t.name)).size).toBe(POLY_TRAPS.length);
  });

  it("pairs every problem with exactly one resolution and back", () => {
    for (const t of POLY_TRAPS) {
      if (t.kind === "info") {
        expect(t.pair).toBeUndefined();
        continue;
      }
      expect(t.pair, t.name).toBeDefined();
      const other = polyTrap(t.pair as number);
      expect(other?.pair, t.name).toBe(t.n);
      expect(other?.kind).toBe(t.kind === "problem" ? "resolution" : "problem");
    }
    expect(classifyTrap(`${N}.76`, [])).toEqual({
      name: "primaryCameraDown",
      kind: "problem",
      severity: "major",
    });
    expect(classifyTrap(`${N}.77`, [])).toMatchObject({ name: "primaryCameraOK", kind: "resolution" });
    expect(classifyTrap(`${N}.95`, [])).toMatchObject({ name: "provisioningServerDown", kind: "problem" });
    expect(classifyTrap(`${N}.69`, [])).toMatchObject({ name: "softwareUpdateFailed", kind: "problem" });
    expect(classifyTrap(`${N}.67`, [])).toMatchObject({ name: "softwareUpdateStarted", kind: "info" });
  });

  it("uses the notification variables for unknown Poly notifications, and names SNMPv2 generic traps", () => {
    const vb = (k: string, v: string) => ({ oid: `1.3.6.1.4.1.13885.101.1.99.${k}`, value: v });
    expect(classifyTrap(`${N}.150`, [vb("3.0", "1"), vb("7.0", "2")])).toEqual({
      name: "polycomEndpointNotification150",
      kind: "problem",
      severity: "critical",
    });
    expect(classifyTrap(`${N}.151`, [])).toMatchObject({ kind: "info", severity: "info" });
    // table entries win over varbinds
    expect(classifyTrap(`${N}.76`, [vb("3.0", "3")]).kind).toBe("problem");
    expect(classifyTrap("1.3.6.1.6.3.1.1.5.3", [])).toMatchObject({ name: "linkDown", kind: "problem" });
    expect(classifyTrap("1.3.6.1.4.1.9.9.41.2.0.1", [])).toEqual({
      name: "1.3.6.1.4.1.9.9.41.2.0.1",
      kind: "info",
      severity: "info",
    });
  });

  it("maps SNMPv1 traps per RFC 3584", () => {
    expect(v1TrapOid("1.3.6.1.4.1.13885.101", 6, 76)).toBe(`${N}.76`);
    expect(v1TrapOid("1.3.6.1.4.1.8072", 2, 0)).toBe("1.3.6.1.6.3.1.1.5.3");
  });

  it("builds events that satisfy the shared contract, bounded in size", () => {
    const e = toTrapEvent({
      trapOid: `${N}.72`,
      varbinds: Array.from({ length: 100 }, (_, i) => ({
        oid: `1.3.6.1.2.1.1.${i}`,
        value: "x".repeat(5000),
      })),
      source: "127.0.0.9",
      deviceId: "00e0db112233",
    });
    expect(e).toBeDefined();
    const parsed = AgentEvent.parse({ ...HEADER, ...e });
    expect(parsed.type).toBe("trap");
    if (parsed.type !== "trap") return;
    expect(parsed.varbinds).toHaveLength(MAX_TRAP_VARBINDS);
    expect(parsed.varbinds[0]?.value.length).toBe(1024);
    expect(parsed).toMatchObject({
      name: "sipRegistrationFailed",
      kind: "problem",
      deviceId: "00e0db112233",
    });
    expect(toTrapEvent({ trapOid: "not-an-oid", varbinds: [], source: "x" })).toBeUndefined();
  });

  it("property: classification is total and every event is contract-valid", () => {
    const oid = fc.oneof(
      fc.string(),
      fc.array(fc.nat({ max: 200_000 }), { minLength: 1, maxLength: 20 }).map((a) => a.join(".")),
      fc.nat({ max: 300 }).map((n) => `${N}.${n}`),
    );
    const vbs = fc.array(
      fc.record({ oid: fc.string({ maxLength: 40 }), value: fc.string({ maxLength: 40 }) }),
      { maxLength: 5 },
    );
    fc.assert(
      fc.property(
        oid,
        vbs,
        fc.option(fc.constantFrom("00e0db000001", "ip-127.0.0.1"), { nil: undefined }),
        (o, v, dev) => {
          const c = classifyTrap(o, v);
          expect(["problem", "resolution", "info"]).toContain(c.kind);
          const e = toTrapEvent({ trapOid: o, varbinds: v, source: "127.0.0.1", deviceId: dev });
          if (/^\d+(\.\d+)+$/.test(o) && o.length <= 1024) {
            expect(AgentEvent.safeParse({ ...HEADER, ...e }).success).toBe(true);
          } else {
            expect(e).toBeUndefined();
          }
        },
      ),
    );
  });

  it("property: every known Poly N classifies to its table entry whatever the varbinds", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...POLY_TRAPS),
        fc.array(fc.record({ oid: fc.string(), value: fc.string() })),
        (t, v) => {
          expect(classifyTrap(`${N}.${t.n}`, v)).toEqual({
            name: t.name,
            kind: t.kind,
            severity: t.severity,
          });
        },
      ),
    );
  });
});
