import type { IncomingHttpHeaders } from "node:http";
import type { TLSSocket } from "node:tls";
import type { ErrorCode, PollError } from "@polyfleet/shared";
import { buildConnector, Client } from "undici";
import type { Metrics } from "../../ports/metrics.js";

/** Largest device answer accepted (5 MB); a bigger one is refused and its connection dropped. */
export const MAX_DEVICE_BODY_BYTES = 5 * 1024 * 1024;
/** Metric counting every malformed, oversized or slow device answer, by `reason`. */
export const BAD_RESPONSES_METRIC = "polyfleet_agent_bad_responses_total";

/** Why an answer was counted in {@link BAD_RESPONSES_METRIC}. `schema` is counted by the drivers. */
export type BadResponseReason = "too_large" | "slow" | "invalid_json" | "truncated" | "schema";

export interface HttpsRequest {
  /** Device address (IPv4, IPv6 or host name). */
  address: string;
  port: number;
  method: "GET" | "POST" | "DELETE";
  /** Path with query; also the `endpoint` of errors. */
  path: string;
  headers?: Record<string, string>;
  /** JSON-encoded when not a string. */
  body?: unknown;
  /** Caller's signal (the scheduler's per-device timeout): aborting it ends the request as a timeout. */
  signal?: AbortSignal | undefined;
  /** Overall deadline for this request, headers and body included. */
  timeoutMs?: number;
}

export type HttpsError = PollError & { endpoint: string };

/**
 * Outcome of one request. Never an exception: `ok:false` carries a POLYFLEET_ERR_* code, and `status` (plus
 * the parsed `json`, when the error body was JSON) when the device answered with an HTTP error.
 */
export type HttpsResult =
  | { ok: true; status: number; json: unknown; headers: IncomingHttpHeaders }
  | {
      ok: false;
      error: HttpsError;
      status?: number;
      json?: unknown;
      /** The socket error code (ECONNRESET, UND_ERR_SOCKET...) when the transport failed. */
      netCode?: string;
      /** Whether the request was written before the transport failed (a reboot request may have landed). */
      sent?: boolean;
    };

/** The JSON-over-HTTPS client the drivers use (adapter: {@link UndiciHttpsClient}). */
export interface HttpsJsonClient {
  request(req: HttpsRequest): Promise<HttpsResult>;
  /** SHA-256 fingerprint (`AB:CD:...`) of the certificate the device presented last, if known. */
  peerFingerprint(address: string, port: number): string | undefined;
  /** Closes the keep-alive connection to one device (device forgotten). */
  closeOrigin(address: string, port: number): Promise<void>;
  close(): Promise<void>;
}

export interface UndiciHttpsClientOptions {
  metrics?: Metrics | undefined;
  /** Default overall deadline per request (default 10 s). */
  timeoutMs?: number;
  /** Body size limit (default {@link MAX_DEVICE_BODY_BYTES}). */
  maxBodyBytes?: number;
  /** TCP + TLS connect timeout (default 5 s). */
  connectTimeoutMs?: number;
  /** How long an idle keep-alive connection stays open (default 60 s, so it survives a poll interval). */
  keepAliveTimeoutMs?: number;
}

class BodyTooSlow extends Error {
  constructor() {
    super("body too slow");
  }
}

class BodyTooLarge extends Error {
  constructor(readonly size: number) {
    super("body too large");
  }
}

function origin(address: string, port: number): string {
  return address.includes(":") ? `https://[${address}]:${port}` : `https://${address}:${port}`;
}

const NETWORK_CODES = new Map<string, string>(
  Object.entries({
    ECONNREFUSED: "connection refused",
    ECONNRESET: "connection reset",
    EHOSTUNREACH: "host unreachable",
    ENETUNREACH: "network unreachable",
    EPIPE: "connection closed",
    ENOTFOUND: "host not found",
    EAI_AGAIN: "host name lookup failed",
    UND_ERR_SOCKET: "connection closed by the device",
    UND_ERR_CLOSED: "connection closed",
    UND_ERR_CONNECT_TIMEOUT: "connect timed out",
  }),
);

/**
 * HTTPS client for device REST APIs on undici: one keep-alive `Client` (one connection, no pipelining) per
 * device origin, so a phone never sees two requests from us at once on its socket. Device certificates are
 * self-signed, so they are accepted, as every Poly management tool does; the SHA-256 fingerprint of each new
 * connection's certificate is recorded (once per connection). Bodies are capped, slow bodies are cut by the
 * overall deadline, and every failure comes back as a value.
 */
export class UndiciHttpsClient implements HttpsJsonClient {
  private readonly clients = new Map<string, Client>();
  private readonly fingerprints = new Map<string, string>();
  private readonly timeoutMs: number;
  private readonly maxBodyBytes: number;
  private readonly connectTimeoutMs: number;
  private readonly keepAliveTimeoutMs: number;
  private readonly metrics: Metrics | undefined;
  private readonly connector: buildConnector.connector;

  constructor(opts: UndiciHttpsClientOptions = {}) {
    this.metrics = opts.metrics;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxBodyBytes = opts.maxBodyBytes ?? MAX_DEVICE_BODY_BYTES;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
    this.keepAliveTimeoutMs = opts.keepAliveTimeoutMs ?? 60_000;
    this.connector = buildConnector({ rejectUnauthorized: false, timeout: this.connectTimeoutMs });
  }

  peerFingerprint(address: string, port: number): string | undefined {
    return this.fingerprints.get(origin(address, port));
  }

  async closeOrigin(address: string, port: number): Promise<void> {
    const key = origin(address, port);
    const c = this.clients.get(key);
    this.clients.delete(key);
    this.fingerprints.delete(key);
    if (c) await c.destroy().catch(() => undefined);
  }

  async close(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.allSettled(all.map((c) => c.destroy()));
  }

  private client(key: string): Client {
    let c = this.clients.get(key);
    if (c && !c.closed && !c.destroyed) return c;
    const base = this.connector;
    const fingerprints = this.fingerprints;
    c = new Client(key, {
      pipelining: 1,
      keepAliveTimeout: this.keepAliveTimeoutMs,
      keepAliveMaxTimeout: Math.max(this.keepAliveTimeoutMs, 600_000),
      headersTimeout: 0,
      bodyTimeout: 0,
      connect: (options, cb) => {
        base(options, (err, socket) => {
          if (!err && socket && "getPeerCertificate" in socket) {
            const fp = (socket as TLSSocket).getPeerCertificate()?.fingerprint256;
            if (fp) fingerprints.set(key, fp);
          }
          // biome-ignore lint/suspicious/noExplicitAny: undici's callback is a tuple union TS cannot spread
          (cb as any)(err, socket);
        });
      },
    });
    this.clients.set(key, c);
    return c;
  }

  private bad(reason: BadResponseReason): void {
    this.metrics?.inc(BAD_RESPONSES_METRIC, { reason });
  }

  async request(req: HttpsRequest): Promise<HttpsResult> {
    const endpoint = req.path;
    const fail = (code: ErrorCode, message: string, status?: number, json?: unknown): HttpsResult => {
      const r: HttpsResult = {
        ok: false,
        error: { code, message: `${req.method} ${endpoint}: ${message}`, endpoint },
      };
      if (status !== undefined) r.status = status;
      if (json !== undefined) r.json = json;
      return r;
    };
    if (req.signal?.aborted)
      return fail("POLYFLEET_ERR_DEVICE_TIMEOUT", "aborted before the request was sent");
    const key = origin(req.address, req.port);
    const timeoutMs = req.timeoutMs ?? this.timeoutMs;
    const started = Date.now();
    let headersSeen = false;
    try {
      const headers: Record<string, string> = { accept: "application/json", ...req.headers };
      let body: string | undefined;
      if (req.body !== undefined) {
        body = typeof req.body === "string" ? req.body : JSON.stringify(req.body);
        headers["content-type"] ??= "application/json";
      }
      // Deadlines use undici's own timers (no AbortController or timer per request: this path runs for
      // every device request, and the phones' CPU budget is tight): headers within `timeoutMs`, no body
      // gap longer than `timeoutMs`, and the whole body by `started + timeoutMs` (checked per chunk), so a
      // trickling body ends within twice the timeout at worst.
      const res = await this.client(key).request({
        path: req.path,
        method: req.method,
        headers,
        body,
        signal: req.signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      headersSeen = true;
      const declared = Number(res.headers["content-length"] ?? -1);
      if (declared > this.maxBodyBytes) {
        res.body.destroy();
        this.bad("too_large");
        return fail(
          "POLYFLEET_ERR_DEVICE_TOO_LARGE",
          `answer of ${declared} bytes exceeds ${this.maxBodyBytes}`,
        );
      }
      const raw = await readCapped(res.body, this.maxBodyBytes, started + timeoutMs);
      const status = res.statusCode;
      let json: unknown;
      let parsed = true;
      if (raw.length > 0) {
        try {
          json = JSON.parse(raw.toString("utf8"));
        } catch {
          parsed = false;
        }
      }
      if (status >= 200 && status < 300) {
        if (!parsed) {
          this.bad("invalid_json");
          return fail(
            "POLYFLEET_ERR_DEVICE_BAD_RESPONSE",
            `answer is not valid JSON (${raw.length} bytes)`,
            status,
          );
        }
        return { ok: true, status, json, headers: res.headers };
      }
      return classifyStatus(status, json, fail);
    } catch (err) {
      if (err instanceof BodyTooLarge) {
        this.bad("too_large");
        return fail("POLYFLEET_ERR_DEVICE_TOO_LARGE", `answer exceeds ${this.maxBodyBytes} bytes`);
      }
      const code = (err as { code?: unknown }).code;
      const name = typeof code === "string" ? code : "";
      if (err instanceof BodyTooSlow || name === "UND_ERR_BODY_TIMEOUT") {
        this.bad("slow");
        return fail("POLYFLEET_ERR_DEVICE_TIMEOUT", `answer body did not complete within ${timeoutMs} ms`);
      }
      if (name === "UND_ERR_HEADERS_TIMEOUT") {
        return fail("POLYFLEET_ERR_DEVICE_TIMEOUT", `no answer within ${timeoutMs} ms`);
      }
      if (req.signal?.aborted) {
        if (headersSeen) this.bad("slow");
        return fail(
          "POLYFLEET_ERR_DEVICE_TIMEOUT",
          `${headersSeen ? "answer body did not complete" : "no answer"} before the poll was aborted`,
        );
      }
      if (headersSeen) {
        this.bad("truncated");
        return fail(
          "POLYFLEET_ERR_DEVICE_BAD_RESPONSE",
          `answer cut off mid-body${name ? ` (${name})` : ""}`,
        );
      }
      const known = NETWORK_CODES.get(name);
      if (known) {
        const r = fail("POLYFLEET_ERR_DEVICE_UNREACHABLE", `${known} (${name})`);
        if (!r.ok) {
          r.netCode = name;
          // Refused / not found / connect timeout: nothing reached the device. Otherwise it may have.
          r.sent = !(
            name === "ECONNREFUSED" ||
            name === "ENOTFOUND" ||
            name === "EAI_AGAIN" ||
            name === "UND_ERR_CONNECT_TIMEOUT" ||
            name === "EHOSTUNREACH" ||
            name === "ENETUNREACH"
          );
        }
        return r;
      }
      if (name.startsWith("ERR_SSL") || name.startsWith("ERR_TLS")) {
        return fail("POLYFLEET_ERR_DEVICE_UNREACHABLE", `TLS handshake failed (${name})`);
      }
      return fail(
        "POLYFLEET_ERR_DEVICE_UNREACHABLE",
        `request failed${name ? ` (${name})` : ""}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }
}

type Fail = (code: ErrorCode, message: string, status?: number, json?: unknown) => HttpsResult;

/** Maps a non-2xx answer to a code; a UC phone's "busy" is 403 with REST status 4001. */
function classifyStatus(status: number, json: unknown, fail: Fail): HttpsResult {
  const restStatus =
    typeof json === "object" && json !== null && "Status" in json
      ? String((json as { Status: unknown }).Status)
      : "";
  if (status === 401) return fail("POLYFLEET_ERR_DEVICE_AUTH", "credentials refused (401)", status, json);
  if (status === 403) {
    if (restStatus === "4001")
      return fail("POLYFLEET_ERR_DEVICE_BUSY", "device busy (403, 4001)", status, json);
    return fail(
      "POLYFLEET_ERR_DEVICE_AUTH",
      `forbidden (403${restStatus ? `, ${restStatus}` : ""})`,
      status,
      json,
    );
  }
  return fail(
    "POLYFLEET_ERR_DEVICE_HTTP",
    `HTTP ${status}${restStatus ? ` (REST status ${restStatus})` : ""}`,
    status,
    json,
  );
}

/**
 * Reads a body into one buffer, destroying the stream (and so the connection) past `max` bytes or when a
 * chunk arrives after `deadline`.
 */
function readCapped(
  body: NodeJS.ReadableStream & { destroy(err?: Error): void },
  max: number,
  deadline: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    body.on("data", (c: Buffer) => {
      size += c.length;
      if (Date.now() > deadline) {
        body.destroy(new BodyTooSlow());
        return;
      }
      if (size > max) {
        body.destroy(new BodyTooLarge(size));
        return;
      }
      chunks.push(c);
    });
    body.once("end", () =>
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size)),
    );
    body.once("error", reject);
  });
}
