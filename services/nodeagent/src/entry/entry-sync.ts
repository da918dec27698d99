/**
 * Keeps the agent's nftables table equal to the node's entry set: the
 * `entry/<cluster>/<node>` resources the hub sends this node → one
 * transaction when they differ from what the table holds (read back first,
 * so a start after a crash replaces a stale table once and a start that
 * finds the right one writes nothing), checked by reading it back after.
 * Then the conntrack entries of the UDP targets the table no longer has
 * are deleted (entry-flows.ts), so their flows move to the new set at
 * their next datagram. What could not be programmed is returned for the NACK and the log.
 */
import { SwitchyardError } from "@switchyard/lib/errors";
import { Protocol, type Resource } from "@switchyard/proto/assignment";
import { computeRemovedUdpTargets, type EntryFlows, showRemovedTarget } from "./entry-flows.ts";
import {
  computeEntryRuleset,
  type EntryProblem,
  type EntryRule,
  entryKey,
  normaliseEntries,
  parseEntryTable,
  sameEntries,
} from "./nft-ruleset.ts";
import type { EntryTable } from "./nft-table.ts";

/** The entry set of this node from the held resources (one naming another node is ignored). */
export function entriesFromResources(
  resources: Iterable<Resource>,
  cluster: string,
  node: string,
): EntryRule[] {
  const out: EntryRule[] = [];
  for (const r of resources) {
    if (r.body?.$case !== "nodeEntry") continue;
    // the hub sends a node only its own; a held view from another identity must not program this one
    if (cluster && r.name !== `entry/${cluster}/${node}`) continue;
    if (!cluster && !r.name.endsWith(`/${node}`)) continue;
    for (const p of r.body.value.ports)
      out.push({
        address: p.address,
        port: p.port,
        protocol: p.protocol === Protocol.PROTOCOL_UDP ? "UDP" : "TCP",
        targets: p.targets.map((t) => ({ ip: t.ip, port: t.port })),
        owner: p.policy || r.name,
      });
  }
  return out;
}

/** Why forwarding-dependent entries will not work from other hosts (empty: fine). */
export function forwardingProblems(
  entries: readonly EntryRule[],
  sysctls: { ipv4: string | undefined; ipv6: string | undefined },
): string[] {
  const out: string[] = [];
  const v4 = entries.filter((e) => !e.address.includes(":"));
  const v6 = entries.filter((e) => e.address.includes(":"));
  const list = (es: EntryRule[]) =>
    es.slice(0, 3).map(entryKey).join(", ") + (es.length > 3 ? ` and ${es.length - 3} more` : "");
  if (v4.length > 0 && sysctls.ipv4 !== "1")
    out.push(
      `net.ipv4.ip_forward is ${sysctls.ipv4 ?? "unreadable"}: connections from other hosts to the IPv4 entries (${list(v4)}) are DNATed to local pods and must be forwarded; set net.ipv4.ip_forward=1`,
    );
  if (v6.length > 0 && sysctls.ipv6 !== "1")
    out.push(
      `net.ipv6.conf.all.forwarding is ${sysctls.ipv6 ?? "unreadable"}: connections from other hosts to the IPv6 entries (${list(v6)}) are DNATed to local pods and must be forwarded; set net.ipv6.conf.all.forwarding=1`,
    );
  return out;
}

export type EntrySyncOutcome = {
  /** a transaction was applied */
  written: boolean;
  /** entries left out (each named), and a failed write or read-back */
  problems: EntryProblem[];
  entries: number;
  /** UDP targets the write removed whose flows were deleted (conntrack entries: `deleted`) */
  forgotten?: { targets: string[]; deleted: number };
  /** why removed targets' flows could not be deleted (a warning: the table is right; a missing tool is said once) */
  flowProblem?: string;
};

export class EntrySync {
  /** what the table was last seen or made to hold; undefined: not known (start, or after a failure) */
  private known: EntryRule[] | undefined;

  private readonly table: EntryTable;
  /** undefined: flows are left to time out */
  private readonly flows: EntryFlows | undefined;
  /** the flow tool's absence was reported (once) */
  private flowsUnavailableSaid = false;
  constructor(table: EntryTable, flows?: EntryFlows) {
    this.table = table;
    this.flows = flows;
  }

  /**
   * Makes the table hold `desired`. With `verify` (start, resync) the table
   * is read first even when nothing changed since the last write (drift:
   * someone flushed it, `nft flush ruleset`).
   */
  sync(desired: readonly EntryRule[], verify = false): EntrySyncOutcome {
    const { entries, problems } = normaliseEntries(desired);
    if (!verify && this.known && sameEntries(this.known, entries))
      return { written: false, problems, entries: entries.length };
    try {
      const before = this.table.read();
      const held = before === undefined ? undefined : parseEntryTable(before);
      // no table and nothing to program: a node that is no entry node never gets one
      if (
        (before === undefined && entries.length === 0) ||
        (held?.ok && sameEntries(held.entries, entries))
      ) {
        this.known = entries;
        return { written: false, problems, entries: entries.length };
      }
      this.known = undefined;
      this.table.apply(computeEntryRuleset(entries));
      const after = this.table.read();
      const got = after === undefined ? undefined : parseEntryTable(after);
      if (!got?.ok || !sameEntries(got.entries, entries)) {
        problems.push({
          entry: "table inet switchyard_entry",
          message: got?.ok
            ? `read back ${got.entries.length} entries, wrote ${entries.length}: someone else changes the table`
            : `not readable after the write: ${got?.error ?? "table missing"}`,
        });
        return { written: true, problems, entries: entries.length };
      }
      this.known = entries;
      const out: EntrySyncOutcome = { written: true, problems, entries: entries.length };
      // after the swap: new connections take the new set; the removed targets' old ones go now
      if (held?.ok) this.forget(computeRemovedUdpTargets(held.entries, entries), out);
      return out;
    } catch (e) {
      this.known = undefined;
      problems.push({ entry: "table inet switchyard_entry", message: (e as Error).message });
      return { written: false, problems, entries: entries.length };
    }
  }

  private forget(removed: ReturnType<typeof computeRemovedUdpTargets>, out: EntrySyncOutcome): void {
    if (!this.flows || removed.length === 0) return;
    let deleted = 0;
    const targets: string[] = [];
    for (const r of removed)
      try {
        deleted += this.flows.forget(r);
        targets.push(showRemovedTarget(r));
      } catch (e) {
        const unavailable = e instanceof SwitchyardError && e.code === "unavailable";
        if (!unavailable || !this.flowsUnavailableSaid) out.flowProblem ??= (e as Error).message;
        if (unavailable) {
          this.flowsUnavailableSaid = true;
          break;
        }
      }
    if (targets.length > 0) out.forgotten = { targets, deleted };
  }

  /** Removes the table (uninstall). */
  remove(): boolean {
    this.known = undefined;
    return this.table.remove();
  }
}
