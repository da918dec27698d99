/**
 * Each map's capacity for the metrics: its max_entries from the kernel's
 * map info (for the ring buffer, its size in bytes), read once at start.
 */
import { checkRc, ffi } from "./libbpf.ts";
import { type LibbpfMaps, MAPS } from "./libbpf-maps.ts";
import { BPF_MAP_INFO_SIZE, parseMapInfo } from "./map-compat.ts";

export function readMapCapacities(maps: LibbpfMaps): Map<string, number> {
  const out = new Map<string, number>();
  for (const name of MAPS) {
    const info = Buffer.alloc(BPF_MAP_INFO_SIZE);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(info.length, 0);
    checkRc(ffi.objGetInfoByFd(maps.fds[name], info, len) as number, `reading the definition of map ${name}`);
    out.set(name, parseMapInfo(info, len.readUInt32LE(0)).maxEntries);
  }
  return out;
}
