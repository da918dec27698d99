/**
 * The node's entry DNAT follows its `entry/<cluster>/<node>` resource
 * (entry-sync.ts): the wanted rules from the accepted resources, written
 * (read back first with `verify`), what happened logged; returns the NACK
 * text when something could not be programmed.
 */
import type { Logger } from "@switchyard/lib/log";
import type { Resource } from "@switchyard/proto/assignment";
import { type EntrySync, entriesFromResources, forwardingProblems } from "./entry-sync.ts";

/** the forwarding sysctls an entry node needs */
export type ReadForwarding = () => { ipv4: string | undefined; ipv6: string | undefined };

export function applyNodeEntries(
  entries: EntrySync,
  resources: Iterable<Resource>,
  where: { cluster: string; node: string },
  verify: boolean,
  readForwarding: ReadForwarding | undefined,
  log: Logger,
): string | undefined {
  const want = entriesFromResources(resources, where.cluster, where.node);
  const out = entries.sync(want, verify);
  if (out.written) log.info({ entries: out.entries }, "node entry table written");
  if (out.forgotten)
    log.info(
      { targets: out.forgotten.targets, conntrackEntries: out.forgotten.deleted },
      "node entry flows of removed pods deleted",
    );
  if (out.flowProblem) log.warn({ reason: out.flowProblem }, "node entry flows of removed pods kept");
  for (const p of out.problems) log.error({ entry: p.entry, reason: p.message }, "node entry not programmed");
  if ((out.written || verify) && readForwarding)
    for (const reason of forwardingProblems(want, readForwarding()))
      log.warn({ reason }, "node entry needs forwarding");
  const first = out.problems[0];
  if (!first) return undefined;
  const more = out.problems.length > 1 ? ` (and ${out.problems.length - 1} more)` : "";
  return `node entry not programmed: ${first.entry}: ${first.message}${more}`;
}
