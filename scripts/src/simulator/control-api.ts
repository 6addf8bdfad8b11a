import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  SimControlBulkFaults,
  SimControlCall,
  SimControlConfig,
  SimControlFaults,
  SimControlReboot,
  SimControlTrap,
  validate,
} from "@polyfleet/shared";
import type { z } from "zod";
import type { DeviceSim } from "./device.js";
import type { Fleet } from "./fleet.js";
import { createRandom } from "./random.js";

/** Config keys never returned by the control API. */
const SECRET_KEY = /password|passwd|secret|key|community/i;

function deviceView(d: DeviceSim, detail: boolean): Record<string, unknown> {
  const view: Record<string, unknown> = {
    id: d.id,
    address: d.address,
    family: d.family,
    model: d.spec.model,
    serial: d.serial,
    firmware: d.firmware.version,
    build: d.firmware.build,
    up: d.isUp(),
    uptimeSec: Math.floor(d.uptimeSec()),
    inCall: d.inCall,
    updating: d.updating,
    installs: d.installs,
    faults: [...d.faults],
  };
  if (detail) {
    view.config = Object.fromEntries([...d.config].filter(([k]) => !SECRET_KEY.test(k)));
  }
  return view;
}

/**
 * The simulator's control API on 127.0.0.1: list devices, switch faults, reboot, put a device in a call, set
 * config, emit a trap. Bodies are validated by the shared `SimControl*` schemas.
 */
export class ControlApi {
  private server: Server | undefined;
  private readonly rand = createRandom(0xc0ffee);

  constructor(
    private readonly fleet: Fleet,
    private readonly port = 0,
    private readonly host = "127.0.0.1",
  ) {}

  async start(): Promise<string> {
    const server = createServer((req, res) => {
      void this.route(req, res);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, this.host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    return `http://${this.host}:${port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? "/", "http://control.invalid");
      const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
      const method = req.method ?? "GET";
      const body = method === "GET" ? undefined : await readJson(req);
      if (body instanceof Error) return reply(res, 400, { error: body.message });
      if (parts[0] === "healthz") return reply(res, 200, { ok: true, devices: this.fleet.devices.length });
      if (parts[0] === "faults" && parts.length === 1 && method === "POST") return this.bulkFaults(res, body);
      if (parts[0] !== "devices") return reply(res, 404, { error: "not found" });
      if (parts.length === 1 && method === "GET") {
        return reply(res, 200, { devices: this.fleet.devices.map((d) => deviceView(d, false)) });
      }
      const device = this.fleet.find(parts[1] ?? "");
      if (!device) return reply(res, 404, { error: `no device ${parts[1]}` });
      const action = parts[2];
      if (action === undefined && method === "GET") return reply(res, 200, deviceView(device, true));
      if (action === "faults" && (method === "PUT" || method === "POST")) {
        const b = parse(res, SimControlFaults, body);
        if (!b) return;
        const base = b.faults ?? [...device.faults];
        device.setFaults([...base.filter((f) => !b.remove.includes(f)), ...b.add]);
        return reply(res, 200, deviceView(device, false));
      }
      if (action === "reboot" && method === "POST") {
        const b = parse(res, SimControlReboot, body ?? {});
        if (!b) return;
        device.reboot(b.reason);
        return reply(res, 202, deviceView(device, false));
      }
      if (action === "call" && method === "POST") {
        const b = parse(res, SimControlCall, body);
        if (!b) return;
        device.setCall(b.active);
        return reply(res, 200, deviceView(device, false));
      }
      if (action === "config" && method === "POST") {
        const b = parse(res, SimControlConfig, body);
        if (!b) return;
        for (const [k, v] of Object.entries(b.params)) device.config.set(k, v);
        return reply(res, 200, deviceView(device, true));
      }
      if (action === "trap" && method === "POST") {
        const b = parse(res, SimControlTrap, body);
        if (!b) return;
        device.emitTrap(b);
        return reply(res, 202, { sent: b.trap });
      }
      if (action === "revive" && method === "POST") {
        device.revive();
        return reply(res, 200, deviceView(device, false));
      }
      return reply(res, 404, { error: "not found" });
    } catch (err) {
      return reply(res, 500, { error: err instanceof Error ? err.message : String(err) });
    }
  }

  private bulkFaults(res: ServerResponse, body: unknown): void {
    const b = parse(res, SimControlBulkFaults, body);
    if (!b) return;
    const selected = b.devices ? b.devices.map((k) => this.fleet.find(k)) : this.fleet.devices;
    const missing = b.devices?.filter((_k, i) => !selected[i]);
    if (missing?.length) {
      reply(res, 404, { error: `no device ${missing.join(", ")}` });
      return;
    }
    let devices = selected.filter((d): d is DeviceSim => d !== undefined);
    if (b.percent !== undefined) {
      const n = Math.round((devices.length * b.percent) / 100);
      devices = devices
        .map((d) => ({ d, k: this.rand() }))
        .sort((x, y) => x.k - y.k)
        .slice(0, n)
        .map((x) => x.d);
    }
    for (const d of devices) d.setFaults([...[...d.faults].filter((f) => !b.remove.includes(f)), ...b.add]);
    reply(res, 200, { changed: devices.map((d) => d.id) });
  }
}

function parse<S extends z.ZodType>(res: ServerResponse, schema: S, body: unknown): z.infer<S> | undefined {
  const r = validate(schema, body, "POLYFLEET_ERR_BODY_INVALID");
  if (r.ok) return r.value;
  reply(res, 400, { error: r.error.message, code: r.error.code, issues: r.issues });
  return undefined;
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size <= 1_000_000) chunks.push(c);
    });
    req.on("end", () => {
      if (size > 1_000_000) return resolve(new Error("body larger than 1 MB"));
      const text = Buffer.concat(chunks).toString("utf8");
      if (text.trim() === "") return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch {
        resolve(new Error("body is not valid JSON"));
      }
    });
    req.on("error", () => resolve(new Error("request aborted")));
  });
}
