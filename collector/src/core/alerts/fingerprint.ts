/** The labels that identify an alert; others (severity, model, address, summary) may change over its life. */
export const IDENTITY_LABELS = ["rule", "siteId", "agentId", "deviceId", "source", "item"] as const;

/**
 * A stable 16-hex-digit fingerprint of an alert's identity labels (rule, siteId, agentId, deviceId, source,
 * item): the same condition on the same thing always has the same fingerprint, across restarts and
 * versions, whatever other labels it carries. 53-bit cyrb53 hash over the label values in a fixed order.
 */
export function alertFingerprint(labels: Readonly<Record<string, string | undefined>>): string {
  let key = "";
  for (const name of IDENTITY_LABELS) key += `${labels[name] ?? ""}\u001f`;
  return hash53(key);
}

function hash53(s: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (h2 >>> 0).toString(16).padStart(8, "0") + (h1 >>> 0).toString(16).padStart(8, "0");
}
