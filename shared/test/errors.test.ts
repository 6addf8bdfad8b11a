import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ERRORS, type ErrorCode, isPolyfleetError, PollError, PolyfleetError } from "../src/index.js";

const CODES = Object.keys(ERRORS) as ErrorCode[];

interface DocRow {
  code: string;
  status: number;
  meaning: string;
  action: string;
}

/** The rows of the code table in docs/errors.md: `| \`CODE\` | status | meaning | what to do |`. */
function documentedRows(): DocRow[] {
  const markdown = readFileSync(new URL("../../docs/errors.md", import.meta.url), "utf8");
  return markdown
    .split("\n")
    .filter((line) => /^\|\s*`POLYFLEET_ERR_/.test(line))
    .map((line) => {
      const cells = line
        .split("|")
        .slice(1, -1)
        .map((c) => c.trim());
      expect(cells, line).toHaveLength(4);
      const [code, status, meaning, action] = cells as [string, string, string, string];
      return { code: code.replace(/`/g, ""), status: Number(status), meaning, action };
    });
}

describe("error catalog", () => {
  it("names every code POLYFLEET_ERR_* with an HTTP error status and a message", () => {
    for (const code of CODES) {
      expect(code).toMatch(/^POLYFLEET_ERR_[A-Z0-9_]+$/);
      // The value form travels in readings and command results: the contracts must accept every code.
      expect(PollError.safeParse({ code, message: "m" }).success, code).toBe(true);
      expect(ERRORS[code].status).toBeGreaterThanOrEqual(400);
      expect(ERRORS[code].status).toBeLessThan(600);
      expect(ERRORS[code].message.length).toBeGreaterThan(0);
    }
  });

  it("documents every code in docs/errors.md with its status, a meaning and what to do", () => {
    const rows = documentedRows();
    const byCode = new Map(rows.map((r) => [r.code, r]));
    for (const code of CODES) {
      const row = byCode.get(code);
      expect(row, `${code} is missing from docs/errors.md`).toBeDefined();
      expect(row?.status, `${code} status in docs/errors.md`).toBe(ERRORS[code].status);
      expect(row?.meaning.length, `${code} meaning`).toBeGreaterThan(10);
      expect(row?.action.length, `${code} what to do`).toBeGreaterThan(10);
    }
  });

  it("documents no code twice and no code that the catalog does not have", () => {
    const documented = documentedRows().map((r) => r.code);
    expect(new Set(documented).size).toBe(documented.length);
    expect([...documented].sort()).toEqual([...CODES].sort());
  });
});

describe("PolyfleetError", () => {
  it("carries code, statusCode and the catalog message by default", () => {
    for (const code of CODES) {
      const e = new PolyfleetError(code);
      expect(e).toBeInstanceOf(Error);
      expect(e).toBeInstanceOf(PolyfleetError);
      expect(e.name).toBe("PolyfleetError");
      expect(e.code).toBe(code);
      expect(e.statusCode).toBe(ERRORS[code].status);
      expect(e.message).toBe(ERRORS[code].message);
      expect(e.details).toBeUndefined();
      expect("cause" in e).toBe(false);
      expect(e.stack).toContain("PolyfleetError");
    }
  });

  it("keeps a wrapped library error as cause, a custom message and details", () => {
    const cause = new SyntaxError("Unexpected token } in JSON");
    const e = new PolyfleetError("POLYFLEET_ERR_CONFIG_INVALID", "agent.yaml: broker.url: bad", {
      cause,
      details: { file: "agent.yaml" },
    });
    expect(e.cause).toBe(cause);
    expect(e.message).toBe("agent.yaml: broker.url: bad");
    expect(e.statusCode).toBe(400);
    expect(e.details).toEqual({ file: "agent.yaml" });
  });

  it("keeps a non-Error cause as given", () => {
    expect(new PolyfleetError("POLYFLEET_ERR_INTERNAL", undefined, { cause: "boom" }).cause).toBe("boom");
    expect(new PolyfleetError("POLYFLEET_ERR_INTERNAL", undefined, { cause: null }).cause).toBeNull();
  });

  it("serialises to the { code, message } value form, without the stack or cause", () => {
    const e = new PolyfleetError("POLYFLEET_ERR_DEVICE_TIMEOUT", "no answer in 5000 ms", {
      cause: new Error("ETIMEDOUT 10.0.0.1"),
    });
    expect(e.toJSON()).toEqual({ code: "POLYFLEET_ERR_DEVICE_TIMEOUT", message: "no answer in 5000 ms" });
    expect(JSON.parse(JSON.stringify({ error: e }))).toEqual({
      error: { code: "POLYFLEET_ERR_DEVICE_TIMEOUT", message: "no answer in 5000 ms" },
    });
    expect(PollError.parse(e.toJSON())).toEqual(e.toJSON());
  });

  it("isPolyfleetError tells catalog errors from others", () => {
    expect(isPolyfleetError(new PolyfleetError("POLYFLEET_ERR_NOT_FOUND"))).toBe(true);
    expect(isPolyfleetError(new Error("POLYFLEET_ERR_NOT_FOUND"))).toBe(false);
    expect(isPolyfleetError({ code: "POLYFLEET_ERR_NOT_FOUND", statusCode: 404 })).toBe(false);
    expect(isPolyfleetError(undefined)).toBe(false);
  });
});
