import { createReadStream, statSync } from "node:fs";
import { join } from "node:path";
import {
  type CatalogRelease,
  type CatalogSigned,
  ImageVerifier,
  loadVerifiedCatalog,
} from "@polyfleet/firmware-catalog";
import { type Clock, type Logger, PolyfleetError } from "@polyfleet/shared";
import type { CatalogView } from "../../ports/rollouts.js";

export interface CatalogSourceOptions {
  rootFile?: string | undefined;
  catalogFile?: string | undefined;
  imagesDir: string;
  trustStateFile: string;
  clock: Clock;
  log: Logger;
  /** How often the files are checked for changes (default 5 s). */
  checkEveryMs?: number;
}

interface Loaded {
  catalog: CatalogSigned;
  bySha: Map<string, CatalogRelease>;
}

/**
 * The signed firmware catalog as the collector trusts it: root + catalog verified (signatures, threshold,
 * expiry, rollback against the trust state), reloaded when the files change. A refused catalog keeps the last
 * good one and is reported in `view().error`. Image files are verified (length + sha256, streaming) before a
 * rollout may use them; verified files are remembered by (path, size, mtime).
 */
export class CatalogSource {
  private loaded: Loaded | undefined;
  private error: string | undefined;
  private lastStamp = "";
  private lastCheck = 0;
  private readonly verified = new Map<string, string>();

  constructor(private readonly opts: CatalogSourceOptions) {}

  /** Loads (or reloads when the files changed). Never throws: a refusal is logged and kept in `error`. */
  refresh(force = false): void {
    const { rootFile, catalogFile } = this.opts;
    if (!rootFile || !catalogFile) {
      this.error = "firmware.rootFile and firmware.catalogFile are not configured";
      return;
    }
    const now = this.opts.clock.now();
    if (!force && now - this.lastCheck < (this.opts.checkEveryMs ?? 5000)) return;
    this.lastCheck = now;
    let stamp: string;
    try {
      const r = statSync(rootFile);
      const c = statSync(catalogFile);
      stamp = `${r.mtimeMs}:${r.size}:${c.mtimeMs}:${c.size}`;
    } catch (err) {
      this.error = `firmware catalog files unreadable: ${(err as Error).message}`;
      return;
    }
    if (!force && stamp === this.lastStamp) return;
    this.lastStamp = stamp;
    try {
      const { catalog } = loadVerifiedCatalog({
        rootFile,
        catalogFile,
        trustStateFile: this.opts.trustStateFile,
        now,
      });
      const bySha = new Map<string, CatalogRelease>();
      for (const r of catalog.releases) bySha.set(r.image.sha256, r);
      this.loaded = { catalog, bySha };
      this.error = undefined;
      this.opts.log.info(
        { version: catalog.version, releases: catalog.releases.length },
        "firmware catalog accepted",
      );
    } catch (err) {
      const code = err instanceof PolyfleetError ? err.code : "POLYFLEET_ERR_CATALOG_INVALID";
      this.error = `${code}: ${(err as Error).message}`;
      this.opts.log.error(
        { code, err: (err as Error).message },
        "firmware catalog refused; keeping the last good one",
      );
    }
  }

  /** The verified catalog; throws CATALOG_INVALID (with the reason) when none is loaded. */
  current(): CatalogSigned {
    this.refresh();
    if (!this.loaded)
      throw new PolyfleetError("POLYFLEET_ERR_CATALOG_INVALID", this.error ?? "no firmware catalog loaded");
    return this.loaded.catalog;
  }

  view(): CatalogView {
    this.refresh();
    const cat = this.loaded?.catalog;
    return {
      loaded: cat !== undefined,
      ...(cat ? { version: cat.version, expires: cat.expires } : {}),
      ...(this.error ? { error: this.error } : {}),
      releases: (cat?.releases ?? []).map((r) => ({
        family: r.family,
        model: r.model,
        version: r.version,
        ...(r.build ? { build: r.build } : {}),
        channel: r.channel,
        releaseDate: r.releaseDate,
        ...(r.minVersion ? { minVersion: r.minVersion } : {}),
        downgrade: r.downgrade === true,
        ...(r.notes ? { notes: r.notes } : {}),
        image: { ...r.image },
      })),
      baseline: { ...(cat?.baseline ?? {}) },
    };
  }

  /** The image of a catalog release by sha256, if its file is present with the catalog's length. */
  image(sha256: string): { path: string; length: number; fileName: string } | undefined {
    const r = this.loaded?.bySha.get(sha256);
    if (!r) return undefined;
    const path = join(this.opts.imagesDir, r.image.fileName);
    try {
      if (statSync(path).size !== r.image.length) return undefined;
    } catch {
      return undefined;
    }
    return { path, length: r.image.length, fileName: r.image.fileName };
  }

  /**
   * Checks an image file against the catalog (length + sha256, streaming). Throws IMAGE_MISMATCH /
   * IMAGE_TOO_LARGE / NOT_FOUND naming the file.
   */
  async verifyImage(image: { fileName: string; length: number; sha256: string }): Promise<void> {
    const path = join(this.opts.imagesDir, image.fileName);
    let stamp: string;
    try {
      const st = statSync(path);
      stamp = `${st.size}:${st.mtimeMs}:${image.sha256}`;
    } catch {
      throw new PolyfleetError(
        "POLYFLEET_ERR_NOT_FOUND",
        `firmware image ${image.fileName} is not in ${this.opts.imagesDir}`,
      );
    }
    if (this.verified.get(path) === stamp) return;
    const verifier = new ImageVerifier({ length: image.length, sha256: image.sha256 });
    try {
      for await (const chunk of createReadStream(path)) verifier.update(chunk as Buffer);
      verifier.finish();
    } catch (err) {
      if (err instanceof PolyfleetError)
        throw new PolyfleetError(err.code, `${image.fileName}: ${err.message}`, { cause: err });
      throw err;
    }
    this.verified.set(path, stamp);
  }
}
