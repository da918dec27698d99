import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Resource, TrafficDistribution } from "@switchyard/proto/assignment";
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
      },
    },
  };
}

function snap(version: string, ...rs: Resource[]): Snapshot {
  return { version, resources: new Map(rs.map((r) => [r.name, r])) };
}

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
    assert.equal(
      unchanged.next(snap("s1", res("a", "1"))),
      undefined,
      "nothing at all is sent when nothing changed",
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
