/**
 * Pure: which DNAT bindings an entry-set change leaves stale. nftables
 * decides the pod of a connection once, at its first packet, and the
 * kernel's conntrack entry keeps that binding (docs/dataplane.md, "Node
 * entry DNAT"): a UDP flow keeps reaching a pod that left the set for as
 * long as its entry lives (30 s without a reply, 120 s once answered, and
 * a flow that keeps sending never lets it expire). After the table swap the
 * agent deletes the conntrack entries of each removed UDP target
 * (`EntryFlows`, conntrack.ts), so the flow's next datagram is a new
 * connection and takes the new set.
 *
 * TCP is left alone, as kube-proxy leaves it: a pod leaves the set when it
 * stops being ready or starts terminating, and its established connections
 * should drain (the pod closes them); a deleted entry would send their next
 * segment to another pod, which resets it, and would cut a connection whose
 * last replies are in flight during the swap (make-before-break).
 */
import type { EntryProtocol, EntryRule, EntryTarget } from "./nft-ruleset.ts";
import { entryKey } from "./nft-ruleset.ts";

/** One target an entry port no longer sends to: its connections (original dst entry:port, reply src target) go. */
export type RemovedTarget = { address: string; port: number; protocol: EntryProtocol; target: EntryTarget };

/** The port entry-sync.ts forgets flows through (a fake in unit tests). */
export interface EntryFlows {
  /**
   * Deletes the conntrack entries of connections to `r.address:r.port`
   * DNATed to `r.target`; the number deleted. Throws a SwitchyardError
   * ("unavailable" when the tool is missing).
   */
  forget(r: RemovedTarget): number;
}

export function showRemovedTarget(r: RemovedTarget): string {
  const t = r.target.ip.includes(":") ? `[${r.target.ip}]` : r.target.ip;
  return `${entryKey(r)} -> ${t}:${r.target.port}`;
}

/**
 * Every target of a UDP entry port of `before` (what the table held) that
 * `after` (what it holds now) no longer has at the same entry
 * address:port/protocol — an entry port gone entirely counts all of its
 * targets. Both normalised (canonical addresses), as EntrySync keeps them.
 * In `before`'s order (sorted by entry, then target).
 */
export function computeRemovedUdpTargets(
  before: readonly EntryRule[],
  after: readonly EntryRule[],
): RemovedTarget[] {
  const now = new Map<string, Set<string>>();
  for (const e of after) now.set(entryKey(e), new Set(e.targets.map((t) => `${t.ip}|${t.port}`)));
  const out: RemovedTarget[] = [];
  for (const e of before) {
    if (e.protocol !== "UDP") continue;
    const kept = now.get(entryKey(e));
    for (const t of e.targets)
      if (!kept?.has(`${t.ip}|${t.port}`))
        out.push({ address: e.address, port: e.port, protocol: e.protocol, target: { ...t } });
  }
  return out;
}
