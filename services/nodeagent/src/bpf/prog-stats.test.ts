import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BPF_PROG_INFO_SIZE, nsPerRun, parseProgStats } from "./prog-stats.ts";

describe("program run counters", () => {
  it("are read from struct bpf_prog_info (run_time_ns at 192, run_cnt at 200)", () => {
    const info = Buffer.alloc(BPF_PROG_INFO_SIZE);
    info.writeBigUInt64LE(9000n, 192);
    info.writeBigUInt64LE(30n, 200);
    assert.deepEqual(parseProgStats(info, BPF_PROG_INFO_SIZE), { runCnt: 30n, runTimeNs: 9000n });
  });
  it("count as zero on a kernel whose bpf_prog_info ends before them", () => {
    assert.deepEqual(parseProgStats(Buffer.alloc(BPF_PROG_INFO_SIZE), 192), { runCnt: 0n, runTimeNs: 0n });
  });
  it("give ns per run between two readings, none when the program did not run", () => {
    assert.equal(nsPerRun({ runCnt: 10n, runTimeNs: 1000n }, { runCnt: 20n, runTimeNs: 4000n }), 300);
    assert.equal(nsPerRun({ runCnt: 10n, runTimeNs: 1000n }, { runCnt: 10n, runTimeNs: 1000n }), undefined);
  });
});
