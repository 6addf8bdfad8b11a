import { freeUdpPort } from "@polyfleet/scripts/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDnsLookupHandler } from "../../../src/adapters/tools/dns-lookup.js";
import type { CommandContext } from "../../../src/ports/command.js";
import { startTinyDnsServer, type TinyDnsServer } from "./tiny-dns-server.js";

const ctx = (): CommandContext => ({ commandId: "cmd-dns-0001", signal: new AbortController().signal });
type Rr = "A" | "AAAA" | "CNAME" | "MX" | "TXT" | "SRV" | "PTR" | "NS";

let dns: TinyDnsServer;

beforeAll(async () => {
  dns = await startTinyDnsServer({
    "phone.site.test": [
      { type: "A", address: "10.1.2.3", ttl: 120 },
      { type: "A", address: "10.1.2.4", ttl: 120 },
      { type: "AAAA", address: "fd00::1:2", ttl: 60 },
      { type: "MX", priority: 10, exchange: "mail.site.test" },
      { type: "MX", priority: 20, exchange: "backup.site.test" },
      { type: "TXT", chunks: ["v=spf1 -all"] },
      { type: "TXT", chunks: ["part one;", "part two"] },
      { type: "NS", target: "ns1.site.test" },
    ],
    "prov.site.test": [{ type: "CNAME", target: "phone.site.test" }],
    "_sip._tcp.site.test": [{ type: "SRV", priority: 10, weight: 60, port: 5060, target: "sbc.site.test" }],
    "3.2.1.10.in-addr.arpa": [{ type: "PTR", target: "phone.site.test" }],
    "empty.site.test": [],
  });
});
afterAll(async () => {
  await dns.close();
});

function lookup(name: string, rrtype: Rr, servers = [dns.address]) {
  return createDnsLookupHandler({ servers, timeoutMs: 2000 })({ type: "dnsLookup", name, rrtype }, ctx());
}

describe("dnsLookup against a DNS server on loopback", () => {
  it("resolves A and AAAA records with their TTLs", async () => {
    const a = await lookup("phone.site.test", "A");
    expect(a).toEqual({
      name: "phone.site.test",
      rrtype: "A",
      source: "dns",
      records: [
        { address: "10.1.2.3", ttl: 120 },
        { address: "10.1.2.4", ttl: 120 },
      ],
      count: 2,
      error: null,
    });
    expect(dns.queries).toContain("phone.site.test A");
    const aaaa = await lookup("phone.site.test", "AAAA");
    expect(aaaa.records).toEqual([{ address: "fd00::1:2", ttl: 60 }]);
  });

  it("resolves CNAME, MX, TXT, SRV, NS and PTR records", async () => {
    expect((await lookup("prov.site.test", "CNAME")).records).toEqual([{ value: "phone.site.test" }]);
    expect((await lookup("phone.site.test", "MX")).records).toEqual([
      { exchange: "mail.site.test", priority: 10 },
      { exchange: "backup.site.test", priority: 20 },
    ]);
    expect((await lookup("phone.site.test", "TXT")).records).toEqual([
      { text: "v=spf1 -all", chunks: ["v=spf1 -all"] },
      { text: "part one;part two", chunks: ["part one;", "part two"] },
    ]);
    expect((await lookup("_sip._tcp.site.test", "SRV")).records).toEqual([
      { name: "sbc.site.test", port: 5060, priority: 10, weight: 60 },
    ]);
    expect((await lookup("phone.site.test", "NS")).records).toEqual([{ value: "ns1.site.test" }]);
    // PTR of an address is a reverse lookup of <reversed>.in-addr.arpa.
    expect((await lookup("10.1.2.3", "PTR")).records).toEqual([{ value: "phone.site.test" }]);
    expect(dns.queries).toContain("3.2.1.10.in-addr.arpa PTR");
    expect((await lookup("3.2.1.10.in-addr.arpa", "PTR")).records).toEqual([{ value: "phone.site.test" }]);
  });

  it("reports NXDOMAIN, no data, SERVFAIL and REFUSED as error values with the DNS code", async () => {
    expect(await lookup("nothing.site.test", "A")).toMatchObject({
      records: [],
      count: 0,
      error: { code: "ENOTFOUND", rcode: "NXDOMAIN" },
    });
    expect((await lookup("empty.site.test", "MX")).error).toMatchObject({
      code: "ENODATA",
      rcode: "NOERROR",
    });
    expect((await lookup("x.servfail.test", "A")).error).toMatchObject({
      code: "ESERVFAIL",
      rcode: "SERVFAIL",
    });
    expect((await lookup("x.refused.test", "TXT")).error).toMatchObject({
      code: "EREFUSED",
      rcode: "REFUSED",
    });
  });

  it("reports a server that does not answer as an error value within the time limit", async () => {
    const port = await freeUdpPort();
    const r = await createDnsLookupHandler({ servers: [`127.0.0.1:${port}`], timeoutMs: 500 })(
      { type: "dnsLookup", name: "phone.site.test", rrtype: "A" },
      ctx(),
    );
    expect(r.records).toEqual([]);
    expect((r.error as { code: string }).code).toMatch(/^(ECONNREFUSED|ETIMEOUT)$/);
  });
});

describe("dnsLookup through the system resolver", () => {
  it("resolves localhost from /etc/hosts for A", async () => {
    const r = await createDnsLookupHandler()({ type: "dnsLookup", name: "localhost", rrtype: "A" }, ctx());
    expect(r.source).toBe("system");
    expect(r.error).toBeNull();
    expect(r.records).toContainEqual({ address: "127.0.0.1" });
  });

  it("reports a name that does not resolve as an error value", async () => {
    const r = await createDnsLookupHandler({ timeoutMs: 3000 })(
      { type: "dnsLookup", name: "no-such-host.invalid", rrtype: "A" },
      ctx(),
    );
    expect(r.records).toEqual([]);
    expect(typeof (r.error as { code: string }).code).toBe("string");
  });
});
