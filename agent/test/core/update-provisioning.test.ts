import fc from "fast-check";
import { describe, expect, it } from "vitest";
// The simulator's own parsers: what a simulated device makes of the files the agent serves.
import { selectAppFile } from "../../../scripts/src/simulator/uc/provisioning.js";
import { parsePackageManifest } from "../../../scripts/src/simulator/videoos/auto-update.js";
import {
  deviceBasePath,
  imageRelativePath,
  parseProvisioningPath,
  ucMasterConfig,
  validImageFileName,
  videoOsManifest,
} from "../../src/core/update-provisioning.js";

const SHA = "a".repeat(64);

describe("provisioning files", () => {
  it("writes a master config the phone reads the image path from, for any model", () => {
    const xml = ucMasterConfig(imageRelativePath(SHA, "3111-48830-001.sip.ld"));
    expect(xml).toContain(`APP_FILE_PATH="images/${SHA}/3111-48830-001.sip.ld"`);
    expect(xml).toContain('CONFIG_FILES=""');
    expect(selectAppFile(xml, "VVX 350", "3111-48830-001")).toBe(`images/${SHA}/3111-48830-001.sip.ld`);
    expect(selectAppFile(xml, "Trio 8800", "3111-65290-001")).toBe(`images/${SHA}/3111-48830-001.sip.ld`);
  });

  it("writes a master config with no image when there is nothing to install", () => {
    expect(selectAppFile(ucMasterConfig(undefined), "VVX 350", "3111-48830-001")).toBeUndefined();
  });

  it("writes a VideoOS manifest the device accepts", () => {
    const json = videoOsManifest({
      version: "4.1.0",
      build: "401117",
      file: imageRelativePath(SHA, "x.pkg"),
      size: 4096,
    });
    expect(parsePackageManifest(JSON.parse(json))).toEqual({
      version: "4.1.0",
      build: "401117",
      date: undefined,
      file: `images/${SHA}/x.pkg`,
      size: 4096,
    });
    expect(JSON.parse(videoOsManifest({ version: "4.1.0", file: "f", size: 1 }))).not.toHaveProperty("build");
  });

  it("routes the three kinds of files under a device's own path", () => {
    const base = deviceBasePath("64167fa1b2c3");
    expect(base).toBe("/d/64167fa1b2c3/");
    expect(parseProvisioningPath(`${base}64167FA1B2C3.cfg`)).toEqual({
      kind: "ucConfig",
      deviceId: "64167fa1b2c3",
      file: "64167fa1b2c3.cfg",
    });
    expect(parseProvisioningPath(`${base}000000000000.cfg?x=1`)).toMatchObject({ kind: "ucConfig" });
    expect(parseProvisioningPath(`${base}${imageRelativePath(SHA, "a.sip.ld")}`)).toEqual({
      kind: "image",
      deviceId: "64167fa1b2c3",
      sha256: SHA,
      fileName: "a.sip.ld",
    });
    expect(parseProvisioningPath(`${base}polyos/StudioX30/package.json`)).toEqual({
      kind: "videoosManifest",
      deviceId: "64167fa1b2c3",
      model: "StudioX30",
    });
    expect(
      parseProvisioningPath(`${deviceBasePath("ip-10.0.0.5")}polyos/Studio%20X30/package.json`),
    ).toMatchObject({
      deviceId: "ip-10.0.0.5",
      model: "Studio X30",
    });
    expect(parseProvisioningPath(`${deviceBasePath("ip-fe80::1")}000000000000.cfg`)).toMatchObject({
      deviceId: "ip-fe80::1",
    });
  });

  it("refuses everything else, traversal attempts first", () => {
    for (const p of [
      "",
      "/",
      "/d/",
      "/d/x",
      "/d/x/",
      "/etc/passwd",
      "/d/../images/x",
      `/d/x/images/${SHA}/..`,
      `/d/x/images/${SHA}/%2e%2e`,
      `/d/x/images/${SHA}/..%2fetc%2fpasswd`,
      `/d/x/images/${SHA}/a%2fb`,
      `/d/x/images/${SHA}/a%5cb`,
      `/d/x/images/${SHA}/a%00`,
      `/d/x/images/${SHA}/.hidden`,
      `/d/x/images/${"A".repeat(64)}/f`,
      `/d/x/images/${SHA}/f/extra`,
      "/d/x/polyos/../package.json",
      "/d/x/polyos/%2e%2e/package.json",
      "/d/%2e%2e/000000000000.cfg",
      "/d/x/1234.cfg",
      "/d/x/000000000000.cfg.bak",
      "/d/x//000000000000.cfg",
      "/d/-x/000000000000.cfg",
      "/d/x/%E0%A4%A/000000000000.cfg",
      "d/x/000000000000.cfg",
    ]) {
      expect(parseProvisioningPath(p), p).toBeUndefined();
    }
    expect(validImageFileName("..")).toBe(false);
    expect(validImageFileName(".x")).toBe(false);
    expect(validImageFileName("a.sip.ld")).toBe(true);
  });

  it("never yields a component that could leave its place, for any input (property)", () => {
    const piece = fc.constantFrom(
      "/",
      "\\",
      "..",
      ".",
      "%2e",
      "%2E",
      "%2f",
      "%2F",
      "%5c",
      "%00",
      "%",
      "d",
      "images",
      "polyos",
      "package.json",
      "000000000000.cfg",
      SHA,
      "a",
      "x.pkg",
      "?",
      "#",
      " ",
      "%20",
    );
    const arb = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.array(piece, { maxLength: 12 }).map((a) => `/d/${a.join("")}`),
      fc.array(fc.oneof(piece, fc.string({ maxLength: 8 })), { maxLength: 8 }).map((a) => `/${a.join("/")}`),
    );
    fc.assert(
      fc.property(arb, (url) => {
        const r = parseProvisioningPath(url);
        if (!r) return;
        const parts = [r.deviceId, r.kind === "image" ? r.sha256 : "", r.kind === "image" ? r.fileName : ""];
        if (r.kind === "videoosManifest") parts.push(r.model);
        if (r.kind === "ucConfig") parts.push(r.file);
        for (const p of parts) {
          expect(p).not.toMatch(/[/\\\0]/);
          expect(p === "." || p === "..").toBe(false);
        }
        if (r.kind === "image") {
          expect(r.sha256).toMatch(/^[0-9a-f]{64}$/);
          expect(validImageFileName(r.fileName)).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("round-trips every device id and image file name it produces (property)", () => {
    const id = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,40}$/);
    const name = fc.stringMatching(/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,40}$/);
    const sha = fc.stringMatching(/^[0-9a-f]{64}$/);
    fc.assert(
      fc.property(id, name, sha, (deviceId, fileName, sha256) => {
        expect(
          parseProvisioningPath(`${deviceBasePath(deviceId)}${imageRelativePath(sha256, fileName)}`),
        ).toEqual({
          kind: "image",
          deviceId,
          sha256,
          fileName,
        });
      }),
    );
  });
});
