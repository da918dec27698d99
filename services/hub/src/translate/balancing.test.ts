/**
 * BalancingPolicy translation. Golden: Kubernetes YAML in (Nodes, Pods,
 * Services, BalancingPolicies and LocalRedirectPolicies, through the hub's
 * own parsers) → for a pod view and a node-port view, the shared `bp/`
 * resources, each node's `bpn/` markers and every policy's verdict; the same
 * objects in another order give the same dump. Then incremental updates
 * against a rebuild. UPDATE_GOLDEN=1 rewrites the .golden files.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import type { Resource } from "@switchyard/proto/assignment";
import { World, type WorldChange } from "../model/world.ts";
import { readObjects } from "../sources/directory.ts";
import { WorldWriter } from "../sources/source.ts";
import { nodeEntryAddresses } from "./balancing.ts";
import { type Reach, ViewTranslator } from "./compute-resources.ts";
import { policyVerdicts } from "./local-redirect.ts";
import { shuffled } from "./shuffled.ts";

const TESTDATA = path.join(import.meta.dirname, "testdata-balancing");
const CLUSTER = "west";
const NODES = ["node-a", "node-b", "node-c", "host-1"];

function load(dir: string): unknown[] {
  const out: unknown[] = [];
  for (const f of fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .sort()) {
    const r = readObjects(fs.readFileSync(path.join(dir, f), "utf8"));
    assert.equal(r.error, undefined, `${f} parses`);
    out.push(...r.objects);
  }
  return out;
}

function worldOf(objects: unknown[]): World {
  const world = new World();
  const w = new WorldWriter(world, CLUSTER, silentLogger());
  for (const o of objects) assert.ok(w.upsert(o), "every object is accepted");
  return world;
}

function lines(resources: ReadonlyMap<string, Resource>, only: (name: string) => boolean): string {
  let out = "";
  for (const name of [...resources.keys()].filter(only).sort()) {
    const r = resources.get(name)!;
    out += `${name} @${r.version}\n  ${JSON.stringify(r.body?.value)}\n`;
  }
  return out;
}

function dump(world: World): string {
  let out = "";
  for (const reach of ["pod", "nodeport"] as Reach[]) {
    const t = new ViewTranslator(CLUSTER, reach);
    t.rebuild([world.cluster(CLUSTER)]);
    const base = t.snapshot();
    out += `=== ${reach} view: shared\n${lines(base.resources, (n) => n.startsWith("bp/"))}`;
    for (const node of NODES) {
      const o = t.nodeSnapshot(node).overlay ?? new Map();
      out += `=== ${reach} view: node ${node}\n${lines(o, (n) => n.startsWith("bpn/"))}`;
    }
  }
  const v = policyVerdicts(world.cluster(CLUSTER));
  out += "=== verdicts\n";
  for (const x of [...v.localRedirect.values(), ...v.balancing.values()].sort((a, b) =>
    a.name < b.name ? -1 : 1,
  ))
    out += `${x.kind} ${x.namespace}/${x.name}: ${x.reason}${x.winner ? ` (winner ${x.winner})` : ""} [${x.frontends.join(" ")}] ${x.message}\n`;
  return out;
}

describe("BalancingPolicy golden tests", () => {
  for (const name of fs
    .readdirSync(TESTDATA)
    .filter((d) => fs.statSync(path.join(TESTDATA, d)).isDirectory())) {
    const objects = load(path.join(TESTDATA, name));
    it(`${name}: the views' resources and the verdicts are ${name}.golden`, () => {
      const out = dump(worldOf(objects));
      const golden = path.join(TESTDATA, `${name}.golden`);
      if (process.env["UPDATE_GOLDEN"] === "1") fs.writeFileSync(golden, out);
      assert.ok(fs.existsSync(golden), `missing ${golden}: run with UPDATE_GOLDEN=1`);
      assert.equal(out, fs.readFileSync(golden, "utf8"));
    });
    it(`${name}: the same objects in another order give the same result`, () => {
      const want = dump(worldOf(objects));
      for (let seed = 1; seed <= 3; seed++) assert.equal(dump(worldOf(shuffled(objects, seed))), want);
    });
  }
});

describe("BalancingPolicy incremental translation", () => {
  const objects = load(path.join(TESTDATA, "modes"));

  /** The case's world, a writer to change it, a translator built from it and the changes since. */
  function setup() {
    const world = worldOf(objects);
    const w = new WorldWriter(world, CLUSTER, silentLogger());
    const t = new ViewTranslator(CLUSTER, "pod");
    t.rebuild([world.cluster(CLUSTER)]);
    const changes: WorldChange[] = [];
    world.onChange((_c, ch) => ch && changes.push(ch));
    return { world, w, t, changes };
  }

  /** A translator fed `change` incrementally equals one rebuilt from the result. */
  function check(world: World, t: ViewTranslator, changes: WorldChange[]): Set<string> {
    const changed = t.update([world.cluster(CLUSTER)], changes);
    const fresh = new ViewTranslator(CLUSTER, "pod");
    fresh.rebuild([world.cluster(CLUSTER)]);
    assert.equal(t.snapshot().version, fresh.snapshot().version);
    for (const n of NODES) assert.equal(t.nodeSnapshot(n).version, fresh.nodeSnapshot(n).version);
    return changed;
  }

  it("a Pod change recomputes the bp resources that select it, and only those", () => {
    const { world, w, t, changes } = setup();
    w.upsert({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "web-3", namespace: "shop", uid: "u3", labels: { app: "web" } },
      spec: {
        nodeName: "node-b",
        containers: [{ name: "web", ports: [{ name: "http", containerPort: 8080 }] }],
      },
      status: { podIPs: [{ ip: "10.244.2.11" }], conditions: [{ type: "Ready", status: "True" }] },
    });
    const changed = check(world, t, changes);
    assert.ok(changed.has("bp/west/shop/web-pods"), "the podEndpoint policy gains web-3");
    assert.ok(!changed.has("bp/west/shop/ext"), "an addressEndpoint policy is untouched");
    const body = t.snapshot().resources.get("bp/west/shop/web-pods")?.body;
    assert.ok(
      body?.$case === "balancing" &&
        body.value.endpoints.some((e) => e.addresses[0] === "10.244.2.11" && e.ready),
    );
  });

  it("an edit in place changes the policy's one resource (no remove and re-add); a Node's entry addresses move nodeProxy backends", () => {
    const { world, w, t, changes } = setup();
    const ext = objects.find(
      (o) =>
        (o as { metadata: { name: string } }).metadata.name === "ext" &&
        (o as { kind: string }).kind === "BalancingPolicy",
    ) as { spec: { backend: { addressEndpoint: { addresses: string[] } } } };
    const edited = structuredClone(ext);
    edited.spec.backend.addressEndpoint.addresses = ["192.0.2.12"];
    w.upsert(edited);
    const before = t.snapshot().resources.get("bp/west/shop/ext")!.version;
    const changed = check(world, t, changes.splice(0));
    assert.deepEqual(
      [...changed].filter((n) => n.startsWith("bp")),
      ["bp/west/shop/ext"],
    );
    assert.notEqual(t.snapshot().resources.get("bp/west/shop/ext")!.version, before);
    // node-c gets an entry address: its pod joins cache-proxy's backends
    w.upsert({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: "node-c", annotations: { "switchyard.io/entry-addresses": "198.51.100.3" } },
      status: { addresses: [{ type: "InternalIP", address: "192.0.2.3" }] },
    });
    assert.deepEqual(nodeEntryAddresses(world.cluster(CLUSTER), "node-c"), ["198.51.100.3"]);
    check(world, t, changes.splice(0));
    const cache = t.snapshot().resources.get("bp/west/shop/cache-proxy")?.body;
    assert.ok(
      cache?.$case === "balancing" && cache.value.endpoints.some((e) => e.addresses[0] === "198.51.100.3"),
    );
  });

  it("when the older LocalRedirectPolicy goes, the BalancingPolicy it held back takes over", () => {
    const { world, t, changes } = setup();
    assert.equal(t.balancingVerdicts.get("shop/legacy-bp")?.reason, "Conflict");
    world.remove(CLUSTER, "LocalRedirectPolicy", "shop", "legacy-lrp");
    check(world, t, changes);
    assert.equal(t.balancingVerdicts.get("shop/legacy-bp")?.reason, "Accepted");
    assert.ok(t.snapshot().resources.has("bp/west/shop/legacy-bp"));
  });
});
