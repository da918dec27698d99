/**
 * Pure: an agent's NodeReport (the addresses of the interface the hub's
 * entryInterface setting names) → the node's reported entry addresses, or
 * why they are refused. A refused report changes nothing the hub holds.
 */
import { err, ok, type Result } from "@switchyard/lib/errors";
import { formatIp16, ipFamily, parseIpTo16 } from "@switchyard/lib/ip";
import type { NodeReport } from "@switchyard/proto/assignment";

/** more than a node plausibly has on one interface: a report beyond it is refused */
export const MAX_ENTRY_ADDRESSES = 16;

export function parseNodeReport(r: NodeReport): Result<string[]> {
  if (r.entryAddresses.length > MAX_ENTRY_ADDRESSES)
    return err(
      `${r.entryAddresses.length} entry addresses reported; at most ${MAX_ENTRY_ADDRESSES} are taken`,
    );
  const out = new Set<string>();
  for (const a of r.entryAddresses) {
    const fam = ipFamily(a);
    const b = fam ? parseIpTo16(a) : undefined;
    if (!b?.ok) return err(`entry address "${a.slice(0, 64)}" is not an IP address`);
    const text = formatIp16(b.value);
    if (
      text === "::" ||
      text === "0.0.0.0" ||
      text === "::1" ||
      text.startsWith("127.") ||
      /^fe[89ab]/i.test(text)
    )
      return err(`entry address ${text} is loopback, unspecified or link-local: other nodes cannot reach it`);
    out.add(text);
  }
  return ok([...out].sort());
}
