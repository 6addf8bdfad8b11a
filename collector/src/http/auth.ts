import { createHash, randomBytes, randomUUID } from "node:crypto";
import {
  type ApiToken,
  type ApiTokenCreate,
  type Clock,
  type Matcher,
  PolyfleetError,
  type Role,
} from "@polyfleet/shared";
import type { StateStore } from "../ports/state-store.js";
import type { Principal } from "./api-deps.js";

const ROLE_RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
/** What a token secret looks like: `pf_` + 20-100 base64url characters. */
export const TOKEN_FORMAT = /^pf_[A-Za-z0-9_-]{20,100}$/;

/** sha256 hex of a token secret: the only form the store ever sees. */
export function hashToken(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

/** A new token secret: `pf_` + 32 random bytes base64url (256 bits). */
export function generateTokenSecret(): string {
  return `pf_${randomBytes(32).toString("base64url")}`;
}

/**
 * Creates and stores a token (hashed); returns the listed form and the secret, which exists only in this
 * return value. Used by `POST /api/v1/tokens` and by the composition root for a bootstrap admin token.
 */
export async function issueToken(
  store: StateStore,
  req: ApiTokenCreate,
  createdBy: string,
  clock: Clock,
): Promise<{ token: ApiToken; secret: string }> {
  const secret = generateTokenSecret();
  const token: ApiToken = {
    id: randomUUID(),
    name: req.name,
    role: req.role,
    sites: [...req.sites],
    createdAt: clock.now(),
    createdBy,
  };
  await store.saveToken({ ...token, hash: hashToken(secret) });
  return { token, secret };
}

/** The token from `Authorization: Bearer …`, or (for EventSource only) from `?token=`. */
export function extractToken(
  authorization: string | undefined,
  queryToken: string | undefined,
): string | undefined {
  if (authorization !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    return m?.[1] ?? "";
  }
  return queryToken;
}

/** Looks a presented secret up; undefined when it is malformed or unknown. */
export async function authenticate(store: StateStore, secret: string): Promise<Principal | undefined> {
  if (!TOKEN_FORMAT.test(secret)) return undefined;
  const stored = await store.findTokenByHash(hashToken(secret));
  if (stored === undefined) return undefined;
  // Copy the listed fields only: the hash never travels further than this function.
  const token: ApiToken = {
    id: stored.id,
    name: stored.name,
    role: stored.role,
    sites: stored.sites,
    createdAt: stored.createdAt,
    createdBy: stored.createdBy,
    ...(stored.lastUsedAt === undefined ? {} : { lastUsedAt: stored.lastUsedAt }),
  };
  return { token, actor: `token:${stored.name}` };
}

/** Throws 403 unless the principal's role is at least `min`. */
export function requireRole(p: Principal, min: Role): void {
  if (ROLE_RANK[p.token.role] < ROLE_RANK[min]) {
    throw new PolyfleetError("POLYFLEET_ERR_FORBIDDEN", `this action needs the ${min} role`);
  }
}

/** True when the token may see every site. */
export function allSites(p: Principal): boolean {
  return p.token.sites.includes("*");
}

/** The site restriction to hand to the store: undefined = all sites. */
export function siteScope(p: Principal): string[] | undefined {
  return allSites(p) ? undefined : p.token.sites;
}

/** True when an item of `siteId` is visible to the principal (items without a site: only to all-sites tokens). */
export function inScope(p: Principal, siteId: string | undefined): boolean {
  if (allSites(p)) return true;
  return siteId !== undefined && p.token.sites.includes(siteId);
}

/** The sites a set of matchers is pinned to by `siteId="…"` equality matchers; undefined = not pinned. */
export function matcherSites(matchers: readonly Matcher[]): string[] | undefined {
  const pinned = matchers.filter((m) => m.label === "siteId" && m.op === "=").map((m) => m.value);
  return pinned.length > 0 ? pinned : undefined;
}

/**
 * True when a silence/window with these matchers stays within the principal's sites: all-sites tokens may
 * match anything; site-scoped tokens must pin `siteId="<site>"` to one of theirs (otherwise the silence
 * could mute other sites' alerts).
 */
export function matchersInScope(p: Principal, matchers: readonly Matcher[]): boolean {
  if (allSites(p)) return true;
  const pinned = matcherSites(matchers);
  return pinned?.every((s) => p.token.sites.includes(s)) === true;
}

/** Throws 403 unless every site of `requested` is within the principal's sites. */
export function requireSitesWithin(p: Principal, requested: readonly string[]): void {
  if (allSites(p)) return;
  if (requested.some((s) => s === "*" || !p.token.sites.includes(s))) {
    throw new PolyfleetError(
      "POLYFLEET_ERR_FORBIDDEN",
      "a token cannot grant sites its creator does not have",
    );
  }
}

/** The 404 an out-of-scope or missing item answers with (the same, so existence does not leak). */
export function notFound(what: string): PolyfleetError {
  return new PolyfleetError("POLYFLEET_ERR_NOT_FOUND", `${what} not found`);
}
