/** Small seeded PRNG (mulberry32): the same seed gives the same fleet, so test failures reproduce. */
export function createRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function pick<T>(rand: () => number, items: readonly T[]): T {
  const item = items[Math.floor(rand() * items.length)];
  if (item === undefined) throw new Error("pick from an empty list");
  return item;
}

export function hex(rand: () => number, digits: number): string {
  let s = "";
  for (let i = 0; i < digits; i++) s += Math.floor(rand() * 16).toString(16);
  return s;
}
