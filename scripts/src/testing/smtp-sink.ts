import { createServer, type Socket } from "node:net";
import { TLSSocket } from "node:tls";

export interface SmtpSinkOptions {
  /** Offer AUTH PLAIN/LOGIN and require these credentials before MAIL FROM. */
  auth?: { username: string; password: string };
  /** Mechanisms offered when `auth` is set (default both). */
  authMechanisms?: Array<"PLAIN" | "LOGIN">;
  /** Fail the first N connections (default 0). */
  failFirst?: number;
  /** `451`: answer MAIL FROM with a transient 451 (default); `drop`: close the connection before the greeting. */
  failMode?: "451" | "drop";
  /** Recipients answered with 550. */
  rejectRecipients?: string[];
  /** Offer STARTTLS with this key and certificate (PEM). */
  tls?: { key: string; cert: string };
  /** Refuse MAIL FROM (530) until STARTTLS was done. */
  requireTls?: boolean;
}

export interface SmtpSinkMessage {
  /** Envelope sender (MAIL FROM). */
  from: string;
  /** Envelope recipients that were accepted (RCPT TO). */
  to: string[];
  /** The message as received after DATA, dot-stuffing undone, CRLF line ends, without the final `.` line. */
  data: string;
  /** The EHLO/HELO name the client gave. */
  helo: string;
  /** The user that authenticated on this connection, if any. */
  authUser: string | undefined;
  /** The mechanism used to authenticate, if any. */
  authMechanism: string | undefined;
  /** Whether the message came over a STARTTLS-upgraded connection. */
  tls: boolean;
}

export interface SmtpSinkHandle {
  host: string;
  port: number;
  /** Every message accepted so far, in order. */
  messages: SmtpSinkMessage[];
  /** Every AUTH attempt (user name and outcome; passwords are not kept). */
  authAttempts: Array<{ mechanism: string; username: string; ok: boolean }>;
  /** Connections accepted so far. */
  connections(): number;
  /** Resolves with the messages once at least `n` arrived; rejects after `timeoutMs` (default 10 s). */
  waitFor(n: number, timeoutMs?: number): Promise<SmtpSinkMessage[]>;
  stop(): Promise<void>;
}

/** Undoes SMTP dot-stuffing of a DATA block (CRLF lines, without the terminating `.` line). */
function unstuff(block: string): string {
  return block
    .split("\r\n")
    .map((l) => (l.startsWith(".") ? l.slice(1) : l))
    .join("\r\n");
}

function b64(s: string): string {
  return Buffer.from(s, "base64").toString("utf8");
}

/**
 * A local SMTP server on 127.0.0.1 (free port) that accepts any message and records envelope and data:
 * EHLO/HELO, optional AUTH PLAIN/LOGIN, MAIL, RCPT, DATA (with dot-unstuffing), RSET, NOOP, QUIT, plus
 * injectable failures. STARTTLS is offered only when `tls` (key + certificate) is given.
 */
export function startSmtpSink(opts: SmtpSinkOptions = {}): Promise<SmtpSinkHandle> {
  const messages: SmtpSinkMessage[] = [];
  const authAttempts: SmtpSinkHandle["authAttempts"] = [];
  const sockets = new Set<Socket>();
  const waiters: Array<() => void> = [];
  let connections = 0;
  const mechs = opts.authMechanisms ?? ["PLAIN", "LOGIN"];

  const server = createServer((socket) => {
    connections += 1;
    const connNo = connections;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    const failing = connNo <= (opts.failFirst ?? 0);
    if (failing && opts.failMode === "drop") {
      socket.destroy();
      return;
    }
    socket.setEncoding("utf8");
    let conn: Socket | TLSSocket = socket;
    let secure = false;
    let buf = "";
    let mode: "cmd" | "data" | "auth-plain" | "auth-login-user" | "auth-login-pass" = "cmd";
    let helo = "";
    let from: string | undefined;
    let to: string[] = [];
    let authUser: string | undefined;
    let authMechanism: string | undefined;
    let loginUser = "";
    const reply = (line: string): void => {
      if (!conn.destroyed) conn.write(`${line}\r\n`);
    };
    const checkAuth = (mechanism: string, user: string, pass: string): void => {
      const ok = opts.auth !== undefined && user === opts.auth.username && pass === opts.auth.password;
      authAttempts.push({ mechanism, username: user, ok });
      if (ok) {
        authUser = user;
        authMechanism = mechanism;
        reply("235 2.7.0 Authentication successful");
      } else reply("535 5.7.8 Authentication credentials invalid");
    };
    const plain = (token: string): void => {
      const parts = b64(token).split("\u0000");
      checkAuth("PLAIN", parts[1] ?? "", parts[2] ?? "");
    };

    const command = (line: string): void => {
      if (mode === "auth-plain") {
        mode = "cmd";
        plain(line);
        return;
      }
      if (mode === "auth-login-user") {
        loginUser = b64(line);
        mode = "auth-login-pass";
        reply(`334 ${Buffer.from("Password:").toString("base64")}`);
        return;
      }
      if (mode === "auth-login-pass") {
        mode = "cmd";
        checkAuth("LOGIN", loginUser, b64(line));
        return;
      }
      const verb = (line.split(" ")[0] ?? "").toUpperCase();
      const arg = line.slice(verb.length).trim();
      switch (verb) {
        case "EHLO": {
          helo = arg;
          const ext = ["polyfleet-smtp-sink", "8BITMIME"];
          if (opts.tls && !secure) ext.push("STARTTLS");
          if (opts.auth) ext.push(`AUTH ${mechs.join(" ")}`);
          ext.forEach((e, i) => {
            reply(`250${i === ext.length - 1 ? " " : "-"}${e}`);
          });
          return;
        }
        case "STARTTLS": {
          if (!opts.tls || secure) {
            reply("502 5.5.1 STARTTLS not available");
            return;
          }
          reply("220 2.0.0 Ready to start TLS");
          socket.off("data", onData);
          const upgraded = new TLSSocket(socket, { isServer: true, key: opts.tls.key, cert: opts.tls.cert });
          upgraded.setEncoding("utf8");
          upgraded.on("error", () => socket.destroy());
          upgraded.on("data", onData);
          conn = upgraded;
          secure = true;
          buf = "";
          // RFC 3207: the session starts over (no HELO, no auth, no transaction).
          helo = "";
          authUser = undefined;
          authMechanism = undefined;
          from = undefined;
          to = [];
          return;
        }
        case "HELO":
          helo = arg;
          reply("250 polyfleet-smtp-sink");
          return;
        case "AUTH": {
          const [mech, initial] = arg.split(" ");
          const m = (mech ?? "").toUpperCase();
          if (!opts.auth || !mechs.includes(m as "PLAIN" | "LOGIN")) {
            reply("504 5.5.4 Unrecognized authentication type");
          } else if (m === "PLAIN") {
            if (initial) plain(initial);
            else {
              mode = "auth-plain";
              reply("334 ");
            }
          } else {
            mode = "auth-login-user";
            reply(`334 ${Buffer.from("Username:").toString("base64")}`);
          }
          return;
        }
        case "MAIL": {
          if (failing) {
            reply("451 4.3.0 Try again later");
            return;
          }
          if (opts.requireTls && !secure) {
            reply("530 5.7.0 Must issue a STARTTLS command first");
            return;
          }
          if (opts.auth && authUser === undefined) {
            reply("530 5.7.0 Authentication required");
            return;
          }
          const m = /^FROM:\s*<([^>]*)>/i.exec(arg);
          if (!m) {
            reply("501 5.5.4 Syntax: MAIL FROM:<address>");
            return;
          }
          from = m[1] ?? "";
          to = [];
          reply("250 2.1.0 Ok");
          return;
        }
        case "RCPT": {
          const m = /^TO:\s*<([^>]*)>/i.exec(arg);
          if (from === undefined) reply("503 5.5.1 Need MAIL first");
          else if (!m) reply("501 5.5.4 Syntax: RCPT TO:<address>");
          else if ((opts.rejectRecipients ?? []).includes(m[1] ?? "")) reply("550 5.1.1 No such user");
          else {
            to.push(m[1] ?? "");
            reply("250 2.1.5 Ok");
          }
          return;
        }
        case "DATA":
          if (from === undefined || to.length === 0) reply("503 5.5.1 Need RCPT first");
          else {
            mode = "data";
            reply("354 End data with <CR><LF>.<CR><LF>");
          }
          return;
        case "RSET":
          from = undefined;
          to = [];
          reply("250 2.0.0 Ok");
          return;
        case "NOOP":
          reply("250 2.0.0 Ok");
          return;
        case "QUIT":
          reply("221 2.0.0 Bye");
          conn.end();
          return;
        default:
          reply("500 5.5.2 Command not recognized");
      }
    };

    const onData = (chunk: string): void => {
      buf += chunk;
      for (;;) {
        if (mode === "data") {
          // The DATA block ends with a line holding a single dot; it may be the very first line.
          const probe = `\r\n${buf}`;
          const end = probe.indexOf("\r\n.\r\n");
          if (end === -1) return;
          const block = probe.slice(2, end + 2);
          buf = probe.slice(end + 5);
          messages.push({
            from: from ?? "",
            to,
            data: unstuff(block.endsWith("\r\n") ? block.slice(0, -2) : block),
            helo,
            authUser,
            authMechanism,
            tls: secure,
          });
          from = undefined;
          to = [];
          mode = "cmd";
          reply("250 2.0.0 Ok: queued");
          for (const w of waiters.splice(0)) w();
          continue;
        }
        const i = buf.indexOf("\r\n");
        if (i === -1) return;
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        command(line);
      }
    };
    socket.on("data", onData);
    reply("220 polyfleet-smtp-sink ESMTP ready");
  });

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const addr = server.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      resolve({
        host: "127.0.0.1",
        port,
        messages,
        authAttempts,
        connections: () => connections,
        waitFor: async (n, timeoutMs = 10_000) => {
          const until = Date.now() + timeoutMs;
          while (messages.length < n) {
            const left = until - Date.now();
            if (left <= 0) throw new Error(`timed out waiting for ${n} messages (have ${messages.length})`);
            await new Promise<void>((r) => {
              const t = setTimeout(r, Math.min(left, 100));
              waiters.push(() => {
                clearTimeout(t);
                r();
              });
            });
          }
          return messages.slice();
        },
        stop: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}
