/**
 * Golden test: cluster YAML in → canonical dump of the resources an agent of
 * that view receives (a one-cluster case: as pod agents, then as node-port
 * agents — hosts and edge nodes — see it). The same objects fed in another
 * order give the same dump. UPDATE_GOLDEN=1 rewrites the .golden files.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import { World } from "../model/world.ts";
import { readObjects } from "../sources/directory.ts";
import { WorldWriter } from "../sources/source.ts";
import { type Reach, type ViewSnapshot, ViewTranslator } from "./compute-resources.ts";
import { shuffled } from "./shuffled.ts";

const TESTDATA = path.join(import.meta.dirname, "testdata");

function loadObjects(dir: string): unknown[] {
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

function snapshotOf(cluster: string, objects: unknown[], reach: Reach): ViewSnapshot {
  const world = new World();
  const w = new WorldWriter(world, cluster, silentLogger());
  for (const o of objects) w.upsert(o);
  const t = new ViewTranslator(cluster, reach);
  t.rebuild([world.cluster(cluster)]);
  return t.snapshot();
}

type Tagged = { cluster: string; object: unknown };

/**
 * A multi-cluster case: one subdirectory per cluster. Every cluster is the
 * home of a view that imports all the others; the first cluster's view is
 * also dumped as node-port agents (edge nodes, hosts) see it.
 */
function multiClusterDump(clusters: string[], objects: Tagged[]): string {
  const world = new World();
  const writers = new Map(clusters.map((c) => [c, new WorldWriter(world, c, silentLogger())]));
  for (const o of objects) writers.get(o.cluster)!.upsert(o.object);
  const views: Array<{ home: string; reach: Reach }> = clusters.map((home) => ({ home, reach: "pod" }));
  views.push({ home: clusters[0]!, reach: "nodeport" });
  let out = "";
  for (const v of views) {
    const t = new ViewTranslator(v.home, v.reach);
    t.rebuild([v.home, ...clusters.filter((c) => c !== v.home)].map((c) => world.cluster(c)));
    out += `=== view of ${v.home} (imports ${clusters.filter((c) => c !== v.home).join(",")}), reach ${v.reach}\n`;
    out += canonicalDump(t.snapshot());
  }
  return out;
}

function caseDump(dir: string, order: (xs: Tagged[]) => Tagged[]): string {
  const subdirs = fs
    .readdirSync(dir)
    .filter((d) => fs.statSync(path.join(dir, d)).isDirectory())
    .sort();
  if (subdirs.length === 0) {
    const cluster = path.basename(dir);
    const objects = order(loadObjects(dir).map((object) => ({ cluster, object }))).map((o) => o.object);
    return `${canonicalDump(snapshotOf(cluster, objects, "pod"))}=== reach nodeport\n${canonicalDump(snapshotOf(cluster, objects, "nodeport"))}`;
  }
  const objects = subdirs.flatMap((c) =>
    loadObjects(path.join(dir, c)).map((object) => ({ cluster: c, object })),
  );
  return multiClusterDump(subdirs, order(objects));
}

export function canonicalDump(s: ViewSnapshot): string {
  const lines: string[] = [];
  for (const name of [...s.resources.keys()].sort()) {
    const r = s.resources.get(name)!;
    lines.push(`${name} @${r.version}`);
    lines.push(`  ${JSON.stringify(r.body?.value)}`);
  }
  for (const d of [...s.diagnostics].sort((a, b) => (a.object + a.message < b.object + b.message ? -1 : 1))) {
    lines.push(`! ${d.object}: ${d.message}`);
  }
  return `${lines.join("\n")}\n`;
}

describe("translation golden tests", () => {
  for (const name of fs
    .readdirSync(TESTDATA)
    .filter((d) => fs.statSync(path.join(TESTDATA, d)).isDirectory())) {
    const dir = path.join(TESTDATA, name);
    it(`${name}: YAML in, canonical assignments out`, () => {
      const dump = caseDump(dir, (xs) => xs);
      const golden = path.join(TESTDATA, `${name}.golden`);
      if (process.env["UPDATE_GOLDEN"] === "1") fs.writeFileSync(golden, dump);
      assert.ok(fs.existsSync(golden), `missing ${golden}: run with UPDATE_GOLDEN=1`);
      assert.equal(dump, fs.readFileSync(golden, "utf8"));
    });

    it(`${name}: the same objects in another order give the same assignments`, () => {
      const want = caseDump(dir, (xs) => xs);
      for (const seed of [1, 2, 3])
        assert.equal(
          caseDump(dir, (xs) => shuffled(xs, seed)),
          want,
        );
    });
  }
});
