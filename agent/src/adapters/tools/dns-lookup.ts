import { lookup, Resolver } from "node:dns/promises";
import { isIP } from "node:net";
import type { CommandHandler } from "../../ports/command.js";

export interface DnsLookupOptions {
  /**
   * DNS servers to ask (`"127.0.0.1:5353"`, `"[::1]:53"`). When set, every record type is asked of them.
   * When absent, A and AAAA go through the system resolver (getaddrinfo: /etc/hosts, nsswitch, DNS — what
   * the agent host itself would use) and the other types to the servers in /etc/resolv.conf.
   */
  servers?: string[];
  /** Time limit of one lookup (default 5 s). */
  timeoutMs?: number;
}

/** DNS answer codes for the errors Node's resolver reports. */
const RCODE: Record<string, string> = {
  ENOTFOUND: "NXDOMAIN",
  ENODATA: "NOERROR",
  ESERVFAIL: "SERVFAIL",
  EREFUSED: "REFUSED",
  EFORMERR: "FORMERR",
  ENOTIMP: "NOTIMP",
};

type DnsBody = Parameters<CommandHandler<"dnsLookup">>[0];

/**
 * `dnsLookup`: resolves `name` for `rrtype` (A, AAAA, CNAME, MX, TXT, SRV, PTR, NS; PTR of an IP address is
 * a reverse lookup). Resolves with `{ name, rrtype, source, records, error }`; a failed lookup is a result:
 * `records: []` and `error: { code, rcode, message }` with the resolver's code (ENOTFOUND = NXDOMAIN,
 * ENODATA = no record of that type, ETIMEOUT, ECONNREFUSED, ...).
 */
export function createDnsLookupHandler(opts: DnsLookupOptions = {}): CommandHandler<"dnsLookup"> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  return async (body, ctx) => {
    const useSystem = opts.servers === undefined && (body.rrtype === "A" || body.rrtype === "AAAA");
    const base = { name: body.name, rrtype: body.rrtype, source: useSystem ? "system" : "dns" };
    const resolver = new Resolver({ timeout: timeoutMs, tries: 1 });
    if (opts.servers) resolver.setServers(opts.servers);
    const deadline = AbortSignal.any([ctx.signal, AbortSignal.timeout(timeoutMs + 100)]);
    const onAbort = (): void => resolver.cancel();
    deadline.addEventListener("abort", onAbort, { once: true });
    try {
      const records = await abortable(useSystem ? systemLookup(body) : query(resolver, body), deadline);
      return { ...base, records, count: records.length, error: null };
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const code = deadline.aborted && !ctx.signal.aborted ? "ETIMEOUT" : (err.code ?? "ERROR");
      return {
        ...base,
        records: [],
        count: 0,
        error: { code, rcode: RCODE[code] ?? null, message: err.message ?? String(e) },
      };
    } finally {
      deadline.removeEventListener("abort", onAbort);
    }
  };
}

async function systemLookup(body: DnsBody): Promise<Record<string, unknown>[]> {
  const found = await lookup(body.name, { family: body.rrtype === "AAAA" ? 6 : 4, all: true });
  return found.map((a) => ({ address: a.address }));
}

async function query(r: Resolver, body: DnsBody): Promise<unknown[]> {
  const name = body.name;
  switch (body.rrtype) {
    case "A":
      return (await r.resolve4(name, { ttl: true })).map((a) => ({ address: a.address, ttl: a.ttl }));
    case "AAAA":
      return (await r.resolve6(name, { ttl: true })).map((a) => ({ address: a.address, ttl: a.ttl }));
    case "CNAME":
      return (await r.resolveCname(name)).map((value) => ({ value }));
    case "MX":
      return (await r.resolveMx(name)).map((m) => ({ exchange: m.exchange, priority: m.priority }));
    case "TXT":
      return (await r.resolveTxt(name)).map((chunks) => ({ text: chunks.join(""), chunks }));
    case "SRV":
      return (await r.resolveSrv(name)).map((s) => ({
        name: s.name,
        port: s.port,
        priority: s.priority,
        weight: s.weight,
      }));
    case "PTR":
      return (isIP(name) ? await r.reverse(name) : await r.resolvePtr(name)).map((value) => ({ value }));
    case "NS":
      return (await r.resolveNs(name)).map((value) => ({ value }));
  }
}

/** Settles with `p`, or rejects as soon as `signal` aborts (getaddrinfo itself cannot be cancelled). */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}
