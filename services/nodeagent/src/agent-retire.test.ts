/**
 * Old backend sets retired off the main thread: a plan that replaces a
 * set flips the frontend at once and leaves the old set's deletion to a
 * grace period run off the main thread (here a test grace period the test
 * ends by hand). One endpoint change makes no blocking wait; until the
 * deletion lands the old set's id is taken, a resync neither deletes it again
 * nor calls it drift, and an agent stopped before then leaves an orphan the
 * next start's full plan removes.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setImmediate as turn } from "node:timers/promises";
import { silentLogger } from "@switchyard/lib/log";
import { StreamAssignmentsResponse } from "@switchyard/proto/assignment";
import { AgentCore } from "./agent.ts";
import { FakeMaps } from "./bpf/maps.ts";
import { ReaderGrace } from "./bpf/reader-grace.ts";
import { complete, eps, resolved, svc } from "./testing/assignments.ts";

/** FakeMaps guarded by the real ReaderGrace over a grace period the test ends (`endGrace`). */
function agent(maps = new FakeMaps()) {
  const settles: Array<(ok: boolean) => void> = [];
  let blocking = 0;
  const grace = new ReaderGrace({
    kind: "test",
    wait: () => {
      blocking++;
    },
    settle: (done) => settles.push(done),
  });
  maps.readers = grace;
  const core = new AgentCore(maps, "node-1", [], silentLogger());
  /** ends every grace period under way (and those they start), then lets the callbacks' turn pass */
  const endGrace = async () => {
    await turn();
    while (settles.length > 0) settles.shift()!(true);
    await turn();
  };
  return { maps, core, grace, endGrace, blocking: () => blocking };
}

describe("AgentCore: old backend sets are retired after a grace period, off the main thread", () => {
  it("one endpoint change waits for no grace period on the main thread; the old set goes once one has passed", async () => {
    const { maps, core, endGrace } = agent();
    assert.deepEqual(core.onDelta(complete([svc("a", "10.96.0.1"), eps("a", ["10.64.0.1"])])), []);
    await endGrace();
    const first = [...maps.state.backendSets.keys()];

    assert.deepEqual(core.onDelta(complete([eps("a", ["10.64.0.2"])])), []);
    assert.equal(core.graceWaitsBlocking, 0, "no blocking grace period for one endpoint change");
    assert.deepEqual(resolved(maps.state), { "10.96.0.1": ["10.64.0.2"] }, "flipped at once");
    assert.equal(maps.state.backendSets.size, 2, "the old set is still in the maps");
    assert.equal(core.retiringSetCount, 1);

    // another change before the grace period ended: still no wait, and the retiring id is not reused
    assert.deepEqual(core.onDelta(complete([eps("a", ["10.64.0.3"])])), []);
    assert.equal(core.graceWaitsBlocking, 0);
    const live = [...maps.state.frontends.values()][0]!.value.setId;
    assert.ok(!first.includes(live), "a retiring set's id is taken");
    assert.equal(new Set(maps.state.backendSets.keys()).size, 3);

    await endGrace();
    assert.deepEqual([...maps.state.backendSets.keys()], [live], "the retired sets were deleted");
    assert.equal(core.retiringSetCount, 0);
    assert.equal(maps.state.members?.size, 1, "their sy_members entries too");

    // after the deletions landed, a change reuses their elements without a wait
    assert.deepEqual(core.onDelta(complete([eps("a", ["10.64.0.4", "10.64.0.5"])])), []);
    assert.equal(core.graceWaitsBlocking, 0);
    await endGrace();
    assert.deepEqual(resolved(maps.state), { "10.96.0.1": ["10.64.0.4", "10.64.0.5"] });
    assert.equal(maps.state.backendSets.size, 1);
    core.stop();
  });

  it("a resync during a retirement plans nothing for the retiring set and finds no drift", async () => {
    const { maps, core, endGrace } = agent();
    core.onDelta(complete([svc("a", "10.96.0.1"), eps("a", ["10.64.0.1"]), svc("b", "10.96.0.2")]));
    await endGrace();
    core.onDelta(complete([eps("a", ["10.64.0.2"])]));
    const writes = maps.writes;
    assert.equal(core.resync(), 0, "nothing to repair");
    assert.equal(maps.writes, writes, "nothing written");
    assert.equal(maps.state.backendSets.size, 2, "the retiring set is still there, deleted once");
    await endGrace();
    assert.equal(maps.state.backendSets.size, 1);
    assert.equal(core.resync(), 0);
    core.stop();
  });

  it("a Service removed: its frontend goes at once, its set after the grace period", async () => {
    const { maps, core, endGrace } = agent();
    core.onDelta(complete([svc("a", "10.96.0.1"), eps("a", ["10.64.0.1"]), svc("b", "10.96.0.2")]));
    await endGrace();
    core.onDelta(
      StreamAssignmentsResponse.fromPartial({
        nonce: "n",
        removedResources: ["svc/c/ns/a", "eps/c/ns/a"],
        viewComplete: true,
      }),
    );
    assert.deepEqual(Object.keys(resolved(maps.state)), ["10.96.0.2"]);
    assert.equal(maps.state.backendSets.size, 1);
    assert.equal(core.graceWaitsBlocking, 0);
    await endGrace();
    assert.equal(maps.state.backendSets.size, 0);
    core.stop();
  });

  it("an agent stopped before the deletions landed leaves an orphan set; the next start's full plan retires it", async () => {
    const maps = new FakeMaps();
    const one = agent(maps);
    one.core.onDelta(complete([svc("a", "10.96.0.1"), eps("a", ["10.64.0.1"])]));
    await one.endGrace();
    one.core.onDelta(complete([eps("a", ["10.64.0.2"])]));
    one.core.stop();
    await one.endGrace();
    assert.equal(maps.state.backendSets.size, 2, "a stopped agent writes nothing more");

    const two = agent(maps);
    assert.deepEqual(two.core.onDelta(complete([svc("a", "10.96.0.1"), eps("a", ["10.64.0.2"])])), []);
    assert.equal(two.core.retiringSetCount, 1, "the orphan is retired like any unlinked set");
    await two.endGrace();
    assert.deepEqual(resolved(maps.state), { "10.96.0.1": ["10.64.0.2"] });
    assert.equal(maps.state.backendSets.size, 1);
    assert.equal(maps.state.members?.size, 1);
    assert.equal(two.core.graceWaitsBlocking, 0);
    two.core.stop();
  });

  it("a full backend map while sets retire: they are deleted at once (one counted wait) and the change lands", async () => {
    const maps = new FakeMaps();
    const entries = () => [...maps.state.backendSets.values()].reduce((n, s) => n + s.length, 0);
    maps.rejects = (o) => (o.op === "put-backend" && entries() >= 3 ? "sy_backends: map full" : undefined);
    const { core, endGrace } = agent(maps);
    core.onDelta(complete([svc("a", "10.96.0.1"), eps("a", ["10.64.0.1", "10.64.0.2"])]));
    await endGrace();
    assert.deepEqual(core.onDelta(complete([eps("a", ["10.64.0.3"])])), []);
    assert.equal(core.graceWaitsBlocking, 0);
    // 3 entries held (2 retiring): the next set fits only once the retiring one is gone
    assert.deepEqual(core.onDelta(complete([eps("a", ["10.64.0.4", "10.64.0.5"])])), []);
    assert.deepEqual(resolved(maps.state), { "10.96.0.1": ["10.64.0.4", "10.64.0.5"] });
    assert.equal(core.graceWaitsBlocking, 1, "the fallback is counted");
    assert.equal(core.retries.size, 0);
    core.stop();
  });
});
