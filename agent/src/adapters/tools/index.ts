import type { CommandHandlers } from "../../ports/command.js";
import { createDnsLookupHandler, type DnsLookupOptions } from "./dns-lookup.js";
import { createHttpProbeHandler, type HttpProbeOptions } from "./http-probe.js";
import { createPingHandler, type PingHandlerOptions } from "./ping.js";
import { createTcpConnectHandler } from "./tcp-connect.js";
import { createTracerouteHandler, type TracerouteHandlerOptions } from "./traceroute.js";

export { createDnsLookupHandler, type DnsLookupOptions } from "./dns-lookup.js";
export { createHttpProbeHandler, type HttpProbeOptions, type ProbeCertificate } from "./http-probe.js";
export { createPingHandler, type PingHandlerOptions } from "./ping.js";
export { type RunToolOptions, runTool, type ToolRun } from "./run-tool.js";
export { createTcpConnectHandler } from "./tcp-connect.js";
export { createTracerouteHandler, type TracerouteHandlerOptions } from "./traceroute.js";

export interface NetworkToolOptions {
  ping?: PingHandlerOptions;
  traceroute?: TracerouteHandlerOptions;
  httpProbe?: HttpProbeOptions;
  dnsLookup?: DnsLookupOptions;
}

/** The network-tool command handlers (ping, tcpConnect, httpProbe, dnsLookup, traceroute). */
export function createNetworkToolHandlers(opts: NetworkToolOptions = {}): CommandHandlers {
  return {
    ping: createPingHandler(opts.ping),
    tcpConnect: createTcpConnectHandler(),
    httpProbe: createHttpProbeHandler(opts.httpProbe),
    dnsLookup: createDnsLookupHandler(opts.dnsLookup),
    traceroute: createTracerouteHandler(opts.traceroute),
  };
}
