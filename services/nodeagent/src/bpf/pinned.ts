/**
 * Opens the maps a running (or stopped) agent pinned, for inspection.
 */
import path from "node:path";
import { SwitchyardError } from "@switchyard/lib/errors";
import { LibbpfMaps, MAPS } from "./datapath.ts";
import { ffi } from "./libbpf.ts";

export function openPinnedMaps(pinDir: string): LibbpfMaps {
  const fds = {} as Record<(typeof MAPS)[number], number>;
  for (const name of MAPS) {
    const p = path.join(pinDir, "maps", name);
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
