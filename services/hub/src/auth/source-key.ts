/**
 * The key the auth failure limit counts a peer under: its source address
 * without the port; an IPv6 address by its /64 (one host usually holds a
 * whole /64, so counting single addresses would not limit it).
 */
import { isIP } from "node:net";

/** "1.2.3.4:5678", "[2001:db8::1]:5678", "2001:db8::1:5678", "::ffff:1.2.3.4:5678" → "1.2.3.4", "2001:db8:0:0::/64" */
export function sourceKey(peer: string): string {
  let host = peer;
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(peer);
  if (bracket) host = bracket[1]!;
  else if (!isIP(peer)) {
    const colon = peer.lastIndexOf(":");
    if (colon > 0 && /^\d+$/.test(peer.slice(colon + 1)) && isIP(peer.slice(0, colon)))
      host = peer.slice(0, colon);
  }
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  if (mapped) return mapped[1]!;
  if (isIP(host) !== 6) return host;
  return `${prefix64(host)}::/64`;
}

/** The first four groups of an IPv6 address, expanded ("2001:db8::1" → "2001:db8:0:0"). */
function prefix64(addr: string): string {
  const [head = "", tail] = addr.toLowerCase().split("::") as [string, string | undefined];
  const h = head === "" ? [] : head.split(":");
  const t = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups =
    tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill("0"), ...t];
  return groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ""))
    .join(":");
}
