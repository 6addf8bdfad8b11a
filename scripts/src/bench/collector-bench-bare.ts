import type { Socket } from "node:net";
import { connect } from "mqtt";

/**
 * The bare subscriber of the collector benchmark, run as a child (`fork`) so its CPU can be read from /proc
 * like the collector's: one mqtt.js client with the collector bus's options (MQTT 3.1.1, clean session,
 * Nagle off), subscribed at QoS 1 to every agent's telemetry, that only counts messages and bytes.
 *
 * IPC: sends `{ ready: true }` once subscribed; answers `"stats"` with `{ messages, bytes }`; `"stop"` ends.
 *
 *   node scripts/dist/bench/collector-bench-bare.js mqtt://127.0.0.1:1883
 */
const url = process.argv[2];
if (!url || !process.send) {
  console.error("usage: fork collector-bench-bare.js <mqtt url> (with an IPC channel)");
  process.exit(2);
}
const send = (m: unknown): void => {
  process.send?.(m);
};

let messages = 0;
let bytes = 0;
const client = connect(url, {
  clientId: `bench-bare-${process.pid}`,
  protocolVersion: 4,
  clean: true,
  reconnectPeriod: 0,
  keepalive: 30,
});
client.on("message", (_topic, payload) => {
  messages++;
  bytes += payload.length;
});
client.on("error", (err) => {
  console.error(`bare subscriber: ${err.message}`);
  process.exit(1);
});
client.once("connect", () => {
  (client.stream as unknown as Partial<Pick<Socket, "setNoDelay">>).setNoDelay?.(true);
  client.subscribe("polyfleet/v1/+/+/telemetry", { qos: 1 }, (err) => {
    if (err) {
      console.error(`bare subscriber: subscribe failed: ${err.message}`);
      process.exit(1);
    }
    send({ ready: true });
  });
});
process.on("message", (m) => {
  if (m === "stats") send({ messages, bytes });
  else if (m === "stop") void client.endAsync().finally(() => process.exit(0));
});
