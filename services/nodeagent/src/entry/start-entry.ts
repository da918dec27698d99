/**
 * Wires node entry into a running agent: the nft table behind AgentCore's
 * entry sync and the conntrack tool that deletes removed pods' flows, the
 * forwarding check, and the reporter of the entry interface's addresses
 * (started here; stopped with the agent — the table
 * stays, as the pinned maps do, and goes with `switchyard-agent uninstall`).
 */
import type { Logger } from "@switchyard/lib/log";
import type { NodeReport } from "@switchyard/proto/assignment";
import type { AgentCore } from "../agent.ts";
import { ConntrackEntryFlows } from "./conntrack.ts";
import { EntryReporter } from "./entry-interface.ts";
import { EntrySync } from "./entry-sync.ts";
import { NftEntryTable, readForwardingSysctls } from "./nft-table.ts";

export function startNodeEntry(
  core: AgentCore,
  log: Logger,
  send: (r: NodeReport) => boolean,
): EntryReporter {
  core.entries = new EntrySync(new NftEntryTable(), new ConntrackEntryFlows());
  core.readForwarding = readForwardingSysctls;
  const reporter = new EntryReporter(send, log);
  reporter.start();
  return reporter;
}
