/**
 * The kernel's own counters of each attached program: `run_cnt` and
 * `run_time_ns` from `struct bpf_prog_info` (BPF_OBJ_GET_INFO_BY_FD). The
 * kernel counts them only while statistics are on: `enableKernelStats()`
 * turns them on for as long as its handle is open (BPF_ENABLE_STATS, the
 * same switch as `kernel.bpf_stats_enabled`, but reference-counted and
 * closed by the kernel if the process dies, so nothing is left on).
 */
import { SwitchyardError } from "@switchyard/lib/errors";
import { errnoName, ffi } from "./libbpf.ts";

export type ProgStats = { runCnt: bigint; runTimeNs: bigint };

/** bytes of `struct bpf_prog_info` up to and including `run_cnt` */
export const BPF_PROG_INFO_SIZE = 208;
const RUN_TIME_NS_OFFSET = 192;
const RUN_CNT_OFFSET = 200;
/** enum bpf_stats_type */
const BPF_STATS_RUN_TIME = 0;

/** Pure: the counters in a `struct bpf_prog_info` the kernel filled `len` bytes of (0 when it predates them). */
export function parseProgStats(info: Buffer, len: number): ProgStats {
  if (len < RUN_CNT_OFFSET + 8) return { runCnt: 0n, runTimeNs: 0n };
  return {
    runCnt: info.readBigUInt64LE(RUN_CNT_OFFSET),
    runTimeNs: info.readBigUInt64LE(RUN_TIME_NS_OFFSET),
  };
}

/** Reads one program's counters by its fd. */
export function readProgStats(progFd: number): ProgStats {
  const info = Buffer.alloc(BPF_PROG_INFO_SIZE);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(info.length, 0);
  const rc = ffi.objGetInfoByFd(progFd, info, len) as number;
  if (rc < 0)
    throw new SwitchyardError("bpf", `reading program info of fd ${progFd} failed: ${errnoName(-rc)}`);
  return parseProgStats(info, len.readUInt32LE(0));
}

/** Pure: ns per run between two readings (undefined when the program did not run). */
export function nsPerRun(before: ProgStats, after: ProgStats): number | undefined {
  const runs = after.runCnt - before.runCnt;
  if (runs <= 0n) return undefined;
  return Number(after.runTimeNs - before.runTimeNs) / Number(runs);
}

/** Turns the kernel's program statistics on until the returned function is called. */
export function enableKernelStats(): () => void {
  const fd = ffi.enableStats(BPF_STATS_RUN_TIME) as number;
  if (fd < 0) throw new SwitchyardError("bpf", `turning on BPF program statistics failed: ${errnoName(-fd)}`);
  return () => void ffi.close_fd(fd);
}
