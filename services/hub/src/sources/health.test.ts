import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import { World } from "../model/world.ts";
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
});
