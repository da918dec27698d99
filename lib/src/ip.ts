/**
 * Address helpers shared by hub and agent: parse and format IPv4/IPv6, and
 * the 16-byte form (IPv4 as v4-mapped IPv6) used in every BPF map.
 */
import { isIPv4, isIPv6 } from "node:net";
import { err, ok, type Result } from "./errors.ts";

export type IpFamily = 4 | 6;

export function ipFamily(ip: string): IpFamily | undefined {
  if (isIPv4(ip)) return 4;
  if (isIPv6(ip)) return 6;
  return undefined;
}

/** 16-byte map form of an address; IPv4 becomes ::ffff:a.b.c.d. */
export function parseIpTo16(ip: string): Result<Buffer> {
  const out = Buffer.alloc(16);
  if (isIPv4(ip)) {
    out[10] = 0xff;
    out[11] = 0xff;
    const parts = ip.split(".");
    for (let i = 0; i < 4; i++) out[12 + i] = Number(parts[i]);
    return ok(out);
  }
  if (!isIPv6(ip)) return err(`"${ip}" is not an IPv4 or IPv6 address`);
  let text = ip;
  const v4tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  const words: number[] = [];
  if (v4tail?.[1]) {
    const p = v4tail[1].split(".").map(Number);
    text =
      text.slice(0, -v4tail[1].length) +
      (((p[0]! << 8) | p[1]!) >>> 0).toString(16) +
      ":" +
      ((p[2]! << 8) | p[3]!).toString(16);
  }
  const [head, tail] = text.includes("::") ? text.split("::") : [text, undefined];
  const headWords = head ? head.split(":").filter((s) => s !== "") : [];
  const tailWords = tail ? tail.split(":").filter((s) => s !== "") : [];
  const fill = tail === undefined ? 0 : 8 - headWords.length - tailWords.length;
  for (const w of headWords) words.push(Number.parseInt(w, 16));
  for (let i = 0; i < fill; i++) words.push(0);
  for (const w of tailWords) words.push(Number.parseInt(w, 16));
  if (words.length !== 8) return err(`"${ip}" is not a valid IPv6 address`);
  for (const [i, w] of words.entries()) out.writeUInt16BE(w, i * 2);
  return ok(out);
}

export function isV4Mapped(addr: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (addr[i] !== 0) return false;
  return addr[10] === 0xff && addr[11] === 0xff;
}

/** Text form of a 16-byte map address (IPv4 for v4-mapped). */
export function formatIp16(addr: Uint8Array): string {
  if (isV4Mapped(addr)) return `${addr[12]}.${addr[13]}.${addr[14]}.${addr[15]}`;
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push((((addr[i] ?? 0) << 8) | (addr[i + 1] ?? 0)).toString(16));
  // compress the longest run of zero words
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return words.join(":");
  return `${words.slice(0, best).join(":")}::${words.slice(best + bestLen).join(":")}`;
}

export function formatHostPort(ip: string, port: number): string {
  return ipFamily(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}
