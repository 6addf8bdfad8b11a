/** FNV-1a, 32 bits, over the UTF-16 code units of `s`: a stable, platform-independent hash for ordering. */
export function fnv1a32(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // Final avalanche (murmur3 fmix32) so near-identical ids (d1, d2...) spread over the whole range.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** 64 bits of two independent FNV-1a hashes as 16 lowercase hex digits (ids that must not collide). */
export function hex64(s: string): string {
  return fnv1a32(s).toString(16).padStart(8, "0") + fnv1a32(s, 0x01000193).toString(16).padStart(8, "0");
}
