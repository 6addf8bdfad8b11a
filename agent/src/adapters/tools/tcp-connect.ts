import { createConnection } from "node:net";
import type { CommandHandler } from "../../ports/command.js";

/**
 * `tcpConnect`: opens a TCP connection to host:port within `timeoutMs` and closes it at once. Resolves with
 * `{ connected, latencyMs, remoteAddress, error }`; a refused or timed-out connection is a result
 * (`connected: false`, `error.code` such as ECONNREFUSED, ETIMEDOUT, ENOTFOUND), not a failure.
 */
export function createTcpConnectHandler(): CommandHandler<"tcpConnect"> {
  return (body, ctx) =>
    new Promise((resolve) => {
      const started = performance.now();
      const socket = createConnection({ host: body.host, port: body.port });
      let done = false;
      const finish = (error: { code: string; message: string } | null): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        ctx.signal.removeEventListener("abort", onAbort);
        const latencyMs = round(performance.now() - started);
        const remoteAddress = socket.remoteAddress ?? null;
        socket.destroy();
        resolve({
          host: body.host,
          port: body.port,
          connected: error === null,
          latencyMs,
          remoteAddress,
          error,
        });
      };
      const timer = setTimeout(
        () => finish({ code: "ETIMEDOUT", message: `no connection within ${body.timeoutMs} ms` }),
        body.timeoutMs,
      );
      const onAbort = (): void => finish({ code: "ECANCELED", message: "aborted" });
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      if (ctx.signal.aborted) onAbort();
      socket.once("connect", () => finish(null));
      socket.once("error", (e: NodeJS.ErrnoException) =>
        finish({ code: e.code ?? "ERROR", message: e.message }),
      );
    });
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
