import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  BPF_MAP_INFO_SIZE,
  computeMapIncompatibility,
  type MapDefinition,
  parseMapInfo,
} from "./map-compat.ts";

const frontends: MapDefinition = {
  type: 1,
  keySize: 20,
  valueSize: 28,
  maxEntries: 65536,
  flags: 0,
  extra: 0n,
};

describe("computeMapIncompatibility", () => {
  const cases: Array<{ name: string; pinned: Partial<MapDefinition>; want: string | undefined }> = [
    { name: "same definition: reused", pinned: {}, want: undefined },
    {
      name: "a value that grew (a lock added)",
      pinned: { valueSize: 24 },
      want: "value size 24, this build 28",
    },
    {
      name: "another size at load (--max-frontends)",
      pinned: { maxEntries: 4096 },
      want: "max_entries 4096, this build 65536",
    },
    { name: "other flags", pinned: { flags: 1 }, want: "flags 0x1, this build 0x0" },
    { name: "another type", pinned: { type: 9 }, want: "type 9, this build 1" },
    {
      name: "several differences, all named",
      pinned: { keySize: 16, valueSize: 24, extra: 3n },
      want: "key size 16, this build 20; value size 24, this build 28; map_extra 3, this build 0",
    },
  ];
  for (const c of cases)
    it(c.name, () => {
      assert.equal(computeMapIncompatibility(frontends, { ...frontends, ...c.pinned }), c.want);
    });
});

describe("parseMapInfo", () => {
  it("reads the fields libbpf compares from struct bpf_map_info", () => {
    const b = Buffer.alloc(BPF_MAP_INFO_SIZE);
    for (const [i, v] of [1, 77, 20, 28, 65536, 4].entries()) b.writeUInt32LE(v, i * 4);
    b.writeBigUInt64LE(5n, 80);
    assert.deepEqual(parseMapInfo(b, BPF_MAP_INFO_SIZE), {
      type: 1,
      keySize: 20,
      valueSize: 28,
      maxEntries: 65536,
      flags: 4,
      extra: 5n,
    });
    // a kernel whose bpf_map_info ends before map_extra
    assert.equal(parseMapInfo(b, 80).extra, 0n);
  });
});
