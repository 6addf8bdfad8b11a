import type { IncomingHttpHeaders } from "node:http";
import type { DeviceSim } from "./device.js";

/** A request as the per-device HTTPS server hands it to a family API, body fully read (bounded). */
export interface SimRequest {
  method: string;
  /** Path without the query string, e.g. `/api/v1/mgmt/device/info`. */
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: Buffer;
  remoteAddress: string;
}

export interface SimResponse {
  status: number;
  headers?: Record<string, string | string[]>;
  /** A JS value is sent as JSON (and subject to the malformed/truncated JSON faults); a string/Buffer as is. */
  json?: unknown;
  body?: string | Buffer;
}

/**
 * One device family's REST API. The HTTPS server has already applied the transport-level faults
 * (noAnswer, slow, http500, flapping, reboot windows, packetLoss) and, for UC phones, the
 * one-request-at-a-time rule; the API applies authentication, enablement and answers.
 * It must never throw for any request: a bad request gets the device's own error answer.
 */
export interface FamilyApi {
  handle(device: DeviceSim, req: SimRequest): Promise<SimResponse> | SimResponse;
}

/** Body size limit of the simulated devices (VideoOS documents 10 MB; phones are smaller). */
export const MAX_REQUEST_BODY = 10 * 1024 * 1024;
