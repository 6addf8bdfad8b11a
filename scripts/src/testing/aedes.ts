import { createServer, type Socket } from "node:net";
import { Aedes } from "aedes";

export interface AedesHandle {
  url: string;
  port: number;
  broker: Aedes;
  stop(): Promise<void>;
}

/**
 * An in-process aedes broker (MQTT 3.1.1 only: aedes 1.x refuses MQTT 5 CONNECTs with return code 1) on a
 * free 127.0.0.1 port, TCP_NODELAY on every connection.
 */
export async function startAedes(): Promise<AedesHandle> {
  const broker = await Aedes.createBroker();
  const sockets = new Set<Socket>();
  const server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    broker.handle(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    broker,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}
