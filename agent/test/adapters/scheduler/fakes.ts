import type { Clock, TimerHandle } from "../../../src/ports/clock.js";
import type {
  ActionResult,
  DeviceDriver,
  DeviceTarget,
  DriverName,
  IdentifyResult,
  PollOptions,
  ReadingBody,
} from "../../../src/ports/driver.js";
import type { EventBody, TelemetrySink } from "../../../src/ports/sink.js";

interface Timer {
  id: number;
  at: number;
  fn: () => void;
}

/** A manual clock: timers fire only inside `advance`, in due order, with microtasks flushed between them. */
export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private timers: Timer[] = [];

  constructor(start = 1_700_000_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    this.timers.push({ id, at: this.t + Math.max(0, ms), fn });
    return { id };
  }

  clearTimeout(h: TimerHandle): void {
    this.timers = this.timers.filter((x) => x.id !== h.id);
  }

  get pending(): number {
    return this.timers.length;
  }

  /** Moves time forward by `ms`, firing every timer due on the way. */
  async advance(ms: number): Promise<void> {
    const until = this.t + ms;
    for (;;) {
      await flush();
      let next: Timer | undefined;
      for (const x of this.timers)
        if (x.at <= until && (!next || x.at < next.at || (x.at === next.at && x.id < next.id))) next = x;
      if (!next) break;
      const fire = next;
      this.timers = this.timers.filter((x) => x !== fire);
      this.t = Math.max(this.t, fire.at);
      fire.fn();
    }
    this.t = until;
    await flush();
  }
}

/** Lets every pending promise callback run (a macrotask turn drains the microtask queue). */
export function flush(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

export class MemorySink implements TelemetrySink {
  readonly readings: ReadingBody[] = [];
  readonly events: EventBody[] = [];
  private seq = 0;
  appendReading(reading: ReadingBody): number {
    this.readings.push(reading);
    return ++this.seq;
  }
  appendEvent(event: EventBody): number {
    this.events.push(event);
    return ++this.seq;
  }
  eventsOf<T extends EventBody["type"]>(type: T): Extract<EventBody, { type: T }>[] {
    return this.events.filter((e): e is Extract<EventBody, { type: T }> => e.type === type);
  }
}

/** How a fake device behaves on one poll. */
export type Behaviour =
  | { kind: "answer"; latencyMs: number; reachable?: boolean }
  /** Never resolves and ignores the abort signal (a hostile device / buggy driver). */
  | { kind: "hang" }
  /** Resolves only when aborted, with an unreachable reading (a well-behaved driver on a dead device). */
  | { kind: "hangUntilAbort" }
  | { kind: "throw" };

export interface PollCall {
  deviceId: string;
  startedAt: number;
  endedAt?: number;
  aborted: boolean;
}

/** A driver whose devices behave as told, measured on the fake clock. */
export class FakeDriver implements DeviceDriver {
  readonly calls: PollCall[] = [];
  readonly forgotten: string[] = [];
  inFlight = 0;
  maxInFlight = 0;
  private readonly perDeviceInFlight = new Map<string, number>();
  maxPerDevice = 0;
  behaviour: (target: DeviceTarget, n: number) => Behaviour = () => ({ kind: "answer", latencyMs: 10 });

  constructor(
    readonly name: DriverName,
    private readonly clock: FakeClock,
  ) {}

  identify(): Promise<IdentifyResult> {
    return Promise.resolve({ ok: false, error: { code: "POLYFLEET_ERR_INTERNAL", message: "not used" } });
  }

  poll(target: DeviceTarget, opts: PollOptions): Promise<ReadingBody> {
    const n = this.calls.filter((c) => c.deviceId === target.deviceId).length;
    const b = this.behaviour(target, n);
    const call: PollCall = { deviceId: target.deviceId, startedAt: this.clock.now(), aborted: false };
    this.calls.push(call);
    if (b.kind === "throw") throw new Error("driver bug");
    this.enter(target.deviceId);
    const end = (reachable: boolean): ReadingBody => {
      call.endedAt = this.clock.now();
      this.leave(target.deviceId);
      return reading(target, this.name, reachable, call.endedAt - call.startedAt);
    };
    opts.signal.addEventListener("abort", () => {
      call.aborted = true;
    });
    if (b.kind === "hang") return new Promise(() => {});
    if (b.kind === "hangUntilAbort") {
      return new Promise((resolve) => opts.signal.addEventListener("abort", () => resolve(end(false))));
    }
    return new Promise((resolve) => {
      this.clock.setTimeout(() => resolve(end(b.reachable ?? true)), b.latencyMs);
    });
  }

  reboot(): Promise<ActionResult> {
    return Promise.resolve({ ok: true });
  }

  forget(deviceId: string): void {
    this.forgotten.push(deviceId);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  startsOf(deviceId: string): number[] {
    return this.calls.filter((c) => c.deviceId === deviceId).map((c) => c.startedAt);
  }

  private enter(id: string): void {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const n = (this.perDeviceInFlight.get(id) ?? 0) + 1;
    this.perDeviceInFlight.set(id, n);
    this.maxPerDevice = Math.max(this.maxPerDevice, n);
  }

  private leave(id: string): void {
    this.inFlight--;
    this.perDeviceInFlight.set(id, (this.perDeviceInFlight.get(id) ?? 1) - 1);
  }
}

export function reading(
  target: DeviceTarget,
  driver: DriverName,
  reachable: boolean,
  latencyMs: number,
): ReadingBody {
  return {
    deviceId: target.deviceId,
    driver,
    reachable,
    pollLatencyMs: latencyMs,
    identity: {
      address: target.address,
      family: driver === "poly-ucs" ? "uc" : driver === "poly-videoos" ? "videoos" : "snmp",
    },
    firmware: [],
    health: [],
    peripherals: [],
    lines: [],
    network: {},
    errors: reachable ? [] : [{ code: "POLYFLEET_ERR_DEVICE_UNREACHABLE", message: "connection refused" }],
  };
}

export function target(i: number): DeviceTarget {
  return {
    deviceId: `dev-${i}`,
    address: `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`,
    httpsPort: 443,
    snmpPort: 161,
    credentials: [],
    tags: [],
  };
}

/** A small deterministic PRNG (mulberry32) so jitter is reproducible. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
