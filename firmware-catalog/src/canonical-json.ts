/**
 * Canonical JSON: object keys sorted (by UTF-16 code units) at every depth, no whitespace, `undefined` object
 * members left out (as JSON.stringify does). Signatures are made over these bytes (UTF-8), so a file may be
 * re-indented or have its keys reordered without breaking its signatures. Throws a TypeError on values JSON
 * cannot represent (non-finite numbers, bigint, functions, symbols).
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value))
        throw new TypeError(`canonicalJson: ${value} is not representable in JSON`);
      return JSON.stringify(value);
    case "object": {
      if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v ?? null)).join(",")}]`;
      const obj = value as Record<string, unknown>;
      const members = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort()
        .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`);
      return `{${members.join(",")}}`;
    }
    default:
      throw new TypeError(`canonicalJson: a ${typeof value} is not representable in JSON`);
  }
}
