import type { Logger } from "@polyfleet/shared";
import { connect, type IClientOptions, type MqttClient } from "mqtt";

export interface CollectorBusOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  ca?: string;
  cert?: string;
  key?: string;
  protocolVersion?: 4 | 5;
  /** MQTT 5 shared subscription group: several collectors split the stream (not for the embedded broker). */
  sharedGroup?: string;
  log: Logger;
}

export type MessageHandler = (topic: string, payload: Buffer) => void;

const STREAM_FILTERS = [
  "polyfleet/v1/+/+/telemetry",
  "polyfleet/v1/+/+/events",
  "polyfleet/v1/+/+/cmd-result",
];
/** Retained birth/Will: never through a shared subscription (MQTT 5 does not send retained messages to one). */
const STATE_FILTER = "polyfleet/v1/+/+/state";

/**
 * The collector's MQTT client: subscribes to every agent's stream (shared subscription when configured) and
 * state, hands raw messages to the ingest pipeline, publishes acks, alerts and commands (QoS 1). Nagle off.
 */
export class CollectorBus {
  private client: MqttClient | undefined;
  private handler: MessageHandler = () => {};

  constructor(private readonly opts: CollectorBusOptions) {}

  onMessage(handler: MessageHandler): void {
    this.handler = handler;
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  start(): Promise<void> {
    const o = this.opts;
    const options: IClientOptions = {
      clientId: o.clientId,
      protocolVersion: o.protocolVersion ?? 4,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      keepalive: 30,
      ...(o.username ? { username: o.username } : {}),
      ...(o.password ? { password: o.password } : {}),
      ...(o.ca ? { ca: o.ca } : {}),
      ...(o.cert ? { cert: o.cert } : {}),
      ...(o.key ? { key: o.key } : {}),
    };
    const client = connect(o.url, options);
    this.client = client;
    client.on("message", (topic, payload) => {
      try {
        this.handler(topic, payload);
      } catch (err) {
        o.log.error({ err, topic }, "message handler failed");
      }
    });
    client.on("error", (err) => o.log.warn({ err: err.message }, "mqtt error"));
    client.on("close", () => o.log.debug("mqtt connection closed"));
    const subscribe = (): void => {
      const group = o.sharedGroup && (o.protocolVersion ?? 4) === 5 ? o.sharedGroup : undefined;
      const filters = STREAM_FILTERS.map((f) => (group ? `$share/${group}/${f}` : f));
      client.subscribe([...filters, STATE_FILTER], { qos: 1 }, (err) => {
        if (err) o.log.error({ err: err.message }, "subscribe failed");
      });
    };
    client.on("connect", () => {
      const s = client.stream as { setNoDelay?: (v: boolean) => void } | undefined;
      s?.setNoDelay?.(true);
      subscribe();
      o.log.info({ url: o.url }, "collector connected to broker");
    });
    return new Promise((resolve, reject) => {
      const fail = (err: Error): void => {
        client.off("connect", ok);
        reject(err);
      };
      const ok = (): void => {
        client.off("error", fail);
        resolve();
      };
      client.once("connect", ok);
      client.once("error", fail);
    });
  }

  publish(topic: string, payload: string, opts: { retain?: boolean } = {}): Promise<void> {
    const client = this.client;
    if (!client) return Promise.reject(new Error("bus not started"));
    return new Promise((resolve, reject) => {
      client.publish(topic, payload, { qos: 1, retain: opts.retain ?? false }, (err) =>
        err ? reject(err) : resolve(),
      );
    });
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) await client.endAsync();
  }
}
