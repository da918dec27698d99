import assert from "node:assert/strict";
import { describe, it, mock } from "node:test";
import { Worker } from "node:worker_threads";
import { logRefusalSummaries, REFUSAL_REASONS, RefusalCounts, sessionErrorReason } from "./refusals.ts";

describe("refusal counts", () => {
  it("names nghttp2's session errors (what node:http2 reports for its GOAWAYs)", () => {
    const err = (message: string) => Object.assign(new Error(message), { code: "ERR_HTTP2_ERROR" });
    assert.equal(
      sessionErrorReason(err("Flooding was detected in this HTTP/2 session, and it must be closed")),
      "flood",
    );
    assert.equal(
      sessionErrorReason(err("Too many CONTINUATION frames following a HEADER frame")),
      "continuation-flood",
    );
    assert.equal(sessionErrorReason(err("Protocol error")), "protocol-error");
    assert.equal(sessionErrorReason(err("something else")), "h2-error");
    assert.equal(sessionErrorReason(undefined), "h2-error");
  });

  it("sums what every thread counts into the shared buffer", async () => {
    const shared = RefusalCounts.createShared();
    const counts = new RefusalCounts(shared);
    counts.add("source-cap");
    const w = new Worker(
      `const { workerData, parentPort } = require("node:worker_threads");
       const a = new BigInt64Array(workerData.shared);
       for (let i = 0; i < 5; i++) Atomics.add(a, workerData.slot, 1n);
       parentPort.postMessage("done");`,
      { eval: true, workerData: { shared, slot: REFUSAL_REASONS.indexOf("source-cap") } },
    );
    await new Promise((r) => w.once("message", r));
    await w.terminate();
    const t = counts.totals();
    assert.equal(t.get("source-cap"), 6);
    assert.equal(t.get("total-cap"), 0);
  });

  it("logs a summary at most once per interval, and nothing when none were refused", () => {
    mock.timers.enable({ apis: ["setInterval"] });
    try {
      const counts = new RefusalCounts();
      const lines: Array<Record<string, unknown>> = [];
      const stop = logRefusalSummaries(
        () => counts.totals(),
        (f) => lines.push(f),
        10_000,
      );
      for (let i = 0; i < 1000; i++) counts.add("handshake-timeout");
      counts.add("flood");
      mock.timers.tick(10_000);
      assert.equal(lines.length, 1);
      assert.deepEqual(lines[0]!.refused, { "handshake-timeout": 1000, flood: 1 });
      mock.timers.tick(10_000);
      assert.equal(lines.length, 1, "no line when nothing new was refused");
      stop();
    } finally {
      mock.timers.reset();
    }
  });
});
