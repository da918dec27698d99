/**
 * Opens the maps a running (or stopped) agent pinned, for inspection. While
 * an upgrade is staged (maps-next/ exists), the maps opened are the ones the
 * new build fills — those the previous build's programs still serve from
 * have another layout and are not read.
 */
import fs from "node:fs";
import path from "node:path";
import { SwitchyardError } from "@switchyard/lib/errors";
import { STAGED_MAPS_DIR } from "./datapath.ts";
import { ffi } from "./libbpf.ts";
import { LibbpfMaps, MAPS } from "./libbpf-maps.ts";

/** Whether an agent staged an upgrade under `pinDir` and has not swapped it in yet. */
export function upgradeStaged(pinDir: string): boolean {
  return fs.existsSync(path.join(pinDir, STAGED_MAPS_DIR));
}

export function openPinnedMaps(pinDir: string): LibbpfMaps {
  const fds = {} as Record<(typeof MAPS)[number], number>;
  for (const name of MAPS) {
    const staged = path.join(pinDir, STAGED_MAPS_DIR, name);
    const p = fs.existsSync(staged) ? staged : path.join(pinDir, "maps", name);
    const fd = ffi.objGet(p) as number;
    if (fd < 0)
      throw new SwitchyardError(
        "not_found",
        `no pinned map at ${p}: is an agent installed with --pin-dir ${pinDir}?`,
      );
    fds[name] = fd;
  }
  return new LibbpfMaps(fds);
}
