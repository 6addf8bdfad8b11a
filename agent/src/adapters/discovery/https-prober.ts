import { request } from "node:https";
import type { PollError } from "@polyfleet/shared";
import type { HttpsFingerprint } from "../../core/classify.js";

export type HttpsProbeResult = { ok: true; fingerprint: HttpsFingerprint } | { ok: false; error: PollError };

/** One unauthenticated HTTPS GET for fingerprinting (discovery). Never throws. */
export interface HttpsProber {
  probe(
    address: string,
    port: number,
    path: string,
    opts: { signal: AbortSignal },
  ): Promise<HttpsProbeResult>;
}

/** At most this much of a fingerprint body is read; the connection is dropped after it. */
export const PROBE_BODY_LIMIT = 4096;

const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ECONNRESET",
  "EPIPE",
  "EADDRNOTAVAIL",
]);

function errorOf(err: unknown, where: string): PollError {
  const code = (err as { code?: unknown }).code;
  const c = typeof code === "string" ? code : "unknown";
  if (UNREACHABLE.has(c)) {
    return { code: "POLYFLEET_ERR_DEVICE_UNREACHABLE", message: `${where}: ${c}`, endpoint: where };
  }
  if (c.startsWith("ERR_SSL") || c === "EPROTO" || c.startsWith("ERR_TLS")) {
    return { code: "POLYFLEET_ERR_DEVICE_BAD_RESPONSE", message: `${where}: no TLS (${c})`, endpoint: where };
  }
  return { code: "POLYFLEET_ERR_DEVICE_UNREACHABLE", message: `${where}: ${c}`, endpoint: where };
}

function header(v: string | string[] | undefined): string | undefined {
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(", ") : v;
}

/**
 * The node:https prober: a fresh TLS connection per probe (no keep-alive, self-signed certificates
 * accepted, no credentials sent), the status and the headers that fingerprint Poly devices, and at most
 * `PROBE_BODY_LIMIT` bytes of body. Aborting the signal destroys the connection and resolves with a timeout.
 */
export class NodeHttpsProber implements HttpsProber {
  probe(
    address: string,
    port: number,
    path: string,
    opts: { signal: AbortSignal },
  ): Promise<HttpsProbeResult> {
    const where = `https://${address}:${port}${path}`;
    return new Promise<HttpsProbeResult>((resolve) => {
      let settled = false;
      const finish = (r: HttpsProbeResult): void => {
        if (settled) return;
        settled = true;
        opts.signal.removeEventListener("abort", onAbort);
        resolve(r);
      };
      const timeout = (): HttpsProbeResult => ({
        ok: false,
        error: {
          code: "POLYFLEET_ERR_DEVICE_TIMEOUT",
          message: `${where}: no answer in time`,
          endpoint: where,
        },
      });
      if (opts.signal.aborted) {
        finish(timeout());
        return;
      }
      const req = request(
        {
          host: address,
          port,
          path,
          method: "GET",
          agent: false,
          rejectUnauthorized: false,
          headers: {
            accept: "application/json, */*",
            "user-agent": "polyfleet-agent-discovery",
            connection: "close",
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          const done = (): void => {
            const body = Buffer.concat(chunks).subarray(0, PROBE_BODY_LIMIT).toString("utf8");
            const fp: HttpsFingerprint = { port, path, status: res.statusCode ?? 0, bodyStart: body };
            const server = header(res.headers.server);
            const auth = header(res.headers["www-authenticate"]);
            const type = header(res.headers["content-type"]);
            if (server !== undefined) fp.server = server;
            if (auth !== undefined) fp.wwwAuthenticate = auth;
            if (type !== undefined) fp.contentType = type;
            finish({ ok: true, fingerprint: fp });
            res.destroy();
          };
          res.on("data", (c: Buffer) => {
            chunks.push(c);
            size += c.length;
            if (size >= PROBE_BODY_LIMIT) done();
          });
          res.on("end", done);
          // Headers arrived: a body cut short still fingerprints the server.
          res.on("error", done);
          res.on("aborted", done);
        },
      );
      const onAbort = (): void => {
        finish(timeout());
        req.destroy();
      };
      opts.signal.addEventListener("abort", onAbort, { once: true });
      req.on("error", (err) => finish({ ok: false, error: errorOf(err, where) }));
      req.end();
    });
  }
}
