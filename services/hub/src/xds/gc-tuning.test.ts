import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import { EXTERNAL_MEMORY_IN_GLOBAL_LIMIT } from "./gc-tuning.ts";

/**
 * Full collections while a process with a 100 MB heap sends 1.4 GB of
 * 70 KB buffers (what a cold start of 1,000 agents looks like to V8), in a
 * fresh process with or without the flag the hub sets.
 */
function majorCollections(flag: string | undefined): number {
  const script = `
    import v8 from "node:v8";
    import { PerformanceObserver, constants } from "node:perf_hooks";
    ${flag ? `v8.setFlagsFromString(${JSON.stringify(flag)});` : ""}
    let majors = 0;
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++;
    }).observe({ entryTypes: ["gc"] });
    globalThis.world = Array.from({ length: 1_000_000 }, (_, i) => ({ name: "svc/c/ns/" + i, version: i }));
    await new Promise((r) => setTimeout(r, 10));
    const before = majors;
    const inFlight = [];
    for (let i = 0; i < 20_000; i++) {
      inFlight.push(Buffer.allocUnsafe(70_000).fill(i & 255));
      if (inFlight.length > 100) inFlight.shift();
    }
    await new Promise((r) => setTimeout(r, 10));
    process.stdout.write(String(majors - before));
  `;
  return Number(execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" }));
}

describe("GC tuning for streaming", () => {
  it("keeps V8 from a full collection per 64 MB of sent buffers", () => {
    const untuned = majorCollections(undefined);
    const tuned = majorCollections(EXTERNAL_MEMORY_IN_GLOBAL_LIMIT);
    assert.ok(untuned >= 10, `the untuned process should collect often (${untuned} full collections)`);
    assert.ok(tuned * 3 <= untuned, `tuned: ${tuned} full collections, untuned: ${untuned}`);
  });
});
