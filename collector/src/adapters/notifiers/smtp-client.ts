import { isIP, Socket } from "node:net";
import { type ConnectionOptions, type TLSSocket, connect as tlsConnect } from "node:tls";

export interface SmtpClientOptions {
  host: string;
  port: number;
  /** Implicit TLS from the first byte (port 465 style). */
  secure?: boolean;
  /** STARTTLS on a plain connection: `auto` when offered (default), `required`, or `never`. */
  startTls?: "auto" | "required" | "never";
  username?: string;
  /** Resolved password; never logged or put into an error message. */
  password?: string;
  /**
   * Send credentials over an unencrypted connection. Off by default; loopback hosts (a local relay) are
   * always allowed.
   */
  allowInsecureAuth?: boolean;
  /** Inactivity timeout of every step (default 30 s). */
  timeoutMs?: number;
  /** Name sent in EHLO (default `polyfleet`). */
  clientName?: string;
  /** Extra TLS options (ca, rejectUnauthorized, servername). */
  tls?: ConnectionOptions;
}

export interface SmtpEnvelope {
  /** Bare address (`noc@example.com`) or `Name <noc@example.com>`. */
  from: string;
  to: readonly string[];
}

export type SmtpSendResult =
  | { ok: true; accepted: string[]; rejected: Array<{ address: string; code: number }> }
  | {
      ok: false;
      /** Worth retrying (network error, timeout, 4xx reply). */
      transient: boolean;
      stage: string;
      code: number | undefined;
      message: string;
    };

interface Reply {
  code: number;
  lines: string[];
}

class SmtpFailure extends Error {
  constructor(
    readonly stage: string,
    readonly code: number | undefined,
    message: string,
    readonly transient: boolean,
  ) {
    super(message);
    this.name = "SmtpFailure";
  }
}

/** `Name <a@b>` or `a@b` → `a@b`; undefined when it is not a plausible single address. */
export function smtpAddress(value: string): string | undefined {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: a value with control characters is refused outright
  if (/[\u0000-\u001f\u007f]/.test(value)) return undefined;
  const m = /<([^<>]*)>\s*$/.exec(value);
  const addr = (m ? (m[1] as string) : value).trim();
  return /^[^\s<>@]+@[^\s<>@]+$/.test(addr) ? addr : undefined;
}

/** Normalises line ends to CRLF and dot-stuffs (RFC 5321 4.5.2); the result ends with CRLF. */
export function dotStuff(data: string): string {
  const lines = data.replace(/\r\n|\r|\n/g, "\n").split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return `${lines.map((l) => (l.startsWith(".") ? `.${l}` : l)).join("\r\n")}\r\n`;
}

function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  if (h === "localhost") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  return h === "::1" || (isIP(h) === 6 && h.startsWith("::ffff:127."));
}

/**
 * Whether credentials may be sent: over TLS always; in clear text only to a loopback host (a local relay)
 * or when explicitly allowed.
 */
export function mayAuthenticate(host: string, encrypted: boolean, allowInsecureAuth = false): boolean {
  return encrypted || allowInsecureAuth || isLoopback(host);
}

/** One SMTP session over a socket: line reader with an inactivity timeout, and STARTTLS upgrade. */
class SmtpSession {
  private socket: Socket | TLSSocket | undefined;
  private buf = "";
  private readonly lines: string[] = [];
  private waiter: { resolve: (l: string) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;
  private readonly onData = (chunk: string): void => {
    this.buf += chunk;
    for (let i = this.buf.indexOf("\n"); i !== -1; i = this.buf.indexOf("\n")) {
      const line = this.buf.slice(0, i).replace(/\r$/, "");
      this.buf = this.buf.slice(i + 1);
      this.lines.push(line);
    }
    if (this.buf.length > 64 * 1024)
      this.fail(new SmtpFailure("read", undefined, "reply line too long", false));
    this.wake();
  };
  private readonly onError = (err: Error): void => {
    this.fail(new SmtpFailure("connection", undefined, `connection error: ${err.message}`, true));
  };
  private readonly onClose = (): void => {
    this.fail(new SmtpFailure("connection", undefined, "connection closed by server", true));
  };
  private readonly onTimeout = (): void => {
    this.fail(new SmtpFailure("timeout", undefined, "SMTP server did not answer in time", true));
    this.socket?.destroy();
  };

  constructor(private readonly timeoutMs: number) {}

  attach(socket: Socket | TLSSocket): void {
    this.socket = socket;
    socket.setEncoding("utf8");
    socket.setTimeout(this.timeoutMs);
    socket.on("data", this.onData);
    socket.on("error", this.onError);
    socket.on("close", this.onClose);
    socket.on("timeout", this.onTimeout);
  }

  /** Detaches from the socket (before a TLS upgrade) and returns it. */
  detach(): Socket | TLSSocket {
    const s = this.socket;
    if (!s) throw new Error("no socket to detach");
    s.off("data", this.onData);
    s.off("error", this.onError);
    s.off("close", this.onClose);
    s.off("timeout", this.onTimeout);
    s.setTimeout(0);
    this.socket = undefined;
    this.buf = "";
    this.lines.length = 0;
    return s;
  }

  write(line: string): void {
    if (this.failure) throw this.failure;
    this.socket?.write(line);
  }

  async reply(stage: string): Promise<Reply> {
    const lines: string[] = [];
    for (;;) {
      const line = await this.readLine();
      const m = /^(\d{3})([ -]?)(.*)$/.exec(line);
      if (!m) throw new SmtpFailure(stage, undefined, "malformed SMTP reply", false);
      lines.push(m[3] as string);
      if (m[2] !== "-") return { code: Number(m[1]), lines };
    }
  }

  async command(stage: string, line: string, expect: readonly number[]): Promise<Reply> {
    this.write(`${line}\r\n`);
    const r = await this.reply(stage);
    if (!expect.includes(r.code)) throw replyFailure(stage, r);
    return r;
  }

  close(): void {
    this.socket?.destroy();
    this.socket = undefined;
  }

  private readLine(): Promise<string> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  private wake(): void {
    const w = this.waiter;
    if (!w) return;
    const line = this.lines.shift();
    if (line !== undefined) {
      this.waiter = undefined;
      w.resolve(line);
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    const w = this.waiter;
    if (w && this.lines.length === 0) {
      this.waiter = undefined;
      w.reject(this.failure);
    }
  }
}

function replyFailure(stage: string, r: Reply): SmtpFailure {
  // The server's text is kept short, and dropped entirely during AUTH (a server might echo what we sent).
  const text = stage === "auth" ? "" : ` ${(r.lines[0] ?? "").slice(0, 200)}`;
  return new SmtpFailure(stage, r.code, `${stage} refused: ${r.code}${text}`, r.code >= 400 && r.code < 500);
}

function connectPlain(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = new Socket();
    s.once("error", reject);
    s.connect(port, host, () => {
      s.off("error", reject);
      s.setNoDelay(true);
      resolve(s);
    });
  });
}

function connectTls(opts: ConnectionOptions): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect(opts);
    s.once("error", reject);
    s.once("secureConnect", () => {
      s.off("error", reject);
      resolve(s);
    });
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new SmtpFailure(what, undefined, `${what} timed out`, true)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

function authMechanisms(ehlo: Reply): Set<string> {
  const out = new Set<string>();
  for (const l of ehlo.lines) {
    const m = /^AUTH[ =](.*)$/i.exec(l);
    if (m) for (const mech of (m[1] as string).split(/\s+/)) if (mech) out.add(mech.toUpperCase());
  }
  return out;
}

function offers(ehlo: Reply, ext: string): boolean {
  return ehlo.lines.some((l) => l.toUpperCase().split(/\s+/)[0] === ext);
}

/**
 * Sends one message over SMTP (EHLO, STARTTLS when offered or required, AUTH PLAIN/LOGIN when a username is
 * set, MAIL FROM, RCPT TO per recipient, DATA with dot-stuffing, QUIT). Expected failures come back as
 * values (`ok: false`, with `transient` telling whether a retry may help); it never throws.
 */
export async function sendSmtpMail(
  opts: SmtpClientOptions,
  envelope: SmtpEnvelope,
  data: string,
): Promise<SmtpSendResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const session = new SmtpSession(timeoutMs);
  const name = opts.clientName ?? "polyfleet";
  try {
    const from = smtpAddress(envelope.from);
    if (!from) throw new SmtpFailure("envelope", undefined, "sender address is invalid", false);
    const recipients: string[] = [];
    for (const t of envelope.to) {
      const a = smtpAddress(t);
      if (!a) throw new SmtpFailure("envelope", undefined, "a recipient address is invalid", false);
      recipients.push(a);
    }
    if (recipients.length === 0) throw new SmtpFailure("envelope", undefined, "no recipients", false);

    const tlsBase: ConnectionOptions = {
      ...(isIP(opts.host) ? {} : { servername: opts.host }),
      ...opts.tls,
    };
    let encrypted = opts.secure === true;
    const socket = await withTimeout(
      encrypted
        ? connectTls({ ...tlsBase, host: opts.host, port: opts.port })
        : connectPlain(opts.host, opts.port),
      timeoutMs,
      "connect",
    ).catch((err: unknown) => {
      if (err instanceof SmtpFailure) throw err;
      throw new SmtpFailure("connect", undefined, `cannot connect: ${(err as Error).message}`, true);
    });
    session.attach(socket);
    const greeting = await session.reply("greeting");
    if (greeting.code !== 220) throw replyFailure("greeting", greeting);
    let ehlo = await session.command("ehlo", `EHLO ${name}`, [250]);

    const startTls = opts.startTls ?? "auto";
    if (!encrypted && startTls !== "never" && (offers(ehlo, "STARTTLS") || startTls === "required")) {
      if (!offers(ehlo, "STARTTLS")) {
        throw new SmtpFailure("starttls", undefined, "server does not offer STARTTLS", false);
      }
      await session.command("starttls", "STARTTLS", [220]);
      const plain = session.detach();
      const secured = await withTimeout(
        connectTls({ ...tlsBase, host: opts.host, socket: plain }),
        timeoutMs,
        "starttls",
      ).catch((err: unknown) => {
        plain.destroy();
        if (err instanceof SmtpFailure) throw err;
        throw new SmtpFailure("starttls", undefined, `TLS handshake failed: ${(err as Error).message}`, true);
      });
      session.attach(secured);
      encrypted = true;
      ehlo = await session.command("ehlo", `EHLO ${name}`, [250]);
    }

    if (opts.username !== undefined) {
      if (!mayAuthenticate(opts.host, encrypted, opts.allowInsecureAuth)) {
        throw new SmtpFailure(
          "auth",
          undefined,
          "refusing to send credentials over an unencrypted connection",
          false,
        );
      }
      const mechs = authMechanisms(ehlo);
      const user = opts.username;
      const pass = opts.password ?? "";
      if (mechs.has("PLAIN")) {
        const token = Buffer.from(`\u0000${user}\u0000${pass}`, "utf8").toString("base64");
        await session.command("auth", `AUTH PLAIN ${token}`, [235]);
      } else if (mechs.has("LOGIN")) {
        await session.command("auth", "AUTH LOGIN", [334]);
        await session.command("auth", Buffer.from(user, "utf8").toString("base64"), [334]);
        await session.command("auth", Buffer.from(pass, "utf8").toString("base64"), [235]);
      } else {
        throw new SmtpFailure("auth", undefined, "server offers neither AUTH PLAIN nor AUTH LOGIN", false);
      }
    }

    await session.command("mail", `MAIL FROM:<${from}>`, [250]);
    const accepted: string[] = [];
    const rejected: Array<{ address: string; code: number }> = [];
    for (const rcpt of recipients) {
      session.write(`RCPT TO:<${rcpt}>\r\n`);
      const r = await session.reply("rcpt");
      if (r.code === 250 || r.code === 251) accepted.push(rcpt);
      else rejected.push({ address: rcpt, code: r.code });
    }
    if (accepted.length === 0) {
      const transient = rejected.some((r) => r.code >= 400 && r.code < 500);
      throw new SmtpFailure("rcpt", rejected[0]?.code, "every recipient was refused", transient);
    }
    await session.command("data", "DATA", [354]);
    session.write(`${dotStuff(data)}.\r\n`);
    const done = await session.reply("data");
    if (done.code !== 250) throw replyFailure("data", done);
    try {
      await session.command("quit", "QUIT", [221]);
    } catch {
      // The message is accepted; a failed goodbye changes nothing.
    }
    return { ok: true, accepted, rejected };
  } catch (err) {
    if (err instanceof SmtpFailure) {
      return { ok: false, transient: err.transient, stage: err.stage, code: err.code, message: err.message };
    }
    return { ok: false, transient: true, stage: "unknown", code: undefined, message: (err as Error).message };
  } finally {
    session.close();
  }
}
