import { X509Certificate } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { TLSSocket } from "node:tls";
import type { CommandHandler } from "../../ports/command.js";

export interface HttpProbeOptions {
  /** Body bytes read at most (default 1 MiB); the rest is not downloaded (`bodyTruncated: true`). */
  maxBodyBytes?: number;
  /** Milliseconds since the epoch, for `daysToExpiry` (default Date.now). */
  now?: () => number;
  /** CA certificates to validate against instead of the system store (tests). */
  ca?: string | string[];
}

/** The server certificate as the probe reports it. */
export interface ProbeCertificate {
  subject: string;
  issuer: string;
  subjectAltNames: string[];
  serialNumber: string;
  validFrom: string;
  validTo: string;
  daysToExpiry: number;
  expired: boolean;
  fingerprint256: string;
  selfSigned: boolean;
  /** The chain validated against the CA store and the name matched the URL's host. */
  validated: boolean;
  /** Why it did not validate (OpenSSL/Node code such as DEPTH_ZERO_SELF_SIGNED_CERT), else null. */
  authorizationError: string | null;
}

const HEADER_SUBSET = ["server", "content-type", "content-length", "location"] as const;

/**
 * `httpProbe`: one HTTP(S) GET on a fresh connection (no keep-alive, no redirects followed) within
 * `timeoutMs`. Resolves with status, latency to the first byte, a subset of headers, the body size (read up to
 * a cap) and, for HTTPS, the server certificate's details and whether it validated. The TLS handshake
 * always completes so the certificate can be reported; with `insecure: false` an unvalidated certificate
 * ends the probe before the response (`ok: false`, `error.code` = the validation error). Connection
 * failures are results (`ok: false`, `error`), not exceptions. Credentials in the URL are neither sent nor
 * echoed.
 */
export function createHttpProbeHandler(opts: HttpProbeOptions = {}): CommandHandler<"httpProbe"> {
  const maxBody = opts.maxBodyBytes ?? 1 << 20;
  const now = opts.now ?? Date.now;
  return (body, ctx) =>
    new Promise((resolve) => {
      const url = new URL(body.url);
      url.username = "";
      url.password = "";
      const isHttps = url.protocol === "https:";
      const started = performance.now();
      let certificate: ProbeCertificate | null = null;
      let done = false;
      let firstByteMs: number | null = null;
      const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(body.timeoutMs)]);
      const base = { url: url.toString(), insecure: body.insecure };
      const fail = (code: string, message: string): void => {
        if (done) return;
        done = true;
        req.destroy();
        resolve({
          ...base,
          ok: false,
          status: null,
          latencyMs: firstByteMs,
          totalMs: elapsed(started),
          certificate,
          error: { code, message },
        });
      };
      const options = {
        method: "GET",
        agent: false as const,
        signal,
        headers: { "user-agent": "polyfleet-agent", accept: "*/*" },
        ...(isHttps ? { rejectUnauthorized: false, ...(opts.ca ? { ca: opts.ca } : {}) } : {}),
      };
      const onResponse = (res: IncomingMessage): void => {
        firstByteMs = elapsed(started);
        let bytes = 0;
        let truncated = false;
        res.on("data", (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > maxBody) {
            truncated = true;
            bytes = maxBody;
            finish();
          }
        });
        res.once("end", () => finish());
        res.once("error", (e: NodeJS.ErrnoException) => {
          if (!done) fail(e.code ?? "ERROR", e.message);
        });
        const finish = (): void => {
          if (done) return;
          done = true;
          const headers: Record<string, string> = {};
          for (const h of HEADER_SUBSET) {
            const v = res.headers[h];
            if (typeof v === "string") headers[h] = v.slice(0, 500);
          }
          req.destroy();
          resolve({
            ...base,
            ok: true,
            status: res.statusCode ?? null,
            statusText: res.statusMessage ?? null,
            httpVersion: res.httpVersion,
            latencyMs: firstByteMs,
            totalMs: elapsed(started),
            headers,
            bodyBytes: bytes,
            bodyTruncated: truncated,
            certificate,
            error: null,
          });
        };
      };
      const req = isHttps ? httpsRequest(url, options, onResponse) : httpRequest(url, options, onResponse);
      req.once("socket", (socket) => {
        if (!isHttps) return;
        const tls = socket as TLSSocket;
        tls.once("secureConnect", () => {
          certificate = describeCertificate(tls, now());
          if (!body.insecure && !tls.authorized) {
            const code = String(tls.authorizationError ?? "CERT_NOT_VALIDATED");
            fail(code, `certificate not trusted: ${code}`);
          }
        });
      });
      req.once("error", (e: NodeJS.ErrnoException) => {
        if (signal.aborted) {
          const reason: unknown = signal.reason;
          const timedOut = reason instanceof DOMException && reason.name === "TimeoutError";
          fail(
            timedOut ? "ETIMEDOUT" : "ECANCELED",
            timedOut ? `no answer within ${body.timeoutMs} ms` : "aborted",
          );
        } else {
          fail(e.code ?? "ERROR", e.message);
        }
      });
      req.end();
    });
}

/** Reads the peer certificate of a TLS socket into the report form; null when there is none. */
function describeCertificate(socket: TLSSocket, nowMs: number): ProbeCertificate | null {
  const peer = socket.getPeerCertificate(false);
  if (!peer?.raw) return null;
  const x = new X509Certificate(peer.raw);
  const validTo = Date.parse(x.validTo);
  const validFrom = Date.parse(x.validFrom);
  // Issuer = subject and signed by its own key. Not checkIssued(): devices' leaf certificates (CA:FALSE, no
  // keyCertSign) fail OpenSSL's issuer checks although they sign themselves.
  const selfSigned = x.subject === x.issuer && safeVerify(x);
  return {
    subject: oneLine(x.subject),
    issuer: oneLine(x.issuer),
    subjectAltNames: x.subjectAltName ? x.subjectAltName.split(", ").filter((s) => s.length > 0) : [],
    serialNumber: x.serialNumber,
    validFrom: Number.isFinite(validFrom) ? new Date(validFrom).toISOString() : x.validFrom,
    validTo: Number.isFinite(validTo) ? new Date(validTo).toISOString() : x.validTo,
    daysToExpiry: Number.isFinite(validTo) ? Math.floor((validTo - nowMs) / 86_400_000) : 0,
    expired: Number.isFinite(validTo) ? validTo < nowMs : false,
    fingerprint256: x.fingerprint256,
    selfSigned,
    validated: socket.authorized,
    authorizationError: socket.authorized ? null : String(socket.authorizationError ?? "UNKNOWN"),
  };
}

function safeVerify(x: X509Certificate): boolean {
  try {
    return x.verify(x.publicKey);
  } catch {
    return false;
  }
}

function oneLine(dn: string): string {
  return dn
    .split("\n")
    .filter((s) => s.length > 0)
    .join(", ");
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 1000) / 1000;
}
