import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConvergenceTracker } from "./convergence.ts";

describe("ConvergenceTracker", () => {
  it("reports the time from a view change to the last agent's ACK of it", () => {
    let t = 100;
    const c = new ConvergenceTracker(() => t);
    const seen: Array<[string, number, number]> = [];
    c.onConverged = (v, ms, n) => seen.push([v, ms, n]);
    c.viewChanged("east/pod", "v2", [
      { key: "a", acked: "v1" },
      { key: "b", acked: "v1" },
      { key: "c", acked: "v2" },
    ]);
    t = 130;
    c.acked("east/pod", "a", "v2");
    c.acked("east/pod", "b", "v1");
    assert.deepEqual(seen, [], "b has not acknowledged v2 yet");
    t = 175;
    c.acked("east/pod", "b", "v2");
    assert.deepEqual(seen, [["east/pod", 75, 2]]);
  });

  it("stops waiting for an agent that left, and counts a change replaced before it converged", () => {
    let t = 0;
    const c = new ConvergenceTracker(() => t);
    const seen: number[] = [];
    c.onConverged = (_v, ms) => seen.push(ms);
    c.viewChanged("v", "x1", [{ key: "a", acked: "" }]);
    c.viewChanged("v", "x2", [
      { key: "a", acked: "" },
      { key: "b", acked: "" },
    ]);
    assert.equal(c.superseded, 1);
    t = 10;
    c.acked("v", "a", "x2");
    c.gone("v", "b");
    assert.deepEqual(seen, [10]);
  });

  it("waits for an agent with resources of its own until it holds its own version", () => {
    let t = 0;
    const c = new ConvergenceTracker(() => t);
    const seen: number[] = [];
    c.onConverged = (_v, ms) => seen.push(ms);
    c.viewChanged("v", "s2", [
      { key: "a", acked: "s1" },
      { key: "b", acked: "n1", current: "n2" },
    ]);
    t = 5;
    c.acked("v", "a", "s2");
    c.acked("v", "b", "s2", "n2");
    assert.deepEqual(seen, [], "b holds the shared version, not its own");
    t = 9;
    // its node's resources changed meanwhile: it is done when it holds its version of now
    c.acked("v", "b", "n3", "n3");
    assert.deepEqual(seen, [9]);
  });
});
