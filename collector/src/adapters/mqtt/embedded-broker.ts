import { createServer, type Server, type Socket } from "node:net";
import { Aedes } from "aedes";

/**
 * The embedded MQTT broker (aedes; MQTT 3.1.1 — aedes 1.x refuses MQTT 5 CONNECTs, the agents fall back), for
 * a single-box install. Nagle is off on every connection (with it, p99 latency at 5,000 msg/s was 40-50 ms
 * instead of about 1 ms). Retained messages live in memory.
 */
export class EmbeddedBroker {
  private server: Server | undefined;
  private broker: Aedes | undefined;
  private readonly sockets = new Set<Socket>();
  private boundPort = 0;

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {}

  get url(): string {
    return `mqtt://${this.host}:${this.boundPort}`;
  }

  async start(): Promise<string> {
    const broker = await Aedes.createBroker();
    this.broker = broker;
    const server = createServer({ noDelay: true }, (socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
      broker.handle(socket);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, this.host, () => resolve());
    });
    const addr = server.address();
    this.boundPort = typeof addr === "object" && addr ? addr.port : this.port;
    return this.url;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    const broker = this.broker;
    this.server = undefined;
    this.broker = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
  }
}
