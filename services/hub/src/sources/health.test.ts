import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import { HEALTHY, World } from "../model/world.ts";
import { type Clock, ClusterHealthTracker } from "./health.ts";

/** A clock whose timers fire only when the test says so. */
function manualClock() {
  let now = 1_000;
  const timers = new Map<number, { at: number; fn: () => void }>();
  let seq = 0;
  const clock: Clock = {
    now: () => now,
    setTimeout: (fn, ms) => {
      timers.set(++seq, { at: now + ms, fn });
      return seq;
    },
    clearTimeout: (t) => void timers.delete(t as number),
  };
  const advance = (ms: number) => {
    now += ms;
    for (const [id, t] of [...timers]) {
      if (t.at <= now) {
        timers.delete(id);
        t.fn();
      }
    }
  };
  return { clock, advance, pending: () => timers.size };
}

describe("cluster health", () => {
  it("goes stale at once, withdrawn after the grace, healthy again on recovery", () => {
    const world = new World();
    world.cluster("west");
    const changes: string[] = [];
    world.onChange(
      (_c, ch) => ch?.kind === "Cluster" && changes.push(JSON.stringify(world.cluster("west").health)),
    );
    const { clock, advance } = manualClock();
    const t = new ClusterHealthTracker(world, 60_000, silentLogger(), clock);
    t.report("west", false, "connection refused");
    assert.deepEqual(world.cluster("west").health, {
      stale: true,
      withdrawn: false,
      staleSince: 1_000,
      reason: "connection refused",
    });
    t.report("west", false, "still refused");
    assert.equal(changes.length, 1, "a second failure changes nothing");
    advance(59_999);
    assert.equal(world.cluster("west").health.withdrawn, false, "not before the grace is over");
    advance(1);
    assert.equal(world.cluster("west").health.withdrawn, true);
    t.report("west", true);
    assert.deepEqual(world.cluster("west").health, {
      stale: false,
      withdrawn: false,
      staleSince: undefined,
      reason: undefined,
    });
    assert.equal(changes.length, 3);
  });

  it("recovering within the grace never withdraws, and a removed cluster is not brought back", () => {
    const world = new World();
    world.cluster("west");
    const { clock, advance, pending } = manualClock();
    const t = new ClusterHealthTracker(world, 60_000, silentLogger(), clock);
    t.report("west", false, "timeout");
    t.report("west", true);
    assert.equal(pending(), 0, "the withdrawal timer is cancelled");
    advance(120_000);
    assert.equal(world.cluster("west").health.withdrawn, false);
    world.removeCluster("west");
    t.report("west", false, "late report from a stopped source");
    assert.equal(world.clusters.has("west"), false);
  });

  it("counts the grace of a cluster restored from its last known state from when it was last seen", () => {
    const world = new World();
    world.cluster("west");
    const { clock, advance } = manualClock(); // now = 1_000
    const t = new ClusterHealthTracker(world, 60_000, silentLogger(), clock);
    advance(100_000); // now = 101_000; the record says west was last seen at 51_000
    t.track("west", 51_000);
    t.report("west", false, "connection refused");
    assert.equal(
      world.cluster("west").health.staleSince,
      51_000,
      "stale since it was last seen, not since the start",
    );
    advance(9_999);
    assert.equal(world.cluster("west").health.withdrawn, false);
    advance(1);
    assert.equal(world.cluster("west").health.withdrawn, true, "60 s after it was last seen");
  });

  it("withdraws at once a cluster whose last sighting is older than the grace", () => {
    const world = new World();
    world.cluster("west");
    const { clock, advance } = manualClock();
    advance(1_000_000);
    const t = new ClusterHealthTracker(world, 60_000, silentLogger(), clock);
    t.track("west", 1_000);
    assert.deepEqual(world.cluster("west").health, {
      stale: true,
      withdrawn: true,
      staleSince: 1_000,
      reason: "not seen within the grace period",
    });
  });

  it("withdraws an unseen cluster after the grace from the start even if its source reports nothing", () => {
    const world = new World();
    world.cluster("west");
    const { clock, advance } = manualClock();
    const t = new ClusterHealthTracker(world, 60_000, silentLogger(), clock);
    t.track("west");
    advance(59_999);
    assert.equal(world.cluster("west").health.stale, false);
    advance(1);
    assert.equal(world.cluster("west").health.withdrawn, true);
    assert.equal(world.cluster("west").health.staleSince, 1_000);
    // listed at last: seen, healthy
    t.synced("west");
    assert.deepEqual(world.cluster("west").health, HEALTHY);
  });

  it("a listing in time cancels the withdrawal; reachable without a listing is not seen", () => {
    const world = new World();
    world.cluster("west");
    const { clock, advance, pending } = manualClock();
    const t = new ClusterHealthTracker(world, 60_000, silentLogger(), clock);
    t.track("west");
    t.report("west", false, "refused");
    t.report("west", true);
    assert.equal(world.cluster("west").health.stale, true, "answering probes is not being listed");
    t.synced("west");
    assert.equal(world.cluster("west").health.stale, false);
    assert.equal(pending(), 0);
    advance(120_000);
    assert.equal(world.cluster("west").health.withdrawn, false);
  });

  it("a new grace (config reload) applies to clusters waiting for theirs", () => {
    const world = new World();
    world.cluster("west");
    const { clock, advance } = manualClock();
    const t = new ClusterHealthTracker(world, 3_600_000, silentLogger(), clock);
    t.report("west", false, "refused");
    advance(10_000);
    assert.equal(world.cluster("west").health.withdrawn, false);
    t.graceMs = 5_000;
    assert.equal(world.cluster("west").health.withdrawn, true, "stale for 10 s, grace now 5 s: withdrawn");
    world.cluster("east");
    t.track("east");
    t.graceMs = 10_000;
    advance(9_999);
    assert.equal(world.cluster("east").health.withdrawn, false);
    advance(1);
    assert.equal(
      world.cluster("east").health.withdrawn,
      true,
      "10 s after it was first watched, whenever the grace changed",
    );
  });
});
