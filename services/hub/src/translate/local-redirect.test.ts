/**
 * LocalRedirectPolicy translation. Golden: Services (Kubernetes YAML) and
 * Nodes, Pods and policies (model form) in → the shared resources, each
 * node's own resources and every policy's verdict out; the same objects in
 * another order give the same dump. Then incremental updates against a
 * rebuild from scratch. UPDATE_GOLDEN=1 rewrites the .golden files.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import { formatDigest, resourceDigest } from "@switchyard/lib/view-digest";
import type { Resource } from "@switchyard/proto/assignment";
import { parseAllDocuments } from "yaml";
import type { LocalRedirectPolicy, Node, Pod } from "../model/types.ts";
import { type ModelObject, World, type WorldChange } from "../model/world.ts";
import { readObjects } from "../sources/directory.ts";
import { WorldWriter } from "../sources/source.ts";
import { ViewTranslator } from "./compute-resources.ts";
import { selectorMatches } from "./label-selector.ts";
import { localRedirectVerdicts } from "./local-redirect.ts";
import { shuffled } from "./shuffled.ts";

const TESTDATA = path.join(import.meta.dirname, "testdata-policies");
const CLUSTER = "edge-a";

type Doc = { model?: string; [k: string]: unknown };

/** A model-form document (`model: Pod | Node | LocalRedirectPolicy`) as the parsers would give it. */
function modelObject(d: Doc): ModelObject {
  const { model, ...v } = d;
  const value = { cluster: CLUSTER, ...v } as Record<string, unknown>;
  switch (model) {
    case "Node":
      return { kind: "Node", value: { zone: undefined, ...value } as Node };
    case "Pod":
      return { kind: "Pod", value: { nodeName: undefined, ...value } as Pod };
    case "LocalRedirectPolicy": {
      // optional fields absent from the YAML are undefined, as the parser gives them
      const p = value as unknown as LocalRedirectPolicy;
      const fe = p.frontend;
      const frontend = fe.kind === "address" ? { fallbackService: undefined, ...(fe as object) } : fe;
      const toPorts = p.backend.toPorts.map((t) => ({ targetName: undefined, ...(t as object) }));
      return {
        kind: "LocalRedirectPolicy",
        value: { nodeSelector: undefined, ...(p as object), frontend, backend: { ...p.backend, toPorts } },
      } as ModelObject;
    }
    default:
      throw new Error(`unknown model kind ${String(model)}`);
  }
}

type Input = { kube: unknown[]; model: ModelObject[] };

function loadCase(dir: string): Input {
  const kube: unknown[] = [];
  const model: ModelObject[] = [];
  for (const f of fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .sort()) {
    const text = fs.readFileSync(path.join(dir, f), "utf8");
    if (f === "model.yaml")
      for (const d of parseAllDocuments(text)) model.push(modelObject(d.toJSON() as Doc));
    else {
      const r = readObjects(text);
      assert.equal(r.error, undefined, `${f} parses`);
      kube.push(...r.objects);
    }
  }
  return { kube, model };
}

function worldOf(input: Input, order: <T>(xs: T[]) => T[] = (xs) => xs): World {
  const world = new World();
  const w = new WorldWriter(world, CLUSTER, silentLogger());
  for (const o of order(input.kube)) assert.ok(w.upsert(o));
  for (const o of order(input.model)) world.upsert(CLUSTER, o);
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

/**
 * A view's policy resources: the shared ones (with the view's version),
 * then each node's own (with that node's version), then the verdicts.
 */
function dump(t: ViewTranslator, nodes: string[]): string {
  const base = t.snapshot();
  let out = `=== shared @${base.version}\n${lines(base.resources, (n) => n.startsWith("lrp/"))}`;
  for (const node of [...nodes].sort()) {
    const s = t.nodeSnapshot(node);
    out += `=== node ${node} @${s.version}\n${lines(s.overlay ?? new Map(), () => true)}`;
  }
  out += "=== verdicts\n";
  for (const [key, v] of [...t.policyVerdicts].sort(([a], [b]) => (a < b ? -1 : 1)))
    out += `${key} (generation ${v.generation}): ${v.reason}${v.winner ? ` (winner ${v.winner})` : ""} [${v.frontends.join(" ")}] ${v.message}\n`;
  return out;
}

function built(world: World): ViewTranslator {
  const t = new ViewTranslator(CLUSTER, "pod");
  t.rebuild([world.cluster(CLUSTER)]);
  return t;
}

const NODES = ["node-a", "node-b", "node-c", "node-x"];

describe("LocalRedirectPolicy golden tests", () => {
  for (const name of fs
    .readdirSync(TESTDATA)
    .filter((d) => fs.statSync(path.join(TESTDATA, d)).isDirectory())) {
    const input = loadCase(path.join(TESTDATA, name));
    it(`${name}: policies, Pods and Services in; shared, per-node resources and verdicts out`, () => {
      const out = dump(built(worldOf(input)), NODES);
      const golden = path.join(TESTDATA, `${name}.golden`);
      if (process.env["UPDATE_GOLDEN"] === "1") fs.writeFileSync(golden, out);
      assert.ok(fs.existsSync(golden), `missing ${golden}: run with UPDATE_GOLDEN=1`);
      assert.equal(out, fs.readFileSync(golden, "utf8"));
    });
    it(`${name}: the same objects in another order give the same result`, () => {
      const want = dump(built(worldOf(input)), NODES);
      for (const seed of [1, 2, 3])
        assert.equal(dump(built(worldOf(input, (xs) => shuffled(xs, seed))), NODES), want);
    });
  }
});

describe("LocalRedirectPolicy incremental translation", () => {
  const input = loadCase(path.join(TESTDATA, "node-local-dns"));

  /** A translator kept current by updates, and a check that it equals a rebuild from scratch. */
  function live() {
    const world = worldOf(input);
    const t = built(world);
    const pending: WorldChange[] = [];
    world.onChange((_c, ch) => {
      if (ch) pending.push(ch);
    });
    const apply = (f: () => void): Set<string> => {
      f();
      const changed = t.update([world.cluster(CLUSTER)], pending.splice(0));
      assert.equal(dump(t, NODES), dump(built(world), NODES), "incremental = rebuild");
      return changed;
    };
    return { world, t, apply };
  }

  function pod(world: World, name: string): Pod {
    const [ns, n] = name.split("/") as [string, string];
    return world.cluster(CLUSTER).pods.get(`${ns}/${n}`)!;
  }

  it("a Pod change recomputes only its node's resources, and only of the policies that select it", () => {
    const { world, apply } = live();
    const p = pod(world, "kube-system/node-local-dns-aaaaa");
    const changed = apply(() => world.upsert(CLUSTER, { kind: "Pod", value: { ...p, ready: false } }));
    assert.deepEqual([...changed].sort(), [
      "lrpb/edge-a/kube-system/node-local-dns-vip/node-a",
      "lrpb/edge-a/kube-system/node-local-dns/node-a",
    ]);
    // a Pod no policy selects changes nothing
    const other = pod(world, "default/impostor");
    assert.equal(
      apply(() => world.upsert(CLUSTER, { kind: "Pod", value: { ...other, ready: false } })).size,
      0,
    );
  });

  it("a Pod that moves, and a node's last selected Pod deleted, remove that node's resource", () => {
    const { world, t, apply } = live();
    const p = pod(world, "infra/md-proxy-3");
    let changed = apply(() => world.upsert(CLUSTER, { kind: "Pod", value: { ...p, nodeName: "node-c" } }));
    assert.deepEqual([...changed].sort(), [
      "lrpb/edge-a/infra/md-proxy/node-b",
      "lrpb/edge-a/infra/md-proxy/node-c",
    ]);
    assert.equal(t.nodeSnapshot("node-b").overlay?.has("lrpb/edge-a/infra/md-proxy/node-b") ?? false, false);
    changed = apply(() => world.remove(CLUSTER, "Pod", "infra", "md-proxy-3"));
    assert.deepEqual([...changed], ["lrpb/edge-a/infra/md-proxy/node-c"]);
    assert.equal(t.nodeSnapshot("node-c").overlay?.has("lrpb/edge-a/infra/md-proxy/node-c") ?? false, false);
  });

  it("when the winner goes, the next oldest takes over; a conflict names the new winner", () => {
    const { world, t, apply } = live();
    assert.equal(t.policyVerdicts.get("kube-system/dns-cache-2")?.winner, "kube-system/node-local-dns");
    const changed = apply(() =>
      world.remove(CLUSTER, "LocalRedirectPolicy", "kube-system", "node-local-dns"),
    );
    assert.ok(changed.has("lrp/edge-a/kube-system/node-local-dns"));
    assert.ok(changed.has("lrpb/edge-a/kube-system/node-local-dns/node-a"));
    assert.equal(t.policyVerdicts.get("kube-system/dns-cache-2")?.reason, "Accepted");
    assert.ok(t.snapshot().resources.has("lrp/edge-a/kube-system/dns-cache-2"));
    const grab = t.policyVerdicts.get("kube-system/clusterip-grab")!;
    assert.equal(grab.reason, "Conflict");
    assert.equal(grab.winner, "kube-system/dns-cache-2");
    // the same verdicts without building any resource (status for a cluster no agent views)
    assert.deepEqual(localRedirectVerdicts(world.cluster(CLUSTER)), t.policyVerdicts);
  });

  it("a policy's backend change recomputes its own resources only; a Service change re-resolves its frontends", () => {
    const { world, apply } = live();
    const p = world.cluster(CLUSTER).localRedirects.get("infra/md-proxy")!;
    const sel = { matchLabels: { app: "md-proxy" }, matchExpressions: [] };
    let changed = apply(() =>
      world.upsert(CLUSTER, {
        kind: "LocalRedirectPolicy",
        value: { ...p, generation: 2, backend: { ...p.backend, selector: sel } },
      }),
    );
    // the canary on node-a joins; node-b's resource is recomputed but the same
    assert.deepEqual([...changed], ["lrpb/edge-a/infra/md-proxy/node-a"]);
    const svc = world.cluster(CLUSTER).services.get("infra/metadata")!;
    changed = apply(() =>
      world.upsert(CLUSTER, { kind: "Service", value: { ...svc, clusterIPs: ["10.96.5.6"] } }),
    );
    assert.deepEqual([...changed].sort(), ["lrp/edge-a/infra/md-proxy", "svc/edge-a/infra/metadata"]);
  });

  it("a policy waiting for its Service (ServiceNotFound) applies when the Service appears", () => {
    const { world, t, apply } = live();
    assert.equal(t.policyVerdicts.get("infra/no-such-service")?.reason, "ServiceNotFound");
    const svc = world.cluster(CLUSTER).services.get("infra/metadata")!;
    const changed = apply(() =>
      world.upsert(CLUSTER, {
        kind: "Service",
        value: { ...svc, name: "not-there", clusterIPs: ["10.96.5.9"] },
      }),
    );
    assert.equal(t.policyVerdicts.get("infra/no-such-service")?.reason, "Accepted");
    assert.ok(changed.has("lrp/edge-a/infra/no-such-service"));
    assert.ok(changed.has("lrpb/edge-a/infra/no-such-service/node-a"));
  });

  it("a Node's labels leaving a nodeSelector remove that node's resources of the policy", () => {
    const { world, apply } = live();
    const n = world.cluster(CLUSTER).nodes.get("node-a")!;
    const changed = apply(() => world.upsert(CLUSTER, { kind: "Node", value: { ...n, labels: {} } }));
    assert.deepEqual([...changed], ["lrpb/edge-a/kube-system/node-local-dns/node-a"]);
  });

  it("a node's snapshot: the shared map and its own, version = XOR of both digests; a node with none gets the shared snapshot", () => {
    const t = built(worldOf(input));
    const base = t.snapshot();
    const a = t.nodeSnapshot("node-a");
    assert.equal(a.base, base);
    assert.equal(a.resources, base.resources);
    let acc = 0n;
    for (const r of [...base.resources.values(), ...a.overlay!.values()])
      acc ^= resourceDigest(r.name, r.version);
    assert.equal(a.version, formatDigest(acc));
    assert.equal(t.nodeSnapshot("node-a"), a, "the same object while nothing changed");
    assert.equal(t.nodeSnapshot("node-x"), base);
    for (const name of base.resources.keys())
      assert.ok(!name.startsWith("lrpb/"), "per-node resources are not shared");
  });

  it("only views whose home is the policy's cluster carry its resources", () => {
    const world = worldOf(input);
    world.cluster("edge-b");
    const t = new ViewTranslator("edge-b", "pod");
    t.rebuild([world.cluster("edge-b"), world.cluster(CLUSTER)]);
    const names = [...t.snapshot().resources.keys()];
    assert.ok(names.some((n) => n.startsWith("svc/edge-a/")));
    assert.ok(!names.some((n) => n.startsWith("lrp")));
    assert.equal(t.nodeSnapshot("node-a"), t.snapshot());
    assert.equal(t.policyVerdicts.size, 0);
  });
});

describe("label selectors", () => {
  it("matchLabels and every matchExpressions operator", () => {
    const l = { app: "dns", tier: "node" };
    const m = (
      matchLabels: Record<string, string>,
      ...matchExpressions: Parameters<typeof selectorMatches>[0]["matchExpressions"]
    ) => selectorMatches({ matchLabels, matchExpressions }, l);
    assert.ok(m({}));
    assert.ok(m({ app: "dns" }));
    assert.ok(!m({ app: "web" }));
    assert.ok(m({}, { key: "tier", operator: "In", values: ["node", "x"] }));
    assert.ok(!m({}, { key: "zone", operator: "In", values: ["a"] }));
    assert.ok(m({}, { key: "zone", operator: "NotIn", values: ["a"] }));
    assert.ok(!m({}, { key: "tier", operator: "NotIn", values: ["node"] }));
    assert.ok(m({}, { key: "app", operator: "Exists", values: [] }));
    assert.ok(!m({}, { key: "app", operator: "DoesNotExist", values: [] }));
    assert.ok(!m({ app: "dns" }, { key: "tier", operator: "DoesNotExist", values: [] }));
  });
});
