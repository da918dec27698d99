/**
 * `switchyard-agent dump` and `uninstall`: read or remove what the agent
 * pinned under --pin-dir (the maps' text form is formatMapState, dump.ts).
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { STAGED_MAPS_DIR, uninstallPins } from "../bpf/datapath.ts";
import { formatSyncStatus } from "../state/sync-status.ts";
import { DEFAULT_OBJECT, DEFAULT_PIN_DIR, DEFAULT_STATE_DIR } from "./common.ts";
import { formatMapState } from "./dump.ts";

/** dump and uninstall take the same flags */
function parsePinFlags(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      "pin-dir": { type: "string", default: DEFAULT_PIN_DIR },
      "bpf-object": { type: "string", default: DEFAULT_OBJECT },
      "state-dir": { type: "string", default: DEFAULT_STATE_DIR },
    },
  });
}

/** Detaches the programs and removes every pin. */
export function uninstallCommand(argv: string[]): void {
  const { values } = parsePinFlags(argv);
  const removed = uninstallPins(values["pin-dir"]);
  process.stdout.write(
    removed.length
      ? `removed ${removed.length} pins under ${values["pin-dir"]}; programs detached\n`
      : `nothing pinned under ${values["pin-dir"]}\n`,
  );
}

/** Prints the sync status, the maps as text (frontend -> backends) and the counters. */
export async function dumpCommand(argv: string[]): Promise<void> {
  const { values } = parsePinFlags(argv);
  const { openPinnedMaps, upgradeStaged } = await import("../bpf/pinned.ts");
  const maps = openPinnedMaps(values["pin-dir"]);
  process.stdout.write(formatSyncStatus(values["state-dir"]));
  if (upgradeStaged(values["pin-dir"]))
    process.stdout.write(
      `# upgrade staged: serving the previous build's maps until a complete view is ready; below, the new maps (${path.join(values["pin-dir"], STAGED_MAPS_DIR)})\n`,
    );
  process.stdout.write(formatMapState(maps.read()));
  const c = maps.counters();
  process.stdout.write(
    `counters: ${Object.entries(c)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ")}\n`,
  );
}
