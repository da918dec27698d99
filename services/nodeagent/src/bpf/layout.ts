/**
 * Byte layout of the structs in bpf/include/switchyard.h, as user space
 * writes and reads them. `layout.test.ts` checks every size and offset here
 * against the BTF of the compiled object, so a change on one side fails CI.
 */

import { createHash } from "node:crypto";
import type { FrontendModel } from "./maps.ts";

export type FieldLayout = { offset: number; size: number };
export type StructLayout = { size: number; fields: Record<string, FieldLayout> };

export const LAYOUT = {
  sy_frontend_key: {
    size: 20,
    fields: {
      addr: { offset: 0, size: 16 },
      port: { offset: 16, size: 2 },
      proto: { offset: 18, size: 1 },
      scope: { offset: 19, size: 1 },
    },
  },
  sy_frontend: {
    size: 40,
    fields: {
      svc_id: { offset: 0, size: 4 },
      set_id: { offset: 4, size: 4 },
      count: { offset: 8, size: 4 },
      affinity_timeout_s: { offset: 12, size: 4 },
      port_id: { offset: 16, size: 4 },
      fb_set_id: { offset: 20, size: 4 },
      fb_count: { offset: 24, size: 4 },
      qos_per_s: { offset: 28, size: 4 },
      nat_type: { offset: 32, size: 1 },
      nat_mode: { offset: 33, size: 1 },
      flags: { offset: 34, size: 2 },
      /** struct bpf_spin_lock: the kernel's, written as zeros (writes to sy_frontends use BPF_F_LOCK) */
      lock: { offset: 36, size: 4 },
    },
  },
  sy_qos_window: { size: 16, fields: { second: { offset: 0, size: 8 }, count: { offset: 8, size: 8 } } },
  sy_skip_key: {
    size: 16,
    fields: {
      svc_id: { offset: 0, size: 4 },
      pad: { offset: 4, size: 4 },
      cgroup_id: { offset: 8, size: 8 },
    },
  },
  sy_backend_key: { size: 8, fields: { set_id: { offset: 0, size: 4 }, index: { offset: 4, size: 4 } } },
  sy_backend: {
    size: 20,
    fields: { addr: { offset: 0, size: 16 }, port: { offset: 16, size: 2 }, pad: { offset: 18, size: 2 } },
  },
  sy_member_key: {
    size: 24,
    fields: {
      set_id: { offset: 0, size: 4 },
      port: { offset: 4, size: 2 },
      pad: { offset: 6, size: 2 },
      addr: { offset: 8, size: 16 },
    },
  },
  sy_revnat_key: {
    size: 32,
    fields: {
      cookie: { offset: 0, size: 8 },
      addr: { offset: 8, size: 16 },
      port: { offset: 24, size: 2 },
      pad: { offset: 26, size: 6 },
    },
  },
  sy_revnat: {
    size: 20,
    fields: { addr: { offset: 0, size: 16 }, port: { offset: 16, size: 2 }, pad: { offset: 18, size: 2 } },
  },
  sy_sock_nat: {
    size: 40,
    fields: {
      front_addr: { offset: 0, size: 16 },
      back_addr: { offset: 16, size: 16 },
      front_port: { offset: 32, size: 2 },
      back_port: { offset: 34, size: 2 },
      pad: { offset: 36, size: 4 },
    },
  },
  sy_udp_last: {
    size: 80,
    fields: {
      front: { offset: 0, size: 20 },
      back_port: { offset: 20, size: 2 },
      pad0: { offset: 22, size: 2 },
      back_addr: { offset: 24, size: 16 },
      gen: { offset: 40, size: 8 },
      svc_id: { offset: 48, size: 4 },
      nat_type: { offset: 52, size: 1 },
      nat_mode: { offset: 53, size: 1 },
      pad1: { offset: 54, size: 2 },
      ev_ns: { offset: 56, size: 8 },
      ev_jiffies: { offset: 64, size: 8 },
      ev_count: { offset: 72, size: 4 },
      pad2: { offset: 76, size: 4 },
    },
  },
  sy_dead_key: {
    size: 20,
    fields: { addr: { offset: 0, size: 16 }, port: { offset: 16, size: 2 }, pad: { offset: 18, size: 2 } },
  },
  sy_affinity_key: {
    size: 16,
    fields: {
      netns_cookie: { offset: 0, size: 8 },
      port_id: { offset: 8, size: 4 },
      svc_id: { offset: 12, size: 4 },
    },
  },
  sy_affinity: {
    size: 32,
    fields: {
      last_ns: { offset: 0, size: 8 },
      addr: { offset: 8, size: 16 },
      port: { offset: 24, size: 2 },
      pad: { offset: 26, size: 6 },
    },
  },
  sy_svc_name: { size: 256, fields: { name: { offset: 0, size: 256 } } },
  sy_settings: { size: 8, fields: { flags: { offset: 0, size: 4 }, sample_one_in: { offset: 4, size: 4 } } },
  /** per CPU in sy_svc_stats: count[enum sy_stat] */
  sy_svc_stats: { size: 48, fields: { count: { offset: 0, size: 48 } } },
  sy_event: {
    size: 80,
    fields: {
      ts_ns: { offset: 0, size: 8 },
      cgroup_id: { offset: 8, size: 8 },
      pid_tgid: { offset: 16, size: 8 },
      svc_id: { offset: 24, size: 4 },
      orig_port: { offset: 28, size: 2 },
      nat_port: { offset: 30, size: 2 },
      orig_addr: { offset: 32, size: 16 },
      nat_addr: { offset: 48, size: 16 },
      family: { offset: 64, size: 1 },
      proto: { offset: 65, size: 1 },
      hook: { offset: 66, size: 1 },
      nat_type: { offset: 67, size: 1 },
      nat_mode: { offset: 68, size: 1 },
      success: { offset: 69, size: 1 },
      failure_code: { offset: 70, size: 2 },
      fallback: { offset: 72, size: 1 },
      pad: { offset: 73, size: 3 },
      count: { offset: 76, size: 4 },
    },
  },
} as const satisfies Record<string, StructLayout>;

export const SY_NAME_LEN = 256;
/** SY_FLOW_EVENT_MS in switchyard.h: an unconnected UDP flow emits at most one event per this many ms */
export const FLOW_EVENT_MS = 1000;
/** SY_EVENTS_DRAIN_MS in switchyard.h */
export const EVENTS_DRAIN_MS = 50;
/** SY_EVENTS_BYTES in switchyard.h: the events ring buffer's size */
export const EVENTS_RING_BYTES = 4 * 1024 * 1024;
export const SY_SETTINGS_EVENTS_ON = 1;
export const COUNTER_NAMES = [
  "translated",
  "miss",
  "failed",
  "events_dropped",
  "reversed",
  "affinity_hit",
  "events_sampled_out",
  "udp_destroyed",
  "tcp_slot_taken",
] as const;
/**
 * enum sy_stat, in order: `sy_svc_stats` counts per Service. The first five
 * are the result of each resolution (ok, or the failure: the same codes as
 * FailureCode); `fallback` counts, of those, the ones a local redirect sent
 * to its fallback set.
 */
export const RESOLUTION_RESULTS = [
  "ok",
  "noBackend",
  "backendMissing",
  "noLocalBackend",
  "familyMismatch",
  "fallback",
] as const;
export type ResolutionResult = (typeof RESOLUTION_RESULTS)[number];
export type ResolutionCounts = Record<ResolutionResult, bigint>;

/** Pure: `ncpu` copies of a `struct sy_svc_stats` (count[6]) summed (1 for `sy_svc_stats` itself). */
export function decodeSvcStats(v: Buffer, ncpu: number): ResolutionCounts {
  const size = LAYOUT.sy_svc_stats.size;
  const out = Object.fromEntries(RESOLUTION_RESULTS.map((r) => [r, 0n])) as ResolutionCounts;
  for (let c = 0; c < ncpu; c++)
    RESOLUTION_RESULTS.forEach((r, i) => {
      out[r] += v.readBigUInt64LE(c * size + i * 8);
    });
  return out;
}

export const Scope = { exact: 0, nodePort: 1 } as const;
/** SY_NP_* in switchyard.h: `sy_node_ports[port]` bits, one per NodePort frontend key (protocol, family) */
export const NodePortBit = { tcp4: 1, tcp6: 2, udp4: 4, udp6: 8 } as const;
/** Pure: the `sy_node_ports` bit of a NodePort frontend key (`addr` v4-mapped: the IPv4 one). */
export function nodePortBit(proto: number, addr: Buffer): number {
  const v4 = addr.subarray(0, 10).every((b) => b === 0) && addr[10] === 0xff && addr[11] === 0xff;
  if (proto === IPPROTO_UDP) return v4 ? NodePortBit.udp4 : NodePortBit.udp6;
  return v4 ? NodePortBit.tcp4 : NodePortBit.tcp6;
}
export const SY_FE_LOCAL_ONLY = 1;
/** local redirect: connects from the policy's own pods (sy_lrp_skip) take the fallback */
export const SY_FE_SKIP_FROM_BACKEND = 2;
/** enum sy_fallback: why a local-redirect connect went to the fallback set */
export const Fallback = { none: 0, noLocal: 1, qos: 2, fromBackend: 3 } as const;

export const NatType = { service: 1, localRedirect: 2, balancing: 3 } as const;
export const NatMode = {
  clusterIp: 1,
  nodePort: 2,
  loadBalancer: 3,
  externalIp: 4,
  localRedirectService: 5,
  localRedirectAddress: 6,
} as const;
export const Hook = { connect4: 1, connect6: 2, sendmsg4: 3, sendmsg6: 4 } as const;
export const FailureCode = {
  none: 0,
  noBackend: 1,
  backendMissing: 2,
  noLocalBackend: 3,
  familyMismatch: 4,
} as const;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export function nameOf<T extends Record<string, number>>(table: T, value: number): string {
  for (const [k, v] of Object.entries(table)) if (v === value) return k;
  return `unknown(${value})`;
}

// --- codecs: user space holds ports in host order; maps hold network order ---

export type FrontendKey = { addr: Buffer; port: number; proto: number; scope: number };
/** the frontend entry's value is the model's, field for field */
export type FrontendValue = FrontendModel;
export type BackendKey = { setId: number; index: number };
export type BackendValue = { addr: Buffer; port: number };

const F = LAYOUT;

export function encodeFrontendKey(k: FrontendKey): Buffer {
  const b = Buffer.alloc(F.sy_frontend_key.size);
  k.addr.copy(b, F.sy_frontend_key.fields.addr.offset);
  b.writeUInt16BE(k.port, F.sy_frontend_key.fields.port.offset);
  b.writeUInt8(k.proto, F.sy_frontend_key.fields.proto.offset);
  b.writeUInt8(k.scope, F.sy_frontend_key.fields.scope.offset);
  return b;
}

export function decodeFrontendKey(b: Buffer): FrontendKey {
  const f = F.sy_frontend_key.fields;
  return {
    addr: Buffer.from(b.subarray(f.addr.offset, f.addr.offset + 16)),
    port: b.readUInt16BE(f.port.offset),
    proto: b.readUInt8(f.proto.offset),
    scope: b.readUInt8(f.scope.offset),
  };
}

export function encodeFrontend(v: FrontendValue): Buffer {
  const b = Buffer.alloc(F.sy_frontend.size);
  const f = F.sy_frontend.fields;
  b.writeUInt32LE(v.svcId, f.svc_id.offset);
  b.writeUInt32LE(v.setId, f.set_id.offset);
  b.writeUInt32LE(v.count, f.count.offset);
  b.writeUInt32LE(v.affinityTimeoutS, f.affinity_timeout_s.offset);
  b.writeUInt32LE(v.portId, f.port_id.offset);
  b.writeUInt32LE(v.fbSetId, f.fb_set_id.offset);
  b.writeUInt32LE(v.fbCount, f.fb_count.offset);
  b.writeUInt32LE(v.qosPerSecond, f.qos_per_s.offset);
  b.writeUInt8(v.natType, f.nat_type.offset);
  b.writeUInt8(v.natMode, f.nat_mode.offset);
  b.writeUInt16LE(v.flags, f.flags.offset);
  return b;
}

export function decodeFrontend(b: Buffer): FrontendValue {
  const f = F.sy_frontend.fields;
  return {
    svcId: b.readUInt32LE(f.svc_id.offset),
    setId: b.readUInt32LE(f.set_id.offset),
    count: b.readUInt32LE(f.count.offset),
    affinityTimeoutS: b.readUInt32LE(f.affinity_timeout_s.offset),
    portId: b.readUInt32LE(f.port_id.offset),
    fbSetId: b.readUInt32LE(f.fb_set_id.offset),
    fbCount: b.readUInt32LE(f.fb_count.offset),
    qosPerSecond: b.readUInt32LE(f.qos_per_s.offset),
    natType: b.readUInt8(f.nat_type.offset),
    natMode: b.readUInt8(f.nat_mode.offset),
    flags: b.readUInt16LE(f.flags.offset),
  };
}

export function encodeBackendKey(k: BackendKey): Buffer {
  const b = Buffer.alloc(F.sy_backend_key.size);
  b.writeUInt32LE(k.setId, F.sy_backend_key.fields.set_id.offset);
  b.writeUInt32LE(k.index, F.sy_backend_key.fields.index.offset);
  return b;
}

export function decodeBackendKey(b: Buffer): BackendKey {
  return {
    setId: b.readUInt32LE(F.sy_backend_key.fields.set_id.offset),
    index: b.readUInt32LE(F.sy_backend_key.fields.index.offset),
  };
}

export function encodeBackend(v: BackendValue): Buffer {
  const b = Buffer.alloc(F.sy_backend.size);
  v.addr.copy(b, F.sy_backend.fields.addr.offset);
  b.writeUInt16BE(v.port, F.sy_backend.fields.port.offset);
  return b;
}

export function decodeBackend(b: Buffer): BackendValue {
  const f = F.sy_backend.fields;
  return {
    addr: Buffer.from(b.subarray(f.addr.offset, f.addr.offset + 16)),
    port: b.readUInt16BE(f.port.offset),
  };
}

export function encodeMemberKey(setId: number, addr: Buffer, port: number): Buffer {
  const b = Buffer.alloc(F.sy_member_key.size);
  const f = F.sy_member_key.fields;
  b.writeUInt32LE(setId, f.set_id.offset);
  b.writeUInt16BE(port, f.port.offset);
  addr.copy(b, f.addr.offset);
  return b;
}

export function decodeMemberKey(b: Buffer): { setId: number; addr: Buffer; port: number } {
  const f = F.sy_member_key.fields;
  return {
    setId: b.readUInt32LE(f.set_id.offset),
    addr: Buffer.from(b.subarray(f.addr.offset, f.addr.offset + 16)),
    port: b.readUInt16BE(f.port.offset),
  };
}

export function encodeDeadKey(addr: Buffer, port: number): Buffer {
  const b = Buffer.alloc(F.sy_dead_key.size);
  addr.copy(b, F.sy_dead_key.fields.addr.offset);
  b.writeUInt16BE(port, F.sy_dead_key.fields.port.offset);
  return b;
}

export function encodeSkipKey(svcId: number, cgroupId: bigint): Buffer {
  const b = Buffer.alloc(F.sy_skip_key.size);
  b.writeUInt32LE(svcId, F.sy_skip_key.fields.svc_id.offset);
  b.writeBigUInt64LE(cgroupId, F.sy_skip_key.fields.cgroup_id.offset);
  return b;
}

export function decodeSkipKey(b: Buffer): { svcId: number; cgroupId: bigint } {
  return {
    svcId: b.readUInt32LE(F.sy_skip_key.fields.svc_id.offset),
    cgroupId: b.readBigUInt64LE(F.sy_skip_key.fields.cgroup_id.offset),
  };
}

export function encodeU32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
}

/** the longest name `sy_svc_names` holds whole (one byte stays for the terminating NUL) */
const NAME_MAX_BYTES = SY_NAME_LEN - 1;
/** "~" and 16 hex digits of the name's SHA-256 */
const NAME_HASH_CHARS = 17;

/**
 * Pure: the form a service name takes in `sy_svc_names`, and so on read-back.
 * A name that fits is stored whole; a longer one is cut at a character
 * boundary and ends with "~" and a hash of the whole name, so the same name
 * always reads back the same (the planner compares this form: the Service
 * keeps its id, and its affinity, across resyncs) and two long names that
 * share a prefix stay apart.
 */
export function storedServiceName(name: string): string {
  // fast path: 85 UTF-16 units are at most 255 UTF-8 bytes
  if (name.length * 3 <= NAME_MAX_BYTES || Buffer.byteLength(name) <= NAME_MAX_BYTES) return name;
  const hash = createHash("sha256")
    .update(name)
    .digest("hex")
    .slice(0, NAME_HASH_CHARS - 1);
  const room = NAME_MAX_BYTES - NAME_HASH_CHARS;
  let prefix = "";
  let bytes = 0;
  for (const ch of name) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > room) break;
    prefix += ch;
    bytes += n;
  }
  return `${prefix}~${hash}`;
}

/** `name` in the form `storedServiceName` gives it, NUL-terminated */
export function encodeSvcName(name: string): Buffer {
  const b = Buffer.alloc(SY_NAME_LEN);
  b.write(storedServiceName(name), 0, "utf8");
  return b;
}

export function decodeSvcName(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString("utf8");
}

export type Settings = { eventsOn: boolean; sampleOneIn: number };

export function encodeSettings(s: Settings): Buffer {
  const b = Buffer.alloc(F.sy_settings.size);
  b.writeUInt32LE(s.eventsOn ? SY_SETTINGS_EVENTS_ON : 0, F.sy_settings.fields.flags.offset);
  b.writeUInt32LE(s.sampleOneIn, F.sy_settings.fields.sample_one_in.offset);
  return b;
}

export function decodeSettings(b: Buffer): Settings {
  return {
    eventsOn: (b.readUInt32LE(F.sy_settings.fields.flags.offset) & SY_SETTINGS_EVENTS_ON) !== 0,
    sampleOneIn: b.readUInt32LE(F.sy_settings.fields.sample_one_in.offset),
  };
}

export type RawEvent = {
  tsNs: bigint;
  cgroupId: bigint;
  pid: number;
  tid: number;
  svcId: number;
  origAddr: Buffer;
  origPort: number;
  natAddr: Buffer;
  natPort: number;
  family: number;
  proto: number;
  hook: number;
  natType: number;
  natMode: number;
  success: boolean;
  failureCode: number;
  /** enum sy_fallback */
  fallback: number;
  /** operations the event stands for: an unconnected UDP flow's datagrams since its last event; 1 for a connect */
  count: number;
};

export function decodeEvent(b: Buffer): RawEvent {
  const f = F.sy_event.fields;
  const pidTgid = b.readBigUInt64LE(f.pid_tgid.offset);
  return {
    tsNs: b.readBigUInt64LE(f.ts_ns.offset),
    cgroupId: b.readBigUInt64LE(f.cgroup_id.offset),
    pid: Number(pidTgid >> 32n),
    tid: Number(pidTgid & 0xffffffffn),
    svcId: b.readUInt32LE(f.svc_id.offset),
    origAddr: Buffer.from(b.subarray(f.orig_addr.offset, f.orig_addr.offset + 16)),
    origPort: b.readUInt16BE(f.orig_port.offset),
    natAddr: Buffer.from(b.subarray(f.nat_addr.offset, f.nat_addr.offset + 16)),
    natPort: b.readUInt16BE(f.nat_port.offset),
    family: b.readUInt8(f.family.offset),
    proto: b.readUInt8(f.proto.offset),
    hook: b.readUInt8(f.hook.offset),
    natType: b.readUInt8(f.nat_type.offset),
    natMode: b.readUInt8(f.nat_mode.offset),
    success: b.readUInt8(f.success.offset) !== 0,
    failureCode: b.readUInt16LE(f.failure_code.offset),
    fallback: b.readUInt8(f.fallback.offset),
    // a build before the field wrote 0 there: one event per operation
    count: Math.max(1, b.readUInt32LE(f.count.offset)),
  };
}
