/**
 * Golden test of the whole pure pipeline: cluster YAML → hub translator →
 * assignment resources → agent desired state → planned map operations →
 * canonical map dump (what `switchyard-agent dump` prints). The same input in
 * another order gives the same dump. UPDATE_GOLDEN=1 rewrites the files.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import { World } from "../../services/hub/src/model/world.ts";
import { readObjects } from "../../services/hub/src/sources/directory.ts";
import { WorldWriter } from "../../services/hub/src/sources/source.ts";
import { type Reach, ViewTranslator } from "../../services/hub/src/translate/compute-resources.ts";
import { FakeMaps } from "../../services/nodeagent/src/bpf/maps.ts";
import { formatMapState } from "../../services/nodeagent/src/cli/dump.ts";
import { computeDesired } from "../../services/nodeagent/src/desired/compute-desired.ts";
import { planMaps } from "../../services/nodeagent/src/plan/plan-maps.ts";

const CLUSTERS = path.join(import.meta.dirname, "../../services/hub/src/translate/testdata");
const GOLDEN = path.join(import.meta.dirname, "testdata");

type Tagged = { cluster: string; object: unknown };
type NodeId = { name: string; addresses: string[]; zone?: string };

/** The view of the first cluster (home), importing the others. */
function dumpFor(objects: Tagged[], clusters: string[], node: NodeId, reach: Reach = "pod"): string {
  const world = new World();
  const writers = new Map(clusters.map((c) => [c, new WorldWriter(world, c, silentLogger())]));
  for (const o of objects) writers.get(o.cluster)!.upsert(o.object);
  const t = new ViewTranslator(clusters[0], reach);
  t.rebuild(clusters.map((c) => world.cluster(c)));
  const snap = t.snapshot();
  const maps = new FakeMaps();
  maps.apply(planMaps(computeDesired(snap.resources.values(), node), maps.read()).ops);
  return formatMapState(maps.read());
}

function loadDir(dir: string, cluster: string): Tagged[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .flatMap((f) => readObjects(fs.readFileSync(path.join(dir, f), "utf8")).objects)
    .map((object) => ({ cluster, object }));
}

/** A case directory: YAML files (one cluster named after it) or one subdirectory per cluster. */
function load(dir: string): { clusters: string[]; objects: Tagged[] } {
  const subdirs = fs
    .readdirSync(dir)
    .filter((d) => fs.statSync(path.join(dir, d)).isDirectory())
    .sort();
  if (subdirs.length === 0)
    return { clusters: [path.basename(dir)], objects: loadDir(dir, path.basename(dir)) };
  return { clusters: subdirs, objects: subdirs.flatMap((c) => loadDir(path.join(dir, c), c)) };
}

/** The agent whose maps are dumped: a node of the case's home cluster. */
const NODES: Record<string, NodeId> = {
  multicluster: { name: "east-1", addresses: ["192.0.2.31"], zone: "east-a" },
  // a node without a ready endpoint of the eTP=Local ingress
  "traffic-policy": { name: "worker-b", addresses: ["192.0.2.52"], zone: "zone-b" },
};
const DEFAULT_NODE: NodeId = { name: "k3s-server-0", addresses: ["192.0.2.10"] };
/** And a plain host outside the cluster, in the node-port view of the same cluster. */
const HOST: NodeId = { name: "host-1", addresses: ["198.51.100.200"] };

function dumpBoth(objects: Tagged[], clusters: string[], node: NodeId): string {
  return `${dumpFor(objects, clusters, node)}=== ${HOST.name}, a host in the node-port view\n${dumpFor(objects, clusters, HOST, "nodeport")}`;
}

describe("golden: cluster YAML in, canonical BPF map dump out", () => {
  for (const cluster of fs
    .readdirSync(CLUSTERS)
    .filter((d) => fs.statSync(path.join(CLUSTERS, d)).isDirectory())) {
    const node = NODES[cluster] ?? DEFAULT_NODE;
    it(`${cluster}: maps of an agent on ${node.name}, and of a host in the node-port view`, () => {
      const { clusters, objects } = load(path.join(CLUSTERS, cluster));
      const dump = dumpBoth(objects, clusters, node);
      const file = path.join(GOLDEN, `${cluster}.maps.golden`);
      if (process.env["UPDATE_GOLDEN"] === "1") {
        fs.mkdirSync(GOLDEN, { recursive: true });
        fs.writeFileSync(file, dump);
      }
      assert.equal(dump, fs.readFileSync(file, "utf8"));
    });
    it(`${cluster}: the same objects reversed give the same maps`, () => {
      const { clusters, objects } = load(path.join(CLUSTERS, cluster));
      assert.equal(dumpBoth([...objects].reverse(), clusters, node), dumpBoth(objects, clusters, node));
    });
  }
});
