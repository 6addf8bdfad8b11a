/**
 * The site provisioning server's URL space and file contents (pure). Each device being updated gets its own
 * base path, `/d/<deviceId>/`, so it sees only its own update:
 *
 *   /d/<id>/<mac>.cfg, /d/<id>/000000000000.cfg   UC master config naming the image
 *   /d/<id>/polyos/<model>/package.json           VideoOS package manifest
 *   /d/<id>/images/<sha256>/<fileName>            the image itself
 *
 * Anything else, and any of these for a device that is not being updated, is a 404. Paths are matched
 * segment by segment against strict patterns; a file is only ever looked up by its sha256 id, never by a
 * name taken from the URL, so no path can reach outside the image store.
 */

const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const FILE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$/;
const CFG = /^[0-9A-Fa-f]{12}\.cfg$/;
const MODEL = /^[A-Za-z0-9_-][A-Za-z0-9 _.-]{0,63}$/;
const MAX_URL = 2048;

export type ProvisioningRoute =
  /** A UC master config (`<mac>.cfg` or `000000000000.cfg`). */
  | { kind: "ucConfig"; deviceId: string; file: string }
  | { kind: "videoosManifest"; deviceId: string; model: string }
  | { kind: "image"; deviceId: string; sha256: string; fileName: string };

/** Whether a name is usable as an image file name in a URL and a cfg attribute. */
export function validImageFileName(name: string): boolean {
  return FILE_NAME.test(name) && name !== "." && name !== "..";
}

/** `/d/<deviceId>/`, the device's own base path. */
export function deviceBasePath(deviceId: string): string {
  return `/d/${encodeURIComponent(deviceId)}/`;
}

/** `images/<sha256>/<fileName>`, relative to the device's base path. */
export function imageRelativePath(sha256: string, fileName: string): string {
  return `images/${sha256}/${encodeURIComponent(fileName)}`;
}

function decodeSegment(s: string): string | undefined {
  let d: string;
  try {
    d = decodeURIComponent(s);
  } catch {
    return undefined;
  }
  // A decoded separator, NUL or dot segment could only be an attempt to walk out of the URL space.
  if (d === "" || d === "." || d === ".." || /[/\\\0]/.test(d)) return undefined;
  return d;
}

/** Maps a request target (path, optional query) to a route; undefined for anything not served. */
export function parseProvisioningPath(rawUrl: string): ProvisioningRoute | undefined {
  if (rawUrl.length === 0 || rawUrl.length > MAX_URL || !rawUrl.startsWith("/")) return undefined;
  const path = rawUrl.split(/[?#]/, 1)[0] ?? "";
  const raw = path.split("/");
  if (raw[0] !== "" || raw[1] !== "d" || raw.length < 4 || raw.length > 6) return undefined;
  const segs: string[] = [];
  for (const s of raw.slice(2)) {
    const d = decodeSegment(s);
    if (d === undefined) return undefined;
    segs.push(d);
  }
  const [deviceId, a, b, c] = segs;
  if (deviceId === undefined || !DEVICE_ID.test(deviceId) || a === undefined) return undefined;
  if (segs.length === 2 && CFG.test(a)) return { kind: "ucConfig", deviceId, file: a.toLowerCase() };
  if (segs.length === 4 && a === "images" && b !== undefined && c !== undefined) {
    if (SHA256.test(b) && validImageFileName(c)) return { kind: "image", deviceId, sha256: b, fileName: c };
    return undefined;
  }
  if (segs.length === 4 && a === "polyos" && b !== undefined && c === "package.json" && MODEL.test(b)) {
    return { kind: "videoosManifest", deviceId, model: b };
  }
  return undefined;
}

function xmlAttr(v: string): string {
  return v.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * The UC master config: `APP_FILE_PATH` names the image (relative to the device's base path) for every
 * model, since each device has its own path; `CONFIG_FILES` is empty so no settings change with it. Without
 * an image path the config names no application: a phone that fetches it has nothing to install.
 */
export function ucMasterConfig(imagePath: string | undefined): string {
  return (
    `<?xml version="1.0" standalone="yes"?>\n` +
    `<!-- polyfleet agent: firmware update -->\n` +
    `<APPLICATION APP_FILE_PATH="${xmlAttr(imagePath ?? "")}" CONFIG_FILES=""/>\n`
  );
}

export interface VideoOsOffer {
  version: string;
  build?: string | undefined;
  /** Image path relative to the device's base path. */
  file: string;
  size: number;
}

/** The VideoOS `package.json` manifest `{version, build, file, size}`. */
export function videoOsManifest(offer: VideoOsOffer): string {
  return JSON.stringify({
    version: offer.version,
    ...(offer.build ? { build: offer.build } : {}),
    file: offer.file,
    size: offer.size,
  });
}
