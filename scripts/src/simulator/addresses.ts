/** IPv4 helpers for the simulator's subnet (pure). */
export function ipToInt(ip: string): number {
  const parts = ip.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`not an IPv4 address: ${ip}`);
  }
  return (
    (((parts[0] as number) << 24) |
      ((parts[1] as number) << 16) |
      ((parts[2] as number) << 8) |
      (parts[3] as number)) >>>
    0
  );
}

export function intToIp(n: number): string {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/**
 * The first `count` usable host addresses of a CIDR: network and broadcast excluded, and addresses ending
 * in .0 or .255 skipped so every device looks like a normal host. Throws when the subnet is too small.
 */
export function hostAddresses(cidr: string, count: number): string[] {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(cidr);
  if (!m) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const prefix = Number(m[2]);
  if (prefix < 8 || prefix > 30) throw new Error(`prefix /${prefix} out of range /8../30: ${cidr}`);
  const size = 2 ** (32 - prefix);
  const network = (ipToInt(m[1] as string) & ~(size - 1)) >>> 0;
  const out: string[] = [];
  for (let n = network + 1; n < network + size - 1 && out.length < count; n++) {
    const last = n & 255;
    if (last !== 0 && last !== 255) out.push(intToIp(n));
  }
  if (out.length < count)
    throw new Error(`subnet ${cidr} holds only ${out.length} device addresses, ${count} asked`);
  return out;
}
