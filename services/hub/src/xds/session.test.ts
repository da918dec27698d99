import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Resource, StreamAssignmentsResponse, TrafficDistribution } from "@switchyard/proto/assignment";
import { encodeResponse } from "./encode.ts";
import { AgentSession, type Snapshot } from "./session.ts";

function res(name: string, version: string): Resource {
  return {
    name,
    version,
    body: {
      $case: "service",
      value: {
        cluster: "c",
        namespace: "ns",
        name,
        frontends: [],
        externalTrafficLocal: false,
        internalTrafficLocal: false,
        affinityTimeoutSeconds: 0,
        backendTiers: [],
        trafficDistribution: TrafficDistribution.TRAFFIC_DISTRIBUTION_UNSPECIFIED,
        externalTrafficStrict: false,
      },
    },
  };
}

function snap(version: string, ...rs: Resource[]): Snapshot {
  return { version, resources: new Map(rs.map((r) => [r.name, r])) };
}

type Message = NonNullable<ReturnType<AgentSession["next"]>>;

/** What an agent holds after applying messages (names → versions), as the node agent's store does. */
class HeldView {
  readonly held: Map<string, string>;
  readonly messages: Message[] = [];
  constructor(initial: Record<string, string> = {}) {
    this.held = new Map(Object.entries(initial));
  }
  apply(m: Message): void {
    this.messages.push(m);
    for (const r of m.resources) this.held.set(r.name, r.version);
    for (const n of m.removedResources) this.held.delete(n);
  }
  /** The session's next message, applied and ACKed (there must be one). */
  step(s: AgentSession, snapshot: Snapshot): Message {
    const m = s.next(snapshot);
    assert.ok(m, "a message");
    this.apply(m);
    assert.ok(s.onAck(m.nonce, undefined));
    return m;
  }
  /** Sends, applies and ACKs until the session has nothing more to say. */
  drain(s: AgentSession, snapshot: Snapshot): Message[] {
    const got: Message[] = [];
    while (s.behind) got.push(this.step(s, snapshot));
    assert.equal(s.next(snapshot), undefined);
    return got;
  }
  sorted(): Array<[string, string]> {
    return [...this.held].sort();
  }
}

/** The versions of a map, sorted: what an agent holding it would hold. */
function versionsOf(resources: ReadonlyMap<string, Resource>): Array<[string, string]> {
  return [...resources].map(([n, r]) => [n, r.version] as [string, string]).sort();
}

/** A view as the translator keeps it: one live map, a new snapshot object after every change. */
class LiveView {
  readonly map = new Map<string, Resource>();
  private seq = 0;
  snap: Snapshot = { version: "v0", resources: this.map };
  constructor(rs: Resource[]) {
    for (const r of rs) this.map.set(r.name, r);
  }
  /** Applies changes (a version, or undefined to remove) and tells the sessions what changed. */
  change(sessions: AgentSession[], changes: Record<string, string | undefined>): Snapshot {
    for (const [name, v] of Object.entries(changes)) {
      if (v === undefined) this.map.delete(name);
      else this.map.set(name, res(name, v));
    }
    this.snap = { version: `v${++this.seq}`, resources: this.map };
    for (const s of sessions) s.markDirty(Object.keys(changes));
    return this.snap;
  }
}

const others = (n: number) => Array.from({ length: n }, (_, i) => res(`r${i}`, "1"));

describe("AgentSession", () => {
  it("sends everything to a new agent, then nothing until the snapshot changes", () => {
    const s = new AgentSession({}, "h");
    const m = s.next(snap("s1", res("a", "1"), res("b", "1")))!;
    assert.deepEqual(
      m.resources.map((r) => r.name),
      ["a", "b"],
    );
    assert.ok(s.onAck(m.nonce, undefined));
    assert.equal(s.ackedVersion, "s1");
    assert.equal(s.next(snap("s1", res("a", "1"), res("b", "1"))), undefined);
  });

  it("sends only changed and removed resources", () => {
    const s = new AgentSession({}, "h");
    s.onAck(s.next(snap("s1", res("a", "1"), res("b", "1")))!.nonce, undefined);
    s.markDirty(["a", "b"]);
    const m = s.next(snap("s2", res("a", "2")))!;
    assert.deepEqual(
      m.resources.map((r) => `${r.name}@${r.version}`),
      ["a@2"],
    );
    assert.deepEqual(m.removedResources, ["b"]);
  });

  it("resumes: an agent that reconnects with what it holds receives only the difference", () => {
    const s = new AgentSession({ a: "1", b: "1", gone: "7" }, "h");
    const m = s.next(snap("s2", res("a", "1"), res("b", "2")))!;
    assert.deepEqual(
      m.resources.map((r) => r.name),
      ["b"],
    );
    assert.deepEqual(m.removedResources, ["gone"]);
    const unchanged = new AgentSession({ a: "1" }, "h");
    const none = unchanged.next(snap("s1", res("a", "1")))!;
    assert.deepEqual(
      [none.resources, none.removedResources, none.viewComplete],
      [[], [], true],
      "no resource is sent when nothing changed, only that the agent holds the view",
    );
  });

  it("keeps one response in flight and folds later changes into the next one (latest wins)", () => {
    const s = new AgentSession({}, "h");
    const first = s.next(snap("s1", res("a", "1")))!;
    s.markDirty(["a"]);
    assert.equal(s.next(snap("s2", res("a", "2"))), undefined, "nothing new while one is unacknowledged");
    assert.equal(s.next(snap("s3", res("a", "3"))), undefined);
    s.onAck(first.nonce, undefined);
    s.markDirty(["a"]);
    const second = s.next(snap("s3", res("a", "3")))!;
    assert.deepEqual(
      second.resources.map((r) => r.version),
      ["3"],
    );
  });

  it("ignores an ack with a stale nonce", () => {
    const s = new AgentSession({}, "h");
    const m = s.next(snap("s1", res("a", "1")))!;
    assert.equal(s.onAck("h-999", undefined), false);
    assert.ok(s.waiting);
    assert.ok(s.onAck(m.nonce, undefined));
  });

  it("records a NACK with its detail and does not resend the rejected version", () => {
    const s = new AgentSession({}, "h");
    const m = s.next(snap("s1", res("a", "1"), res("b", "1")))!;
    s.onAck(m.nonce, { message: "1 resource(s) not applied", resources: [{ name: "b", message: "bad ip" }] });
    assert.equal(s.nacks, 1);
    assert.equal(s.lastNack?.resources[0]?.message, "bad ip");
    s.markDirty(["b"]); // the hub looks at b again: same rejected version
    assert.equal(
      s.next(snap("s1", res("a", "1"), res("b", "1"))),
      undefined,
      "the same bad version is not resent",
    );
    s.markDirty(["b"]);
    const fixed = s.next(snap("s2", res("a", "1"), res("b", "2")))!;
    assert.deepEqual(
      fixed.resources.map((r) => `${r.name}@${r.version}`),
      ["b@2"],
    );
  });
});

describe("AgentSession message bounds", () => {
  it("sends a large difference in bounded chunks, the next one after each ACK, and skips what the agent already holds", () => {
    const rs = Array.from({ length: 25 }, (_, i) => res(`r${String(i).padStart(2, "0")}`, "1"));
    const s = new AgentSession({ r00: "1", r01: "1" }, "h", 10);
    const seen: string[] = [];
    const snapshot = snap("s1", ...rs);
    for (let m = s.next(snapshot); m; m = s.next(snapshot)) {
      assert.ok(m.resources.length <= 10);
      assert.equal(s.next(snapshot), undefined, "one in flight");
      seen.push(...m.resources.map((r) => r.name));
      s.onAck(m.nonce, undefined);
    }
    assert.equal(seen.length, 23);
    assert.ok(!seen.includes("r00") && !seen.includes("r01"));
    assert.equal(s.behind, false);
  });

  it("gives every cold-starting agent on an unchanged snapshot the same chunk arrays (built once)", () => {
    const snapshot = snap("s1", ...Array.from({ length: 25 }, (_, i) => res(`r${i}`, "1")));
    const nonces = new Map<string, string[]>();
    const walk = (s: AgentSession, who: string) => {
      const chunks: (readonly Resource[])[] = [];
      for (let m = s.next(snapshot); m; m = s.next(snapshot)) {
        chunks.push(m.resources);
        nonces.set(who, [...(nonces.get(who) ?? []), m.nonce]);
        s.onAck(m.nonce, undefined);
      }
      return chunks;
    };
    const sa = new AgentSession({}, "a", 10);
    const a = walk(sa, "a");
    const b = walk(new AgentSession({}, "b", 10), "b");
    // the same message for both, nonce included (a nonce is unique within its stream, where it names the chunk)
    assert.deepEqual(nonces.get("a"), nonces.get("b"));
    assert.equal(new Set(nonces.get("a")).size, 3);
    // a later change on the same stream gets a stream nonce, not one of the chunks'
    sa.markDirty(["r3"]);
    const later = sa.next({ version: "s2", resources: new Map([["r3", res("r3", "2")]]) })!;
    assert.ok(!nonces.get("a")!.includes(later.nonce), later.nonce);
    assert.deepEqual(
      a.map((c) => c.length),
      [10, 10, 5],
    );
    assert.ok(
      a.every((c, i) => c === b[i]),
      "the same arrays",
    );
    assert.deepEqual(a.flat(), [...snapshot.resources.values()]);
    // another chunk size is another walk
    const c = walk(new AgentSession({}, "c", 7), "c");
    assert.deepEqual(
      c.map((x) => x.length),
      [7, 7, 7, 4],
    );
  });

  it("ends a cold start holding exactly the map when it changes mid-walk (an undo that moves an entry included)", () => {
    // as the translator does: one live map, a new snapshot object after every change
    const live = new Map(Array.from({ length: 30 }, (_, i) => [`r${i}`, res(`r${i}`, "1")]));
    const held = new Map<string, string>();
    const s = new AgentSession({}, "h", 10);
    const other = new AgentSession({}, "o", 10);
    const apply = (m: NonNullable<ReturnType<AgentSession["next"]>>) => {
      for (const r of m.resources) held.set(r.name, r.version);
      for (const n of m.removedResources) held.delete(n);
    };
    const first = snap("v1");
    Object.assign(first, { resources: live });
    const m1 = s.next(first)!;
    apply(m1);
    s.onAck(m1.nonce, undefined);
    other.onAck(other.next(first)!.nonce, undefined);
    // r12 (not yet sent) deleted and put back: same version, now last in the map; r3 (sent) changes; r25 goes; r40 comes
    const r12 = live.get("r12")!;
    live.delete("r12");
    live.set("r12", r12);
    live.set("r3", res("r3", "2"));
    live.delete("r25");
    live.set("r40", res("r40", "1"));
    const second = { version: "v2", resources: live };
    for (const x of [s, other]) x.markDirty(["r12", "r3", "r25", "r40"]);
    for (let m = s.next(second); m; m = s.next(second)) {
      apply(m);
      s.onAck(m.nonce, undefined);
    }
    assert.deepEqual(
      new Map([...held].sort()),
      new Map([...live].map(([n, r]) => [n, r.version] as const).sort()),
    );
    assert.equal(s.pending, 0);
  });

  it("names a change after its snapshot for agents that were in sync (one nonce for all), and never repeats a nonce in a stream", () => {
    const v2 = snap("v2", res("a", "1"), res("b", "2"));
    const sessions = [new AgentSession({}, "h-1", 1000, "v1"), new AgentSession({}, "h-2", 1000, "v1")];
    for (const s of sessions) s.markDirty(["b"]);
    const [m1, m2] = sessions.map((s) => s.next(v2)!);
    assert.equal(m1!.nonce, m2!.nonce, "the same message for both");
    // a NACK leaves b refused; a fix on the same snapshot object goes with a nonce of the stream
    const s = sessions[0]!;
    s.onAck(m1!.nonce, { message: "no", resources: [{ name: "b", message: "bad" }] });
    (v2.resources as Map<string, Resource>).set("b", res("b", "3"));
    s.markDirty(["b"]);
    const again = s.next(v2)!;
    assert.notEqual(again.nonce, m1!.nonce);
    assert.match(again.nonce, /^h-1-/);
  });

  it("starts in sync with an agent that proved it holds the view (resume shortcut), then sends only changes", () => {
    const s = new AgentSession({}, "h", 1000, "v1");
    assert.equal(s.next(snap("v1", res("a", "1"), res("b", "1"))), undefined, "nothing to send");
    assert.equal(s.pending, 0);
    assert.equal(s.ackedVersion, "v1");
    s.markDirty(["b"]);
    const m = s.next(snap("v2", res("a", "1"), res("b", "2")))!;
    assert.deepEqual(
      m.resources.map((r) => `${r.name}@${r.version}`),
      ["b@2"],
    );
  });
});

describe("AgentSession resume bookkeeping", () => {
  // each step: a change of the view, then what the next message must carry ("name@version", "-name": removed)
  const cases: Array<
    [string, Resource[], Record<string, string>, Array<[Record<string, string | undefined>, string]>]
  > = [
    [
      // a readiness flap: content-hash versions repeat
      "a resource that changes and changes back (flap-and-return)",
      [res("a", "1"), ...others(6)],
      { a: "1" },
      [
        [{ a: "2" }, "a@2"],
        [{ a: "1" }, "a@1"],
      ],
    ],
    [
      "a resource removed and re-added (remove-and-re-add)",
      [...others(6), res("x", "1")],
      { x: "1" },
      [
        [{ x: undefined }, "-x"],
        [{ x: "1" }, "x@1"],
      ],
    ],
  ];
  for (const [what, rs, held, steps] of cases)
    it(`sends ${what} while the resume walk is under way`, () => {
      const view = new LiveView(rs);
      const agent = new HeldView(held);
      const s = new AgentSession(held, "h", 2);
      agent.step(s, view.snap);
      for (const [change, expected] of steps) {
        view.change([s], change);
        const m = agent.step(s, view.snap);
        const carried = [
          ...m.resources.map((r) => `${r.name}@${r.version}`),
          ...m.removedResources.map((n) => `-${n}`),
        ];
        assert.ok(carried.includes(expected), `${expected} in ${carried.join(" ")}`);
      }
      agent.drain(s, view.snap);
      assert.deepEqual(agent.sorted(), versionsOf(view.map));
      assert.equal(s.pending, 0);
    });

  it("ends every walk holding exactly the view, whatever changes while it runs (seeded random changes)", () => {
    // mulberry32: the same sequence every run
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const names = Array.from({ length: 40 }, (_, i) => `n${i}`);
    for (let round = 0; round < 200; round++) {
      const view = new LiveView(names.filter(() => rand(4) > 0).map((n) => res(n, String(1 + rand(2)))));
      // the agent holds some names (some at the view's version, some not, some the view lacks)
      const initial: Record<string, string> = {};
      for (const n of names) if (rand(3) === 0) initial[n] = String(1 + rand(2));
      const agent = new HeldView(initial);
      const s = new AgentSession(initial, `h${round}`, 1 + rand(8));
      for (let step = 0; step < 30; step++) {
        const m = s.next(view.snap);
        if (m) {
          agent.apply(m);
          if (m.viewComplete)
            assert.deepEqual(agent.sorted(), versionsOf(view.map), `round ${round} step ${step}`);
          s.onAck(m.nonce, undefined);
        }
        const changes: Record<string, string | undefined> = {};
        for (let k = rand(4); k > 0; k--) {
          const n = names[rand(names.length)]!;
          changes[n] = rand(4) === 0 ? undefined : String(1 + rand(2));
        }
        if (Object.keys(changes).length > 0) view.change([s], changes);
      }
      const rest = agent.drain(s, view.snap);
      const last = rest.at(-1) ?? agent.messages.at(-1);
      assert.ok(last?.viewComplete, `round ${round}: the last message completes the view`);
      assert.deepEqual(agent.sorted(), versionsOf(view.map), `round ${round}`);
      assert.equal(s.pending, 0);
    }
  });
});

describe("AgentSession ACK bookkeeping", () => {
  it("does not show an agent that refused a resource as in sync until a fixed version is ACKed (NACK-then-idle)", () => {
    const s = new AgentSession({}, "h");
    const v1 = snap("s1", res("a", "1"), res("b", "1"));
    const m = s.next(v1)!;
    s.onAck(m.nonce, { message: "1 resource(s) not applied", resources: [{ name: "b", message: "bad ip" }] });
    // every pump asks; nothing is dirty
    assert.equal(s.next(v1), undefined);
    assert.equal(s.next(v1), undefined);
    assert.notEqual(s.ackedVersion, "s1", "the agent refused b@1: it does not hold view s1");
    assert.equal(s.pending, 1, "the refused resource is still pending");
    s.markDirty(["b"]);
    const v2 = snap("s2", res("a", "1"), res("b", "2"));
    const fix = s.next(v2)!;
    assert.deepEqual(
      fix.resources.map((r) => `${r.name}@${r.version}`),
      ["b@2"],
    );
    assert.ok(fix.viewComplete);
    s.onAck(fix.nonce, undefined);
    assert.equal(s.ackedVersion, "s2");
    assert.equal(s.pending, 0);
  });

  it("counts an agent acked at a version only when it holds the whole view (not after a cold walk's first chunk)", () => {
    const s = new AgentSession({}, "h", 10);
    const v1 = snap("s1", ...others(25));
    const first = s.next(v1)!;
    s.onAck(first.nonce, undefined);
    assert.equal(s.ackedVersion, "", "one chunk of three");
    new HeldView().drain(s, v1);
    assert.equal(s.ackedVersion, "s1");
  });
});

describe("AgentSession view_complete", () => {
  it("marks only the last chunk of a cold walk, the same message for every cold agent", () => {
    const v1 = snap("s1", ...others(25));
    const walks = ["a", "b"].map((who) => new HeldView().drain(new AgentSession({}, who, 10), v1));
    for (const w of walks)
      assert.deepEqual(
        w.map((m) => m.viewComplete),
        [false, false, true],
      );
    assert.deepEqual(
      walks[0]!.map((m) => m.nonce),
      walks[1]!.map((m) => m.nonce),
      "shared chunks, flag included",
    );
  });

  it("marks the last message of a resume walk that had differences", () => {
    const v1 = snap("s1", ...others(25));
    const agent = new HeldView({ r0: "1", r1: "0", gone: "7" });
    const got = agent.drain(new AgentSession({ r0: "1", r1: "0", gone: "7" }, "h", 10), v1);
    assert.deepEqual(
      got.map((m) => m.viewComplete),
      [false, false, true],
    );
    assert.deepEqual(got.at(-1)!.removedResources, ["gone"]);
    assert.deepEqual(agent.sorted(), versionsOf(v1.resources));
  });

  it("tells an agent whose resume differs in nothing, or whose view is empty, that it holds the view (an empty complete message)", () => {
    for (const [initial, view] of [
      [{ r0: "1", r1: "1" }, snap("s1", ...others(2))],
      [{}, snap("s0")],
    ] as const) {
      const s = new AgentSession(initial, "h", 10);
      const m = s.next(view)!;
      assert.ok(m, "one message");
      assert.deepEqual([m.resources, m.removedResources, m.viewComplete], [[], [], true]);
      assert.equal(m.systemVersion, view.version);
      s.onAck(m.nonce, undefined);
      assert.equal(s.next(view), undefined, "and nothing after it");
      assert.equal(s.ackedVersion, view.version);
    }
  });

  it("marks a steady-state change complete", () => {
    const view = new LiveView(others(5));
    const s = new AgentSession({}, "h", 10);
    new HeldView().drain(s, view.snap);
    view.change([s], { r2: "2" });
    const m = s.next(view.snap)!;
    assert.equal(m.resources.length, 1);
    assert.equal(m.viewComplete, true);
  });

  it("marks a walk complete only once a change that arrived during it has been sent too", () => {
    const view = new LiveView(others(25));
    const s = new AgentSession({}, "h", 10);
    const agent = new HeldView();
    assert.equal(agent.step(s, view.snap).viewComplete, false);
    // 12 changes: more than one message holds
    const changes = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`r${i * 2}`, "2"]));
    view.change([s], changes);
    const rest = agent.drain(s, view.snap);
    assert.deepEqual(
      rest.map((m) => m.viewComplete),
      rest.map((_, i) => i === rest.length - 1),
    );
    assert.deepEqual(agent.sorted(), versionsOf(view.map));
  });

  it("tells an agent the view is complete by an empty message when what remained was a version it refused", () => {
    const view = new LiveView(others(12));
    const s = new AgentSession({}, "h", 10);
    const agent = new HeldView();
    agent.drain(s, view.snap);
    view.change([s], { r11: "2" });
    const bad = s.next(view.snap)!;
    s.onAck(bad.nonce, { message: "no", resources: [{ name: "r11", message: "bad" }] });
    // ten changes, then r11 looked at again at its refused version: the ten fill a message, r11 waits
    view.change([s], { ...Object.fromEntries(others(10).map((r) => [r.name, "3"])), r11: "2" });
    const ten = agent.step(s, view.snap);
    assert.equal(ten.resources.length, 10);
    assert.equal(ten.viewComplete, false);
    const done = agent.step(s, view.snap);
    assert.deepEqual([done.resources, done.removedResources, done.viewComplete], [[], [], true]);
  });
});

describe("view version", () => {
  it("is the same whether the hub's translator or an agent's store computes it", async () => {
    const { World } = await import("../model/world.ts");
    const { WorldWriter } = await import("../sources/source.ts");
    const { computeViewSnapshot } = await import("../translate/compute-resources.ts");
    const { ResourceStore } = await import("../../../nodeagent/src/desired/resources.ts");
    const { silentLogger } = await import("@switchyard/lib/log");
    const world = new World();
    const w = new WorldWriter(world, "c", silentLogger());
    w.upsert({
      kind: "Service",
      metadata: { name: "a", namespace: "n" },
      spec: { clusterIP: "10.0.0.1", ports: [{ port: 80 }] },
    });
    w.upsert({
      kind: "Service",
      metadata: { name: "b", namespace: "n" },
      spec: { clusterIP: "10.0.0.2", ports: [{ port: 80 }] },
    });
    const snapA = computeViewSnapshot([world.cluster("c")]);
    const store = new ResourceStore();
    const base = {
      nonce: "1",
      systemVersion: "",
      welcome: undefined,
      credential: undefined,
      removedResources: [],
      resourcesZstd: Buffer.alloc(0),
      resourcesZstdSize: 0,
      viewComplete: true,
    };
    store.applyDelta({ ...base, resources: [...snapA.resources.values()] });
    assert.equal(store.viewVersion, snapA.version);
    // a change and a removal keep them equal
    world.remove("c", "Service", "n", "a");
    w.upsert({
      kind: "Service",
      metadata: { name: "b", namespace: "n" },
      spec: { clusterIP: "10.0.0.3", ports: [{ port: 80 }] },
    });
    const snapB = computeViewSnapshot([world.cluster("c")]);
    store.applyDelta({
      ...base,
      resources: [snapB.resources.get("svc/c/n/b")!],
      removedResources: ["svc/c/n/a"],
      resourcesZstd: Buffer.alloc(0),
      resourcesZstdSize: 0,
    });
    assert.equal(store.viewVersion, snapB.version);
    assert.notEqual(snapB.version, snapA.version);
  });
});

describe("AgentSession with a node's own resources (overlay)", () => {
  const shared = snap("s1", ...others(25));
  const own = [res("lrpb/c/ns/p/node-a", "1"), res("lrpb/c/ns/q/node-a", "1")];
  const nodeSnap: Snapshot = {
    version: "n1",
    resources: shared.resources,
    overlay: new Map(own.map((r) => [r.name, r])),
    base: shared,
  };

  it("walks the shared chunks every agent shares, then the node's own, and marks only the last complete", () => {
    const a = new AgentSession({}, "a", 10);
    const b = new AgentSession({}, "b", 10);
    const held = new HeldView();
    const ms = held.drain(a, nodeSnap);
    const other = new HeldView().drain(b, shared);
    assert.deepEqual(
      ms.map((m) => m.resources.length),
      [10, 10, 5, 2],
    );
    // the shared part: the same arrays and nonces as an agent without resources of its own
    for (let i = 0; i < 3; i++) {
      assert.equal(ms[i]!.resources, other[i]!.resources);
      assert.equal(ms[i]!.nonce, other[i]!.nonce);
    }
    // the chunks that complete neither view are the same message, bytes included (encoded once for both)
    const wire = (m: Message) => encodeResponse(m, (x) => StreamAssignmentsResponse.encode(x).finish());
    for (let i = 0; i < 2; i++) assert.equal(wire(ms[i]!), wire(other[i]!));
    assert.deepEqual(
      ms.map((m) => m.viewComplete),
      [false, false, false, true],
    );
    assert.deepEqual(
      ms[3]!.resources.map((r) => r.name),
      own.map((r) => r.name),
    );
    assert.equal(ms[3]!.systemVersion, "n1");
    assert.deepEqual(
      held.sorted(),
      [...versionsOf(shared.resources), ...versionsOf(nodeSnap.overlay!)].sort(),
    );
    assert.equal(a.ackedVersion, "n1");
  });

  it("walks to the node's own resources when the shared map is empty", () => {
    const empty = snap("e", ...[]);
    const s = new AgentSession({}, "a", 10);
    const held = new HeldView();
    const ms = held.drain(s, {
      version: "n",
      resources: empty.resources,
      overlay: nodeSnap.overlay!,
      base: empty,
    });
    assert.deepEqual(
      ms.map((m) => [m.resources.length, m.viewComplete]),
      [[2, true]],
    );
  });

  it("resumes in sync when the agent holds the shared resources and its own", () => {
    const s = new AgentSession(Object.fromEntries(held(nodeSnap)), "a", 10);
    const agent = new HeldView(Object.fromEntries(held(nodeSnap)));
    const ms = agent.drain(s, nodeSnap);
    assert.deepEqual(
      ms.map((m) => [m.resources.length, m.removedResources.length, m.viewComplete]),
      [[0, 0, true]],
    );
    assert.equal(s.ackedVersion, "n1");
  });

  it("sends a change of its own resources, and the removal of its last one", () => {
    const s = new AgentSession({}, "a", 100, "n1");
    const agent = new HeldView(Object.fromEntries(held(nodeSnap)));
    const overlay = new Map(nodeSnap.overlay!);
    overlay.set("lrpb/c/ns/p/node-a", res("lrpb/c/ns/p/node-a", "2"));
    overlay.delete("lrpb/c/ns/q/node-a");
    s.markDirty(["lrpb/c/ns/p/node-a", "lrpb/c/ns/q/node-a"]);
    let m = agent.step(s, { version: "n2", resources: shared.resources, overlay, base: shared });
    assert.deepEqual(
      [m.resources.map((r) => `${r.name}@${r.version}`), m.removedResources, m.viewComplete],
      [["lrpb/c/ns/p/node-a@2"], ["lrpb/c/ns/q/node-a"], true],
    );
    // the last one goes: the node is served the shared snapshot again
    s.markDirty(["lrpb/c/ns/p/node-a"]);
    m = agent.step(s, shared);
    assert.deepEqual([m.resources, m.removedResources, m.systemVersion], [[], ["lrpb/c/ns/p/node-a"], "s1"]);
    assert.deepEqual(agent.sorted(), versionsOf(shared.resources));
    assert.equal(s.ackedVersion, "s1");
  });

  /** What an agent holding the whole node snapshot holds. */
  function held(sn: Snapshot): Array<[string, string]> {
    return [...versionsOf(sn.resources), ...versionsOf(sn.overlay ?? new Map())];
  }
});
