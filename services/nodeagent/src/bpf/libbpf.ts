/**
 * Thin FFI binding to the system libbpf (libbpf.so.1) through koffi.
 * Only this file knows C signatures; everything returns numbers/pointers and
 * errors become SwitchyardError("bpf") with the libbpf call and errno named.
 */

import { SwitchyardError } from "@switchyard/lib/errors";
import type { Logger } from "@switchyard/lib/log";
import koffi from "koffi";

export type Ptr = unknown;

const lib = koffi.load("libbpf.so.1");
const libc = koffi.load("libc.so.6");

const printFnProto = koffi.proto("int sy_libbpf_print_fn(int level, const char *fmt, void *args)");

export const ffi = {
  openFile: lib.func("void *bpf_object__open_file(const char *path, void *opts)"),
  load: lib.func("int bpf_object__load(void *obj)"),
  close: lib.func("void bpf_object__close(void *obj)"),
  findProgram: lib.func("void *bpf_object__find_program_by_name(void *obj, const char *name)"),
  programFd: lib.func("int bpf_program__fd(void *prog)"),
  /** BPF_ENABLE_STATS: run_cnt/run_time_ns counted while the returned fd is open */
  enableStats: lib.func("int bpf_enable_stats(int type)"),
  findMap: lib.func("void *bpf_object__find_map_by_name(void *obj, const char *name)"),
  mapFd: lib.func("int bpf_map__fd(void *map)"),
  mapSetPinPath: lib.func("int bpf_map__set_pin_path(void *map, const char *path)"),
  mapSetMaxEntries: lib.func("int bpf_map__set_max_entries(void *map, uint32_t max)"),
  mapType: lib.func("int bpf_map__type(void *map)"),
  mapKeySize: lib.func("uint32_t bpf_map__key_size(void *map)"),
  mapValueSize: lib.func("uint32_t bpf_map__value_size(void *map)"),
  mapMaxEntries: lib.func("uint32_t bpf_map__max_entries(void *map)"),
  mapFlags: lib.func("uint32_t bpf_map__map_flags(void *map)"),
  mapExtra: lib.func("uint64_t bpf_map__map_extra(void *map)"),
  /** info_len: a 4-byte buffer, in: room in info, out: bytes the kernel filled */
  objGetInfoByFd: lib.func("int bpf_obj_get_info_by_fd(int fd, void *info, void *info_len)"),
  attachCgroup: lib.func("void *bpf_program__attach_cgroup(void *prog, int cgroup_fd)"),
  linkPin: lib.func("int bpf_link__pin(void *link, const char *path)"),
  linkOpen: lib.func("void *bpf_link__open(const char *path)"),
  linkUpdateProgram: lib.func("int bpf_link__update_program(void *link, void *prog)"),
  linkDestroy: lib.func("int bpf_link__destroy(void *link)"),
  linkDisconnect: lib.func("void bpf_link__disconnect(void *link)"),
  libbpfGetError: lib.func("long libbpf_get_error(void *ptr)"),
  mapUpdate: lib.func("int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)"),
  mapLookup: lib.func("int bpf_map_lookup_elem(int fd, const void *key, _Out_ void *value)"),
  mapDelete: lib.func("int bpf_map_delete_elem(int fd, const void *key)"),
  mapGetNextKey: lib.func("int bpf_map_get_next_key(int fd, const void *key, _Out_ void *next)"),
  /** count: a 4-byte buffer, in: room in keys/values, out: entries read; ENOENT once the map is done */
  mapLookupBatch: lib.func(
    "int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, void *count, void *opts)",
  ),
  objGet: lib.func("int bpf_obj_get(const char *path)"),
  setAutoload: lib.func("int bpf_program__set_autoload(void *prog, bool autoload)"),
  attachIter: lib.func("void *bpf_program__attach_iter(void *prog, void *opts)"),
  linkFd: lib.func("int bpf_link__fd(void *link)"),
  iterCreate: lib.func("int bpf_iter_create(int link_fd)"),
  setns: libc.func("int setns(int fd, int nstype)"),
  setPrint: lib.func("void *libbpf_set_print(sy_libbpf_print_fn *fn)"),
  vsnprintf: libc.func("int vsnprintf(_Out_ uint8_t *buf, size_t size, const char *fmt, void *args)"),
  close_fd: libc.func("int close(int fd)"),
};

/**
 * bpf/build/libsyring.so (bpf/ringdrain.c, built with the BPF object):
 * drains the events ring buffer into one buffer per call.
 */
export function loadRingDrain(libPath: string) {
  const ring = koffi.load(libPath);
  return {
    open: ring.func("void *sy_ring_new(int map_fd)"),
    drain: ring.func("long sy_ring_drain(void *r, uint8_t *out, size_t cap)"),
    epollFd: ring.func("int sy_ring_epoll_fd(void *r)"),
    lost: ring.func("uint64_t sy_ring_lost(void *r)"),
    free: ring.func("void sy_ring_free(void *r)"),
  };
}

export { koffi };

export function errnoNow(): number {
  return koffi.errno();
}

/** libbpf returns NULL and sets errno (libbpf 1.x strict mode) for pointer-returning calls. */
export function checkPtr(p: Ptr, what: string): Ptr {
  if (p === null || p === undefined || p === 0 || p === 0n) {
    const e = errnoNow();
    throw new SwitchyardError("bpf", `${what} failed: errno ${e}`);
  }
  return p;
}

/** libbpf int calls return a negative errno. */
export function checkRc(rc: number, what: string): number {
  if (rc < 0) throw new SwitchyardError("bpf", `${what} failed: ${errnoName(-rc)} (errno ${-rc})`);
  return rc;
}

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  7: "E2BIG",
  12: "ENOMEM",
  13: "EACCES",
  16: "EBUSY",
  17: "EEXIST",
  22: "EINVAL",
  28: "ENOSPC",
  95: "EOPNOTSUPP",
};

export function errnoName(e: number): string {
  return ERRNO_NAMES[e] ?? `errno ${e}`;
}

let printCb: unknown;
/** Route libbpf's own messages (verifier logs included) into pino. */
export function routeLibbpfLogs(log: Logger): void {
  if (printCb) return;
  const buf = Buffer.alloc(65536);
  printCb = koffi.register((level: number, fmt: string, args: unknown) => {
    const n = ffi.vsnprintf(buf, buf.length, fmt, args) as number;
    const text = buf
      .subarray(0, Math.max(0, Math.min(n, buf.length - 1)))
      .toString("utf8")
      .trimEnd();
    if (level === 0) log.warn({ libbpf: text }, "libbpf");
    else if (level === 1) log.info({ libbpf: text }, "libbpf");
    else log.debug({ libbpf: text }, "libbpf");
    return 0;
  }, koffi.pointer(printFnProto));
  ffi.setPrint(printCb);
}
