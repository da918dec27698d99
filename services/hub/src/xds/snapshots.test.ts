import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import { World } from "../model/world.ts";
import { WorldWriter } from "../sources/source.ts";
import { SnapshotCache, type View } from "./snapshots.ts";

const service = (name: string, ip: string) => ({
  kind: "Service",
  metadata: { name, namespace: "ns" },
  spec: { clusterIP: ip, ports: [{ name: "http", port: 80 }] },
});

describe("SnapshotCache views", () => {
  it("drops a view no agent used for idleMs, with its listeners, and builds it again on demand", () => {
    const world = new World();
    const east = new WorldWriter(world, "east", silentLogger());
    east.upsert(service("a", "10.96.0.1"));
    let now = 1_000_000;
    const cache = new SnapshotCache(world, 0, { idleMs: 60_000, now: () => now });
    const evicted: string[] = [];
    cache.onEvict = (k) => evicted.push(k);
    const old: View = { key: "east|pod", clusters: ["east"], reach: "pod" };
    const updates: string[] = [];
    const stopAgent = cache.subscribe(old, (_s, changed) => updates.push(...changed));
    cache.subscribe(old, () => updates.push("passive"), { passive: true });
    assert.deepEqual(cache.viewKeys, ["east|pod"]);

    now += 120_000;
    assert.deepEqual(cache.sweep(), [], "a view with an agent stays, however long");
    stopAgent();
    stopAgent(); // twice is harmless
    now += 59_999;
    assert.deepEqual(cache.sweep(), [], "not before idleMs");
    now += 1;
    assert.deepEqual(cache.sweep(), ["east|pod"], "the passive listener did not keep it");
    assert.deepEqual(evicted, ["east|pod"]);
    assert.deepEqual(cache.viewKeys, []);

    // changes no longer go to the dropped view's listeners
    east.upsert(service("b", "10.96.0.2"));
    cache.flush();
    assert.deepEqual(updates, []);
    // an agent of that view comes back: built again from the world, current
    const back = cache.get(old);
    assert.ok(back.resources.has("svc/east/ns/b"));
    const stop = cache.subscribe(old, () => {});
    now += 3_600_000;
    assert.deepEqual(cache.sweep(), []);
    stop();
    cache.close();
  });

  it("drops a view nobody subscribed to (built for a status look-up only)", () => {
    const world = new World();
    new WorldWriter(world, "east", silentLogger()).upsert(service("a", "10.96.0.1"));
    let now = 0;
    const cache = new SnapshotCache(world, 0, { idleMs: 1000, now: () => now });
    cache.get({ key: "east|nodeport", clusters: ["east"], reach: "nodeport" });
    now = 1000;
    assert.deepEqual(cache.sweep(), ["east|nodeport"]);
    cache.close();
  });
});

describe("SnapshotCache updates", () => {
  it("sends the first change after a quiet window at once, then at most one update per window with everything since", () => {
    const world = new World();
    const east = new WorldWriter(world, "east", silentLogger());
    east.upsert(service("a", "10.96.0.1"));
    let now = 1_000_000;
    const timers: Array<{ fn: () => void; ms: number; cancelled: boolean }> = [];
    const cache = new SnapshotCache(world, 20, {
      now: () => now,
      schedule: (fn, ms) => {
        const t = { fn, ms, cancelled: false };
        timers.push(t);
        return () => {
          t.cancelled = true;
        };
      },
    });
    const updates: string[][] = [];
    cache.subscribe({ key: "east|pod", clusters: ["east"], reach: "pod" }, (_s, changed) =>
      updates.push([...changed].sort()),
    );
    const fire = () => {
      const t = timers.shift()!;
      assert.ok(!t.cancelled);
      t.fn();
      return t.ms;
    };

    east.upsert(service("b", "10.96.0.2"));
    assert.equal(timers.length, 1);
    assert.equal(fire(), 0, "a change after a quiet window goes out at once");
    assert.deepEqual(updates, [["svc/east/ns/b"]]);

    now += 5;
    east.upsert(service("c", "10.96.0.3"));
    east.upsert(service("d", "10.96.0.4"));
    assert.equal(timers.length, 1, "one update scheduled for the burst");
    assert.equal(fire(), 15, "the rest of the window since the last update");
    assert.deepEqual(updates[1], ["svc/east/ns/c", "svc/east/ns/d"], "the burst in one update");

    now += 100;
    east.upsert(service("e", "10.96.0.5"));
    assert.equal(fire(), 0, "quiet again: at once");
    assert.equal(updates.length, 3);
    cache.close();
  });
});
