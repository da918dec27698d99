/** What every benchmark reports the same way. */
import os from "node:os";

/** Nearest-rank percentile: the smallest value with at least p % of the values at or below it (p99 of 100 samples is the 99th, not the worst). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) throw new Error("percentile of no samples");
  return [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil((xs.length * p) / 100) - 1)]!;
}

/** The machine a result was measured on: cores, CPU model, memory, kernel, architecture. */
export function machine(): string {
  return `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, kernel ${os.release()}, ${os.arch()}`;
}
