/**
 * Whether the running agent follows a hub or serves the maps as it found
 * them, kept in the state directory (`sync-status.json`) so `dump` can say
 * it as the first line of its output.
 */
import fs from "node:fs";
import path from "node:path";
import type { SyncState } from "./view-sync.ts";

const FILE = "sync-status.json";

/** `upgradeStaged`: new maps are being filled while the previous build's programs serve (datapath.ts) */
export type SyncStatus = SyncState & { hub: string | undefined; updatedAt: string; upgradeStaged?: boolean };

export function writeSyncStatus(stateDir: string, s: SyncStatus): void {
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = path.join(stateDir, FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(s)}\n`, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** The status the agent last wrote, or undefined when none can be read. */
export function readSyncStatus(stateDir: string): SyncStatus | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(stateDir, FILE), "utf8")) as SyncStatus;
  } catch {
    return undefined;
  }
}

/** The `dump` header: one line on how current the maps are. */
export function formatSyncStatus(stateDir: string): string {
  const s = readSyncStatus(stateDir);
  if (!s) return `# sync: unknown (no ${FILE} in ${stateDir}: no agent has run with this --state-dir)\n`;
  if (s.state === "synced")
    return `# sync: following the hub's view since ${s.since}${s.hub ? ` (last hub ${s.hub})` : ""}; status of ${s.updatedAt}\n`;
  return `# sync: serving the pinned maps as found since ${s.since} — no complete view from a hub yet${
    s.heldViewFromDisk ? " (held view resumed from disk)" : ""
  }; status of ${s.updatedAt}\n`;
}
