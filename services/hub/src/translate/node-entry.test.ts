/**
 * Node entry resources (entry/<cluster>/<node>) from nodeProxy
 * BalancingPolicies: only to the node whose pods they reach, the node's
 * entry address (annotation, else what its agent reported) → its ready pods
 * at the policy's port; incremental updates equal a rebuild.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import type { Resource } from "@switchyard/proto/assignment";
import { Protocol } from "@switchyard/proto/assignment";
import { World, type WorldChange } from "../model/world.ts";
import { readObjects } from "../sources/directory.ts";
import { WorldWriter } from "../sources/source.ts";
import { nodeEntryAddresses } from "./balancing.ts";
import { ViewTranslator } from "./compute-resources.ts";

const CLUSTER = "west";
const NODES = ["node-a", "node-b", "node-c", "host-1"];
const objects = readObjects(
  fs.readFileSync(path.join(import.meta.dirname, "testdata-balancing/modes/objects.yaml"), "utf8"),
).objects;

function worldOf(): { world: World; writer: WorldWriter } {
  const world = new World();
  const writer = new WorldWriter(world, CLUSTER, silentLogger());
  for (const o of objects) assert.ok(writer.upsert(o));
  return { world, writer };
}

function entryOf(t: ViewTranslator, node: string): Resource | undefined {
  return t.nodeSnapshot(node).overlay?.get(`entry/${CLUSTER}/${node}`);
}

function ports(r: Resource | undefined) {
  return r?.body?.$case === "nodeEntry"
    ? r.body.value.ports.map((p) => ({
        to: `${p.address}:${p.port}/${p.protocol === Protocol.PROTOCOL_UDP ? "UDP" : "TCP"}`,
        pods: p.targets.map((x) => `${x.ip}:${x.port}`),
        policy: p.policy,
      }))
    : undefined;
}

/** A translator fed `changes` incrementally equals one rebuilt from the result. */
function check(world: World, t: ViewTranslator, changes: WorldChange[]): Set<string> {
  const changed = t.update([world.cluster(CLUSTER)], changes);
  const fresh = new ViewTranslator(CLUSTER, "pod");
  fresh.rebuild([world.cluster(CLUSTER)]);
  for (const n of NODES) assert.equal(t.nodeSnapshot(n).version, fresh.nodeSnapshot(n).version, n);
  return changed;
}

describe("node entry resources", () => {
  it("each node with the policy's ready pods and an entry address gets its entry ports, no other node does", () => {
    const { world } = worldOf();
    const t = new ViewTranslator(CLUSTER, "pod");
    t.rebuild([world.cluster(CLUSTER)]);
    // cache-proxy: frontend 10.96.50.3 (v4 only) → nodeProxy at 8080
    assert.deepEqual(ports(entryOf(t, "node-a")), [
      { to: "198.51.100.1:8080/TCP", pods: ["10.244.1.10:8080"], policy: "bp/west/shop/cache-proxy" },
    ]);
    // web-3 is not ready: not a target
    assert.deepEqual(ports(entryOf(t, "node-b")), [
      { to: "198.51.100.2:8080/TCP", pods: ["10.244.2.10:8080"], policy: "bp/west/shop/cache-proxy" },
    ]);
    assert.equal(entryOf(t, "node-c"), undefined, "node-c has no entry address");
    assert.equal(entryOf(t, "host-1"), undefined);
    assert.equal(
      t.snapshot().resources.has(`entry/${CLUSTER}/node-a`),
      false,
      "never in the shared snapshot",
    );
  });

  it("an entry address the node's agent reported serves a node without the annotation; the annotation wins", () => {
    const { world } = worldOf();
    const t = new ViewTranslator(CLUSTER, "pod");
    t.rebuild([world.cluster(CLUSTER)]);
    const changes: WorldChange[] = [];
    world.onChange((_c, ch) => ch && changes.push(ch));
    world.setReportedEntryAddresses(CLUSTER, "node-c", ["203.0.113.3", "2001:db8:f::3"]);
    assert.deepEqual(nodeEntryAddresses(world.cluster(CLUSTER), "node-c"), ["203.0.113.3", "2001:db8:f::3"]);
    const changed = check(world, t, changes.splice(0));
    assert.ok(changed.has(`entry/${CLUSTER}/node-c`));
    assert.ok(!changed.has(`entry/${CLUSTER}/node-a`), "other nodes' entries are not rewritten");
    assert.deepEqual(ports(entryOf(t, "node-c")), [
      { to: "203.0.113.3:8080/TCP", pods: ["10.244.3.10:8080"], policy: "bp/west/shop/cache-proxy" },
    ]);
    const bp = t.snapshot().resources.get("bp/west/shop/cache-proxy")?.body;
    assert.ok(bp?.$case === "balancing" && bp.value.endpoints.some((e) => e.addresses[0] === "203.0.113.3"));
    // the same report again changes nothing
    world.setReportedEntryAddresses(CLUSTER, "node-c", ["203.0.113.3", "2001:db8:f::3"]);
    assert.equal(changes.length, 0);
    // node-a reports too, but its annotation stays in force
    world.setReportedEntryAddresses(CLUSTER, "node-a", ["203.0.113.1"]);
    check(world, t, changes.splice(0));
    assert.equal(ports(entryOf(t, "node-a"))?.[0]?.to, "198.51.100.1:8080/TCP");
    // node-c's report withdrawn: its entry goes
    world.setReportedEntryAddresses(CLUSTER, "node-c", []);
    check(world, t, changes.splice(0));
    assert.equal(entryOf(t, "node-c"), undefined);
  });

  it("follows the pods: a pod that becomes ready joins its node's entry, a policy removed takes every entry with it", () => {
    const { world, writer } = worldOf();
    const t = new ViewTranslator(CLUSTER, "pod");
    t.rebuild([world.cluster(CLUSTER)]);
    const changes: WorldChange[] = [];
    world.onChange((_c, ch) => ch && changes.push(ch));
    writer.upsert({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "web-3", namespace: "shop", uid: "u3", labels: { app: "web" } },
      spec: {
        nodeName: "node-b",
        containers: [{ name: "web", ports: [{ name: "http", containerPort: 8080 }] }],
      },
      status: { podIPs: [{ ip: "10.244.2.11" }], conditions: [{ type: "Ready", status: "True" }] },
    });
    const changed = check(world, t, changes.splice(0));
    assert.ok(changed.has(`entry/${CLUSTER}/node-b`));
    assert.ok(!changed.has(`entry/${CLUSTER}/node-a`));
    assert.deepEqual(ports(entryOf(t, "node-b"))?.[0]?.pods, ["10.244.2.10:8080", "10.244.2.11:8080"]);
    world.remove(CLUSTER, "BalancingPolicy", "shop", "cache-proxy");
    check(world, t, changes.splice(0));
    for (const n of NODES) assert.equal(entryOf(t, n), undefined, n);
  });
});

describe("node entry port conflicts", () => {
  const conflict = readObjects(
    fs.readFileSync(path.join(import.meta.dirname, "testdata-balancing/entry-conflict/objects.yaml"), "utf8"),
  ).objects;
  const isPolicy = (o: unknown, name: string) =>
    (o as { kind: string }).kind === "BalancingPolicy" &&
    (o as { metadata: { name: string } }).metadata.name === name;

  function setup(leaveOut: string[] = []) {
    const world = new World();
    const writer = new WorldWriter(world, CLUSTER, silentLogger());
    for (const o of conflict) if (!leaveOut.some((n) => isPolicy(o, n))) assert.ok(writer.upsert(o));
    const t = new ViewTranslator(CLUSTER, "pod");
    t.rebuild([world.cluster(CLUSTER)]);
    const changes: WorldChange[] = [];
    world.onChange((_c, ch) => ch && changes.push(ch));
    return { world, writer, t, changes };
  }

  it("the older nodeProxy policy keeps the entry port; the younger is refused with Conflict naming it and sends nothing", () => {
    const { t } = setup();
    assert.deepEqual(ports(entryOf(t, "node-a")), [
      { to: "198.51.100.1:8080/TCP", pods: ["10.244.1.10:8080"], policy: "bp/west/shop/web-proxy" },
      { to: "198.51.100.1:8080/UDP", pods: ["10.244.1.20:8080"], policy: "bp/west/ops/dns-proxy" },
    ]);
    assert.equal(entryOf(t, "node-b"), undefined, "api-proxy's pod on node-b gets no entry");
    for (const name of ["shop/api-proxy", "ops/metrics-proxy"]) {
      const v = t.balancingVerdicts.get(name);
      assert.equal(v?.reason, "Conflict", name);
      assert.equal(v?.winner, "shop/web-proxy", name);
      assert.match(v?.message ?? "", /shop\/web-proxy holds nodeProxy entry port 8080\/TCP/);
    }
    assert.ok(!t.snapshot().resources.has("bp/west/shop/api-proxy"), "a loser is sent to no agent");
    assert.ok(!t.snapshot().resources.has("bp/west/ops/metrics-proxy"));
    assert.equal(t.balancingVerdicts.get("ops/dns-proxy")?.reason, "Accepted", "8080/UDP is another port");
    assert.equal(
      t.balancingVerdicts.get("shop/api-host")?.reason,
      "Accepted",
      "hostPort takes no entry port",
    );
  });

  it("a younger policy arriving changes nothing of the winner; when the winner goes the next oldest takes the port", () => {
    const { world, writer, t, changes } = setup(["api-proxy"]);
    const before = entryOf(t, "node-a")?.version;
    const bp = t.snapshot().resources.get("bp/west/shop/web-proxy")?.version;
    assert.ok(before && bp);
    writer.upsert(conflict.find((o) => isPolicy(o, "api-proxy")));
    const changed = check(world, t, changes.splice(0));
    assert.deepEqual(
      [...changed].filter((n) => n.startsWith("entry/") || n.startsWith("bp/")),
      [],
      "no entry and no bp resource is written",
    );
    assert.equal(entryOf(t, "node-a")?.version, before);
    assert.equal(t.snapshot().resources.get("bp/west/shop/web-proxy")?.version, bp);
    assert.equal(t.balancingVerdicts.get("shop/api-proxy")?.reason, "Conflict");
    // the winner deleted: api-proxy (older than metrics-proxy) takes 8080/TCP on the nodes of its pods
    world.remove(CLUSTER, "BalancingPolicy", "shop", "web-proxy");
    check(world, t, changes.splice(0));
    assert.equal(t.balancingVerdicts.get("shop/api-proxy")?.reason, "Accepted");
    assert.equal(t.balancingVerdicts.get("ops/metrics-proxy")?.winner, "shop/api-proxy");
    assert.deepEqual(ports(entryOf(t, "node-a")), [
      { to: "198.51.100.1:8080/TCP", pods: ["10.244.1.11:8080"], policy: "bp/west/shop/api-proxy" },
      { to: "198.51.100.1:8080/UDP", pods: ["10.244.1.20:8080"], policy: "bp/west/ops/dns-proxy" },
    ]);
    assert.deepEqual(ports(entryOf(t, "node-b")), [
      { to: "198.51.100.2:8080/TCP", pods: ["10.244.2.11:8080"], policy: "bp/west/shop/api-proxy" },
    ]);
    // api-proxy moves to another port: metrics-proxy's 8080/TCP is free, it takes it
    const moved = structuredClone(conflict.find((o) => isPolicy(o, "api-proxy"))) as {
      metadata: { generation: number };
      spec: { backend: { serviceEndpoint: { toPorts: Array<{ port: number }> } } };
    };
    moved.metadata.generation = 4;
    moved.spec.backend.serviceEndpoint.toPorts[0]!.port = 8081;
    writer.upsert(moved);
    check(world, t, changes.splice(0));
    assert.equal(t.balancingVerdicts.get("ops/metrics-proxy")?.reason, "Accepted");
    assert.deepEqual(
      ports(entryOf(t, "node-a"))?.map((p) => `${p.to} ${p.policy}`),
      [
        "198.51.100.1:8080/TCP bp/west/ops/metrics-proxy",
        "198.51.100.1:8081/TCP bp/west/shop/api-proxy",
        "198.51.100.1:9090/TCP bp/west/ops/metrics-proxy",
        "198.51.100.1:8080/UDP bp/west/ops/dns-proxy",
      ],
    );
  });
});
