/**
 * Byte layout of the structs in bpf/include/switchyard.h, as user space
 * writes and reads them. `layout.test.ts` checks every size and offset here
 * against the BTF of the compiled object, so a change on one side fails CI.
 */

export type FieldLayout = { offset: number; size: number };
export type StructLayout = { size: number; fields: Record<string, FieldLayout> };

export const LAYOUT = {
  sy_frontend_key: {
    size: 20,
    fields: {
      addr: { offset: 0, size: 16 },
      port: { offset: 16, size: 2 },
      proto: { offset: 18, size: 1 },
      pad: { offset: 19, size: 1 },
    },
  },
  sy_frontend: {
    size: 16,
    fields: {
      svc_id: { offset: 0, size: 4 },
      set_id: { offset: 4, size: 4 },
      count: { offset: 8, size: 4 },
      nat_type: { offset: 12, size: 1 },
      nat_mode: { offset: 13, size: 1 },
      flags: { offset: 14, size: 2 },
    },
  },
  sy_backend_key: { size: 8, fields: { set_id: { offset: 0, size: 4 }, index: { offset: 4, size: 4 } } },
  sy_backend: {
    size: 20,
    fields: { addr: { offset: 0, size: 16 }, port: { offset: 16, size: 2 }, pad: { offset: 18, size: 2 } },
  },
  sy_svc_name: { size: 128, fields: { name: { offset: 0, size: 128 } } },
  sy_settings: { size: 8, fields: { flags: { offset: 0, size: 4 }, pad: { offset: 4, size: 4 } } },
  sy_event: {
    size: 72,
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
    },
  },
} as const satisfies Record<string, StructLayout>;

export const SY_NAME_LEN = 128;
export const SY_SETTINGS_EVENTS_ON = 1;
export const COUNTER_NAMES = ["translated", "miss", "failed", "events_dropped"] as const;

export const NatType = { service: 1, localRedirect: 2, balancing: 3 } as const;
export const NatMode = { clusterIp: 1, nodePort: 2, loadBalancer: 3, externalIp: 4 } as const;
export const Hook = { connect4: 1, connect6: 2, sendmsg4: 3, sendmsg6: 4 } as const;
export const FailureCode = { none: 0, noBackend: 1, backendMissing: 2 } as const;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export function nameOf<T extends Record<string, number>>(table: T, value: number): string {
  for (const [k, v] of Object.entries(table)) if (v === value) return k;
  return `unknown(${value})`;
}

// --- codecs: user space holds ports in host order; maps hold network order ---

export type FrontendKey = { addr: Buffer; port: number; proto: number };
export type FrontendValue = {
  svcId: number;
  setId: number;
  count: number;
  natType: number;
  natMode: number;
  flags: number;
};
export type BackendKey = { setId: number; index: number };
export type BackendValue = { addr: Buffer; port: number };

const F = LAYOUT;

export function encodeFrontendKey(k: FrontendKey): Buffer {
  const b = Buffer.alloc(F.sy_frontend_key.size);
  k.addr.copy(b, F.sy_frontend_key.fields.addr.offset);
  b.writeUInt16BE(k.port, F.sy_frontend_key.fields.port.offset);
  b.writeUInt8(k.proto, F.sy_frontend_key.fields.proto.offset);
  return b;
}

export function decodeFrontendKey(b: Buffer): FrontendKey {
  const f = F.sy_frontend_key.fields;
  return {
    addr: Buffer.from(b.subarray(f.addr.offset, f.addr.offset + 16)),
    port: b.readUInt16BE(f.port.offset),
    proto: b.readUInt8(f.proto.offset),
  };
}

export function encodeFrontend(v: FrontendValue): Buffer {
  const b = Buffer.alloc(F.sy_frontend.size);
  const f = F.sy_frontend.fields;
  b.writeUInt32LE(v.svcId, f.svc_id.offset);
  b.writeUInt32LE(v.setId, f.set_id.offset);
  b.writeUInt32LE(v.count, f.count.offset);
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

export function encodeU32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
}

export function encodeSvcName(name: string): Buffer {
  const b = Buffer.alloc(SY_NAME_LEN);
  b.write(name.slice(0, SY_NAME_LEN - 1), 0, "utf8");
  return b;
}

export function decodeSvcName(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString("utf8");
}

export function encodeSettings(flags: number): Buffer {
  const b = Buffer.alloc(F.sy_settings.size);
  b.writeUInt32LE(flags, F.sy_settings.fields.flags.offset);
  return b;
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
  };
}
