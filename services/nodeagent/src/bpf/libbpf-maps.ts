/**
 * The maps of the loaded object behind the `DatapathMaps` port: plan ops
 * written entry by entry (frontends in place under their lock), the whole
 * state read back in batches, the settings, counters and skip-cgroup map.
 * `LibbpfDatapath` (datapath.ts) loads the object and hands the fds here.
 */
import fs from "node:fs";
import { SwitchyardError } from "@switchyard/lib/errors";
import { formatIp16, parseIpTo16 } from "@switchyard/lib/ip";
import {
  COUNTER_NAMES,
  decodeBackend,
  decodeBackendKey,
  decodeFrontend,
  decodeFrontendKey,
  decodeMemberKey,
  decodeSettings,
  decodeSkipKey,
  decodeSvcName,
  decodeSvcStats,
  encodeBackend,
  encodeBackendKey,
  encodeFrontend,
  encodeFrontendKey,
  encodeMemberKey,
  encodeSettings,
  encodeSkipKey,
  encodeSvcName,
  encodeU32,
  LAYOUT,
  nodePortBit,
  type ResolutionCounts,
  Scope,
  type Settings,
  SY_NAME_LEN,
} from "./layout.ts";
import { errnoName, ffi } from "./libbpf.ts";
import { BPF_MAP_INFO_SIZE, parseMapInfo } from "./map-compat.ts";
import {
  type ApplyOptions,
  type DatapathMaps,
  emptyMapState,
  type FrontendKeyModel,
  frontendKeyString,
  type MapOp,
  type MapReaders,
  type MapState,
  memberKey,
  type SkipCgroupMap,
  skipKey,
} from "./maps.ts";
import { kernelGracePeriod, ReaderGrace } from "./reader-grace.ts";

export const MAPS = [
  "sy_frontends",
  "sy_backends",
  "sy_members",
  "sy_node_ips",
  "sy_node_ports",
  "sy_svc_names",
  "sy_svc_stats",
  "sy_svc_ok",
  "sy_sock_nats",
  "sy_tcp_nats",
  "sy_udp_lasts",
  "sy_gen",
  "sy_revnat",
  "sy_affinity",
  "sy_settings_map",
  "sy_qos",
  "sy_lrp_skip",
  "sy_dead_backends",
  "sy_counters",
  "sy_events_unwoken",
  "sy_events",
] as const;
export type MapName = (typeof MAPS)[number];
/** the maps sized with --max-frontends at load */
export const FRONTEND_SIZED_MAPS: readonly MapName[] = [
  "sy_frontends",
  "sy_svc_names",
  "sy_svc_stats",
  "sy_svc_ok",
  "sy_qos",
  "sy_lrp_skip",
];
/** Pure: ", --max-frontends" for a map that flag sizes at load ("" for the others). */
function sizeFlag(map: string): string {
  if ((FRONTEND_SIZED_MAPS as readonly string[]).includes(map)) return ", --max-frontends";
  return map === "sy_backends" || map === "sy_members" ? ", --max-backends" : "";
}

/** entries per bpf_map_lookup_batch call (grown if one hash bucket holds more) */
const READ_BATCH = 4096;
const ENOENT = 2;
const EEXIST = 17;
/** update flag: create only */
const BPF_NOEXIST = 1;
const ENOSPC = 28;
/** update flag: write the value in place under its bpf_spin_lock */
const BPF_F_LOCK = 4;

export class LibbpfMaps implements DatapathMaps {
  readonly fds: Record<MapName, number>;
  /** bpf() system calls made by `apply` and `read` so far (each map call through libbpf is one) */
  syscalls = 0;
  /**
   * How `read()` walks a map: `batch` (bpf_map_lookup_batch, thousands of
   * entries a call) or `per-entry` (get_next_key + lookup per entry, two
   * calls each). Batch falls back to per-entry, for good, on a kernel that
   * refuses batch lookups.
   */
  readMode: "batch" | "per-entry" = "batch";
  /** waits for the programs where a write could change an element one of them holds (reader-grace.ts) */
  readonly grace: ReaderGrace;
  constructor(fds: Record<MapName, number>, grace: ReaderGrace = new ReaderGrace(kernelGracePeriod())) {
    this.fds = fds;
    this.grace = grace;
  }

  /** the programs reading these maps: grace periods (the same object as `grace`) */
  get readers(): MapReaders {
    return this.grace;
  }

  /** `sy_lrp_skip`: the programs only test presence, so entries go and come without a grace period */
  readonly skips: SkipCgroupMap = {
    readSkips: () => {
      const out = new Set<string>();
      this.forEachEntry(this.fds.sy_lrp_skip, LAYOUT.sy_skip_key.size, 1, (k) => {
        const d = decodeSkipKey(k);
        out.add(skipKey(d.svcId, d.cgroupId));
      });
      return out;
    },
    putSkip: (svcId, cgroupId) =>
      this.update(
        this.fds.sy_lrp_skip,
        encodeSkipKey(svcId, cgroupId),
        Buffer.from([1]),
        "sy_lrp_skip",
        `cgroup ${cgroupId} of policy #${svcId}`,
      ),
    deleteSkip: (svcId, cgroupId) =>
      this.remove(this.fds.sy_lrp_skip, encodeSkipKey(svcId, cgroupId), "sy_lrp_skip"),
  };

  apply(ops: readonly MapOp[], opts?: ApplyOptions): void {
    try {
      this.grace.write(ops, opts, (o) => this.applyOne(o));
    } finally {
      if (ops.some(changesResolution)) this.bumpGeneration();
    }
  }

  /**
   * After frontends or node addresses changed (even in part: a failed plan):
   * translations the programs cached per socket with an older generation
   * (`sy_udp_lasts`, unconnected UDP) are resolved again on their next
   * datagram. Sets are never rewritten, so backend writes need none.
   */
  private bumpGeneration(): void {
    const v = Buffer.alloc(8);
    const key = encodeU32(0);
    this.syscalls += 2;
    ffi.mapLookup(this.fds.sy_gen, key, v);
    v.writeBigUInt64LE(v.readBigUInt64LE(0) + 1n, 0);
    this.update(this.fds.sy_gen, key, v, "sy_gen", "generation");
  }

  private applyOne(o: MapOp): void {
    const f = this.fds;
    switch (o.op) {
      case "put-name":
        this.update(f.sy_svc_names, encodeU32(o.svcId), encodeSvcName(o.name), "sy_svc_names", o.name);
        this.createSvcStats(o.svcId, o.name);
        return;
      case "delete-name":
        this.remove(f.sy_svc_stats, encodeU32(o.svcId), "sy_svc_stats");
        this.zeroSvcOk(o.svcId);
        this.remove(f.sy_svc_names, encodeU32(o.svcId), "sy_svc_names");
        return;
      case "put-backend": {
        const addr = ip16(o.backend.ip);
        const key = encodeBackendKey({ setId: o.setId, index: o.index });
        this.update(
          f.sy_backends,
          key,
          encodeBackend({ addr, port: o.backend.port }),
          "sy_backends",
          `set ${o.setId}`,
        );
        try {
          this.update(
            f.sy_members,
            encodeMemberKey(o.setId, addr, o.backend.port),
            encodeU32(o.index),
            "sy_members",
            `set ${o.setId}`,
          );
        } catch (e) {
          // the op lands whole or not at all: the set is new, so its entry was not there before
          this.syscalls++;
          ffi.mapDelete(f.sy_backends, key);
          throw e;
        }
        return;
      }
      case "delete-backend":
        this.remove(f.sy_members, encodeMemberKey(o.setId, ip16(o.backend.ip), o.backend.port), "sy_members");
        this.remove(f.sy_backends, encodeBackendKey({ setId: o.setId, index: o.index }), "sy_backends");
        return;
      case "put-member":
        this.update(
          f.sy_members,
          encodeMemberKey(o.setId, ip16(o.backend.ip), o.backend.port),
          encodeU32(o.index),
          "sy_members",
          `set ${o.setId}`,
        );
        return;
      case "delete-member":
        this.remove(f.sy_members, encodeMemberKey(o.setId, ip16(o.backend.ip), o.backend.port), "sy_members");
        return;
      case "put-node-ip":
        this.update(f.sy_node_ips, ip16(o.ip), Buffer.from([1]), "sy_node_ips", o.ip);
        return;
      case "delete-node-ip":
        this.remove(f.sy_node_ips, ip16(o.ip), "sy_node_ips");
        return;
      case "put-frontend":
        // the port's NodePort bit before the frontend (a stale bit costs a lookup; a missing one, the frontend)
        if (o.key.scope === Scope.nodePort) this.markNodePort(o.key, true);
        // in place under the value's lock: a reader copies either the old value or the new one
        this.update(
          f.sy_frontends,
          frontendKey(o.key),
          encodeFrontend(o.value),
          "sy_frontends",
          frontendKeyString(o.key),
          BPF_F_LOCK,
        );
        return;
      case "delete-frontend":
        this.remove(f.sy_frontends, frontendKey(o.key), "sy_frontends");
        if (o.key.scope === Scope.nodePort) this.markNodePort(o.key, false);
    }
  }

  /** Sets or clears a NodePort frontend key's bit in `sy_node_ports` (the programs skip sy_node_ips without it). */
  private markNodePort(k: FrontendKeyModel, on: boolean): void {
    const key = encodeU32(k.port);
    const v = Buffer.alloc(1);
    const bit = nodePortBit(k.proto, ip16(k.ip));
    this.syscalls++;
    ffi.mapLookup(this.fds.sy_node_ports, key, v);
    const next = on ? v[0]! | bit : v[0]! & ~bit;
    if (next !== v[0])
      this.update(this.fds.sy_node_ports, key, Buffer.from([next]), "sy_node_ports", `node port ${k.port}`);
  }

  /**
   * A Service's resolution counters start with its name (zeros on every
   * CPU); the programs only count into an entry that is there. A name
   * written again (a resync, a restart) keeps its counts.
   */
  private createSvcStats(svcId: number, name: string): void {
    const zeros = Buffer.alloc(LAYOUT.sy_svc_stats.size);
    const what = `the resolution counters of ${name}`;
    const made = this.update(
      this.fds.sy_svc_stats,
      encodeU32(svcId),
      zeros,
      "sy_svc_stats",
      what,
      BPF_NOEXIST,
      EEXIST,
    );
    if (made) this.zeroSvcOk(svcId);
  }

  /** A Service's slot in `sy_svc_ok` (its ok count, per CPU), when its id has one. */
  private zeroSvcOk(svcId: number): void {
    if (svcId >= this.svcOkSlots) return;
    this.syscalls++;
    ffi.mapUpdate(this.fds.sy_svc_ok, encodeU32(svcId), Buffer.alloc(8 * possibleCpus()), 0);
  }

  /** ids below this have a slot in sy_svc_ok (its max_entries) */
  private get svcOkSlots(): number {
    if (this.okSlots === undefined) {
      const info = Buffer.alloc(BPF_MAP_INFO_SIZE);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(info.length, 0);
      const rc = ffi.objGetInfoByFd(this.fds.sy_svc_ok, info, len) as number;
      this.okSlots = rc < 0 ? 0 : parseMapInfo(info, len.readUInt32LE(0)).maxEntries;
    }
    return this.okSlots;
  }
  private okSlots: number | undefined;

  /**
   * Resolutions per Service and result since each Service's name was
   * written (`sy_svc_stats`, plus the per-CPU ok counts of `sy_svc_ok`), by svc id; names are in
   * `sy_svc_names` (the agent's mirror: `MapState.names`). Exact whether
   * events are on, off or sampled.
   */
  readResolutionCounters(): Map<number, ResolutionCounts> {
    const ncpu = possibleCpus();
    const out = new Map<number, ResolutionCounts>();
    this.forEachEntry(this.fds.sy_svc_stats, 4, LAYOUT.sy_svc_stats.size, (k, v) =>
      out.set(k.readUInt32LE(0), decodeSvcStats(v, 1)),
    );
    const ok = Buffer.alloc(8 * ncpu);
    for (const [id, c] of out) {
      if (id >= this.svcOkSlots) continue;
      this.syscalls++;
      if ((ffi.mapLookup(this.fds.sy_svc_ok, encodeU32(id), ok) as number) !== 0) continue;
      for (let cpu = 0; cpu < ncpu; cpu++) c.ok += ok.readBigUInt64LE(cpu * 8);
    }
    return out;
  }

  /** `tolerated`: an errno that counts as done (EEXIST for a create-only write); false when it was that */
  private update(
    fd: number,
    key: Buffer,
    value: Buffer,
    map: string,
    what: string,
    flags = 0,
    tolerated?: number,
  ): boolean {
    this.syscalls++;
    const rc = ffi.mapUpdate(fd, key, value, flags) as number;
    if (rc < 0 && -rc === tolerated) return false;
    if (rc < 0) {
      const e = -rc;
      const code = e === 7 || e === 28 ? "capacity" : "bpf";
      throw new SwitchyardError(
        code,
        `writing ${what} to map ${map} failed: ${errnoName(e)}${code === "capacity" ? ` (map full: raise its size${sizeFlag(map)})` : ""}`,
      );
    }
    return true;
  }

  private remove(fd: number, key: Buffer, map: string): void {
    this.syscalls++;
    const rc = ffi.mapDelete(fd, key) as number;
    if (rc < 0 && rc !== -2)
      throw new SwitchyardError("bpf", `deleting from map ${map} failed: ${errnoName(-rc)}`);
  }

  /**
   * Calls `each` with every (key, value) of a hash map. The buffers are views
   * valid only during the call: decode, do not keep.
   */
  forEachEntry(
    fd: number,
    keySize: number,
    valueSize: number,
    each: (key: Buffer, value: Buffer) => void,
  ): void {
    if (this.readMode === "batch" && this.batchEntries(fd, keySize, valueSize, each)) return;
    let prev: Buffer | null = null;
    const value = Buffer.alloc(valueSize);
    for (;;) {
      const next = Buffer.alloc(keySize);
      this.syscalls++;
      if ((ffi.mapGetNextKey(fd, prev, next) as number) < 0) break;
      this.syscalls++;
      if ((ffi.mapLookup(fd, next, value) as number) === 0) each(next, value);
      prev = next;
    }
  }

  /** bpf_map_lookup_batch through the map; false when the kernel refuses it (nothing was read) */
  private batchEntries(
    fd: number,
    keySize: number,
    valueSize: number,
    each: (key: Buffer, value: Buffer) => void,
  ): boolean {
    let room = READ_BATCH;
    let keys = Buffer.alloc(room * keySize);
    let values = Buffer.alloc(room * valueSize);
    // the kernel's resume token: a bucket number for hash maps (8 bytes leave room)
    const token = [Buffer.alloc(8), Buffer.alloc(8)] as const;
    const count = Buffer.alloc(4);
    let first = true;
    for (;;) {
      count.writeUInt32LE(room, 0);
      this.syscalls++;
      const rc = ffi.mapLookupBatch(
        fd,
        first ? null : token[0],
        token[1],
        keys,
        values,
        count,
        null,
      ) as number;
      const n = count.readUInt32LE(0);
      if (rc < 0 && rc !== -ENOENT) {
        if (rc === -ENOSPC && n === 0) {
          // one bucket holds more entries than there is room for
          room *= 2;
          keys = Buffer.alloc(room * keySize);
          values = Buffer.alloc(room * valueSize);
          continue;
        }
        if (first) {
          this.readMode = "per-entry";
          return false;
        }
        throw new SwitchyardError("bpf", `reading a map in batches failed: ${errnoName(-rc)}`);
      }
      for (let i = 0; i < n; i++)
        each(
          keys.subarray(i * keySize, (i + 1) * keySize),
          values.subarray(i * valueSize, (i + 1) * valueSize),
        );
      if (rc === -ENOENT) return true;
      token[1].copy(token[0]);
      first = false;
    }
  }

  /** Every (key, value) of a hash map, copied. */
  entries(fd: number, keySize: number, valueSize: number): Array<[Buffer, Buffer]> {
    const out: Array<[Buffer, Buffer]> = [];
    this.forEachEntry(fd, keySize, valueSize, (k, v) => out.push([Buffer.from(k), Buffer.from(v)]));
    return out;
  }

  /** Reads every map the agent writes, `sy_members` included (in batches: a few calls per map). */
  read(): MapState {
    const s: MapState = { ...emptyMapState(), members: new Map() };
    const L = LAYOUT;
    this.forEachEntry(this.fds.sy_svc_names, 4, SY_NAME_LEN, (k, v) =>
      s.names.set(k.readUInt32LE(0), decodeSvcName(v)),
    );
    this.forEachEntry(this.fds.sy_frontends, L.sy_frontend_key.size, L.sy_frontend.size, (k, v) => {
      const dk = decodeFrontendKey(k);
      const key: FrontendKeyModel = {
        ip: formatIp16(dk.addr),
        port: dk.port,
        proto: dk.proto,
        scope: dk.scope,
      };
      s.frontends.set(frontendKeyString(key), { key, value: decodeFrontend(v) });
    });
    this.forEachEntry(this.fds.sy_backends, L.sy_backend_key.size, L.sy_backend.size, (k, v) => {
      const bk = decodeBackendKey(k);
      const b = decodeBackend(v);
      const set = s.backendSets.get(bk.setId) ?? [];
      set[bk.index] = { ip: formatIp16(b.addr), port: b.port };
      s.backendSets.set(bk.setId, set);
    });
    this.forEachEntry(this.fds.sy_members, L.sy_member_key.size, 4, (k, v) => {
      const mk = decodeMemberKey(k);
      s.members!.set(memberKey(mk.setId, { ip: formatIp16(mk.addr), port: mk.port }), v.readUInt32LE(0));
    });
    this.forEachEntry(this.fds.sy_node_ips, 16, 1, (k) => s.nodeIps.add(formatIp16(k)));
    return s;
  }

  /** Sums the per-CPU counters. */
  counters(): Record<string, bigint> {
    const ncpu = possibleCpus();
    const out: Record<string, bigint> = {};
    COUNTER_NAMES.forEach((name, i) => {
      const v = Buffer.alloc(8 * ncpu);
      let sum = 0n;
      if ((ffi.mapLookup(this.fds.sy_counters, encodeU32(i), v) as number) === 0) {
        for (let c = 0; c < ncpu; c++) sum += v.readBigUInt64LE(c * 8);
      }
      out[name] = sum;
    });
    return out;
  }

  /** Event switch and sampling, read by the programs on every translation: changes apply at once, no reload. */
  writeSettings(s: Settings): void {
    this.update(this.fds.sy_settings_map, encodeU32(0), encodeSettings(s), "sy_settings_map", "settings");
  }

  readSettings(): Settings {
    const v = Buffer.alloc(LAYOUT.sy_settings.size);
    ffi.mapLookup(this.fds.sy_settings_map, encodeU32(0), v);
    return decodeSettings(v);
  }
}

/** ops that change where a destination resolves to (frontend entries, node addresses) */
function changesResolution(o: MapOp): boolean {
  return (
    o.op === "put-frontend" ||
    o.op === "delete-frontend" ||
    o.op === "put-node-ip" ||
    o.op === "delete-node-ip"
  );
}

function ip16(ip: string): Buffer {
  const r = parseIpTo16(ip);
  if (!r.ok) throw new SwitchyardError("invalid_argument", r.error);
  return r.value;
}

function frontendKey(k: FrontendKeyModel): Buffer {
  return encodeFrontendKey({ addr: ip16(k.ip), port: k.port, proto: k.proto, scope: k.scope });
}

let cpus: number | undefined;
/** CPUs a per-CPU map holds a value for (read once) */
export function possibleCpus(): number {
  if (cpus !== undefined) return cpus;
  const text = fs.readFileSync("/sys/devices/system/cpu/possible", "utf8").trim();
  let n = 0;
  for (const part of text.split(",")) {
    const [a, b] = part.split("-").map(Number);
    n += b === undefined ? 1 : b - a! + 1;
  }
  cpus = n;
  return n;
}
