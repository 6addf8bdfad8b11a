import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { PolyfleetError } from "@polyfleet/shared";

/** Reads a UTF-8 file; NOT_FOUND when it is missing, CONFIG_UNREADABLE for any other failure. */
export function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new PolyfleetError(
      code === "ENOENT" ? "POLYFLEET_ERR_NOT_FOUND" : "POLYFLEET_ERR_CONFIG_UNREADABLE",
      `cannot read ${path}: ${code ?? (err as Error).message}`,
      { cause: err },
    );
  }
}

/**
 * Writes a file atomically: a temporary file beside it, fsync, rename. A reader sees the old or the new
 * content, never a torn one.
 */
export function writeAtomic(path: string, text: string, mode = 0o644): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  try {
    const fd = openSync(tmp, "wx", mode);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
