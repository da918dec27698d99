/**
 * `switchyard-agent dump`: reads what the agent pinned under --pin-dir (the
 * maps' text form is formatMapState, dump.ts; `uninstall` is in install.ts).
 */
import path from "node:path";
import { type Command, parseFlags, usageError } from "@switchyard/lib/cli";
import { parseDestination } from "@switchyard/lib/destination";
import { STAGED_MAPS_DIR } from "../bpf/datapath.ts";
import { formatEntryTable, readEntryTable } from "../entry/entry-dump.ts";
import { formatEventsStatus, readEventsStatus } from "../state/events-status.ts";
import { formatSyncStatus, readSyncStatus } from "../state/sync-status.ts";
import { DEFAULT_OBJECT, DEFAULT_PIN_DIR, DEFAULT_STATE_DIR } from "./common.ts";
import { filterMapState, formatMapState, mapStateJson } from "./dump.ts";

const DUMP_HELP = `switchyard-agent dump — this node's maps as text (frontend -> backends) or JSON

Usage:
  switchyard-agent dump [IP:PORT[/tcp|udp]] [--json] [--pin-dir DIR] [--state-dir DIR]

Reads the maps the agent pinned (root or CAP_BPF); works with the agent
stopped. The first line says whether the agent follows a hub; the second,
with events on, where the agent's NAT events went (emitted, published,
buffered, dropped per reason: README "Events and metrics"). The last lines
show the node-entry DNAT table (nftables), when this node has one.

With IP:PORT (protocol tcp unless /udp), only the frontend a connect to it
meets on this node: its exact entry, or the NodePort entry when IP is one
of this node's addresses or loopback; with none, it says so. The hub's view
of the same destination: switchyard-hub lookup --node NODE IP:PORT.

Flags:
  --json                 one JSON object: sync (the agent's sync status, or null), events (its event
                         accounting, or null), upgradeStaged,
                         frontends (each with its service, mode, flags, backends and fallback),
                         nodeIps, counters, nodeEntry (the entry table's ports, or null)
  --pin-dir DIR          bpffs directory of the agent's maps (default ${DEFAULT_PIN_DIR})
  --state-dir DIR        the agent's state directory (default ${DEFAULT_STATE_DIR})
`;

export const dumpCommand: Command = {
  name: "dump",
  summary: [["dump [IP:PORT] [--json]", "print the maps as text (frontend -> backends) or JSON"]],
  help: DUMP_HELP,
  run: runDump,
};

/** dump's flags (--bpf-object is accepted and unused, as before) */
function parsePinFlags(argv: string[]) {
  return parseFlags(
    argv,
    {
      "pin-dir": { type: "string", default: DEFAULT_PIN_DIR },
      "bpf-object": { type: "string", default: DEFAULT_OBJECT },
      "state-dir": { type: "string", default: DEFAULT_STATE_DIR },
      json: { type: "boolean", default: false },
    },
    { positionals: true },
  );
}

/** Prints the sync status, the maps as text (frontend -> backends) and the counters. */
async function runDump(argv: string[]): Promise<void> {
  const { values, positionals } = parsePinFlags(argv);
  if (positionals.length > 1) usageError("dump takes at most one destination, IP:PORT[/tcp|udp]");
  const dest = positionals[0] === undefined ? undefined : parseDestination(positionals[0]);
  if (dest && !dest.ok) usageError(dest.error);
  const { openPinnedMaps, upgradeStaged } = await import("../bpf/pinned.ts");
  const maps = openPinnedMaps(values["pin-dir"]);
  const all = maps.read();
  const state = dest ? filterMapState(all, dest.value) : all;
  if (values.json) {
    const doc = {
      sync: readSyncStatus(values["state-dir"]) ?? null,
      events: readEventsStatus(values["state-dir"]) ?? null,
      upgradeStaged: upgradeStaged(values["pin-dir"]),
      ...(dest ? { destination: dest.value } : {}),
      ...mapStateJson(state),
      counters: maps.counters(),
      // the node-entry DNAT table as nft holds it (null: none)
      nodeEntry: readEntryTable() ?? null,
    };
    // counters are 64-bit: a number while exact, else its decimal string
    const json = JSON.stringify(
      doc,
      (_, v) => (typeof v === "bigint" ? (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : String(v)) : v),
      2,
    );
    process.stdout.write(`${json}\n`);
    return;
  }
  process.stdout.write(formatSyncStatus(values["state-dir"]));
  process.stdout.write(formatEventsStatus(values["state-dir"]));
  if (upgradeStaged(values["pin-dir"]))
    process.stdout.write(
      `# upgrade staged: serving the previous build's maps until a complete view is ready; below, the new maps (${path.join(values["pin-dir"], STAGED_MAPS_DIR)})\n`,
    );
  if (dest && state.frontends.size === 0)
    process.stdout.write(
      `no frontend for ${positionals[0]} in the maps: a connect to it is not translated on this node (the hub's view of it: switchyard-hub lookup --node NODE ${positionals[0]})\n`,
    );
  else process.stdout.write(formatMapState(state));
  const c = maps.counters();
  process.stdout.write(
    `counters: ${Object.entries(c)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ")}\n`,
  );
  process.stdout.write(formatEntryTable(readEntryTable()));
}
