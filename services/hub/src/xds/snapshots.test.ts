import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import type { LocalRedirectPolicy, Pod } from "../model/types.ts";
import { World } from "../model/world.ts";
import { KINDS } from "../sources/kube-objects.ts";
import { WorldWriter } from "../sources/source.ts";
import { AgentSession } from "./session.ts";
import { SnapshotCache, type View } from "./snapshots.ts";

/** The source listed every kind once (the cluster is synced). */
const listedAll = (w: WorldWriter) => {
  for (const k of KINDS) w.listed(k);
};

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

  it("rebuilds every view with a new externalTrafficStrict setting: only eTP=Local Services change", () => {
    const world = new World();
    const east = new WorldWriter(world, "east", silentLogger());
    east.upsert(service("plain", "10.96.0.1"));
    east.upsert({
      kind: "Service",
      metadata: { name: "ingress", namespace: "ns" },
      spec: {
        type: "NodePort",
        clusterIP: "10.96.0.2",
        externalTrafficPolicy: "Local",
        ports: [{ name: "http", port: 80, nodePort: 30080 }],
      },
    });
    const timers: Array<() => void> = [];
    const cache = new SnapshotCache(world, 20, {
      schedule: (fn) => {
        timers.push(fn);
        return () => {};
      },
    });
    const view: View = { key: "east|pod", clusters: ["east"], reach: "pod" };
    const updates: string[][] = [];
    cache.subscribe(view, (_s, changed) => updates.push([...changed].sort()));
    const strictOf = () => {
      const r = cache.get(view).resources.get("svc/east/ns/ingress");
      return r?.body?.$case === "service" ? r.body.value.externalTrafficStrict : undefined;
    };
    const versions = () => new Map([...cache.get(view).resources].map(([k, r]) => [k, r.version]));
    assert.equal(strictOf(), false);
    const before = versions();
    cache.setTranslateOptions({ externalTrafficStrict: true });
    cache.setTranslateOptions({ externalTrafficStrict: true });
    assert.equal(timers.length, 1, "one update for a changed setting, none for the same again");
    timers.shift()!();
    assert.equal(strictOf(), true);
    const after = versions();
    assert.deepEqual(
      [...after.keys()].filter((k) => after.get(k) !== before.get(k)),
      ["svc/east/ns/ingress"],
      "no other resource's version moves",
    );
    assert.equal(updates.length, 1);
    cache.close();
  });
});

describe("SnapshotCache holds views back until every cluster of them is seen", () => {
  it("holds a view while an imported cluster is unlisted, then releases it when the cluster is listed", () => {
    const world = new World();
    const east = new WorldWriter(world, "east", silentLogger());
    east.upsert(service("a", "10.96.0.1"));
    listedAll(east);
    const west = new WorldWriter(world, "west", silentLogger());
    world.cluster("west");
    const cache = new SnapshotCache(world, 0);
    const holds: string[] = [];
    cache.onHold = (view, waiting) => holds.push(`${view}:${waiting.join(",")}`);
    const view: View = { key: "east+west|pod", clusters: ["east", "west"], reach: "pod" };
    const updates: string[][] = [];
    cache.subscribe(view, (_s, changed) => updates.push([...changed].sort()));
    assert.equal(cache.isHeld(view), true);
    assert.deepEqual([...cache.held()], [["east+west|pod", ["west"]]]);
    assert.deepEqual(holds, ["east+west|pod:west"]);

    west.upsert(service("w", "10.97.0.1"));
    cache.flush();
    assert.equal(cache.isHeld(view), true, "objects alone do not release it: the listing is not complete");
    assert.deepEqual(updates, [["svc/west/ns/w"]], "listeners still hear of changes (streams mark them)");

    listedAll(west);
    cache.flush();
    assert.equal(cache.isHeld(view), false);
    assert.deepEqual(updates.length, 2, "released: the listeners are told, even with nothing changed");
    assert.deepEqual(holds, ["east+west|pod:west", "east+west|pod:"]);
    assert.deepEqual([...cache.held()], []);
    cache.close();
  });

  it("a cluster restored from its last known state holds nothing", () => {
    const world = new World();
    const east = new WorldWriter(world, "east", silentLogger());
    listedAll(east);
    new WorldWriter(world, "west", silentLogger()).restore([]);
    const cache = new SnapshotCache(world, 0);
    assert.equal(cache.isHeld({ key: "v", clusters: ["east", "west"], reach: "pod" }), false);
    cache.close();
  });

  it("an unseen imported cluster withdrawn after its grace releases other clusters' views, not its own", () => {
    const world = new World();
    listedAll(new WorldWriter(world, "east", silentLogger()));
    world.cluster("west");
    const cache = new SnapshotCache(world, 0);
    const eastView: View = { key: "east+west", clusters: ["east", "west"], reach: "pod" };
    const westView: View = { key: "west+east", clusters: ["west", "east"], reach: "pod" };
    const told: string[] = [];
    cache.subscribe(eastView, () => told.push("east"));
    cache.subscribe(westView, () => told.push("west"));
    world.setHealth("west", { stale: true, withdrawn: true, staleSince: 1, reason: "not seen" });
    cache.flush();
    assert.equal(cache.isHeld(eastView), false);
    assert.equal(cache.isHeld(westView), true, "its own agents keep their pinned state");
    assert.deepEqual(told, ["east"], "only the released view's listeners are told");
    cache.close();
  });
});

describe("SnapshotCache per-node resources", () => {
  const pod = (name: string, node: string, ready = true): Pod => ({
    cluster: "east",
    namespace: "kube-system",
    name,
    uid: `uid-${name}`,
    labels: { app: "dns-cache" },
    nodeName: node,
    ips: [`10.244.0.${name.length + (node === "node-a" ? 1 : 2)}`],
    ready,
    terminating: false,
    containerPorts: [],
  });
  const policy: LocalRedirectPolicy = {
    cluster: "east",
    namespace: "kube-system",
    name: "dns",
    uid: "u1",
    generation: 1,
    createdAt: "2026-01-01T00:00:00Z",
    frontend: {
      kind: "address",
      ip: "169.254.20.10",
      ports: [{ name: "dns", port: 53, protocol: "UDP" }],
      fallbackService: undefined,
    },
    backend: {
      selector: { matchLabels: { app: "dns-cache" }, matchExpressions: [] },
      toPorts: [{ name: "dns", port: 53, targetName: undefined, protocol: "UDP" }],
    },
    skipRedirectFromBackend: false,
    qosPerSecond: 0,
    nodeSelector: undefined,
  };
  const A = "lrpb/east/kube-system/dns/node-a";
  const B = "lrpb/east/kube-system/dns/node-b";

  function setup() {
    const world = new World();
    const east = new WorldWriter(world, "east", silentLogger());
    east.upsert(service("a", "10.96.0.1"));
    listedAll(east);
    world.upsert("east", { kind: "LocalRedirectPolicy", value: policy });
    world.upsert("east", { kind: "Pod", value: pod("cache-a", "node-a") });
    world.upsert("east", { kind: "Pod", value: pod("cache-b", "node-b") });
    const cache = new SnapshotCache(world, 0);
    const view: View = { key: "east|pod", clusters: ["east"], reach: "pod" };
    const told = new Map<string, string[][]>();
    for (const node of ["node-a", "node-b", "node-c"])
      cache.subscribe(
        view,
        (_s, changed) => told.set(node, [...(told.get(node) ?? []), [...changed].sort()]),
        {
          node,
        },
      );
    cache.subscribe(
      view,
      (_s, changed) => told.set("passive", [...(told.get("passive") ?? []), [...changed]]),
      {
        passive: true,
      },
    );
    return { world, cache, view, told };
  }

  it("gives a node's resources to that node only, on top of the shared ones", () => {
    const { cache, view } = setup();
    const shared = cache.get(view);
    assert.ok(shared.resources.has("lrp/east/kube-system/dns"));
    assert.ok(!shared.resources.has(A) && !shared.resources.has(B));
    const a = cache.get(view, "node-a");
    assert.deepEqual([...(a.overlay?.keys() ?? [])], [A]);
    assert.equal(a.resources, shared.resources);
    assert.deepEqual([...(cache.get(view, "node-b").overlay?.keys() ?? [])], [B]);
    assert.equal(
      cache.get(view, "node-c"),
      shared,
      "a node with nothing of its own gets the shared snapshot",
    );
    assert.notEqual(a.version, shared.version);
    cache.close();
  });

  it("tells a change of one node's resource to that node's listeners only; a shared change to everyone", () => {
    const { world, cache, view, told } = setup();
    world.upsert("east", { kind: "Pod", value: pod("cache-a", "node-a", false) });
    cache.flush();
    assert.deepEqual([...told], [["node-a", [[A]]]]);
    const body = cache.get(view, "node-a").overlay?.get(A)?.body;
    assert.equal(body?.$case === "localBackends" && body.value.pods[0]?.ready, false);
    told.clear();
    new WorldWriter(world, "east", silentLogger()).upsert(service("b", "10.96.0.2"));
    cache.flush();
    assert.deepEqual([...told].sort(), [
      ["node-a", [["svc/east/ns/b"]]],
      ["node-b", [["svc/east/ns/b"]]],
      ["node-c", [["svc/east/ns/b"]]],
      ["passive", [["svc/east/ns/b"]]],
    ]);
    cache.close();
  });

  it("sends the removal of a node's last resource to that node's agent, which ends holding the shared view", () => {
    const { world, cache, view, told } = setup();
    const session = new AgentSession({}, "a", 1000);
    const held = new Map<string, string>();
    const drain = () => {
      for (let m = session.next(cache.get(view, "node-a")); m; m = session.next(cache.get(view, "node-a"))) {
        for (const r of m.resources) held.set(r.name, r.version);
        for (const n of m.removedResources) held.delete(n);
        session.onAck(m.nonce, undefined);
      }
    };
    drain();
    assert.ok(held.has(A));
    assert.equal(session.ackedVersion, cache.get(view, "node-a").version);
    world.remove("east", "Pod", "kube-system", "cache-a");
    cache.flush();
    assert.deepEqual(told.get("node-a"), [[A]]);
    assert.equal(told.get("node-b"), undefined);
    session.markDirty(told.get("node-a")![0]!);
    drain();
    assert.ok(!held.has(A));
    assert.deepEqual([...held.keys()].sort(), [...cache.get(view).resources.keys()].sort());
    assert.equal(session.ackedVersion, cache.get(view).version);
    cache.close();
  });

  it("a node's view version is what the agent's store computes over all it holds (the held-view resume shortcut)", async () => {
    const { ResourceStore } = await import("../../../nodeagent/src/desired/resources.ts");
    const { cache, view } = setup();
    const a = cache.get(view, "node-a");
    const store = new ResourceStore();
    store.applyDelta({
      nonce: "1",
      systemVersion: a.version,
      welcome: undefined,
      credential: undefined,
      removedResources: [],
      resources: [...a.resources.values(), ...a.overlay!.values()],
      resourcesZstd: Buffer.alloc(0),
      resourcesZstdSize: 0,
      viewComplete: true,
    });
    assert.equal(store.viewVersion, a.version);
    // an agent that proves it holds it resumes in sync: nothing to send
    const s = new AgentSession({}, "a", 1000, store.viewVersion);
    assert.equal(s.next(a), undefined);
    cache.close();
  });
});
