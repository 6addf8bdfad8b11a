import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { hostAddresses, intToIp, ipToInt } from "../../src/simulator/addresses.js";

describe("simulator addresses", () => {
  it("round-trips every IPv4 address", () => {
    fc.assert(fc.property(fc.ipV4(), (ip) => intToIp(ipToInt(ip)) === ip));
  });

  it("gives the first hosts of a /24, skipping network and broadcast", () => {
    const a = hostAddresses("127.0.10.0/24", 254);
    expect(a[0]).toBe("127.0.10.1");
    expect(a.at(-1)).toBe("127.0.10.254");
    expect(new Set(a).size).toBe(254);
    expect(() => hostAddresses("127.0.10.0/24", 255)).toThrow(/holds only 254/);
  });

  it("fits 2,000 devices in a /21 without .0 or .255 hosts", () => {
    const a = hostAddresses("127.0.8.0/21", 2000);
    expect(a).toHaveLength(2000);
    expect(a.every((ip) => !ip.endsWith(".0") && !ip.endsWith(".255"))).toBe(true);
    expect(
      a.every((ip) => ipToInt(ip) >= ipToInt("127.0.8.0") && ipToInt(ip) <= ipToInt("127.0.15.255")),
    ).toBe(true);
  });

  it("refuses what is not a CIDR", () => {
    expect(() => hostAddresses("127.0.10.0", 1)).toThrow(/CIDR/);
    expect(() => hostAddresses("300.0.0.0/24", 1)).toThrow(/IPv4/);
  });
});
