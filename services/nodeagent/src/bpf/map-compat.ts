/**
 * Whether a map pinned by an earlier run can serve this build's programs.
 * libbpf reuses a pinned map only when its type, key size, value size,
 * max_entries, flags and map_extra equal the object's definition (its
 * `map_is_reuse_compat`), and otherwise fails the whole load. The agent asks
 * the same question itself, per map, before loading, so an upgrade across an
 * incompatible layout (a struct that grew, another name length, another
 * `--max-backends`) is told apart from any other load failure and staged
 * instead (datapath.ts).
 *
 * Pure: the definition and the kernel's `struct bpf_map_info` bytes in, the
 * difference out.
 */

/** What libbpf compares before reusing a pinned map. */
export type MapDefinition = {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  extra: bigint;
};

/** bytes of `struct bpf_map_info` up to and including `map_extra` (Linux 5.16+) */
export const BPF_MAP_INFO_SIZE = 88;
const MAP_EXTRA_OFFSET = 80;

/**
 * Pure: the fields of a `struct bpf_map_info` the kernel filled (`len` bytes
 * of it; `map_extra` counts as 0 on a kernel that predates it).
 */
export function parseMapInfo(info: Buffer, len: number): MapDefinition {
  return {
    type: info.readUInt32LE(0),
    keySize: info.readUInt32LE(8),
    valueSize: info.readUInt32LE(12),
    maxEntries: info.readUInt32LE(16),
    flags: info.readUInt32LE(20),
    extra: len >= MAP_EXTRA_OFFSET + 8 ? info.readBigUInt64LE(MAP_EXTRA_OFFSET) : 0n,
  };
}

const FIELDS: ReadonlyArray<[keyof MapDefinition, string]> = [
  ["type", "type"],
  ["keySize", "key size"],
  ["valueSize", "value size"],
  ["maxEntries", "max_entries"],
  ["flags", "flags"],
  ["extra", "map_extra"],
];

/**
 * Pure: why the pinned map cannot be reused for `wanted` ("value size 24,
 * this build 28; …"), or undefined when libbpf would reuse it.
 */
export function computeMapIncompatibility(wanted: MapDefinition, pinned: MapDefinition): string | undefined {
  const diffs: string[] = [];
  for (const [field, label] of FIELDS)
    if (wanted[field] !== pinned[field])
      diffs.push(
        `${label} ${field === "flags" ? `0x${pinned[field].toString(16)}` : pinned[field]}, this build ${
          field === "flags" ? `0x${wanted[field].toString(16)}` : wanted[field]
        }`,
      );
  return diffs.length > 0 ? diffs.join("; ") : undefined;
}
