/**
 * Simulated firmware images. Real UC `.sip.ld` and VideoOS packages are opaque signed binaries whose header
 * names the version; the simulator models that with a one-line text header followed by filler bytes:
 *
 *   PolyfleetSimImage/1 family=uc model=VVX_350 version=5.9.8.5760 build=5760 date=09-Nov-22_14:40\n
 *
 * (values have spaces replaced by `_`). A device reads the header to decide whether the image differs from
 * what it runs, then downloads the whole file and checks its length against Content-Length.
 */
export interface SimImageHeader {
  family: "uc" | "videoos";
  model: string;
  version: string;
  build?: string | undefined;
  date?: string | undefined;
}

const MAGIC = "PolyfleetSimImage/1";

export function makeSimImage(header: SimImageHeader, totalBytes = 4096): Buffer {
  const fields: string[] = [
    `family=${header.family}`,
    `model=${enc(header.model)}`,
    `version=${enc(header.version)}`,
  ];
  if (header.build) fields.push(`build=${enc(header.build)}`);
  if (header.date) fields.push(`date=${enc(header.date)}`);
  const head = Buffer.from(`${MAGIC} ${fields.join(" ")}\n`, "utf8");
  const size = Math.max(totalBytes, head.length);
  const out = Buffer.alloc(size, 0x5a);
  head.copy(out, 0);
  return out;
}

/** Parses the header from the first bytes of an image; undefined when it is not a simulator image. */
export function parseSimImageHeader(bytes: Buffer): SimImageHeader | undefined {
  const nl = bytes.indexOf(0x0a);
  if (nl < 0 || nl > 1024) return undefined;
  const line = bytes.subarray(0, nl).toString("utf8");
  const [magic, ...rest] = line.split(" ");
  if (magic !== MAGIC) return undefined;
  const kv = new Map<string, string>();
  for (const part of rest) {
    const eq = part.indexOf("=");
    if (eq > 0) kv.set(part.slice(0, eq), dec(part.slice(eq + 1)));
  }
  const family = kv.get("family");
  const model = kv.get("model");
  const version = kv.get("version");
  if ((family !== "uc" && family !== "videoos") || !model || !version) return undefined;
  return { family, model, version, build: kv.get("build"), date: kv.get("date") };
}

function enc(s: string): string {
  return s.replace(/ /g, "_");
}
function dec(s: string): string {
  return s.replace(/_/g, " ");
}
