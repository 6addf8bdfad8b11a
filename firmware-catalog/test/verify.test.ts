import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  addSignature,
  type CatalogFile,
  CatalogSigned,
  canonicalJson,
  type RootFile,
  type Signature,
  signedDigest,
  verifyCatalog,
  verifyRoot,
} from "../src/index.js";
import {
  arbCatalog,
  catalogSigned,
  codeOf,
  FUTURE,
  makeKeys,
  NOW,
  release,
  rootSigned,
  signCatalog,
  signRoot,
} from "./helpers.js";

const RUNS = { numRuns: 150 };
const [A, B, C, X, Y] = makeKeys(5) as [
  ReturnType<typeof makeKeys>[0],
  ReturnType<typeof makeKeys>[0],
  ReturnType<typeof makeKeys>[0],
  ReturnType<typeof makeKeys>[0],
  ReturnType<typeof makeKeys>[0],
];
const ROOT_KEYS = [A, B, C];
/** 2 of 3. */
const ROOT = rootSigned(ROOT_KEYS, 2);
const ROOT_FILE = signRoot(ROOT, [A, B]);

const twoOfThree = fc
  .shuffledSubarray(ROOT_KEYS, { minLength: 2, maxLength: 3 })
  .map((ks) => ks as typeof ROOT_KEYS);

function clone<T>(v: T): T {
  return structuredClone(v);
}

/** Every leaf path of a JSON value. */
function leaves(v: unknown, path: (string | number)[] = []): (string | number)[][] {
  if (v !== null && typeof v === "object")
    return Object.entries(v).flatMap(([k, x]) => leaves(x, [...path, Array.isArray(v) ? Number(k) : k]));
  return [path];
}

function setAt(root: unknown, path: (string | number)[], value: unknown): void {
  let cur = root as Record<string | number, unknown>;
  for (const p of path.slice(0, -1)) cur = cur[p] as Record<string | number, unknown>;
  const last = path.at(-1);
  if (last !== undefined) cur[last] = value;
}

function getAt(root: unknown, path: (string | number)[]): unknown {
  let cur = root as Record<string | number, unknown> | undefined;
  for (const p of path) cur = cur?.[p] as Record<string | number, unknown> | undefined;
  return cur;
}

/** A different value of the same type (a number changes by ±1..3, a string changes one character). */
function mutateLeaf(v: unknown, seed: number): unknown {
  if (typeof v === "number") return v + ((seed % 3) + 1) * (seed % 2 === 0 ? 1 : -1);
  if (typeof v === "boolean") return !v;
  if (typeof v === "string") {
    if (v.length === 0) return "x";
    const i = seed % v.length;
    const c = v[i] as string;
    const repl = /[0-9]/.test(c)
      ? String((Number(c) + 1) % 10)
      : /[a-f]/.test(c)
        ? c === "a"
          ? "b"
          : "a"
        : c === "X"
          ? "Y"
          : "X";
    return v.slice(0, i) + repl + v.slice(i + 1);
  }
  return "mutated";
}

function flipSigByte(sig: Signature, byte: number, bit: number): Signature {
  const raw = Buffer.from(sig.sig, "base64");
  const i = byte % raw.length;
  raw[i] = (raw[i] as number) ^ (1 << (bit % 8));
  return { keyid: sig.keyid, sig: raw.toString("base64") };
}

describe("verifyCatalog: every valid catalog is accepted (no false refusals)", () => {
  it("accepts a catalog signed by any threshold subset, with extra unknown and duplicate signatures (property)", () => {
    fc.assert(
      fc.property(arbCatalog, twoOfThree, fc.boolean(), fc.boolean(), (signed, keys, unknown, dupe) => {
        expect(CatalogSigned.safeParse(signed).success).toBe(true);
        let env: CatalogFile = signCatalog(signed, keys);
        if (unknown)
          env = { ...env, signatures: [...env.signatures, ...signCatalog(signed, [X]).signatures] };
        if (dupe) env = { ...env, signatures: [...env.signatures, ...env.signatures] };
        const got = verifyCatalog(JSON.parse(JSON.stringify(env)), ROOT, {
          now: NOW,
          lastVersion: signed.version,
          lastDigest: signedDigest(signed),
        });
        expect(got).toEqual(signed);
      }),
      RUNS,
    );
  });

  it("does not depend on key order or indentation of the file", () => {
    const signed = catalogSigned([release({ model: "VVX 350", version: "5.9.8.5760" })], {
      baseline: { "VVX 350": "5.9.8.5760" },
    });
    const env = signCatalog(signed, [A, B]);
    const reordered = JSON.parse(
      JSON.stringify({
        signatures: env.signatures,
        signed: Object.fromEntries(Object.entries(env.signed).reverse()),
      }),
    );
    expect(verifyCatalog(reordered, ROOT, { now: NOW })).toEqual(signed);
    expect(canonicalJson({ b: 1, a: [{ d: null, c: "x" }] })).toBe('{"a":[{"c":"x","d":null}],"b":1}');
  });
});

describe("verifyCatalog: attacks are refused", () => {
  it("a flipped bit anywhere in a signature (property)", () => {
    fc.assert(
      fc.property(arbCatalog, fc.nat(1), fc.nat(63), fc.nat(7), (signed, which, byte, bit) => {
        const env = signCatalog(signed, [A, B]);
        const sigs = env.signatures.map((s, i) => (i === which ? flipSigByte(s, byte, bit) : s));
        expect(codeOf(() => verifyCatalog({ ...env, signatures: sigs }, ROOT, { now: NOW }))).toBe(
          "POLYFLEET_ERR_CATALOG_SIGNATURE",
        );
      }),
      RUNS,
    );
  });

  it("a changed character of a signature's base64 text (property)", () => {
    fc.assert(
      fc.property(arbCatalog, fc.nat(87), fc.constantFrom("A", "B", "/", "+", "=", "!"), (signed, at, ch) => {
        const env = signCatalog(signed, [A, B]);
        const s0 = env.signatures[0] as Signature;
        const text = s0.sig.slice(0, at) + ch + s0.sig.slice(at + 1);
        fc.pre(text !== s0.sig);
        const sigs = [{ keyid: s0.keyid, sig: text }, ...env.signatures.slice(1)];
        expect(codeOf(() => verifyCatalog({ ...env, signatures: sigs }, ROOT, { now: NOW }))).toBe(
          "POLYFLEET_ERR_CATALOG_SIGNATURE",
        );
      }),
      RUNS,
    );
  });

  it("any field of the signed content changed after signing (property)", () => {
    let bySignature = 0;
    fc.assert(
      fc.property(arbCatalog, fc.nat(), fc.nat(), (signed, pick, seed) => {
        const env = signCatalog(signed, [A, B, C]);
        const paths = leaves(env.signed);
        const path = paths[pick % paths.length] as (string | number)[];
        const tampered = clone(env);
        setAt(tampered.signed, path, mutateLeaf(getAt(tampered.signed, path), seed));
        fc.pre(canonicalJson(tampered.signed) !== canonicalJson(env.signed));
        const code = codeOf(() => verifyCatalog(tampered, ROOT, { now: NOW }));
        // Still well-formed → the signature check refuses it; malformed → the schema does.
        const wellFormed = CatalogSigned.safeParse(tampered.signed).success;
        if (wellFormed) bySignature += 1;
        expect(code).toBe(wellFormed ? "POLYFLEET_ERR_CATALOG_SIGNATURE" : "POLYFLEET_ERR_CATALOG_INVALID");
      }),
      { numRuns: 300 },
    );
    // Most mutations keep the file well-formed: the signature is what refuses them.
    expect(bySignature).toBeGreaterThan(150);
  });

  it("a release added, removed or swapped after signing (property)", () => {
    fc.assert(
      fc.property(arbCatalog, fc.constantFrom("add", "remove", "reverse"), (signed, op) => {
        const env = signCatalog(signed, [A, B]);
        const t = clone(env);
        if (op === "add") t.signed.releases.push(release({ model: "Evil 1", version: "9.9.9.9999" }));
        if (op === "remove") t.signed.releases.pop();
        if (op === "reverse") t.signed.releases.reverse();
        fc.pre(canonicalJson(t.signed) !== canonicalJson(env.signed));
        expect(["POLYFLEET_ERR_CATALOG_SIGNATURE", "POLYFLEET_ERR_CATALOG_INVALID"]).toContain(
          codeOf(() => verifyCatalog(t, ROOT, { now: NOW })),
        );
      }),
      RUNS,
    );
  });

  it("one of two required signatures, however often it is repeated, plus unknown keys (property)", () => {
    fc.assert(
      fc.property(
        arbCatalog,
        fc.constantFrom(A, B, C),
        fc.integer({ min: 1, max: 4 }),
        fc.subarray([X, Y]),
        (signed, key, copies, strangers) => {
          const one = signCatalog(signed, [key]).signatures;
          const env: CatalogFile = {
            signed,
            signatures: [
              ...Array.from({ length: copies }, () => one).flat(),
              ...signCatalog(signed, strangers).signatures,
            ],
          };
          expect(codeOf(() => verifyCatalog(env, ROOT, { now: NOW }))).toBe(
            "POLYFLEET_ERR_CATALOG_SIGNATURE",
          );
        },
      ),
      RUNS,
    );
  });

  it("signatures by unknown keys, also when they claim a trusted keyid (property)", () => {
    fc.assert(
      fc.property(arbCatalog, fc.boolean(), (signed, claim) => {
        const strangers = signCatalog(signed, [X, Y]).signatures;
        const sigs = claim
          ? strangers.map((s, i) => ({ keyid: (ROOT_KEYS[i] ?? A).keyid, sig: s.sig }))
          : strangers;
        expect(codeOf(() => verifyCatalog({ signed, signatures: sigs }, ROOT, { now: NOW }))).toBe(
          "POLYFLEET_ERR_CATALOG_SIGNATURE",
        );
      }),
      RUNS,
    );
  });

  it("a signature made over another catalog (replayed signature) (property)", () => {
    fc.assert(
      fc.property(arbCatalog, arbCatalog, (a, b) => {
        fc.pre(canonicalJson(a) !== canonicalJson(b));
        const sigs = signCatalog(b, [A, B]).signatures;
        expect(codeOf(() => verifyCatalog({ signed: a, signatures: sigs }, ROOT, { now: NOW }))).toBe(
          "POLYFLEET_ERR_CATALOG_SIGNATURE",
        );
      }),
      RUNS,
    );
  });

  it("an older catalog version, or the same version with other content (property)", () => {
    fc.assert(
      fc.property(arbCatalog, fc.integer({ min: 1, max: 50 }), (signed, ahead) => {
        const env = signCatalog(signed, [A, C]);
        expect(
          codeOf(() => verifyCatalog(env, ROOT, { now: NOW, lastVersion: signed.version + ahead })),
        ).toBe("POLYFLEET_ERR_CATALOG_ROLLBACK");
        const other = { ...signed, expires: "2027-12-30T00:00:00Z" };
        expect(
          codeOf(() =>
            verifyCatalog(env, ROOT, {
              now: NOW,
              lastVersion: signed.version,
              lastDigest: signedDigest(other),
            }),
          ),
        ).toBe("POLYFLEET_ERR_CATALOG_ROLLBACK");
        // Re-signing the same content (another key set) at the same version is not a rollback.
        expect(
          verifyCatalog(signCatalog(signed, [B, C]), ROOT, {
            now: NOW,
            lastVersion: signed.version,
            lastDigest: signedDigest(signed),
          }),
        ).toEqual(signed);
      }),
      RUNS,
    );
  });

  it("an expired catalog, refused from the expiry instant on (property)", () => {
    fc.assert(
      fc.property(arbCatalog, fc.integer({ min: 0, max: 10 * 365 * 86_400_000 }), (signed, after) => {
        const exp = Date.parse(signed.expires);
        const env = signCatalog(signed, [A, B]);
        expect(codeOf(() => verifyCatalog(env, ROOT, { now: exp + after }))).toBe(
          "POLYFLEET_ERR_CATALOG_EXPIRED",
        );
        expect(verifyCatalog(env, ROOT, { now: exp - 1 - after })).toEqual(signed);
      }),
      RUNS,
    );
  });

  it("a catalog signed by a root that is not the trusted one", () => {
    const signed = catalogSigned([]);
    expect(codeOf(() => verifyCatalog(signCatalog(signed, [X, Y]), ROOT, { now: NOW }))).toBe(
      "POLYFLEET_ERR_CATALOG_SIGNATURE",
    );
  });

  it("malformed envelopes as CATALOG_INVALID, never accepted", () => {
    const signed = catalogSigned([]);
    const env = signCatalog(signed, [A, B]);
    expect(
      codeOf(() => verifyCatalog({ ...env, extra: 1 } as unknown as CatalogFile, ROOT, { now: NOW })),
    ).toBe("POLYFLEET_ERR_CATALOG_INVALID");
    expect(
      codeOf(() =>
        verifyCatalog({ signed: { ...signed, type: "root" } } as unknown as CatalogFile, ROOT, { now: NOW }),
      ),
    ).toBe("POLYFLEET_ERR_CATALOG_INVALID");
  });
});

describe("verifyRoot", () => {
  it("accepts a self-signed root at its threshold; refuses below it, duplicates and strangers", () => {
    expect(verifyRoot(ROOT_FILE, { now: NOW })).toEqual(ROOT);
    const one = signRoot(ROOT, [A]);
    expect(codeOf(() => verifyRoot(one, { now: NOW }))).toBe("POLYFLEET_ERR_CATALOG_SIGNATURE");
    const dup: RootFile = { ...one, signatures: [...one.signatures, ...one.signatures] };
    expect(codeOf(() => verifyRoot(dup, { now: NOW }))).toBe("POLYFLEET_ERR_CATALOG_SIGNATURE");
    const strangers: RootFile = {
      ...one,
      signatures: [...one.signatures, ...signRoot(ROOT, [X, Y]).signatures],
    };
    expect(codeOf(() => verifyRoot(strangers, { now: NOW }))).toBe("POLYFLEET_ERR_CATALOG_SIGNATURE");
  });

  it("refuses an expired root and an older one than accepted before", () => {
    const old = rootSigned(ROOT_KEYS, 2, 1, "2026-01-01T00:00:00Z");
    expect(codeOf(() => verifyRoot(signRoot(old, [A, B]), { now: NOW }))).toBe(
      "POLYFLEET_ERR_CATALOG_EXPIRED",
    );
    expect(codeOf(() => verifyRoot(ROOT_FILE, { now: NOW, minVersion: 2 }))).toBe(
      "POLYFLEET_ERR_CATALOG_ROLLBACK",
    );
  });

  it("a flipped bit or a changed field of a signed root (property)", () => {
    fc.assert(
      fc.property(
        fc.nat(),
        fc.nat(),
        fc.boolean(),
        fc.nat(63),
        fc.nat(7),
        (pick, seed, sigAttack, byte, bit) => {
          const t = clone(ROOT_FILE);
          if (sigAttack) {
            t.signatures[0] = flipSigByte(t.signatures[0] as Signature, byte, bit);
          } else {
            const paths = leaves(t.signed);
            const path = paths[pick % paths.length] as (string | number)[];
            setAt(t.signed, path, mutateLeaf(getAt(t.signed, path), seed));
          }
          fc.pre(canonicalJson(t) !== canonicalJson(ROOT_FILE));
          expect(["POLYFLEET_ERR_CATALOG_SIGNATURE", "POLYFLEET_ERR_CATALOG_INVALID"]).toContain(
            codeOf(() => verifyRoot(t, { now: NOW })),
          );
        },
      ),
      RUNS,
    );
  });

  describe("key rotation", () => {
    const NEW_KEYS = makeKeys(3);
    const [D, E, F] = NEW_KEYS as [(typeof NEW_KEYS)[0], (typeof NEW_KEYS)[0], (typeof NEW_KEYS)[0]];
    const next = rootSigned(NEW_KEYS, 2, 2);

    it("is accepted with both thresholds and refused with only the new or only the old keys (property)", () => {
      fc.assert(
        fc.property(fc.subarray(ROOT_KEYS), fc.subarray(NEW_KEYS), fc.boolean(), (olds, news, stranger) => {
          const env = signRoot(next, [...olds, ...news, ...(stranger ? [X] : [])]);
          const ok = olds.length >= 2 && news.length >= 2;
          const code = codeOf(() => verifyRoot(env, { now: NOW, trusted: ROOT, minVersion: 1 }));
          expect(code).toBe(ok ? undefined : "POLYFLEET_ERR_CATALOG_SIGNATURE");
          if (ok) expect(verifyRoot(env, { now: NOW, trusted: ROOT })).toEqual(next);
        }),
        { numRuns: 100 },
      );
    });

    it("keeps keys that stay across the rotation counting for both roots", () => {
      const overlap = rootSigned([B, C, D], 2, 2);
      expect(verifyRoot(signRoot(overlap, [B, C]), { now: NOW, trusted: ROOT })).toEqual(overlap);
      expect(codeOf(() => verifyRoot(signRoot(overlap, [C, D]), { now: NOW, trusted: ROOT }))).toBe(
        "POLYFLEET_ERR_CATALOG_SIGNATURE",
      );
    });

    it("refuses a root older than the trusted one, and the same version with other content", () => {
      const trusted = next;
      expect(codeOf(() => verifyRoot(ROOT_FILE, { now: NOW, trusted }))).toBe(
        "POLYFLEET_ERR_CATALOG_ROLLBACK",
      );
      const same = signRoot(next, [D, E]);
      expect(verifyRoot(same, { now: NOW, trusted })).toEqual(next);
      const forked = signRoot({ ...next, threshold: 1 }, [D, E, F]);
      expect(codeOf(() => verifyRoot(forked, { now: NOW, trusted }))).toBe("POLYFLEET_ERR_CATALOG_ROLLBACK");
    });

    it("a catalog signed by the new keys verifies against the new root only", () => {
      const cat = signCatalog(catalogSigned([], { version: 7, expires: FUTURE }), [E, F]);
      expect(verifyCatalog(cat, next, { now: NOW }).version).toBe(7);
      expect(codeOf(() => verifyCatalog(cat, ROOT, { now: NOW }))).toBe("POLYFLEET_ERR_CATALOG_SIGNATURE");
    });
  });
});

describe("addSignature", () => {
  it("replaces an earlier signature by the same key", () => {
    const signed = catalogSigned([]);
    let env = signCatalog(signed, [A]);
    env = { ...env, signatures: [{ keyid: A.keyid, sig: "AAAA" }] };
    env = addSignature(env, A.privateKeyPem);
    env = addSignature(env, B.privateKeyPem);
    expect(env.signatures.map((s) => s.keyid)).toEqual([A.keyid, B.keyid]);
    expect(verifyCatalog(env, ROOT, { now: NOW })).toEqual(signed);
  });
});
