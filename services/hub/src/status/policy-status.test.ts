import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import type { PolicyKind, PolicyVerdict } from "../model/types.ts";
import { type ClusterState, World } from "../model/world.ts";
import { KINDS } from "../sources/kube-objects.ts";
import { WorldWriter } from "../sources/source.ts";
import { clusterPolicyVerdicts } from "../translate/local-redirect.ts";
import { PolicyBook, type PolicyJudge, type PolicyStatus, PolicyStatusWriter } from "./policy-status.ts";

function policy(name: string, spec: Record<string, unknown> = {}, generation = 1, status?: unknown) {
  return {
    apiVersion: "switchyard.io/v1alpha1",
    kind: "LocalRedirectPolicy",
    metadata: { name, namespace: "kube-system", generation, creationTimestamp: "2026-01-01T00:00:00Z" },
    spec: {
      frontend: { service: { name: "kube-dns", ports: ["dns"] } },
      backend: {
        selector: { matchLabels: { app: "nl-dns" } },
        toPorts: [{ name: "dns", port: 53, protocol: "UDP" }],
      },
      ...spec,
    },
    ...(status === undefined ? {} : { status }),
  };
}

const BOTH = { frontend: { service: { name: "kube-dns" }, address: { ip: "169.254.20.10", ports: [] } } };

class FakeStatusClient {
  patches: Array<{ namespace: string; name: string; status: PolicyStatus; kind?: PolicyKind }> = [];
  failWith: number | undefined;
  async patchStatus(namespace: string, name: string, status: PolicyStatus, kind?: PolicyKind): Promise<void> {
    if (this.failWith !== undefined)
      throw Object.assign(new Error(`HTTP ${this.failWith}`), { code: this.failWith });
    this.patches.push({ namespace, name, status: structuredClone(status), ...(kind ? { kind } : {}) });
  }
}

/** A judge standing in for the translator: every policy Accepted, but those named "loser*" (Conflict). */
const judge: PolicyJudge = (c: ClusterState) =>
  new Map(
    [...c.localRedirects].map(([k, p]): [string, PolicyVerdict] => [
      `LocalRedirectPolicy/${k}`,
      {
        kind: "LocalRedirectPolicy",
        cluster: p.cluster,
        namespace: p.namespace,
        name: p.name,
        generation: p.generation,
        reason: p.name.startsWith("loser") ? "Conflict" : "Accepted",
        message: p.name.startsWith("loser")
          ? "kube-system/dns holds 10.96.0.10:53/UDP"
          : "redirects 10.96.0.10:53/UDP",
        winner: p.name.startsWith("loser") ? "kube-system/dns" : undefined,
        frontends: ["10.96.0.10:53/UDP"],
      },
    ]),
  );

function setup(opts: { judge?: PolicyJudge; directory?: boolean } = {}) {
  const world = new World();
  const book = new PolicyBook(world, opts.judge);
  const client = new FakeStatusClient();
  const writer = new PolicyStatusWriter(
    book,
    world,
    () => (opts.directory ? undefined : client),
    silentLogger(),
    {
      debounceMs: 60_000, // flushed by hand
      now: () => new Date("2026-02-02T00:00:00Z"),
    },
  );
  const w = new WorldWriter(world, "east", silentLogger(), undefined, book);
  for (const k of KINDS) w.listed(k);
  return { world, book, client, writer, w };
}

describe("policy status", () => {
  it("an invalid spec is listed by name as InvalidSpec and patched so; nothing enters the world", async () => {
    const { world, book, client, writer, w } = setup();
    assert.equal(w.upsert(policy("dns", BOTH, 2)), false);
    assert.equal(world.cluster("east").localRedirects.size, 0);
    const rows = book.rows();
    assert.equal(rows.length, 1);
    assert.deepEqual(
      [rows[0]!.name, rows[0]!.state, rows[0]!.reason, rows[0]!.generation, rows[0]!.frontend],
      ["dns", "NotAccepted", "InvalidSpec", 2, "svc kube-dns + 169.254.20.10"],
    );
    assert.match(rows[0]!.message, /frontend has both service and address; give exactly one/);
    await writer.flush();
    assert.equal(client.patches.length, 1);
    const s = client.patches[0]!.status;
    assert.equal(s.observedGeneration, 2);
    assert.deepEqual(
      { ...s.conditions[0], message: undefined },
      {
        type: "Accepted",
        status: "False",
        reason: "InvalidSpec",
        message: undefined,
        observedGeneration: 2,
        lastTransitionTime: "2026-02-02T00:00:00.000Z",
      },
    );
    await writer.flush();
    assert.equal(client.patches.length, 1, "nothing new: nothing written again");
    await writer.close();
  });

  it("a bad update keeps the valid generation in force and says so; fixing it clears the refusal", async () => {
    const { world, book, writer, w } = setup({ judge });
    assert.ok(w.upsert(policy("dns", {}, 1)));
    assert.equal(w.upsert(policy("dns", BOTH, 2)), false);
    assert.equal(
      world.cluster("east").localRedirects.get("kube-system/dns")?.generation,
      1,
      "generation 1 stays",
    );
    const [row] = book.rows();
    assert.equal(row!.reason, "InvalidSpec");
    assert.match(row!.message, /generation 1 stays in force until this is fixed/);
    assert.ok(w.upsert(policy("dns", {}, 3)));
    assert.deepEqual(
      book.rows().map((r) => [r.name, r.state, r.reason, r.generation]),
      [["dns", "Accepted", "Accepted", 3]],
    );
    await writer.close();
  });

  it("writes the translator's verdicts (Accepted, Conflict naming the winner) only when they differ from the cluster's", async () => {
    const { client, writer, w, book } = setup({ judge });
    // already holds what the hub would say: not written again (a hub restart rewrites nothing)
    const held = {
      observedGeneration: 1,
      frontend: "10.96.0.10:53/UDP",
      conditions: [
        {
          type: "Accepted",
          status: "True",
          reason: "Accepted",
          message: "redirects 10.96.0.10:53/UDP",
          observedGeneration: 1,
          lastTransitionTime: "2026-01-01T00:00:00Z",
        },
      ],
    };
    w.upsert(policy("dns", {}, 1, held));
    w.upsert(policy("loser-1", {}, 5));
    await writer.flush();
    assert.deepEqual(
      client.patches.map((p) => [p.name, p.status.conditions[0]!.reason, p.status.conditions[0]!.message]),
      [["loser-1", "Conflict", "kube-system/dns holds 10.96.0.10:53/UDP"]],
    );
    assert.equal(book.rows().find((r) => r.name === "loser-1")?.winner, "kube-system/dns");
    // the spec changes: a new generation, the same status otherwise; its transition time stays
    w.upsert(policy("dns", { skipRedirectFromBackend: true }, 2, held));
    await writer.flush();
    assert.equal(client.patches.length, 2);
    const c = client.patches[1]!.status.conditions[0]!;
    assert.deepEqual([c.observedGeneration, c.lastTransitionTime], [2, "2026-01-01T00:00:00Z"]);
    await writer.close();
  });

  it("a failed write is tried again; a policy deleted meanwhile (404) is dropped; directory clusters are never written", async () => {
    const { client, writer, w } = setup({ judge });
    w.upsert(policy("dns"));
    client.failWith = 500;
    await writer.flush();
    assert.equal(client.patches.length, 0);
    client.failWith = undefined;
    await writer.flush();
    assert.equal(client.patches.length, 1, "written on the next try");
    await writer.close();

    const dir = setup({ judge, directory: true });
    dir.w.upsert(policy("dns"));
    dir.w.upsert(policy("bad", BOTH));
    await dir.writer.flush();
    assert.equal(dir.client.patches.length, 0);
    assert.deepEqual(
      dir.book.rows().map((r) => [r.name, r.reason]),
      [
        ["bad", "InvalidSpec"],
        ["dns", "Accepted"],
      ],
      "listed all the same",
    );
    await dir.writer.close();
  });

  it("without a verdict a valid policy is Pending and nothing is written; a deleted policy leaves the list", async () => {
    const { client, writer, w, book } = setup();
    w.upsert(policy("dns"));
    assert.deepEqual(
      book.rows().map((r) => [r.name, r.state, r.frontend]),
      [["dns", "Pending", "svc kube-dns [dns]"]],
    );
    await writer.flush();
    assert.equal(client.patches.length, 0);
    w.remove("LocalRedirectPolicy", "kube-system", "dns");
    w.upsert(policy("bad", BOTH));
    w.remove("LocalRedirectPolicy", "kube-system", "bad");
    assert.deepEqual(book.rows(), []);
    await writer.close();
  });

  it("a policy deleted and made again under its name (another uid) gets its status written again", async () => {
    const { client, writer, w } = setup({ judge });
    const made = (uid: string) => {
      const o = policy("dns");
      Object.assign(o.metadata, { uid });
      return o;
    };
    w.upsert(made("u-1"));
    await writer.flush();
    assert.equal(client.patches.length, 1);
    // within one debounce window: the writer never sees it gone
    w.remove("LocalRedirectPolicy", "kube-system", "dns");
    w.upsert(made("u-2"));
    await writer.flush();
    assert.equal(client.patches.length, 2, "the new object has no status yet");
    await writer.close();
  });

  it("status.nodes counts the nodes whose agents hold the view, those its nodeSelector takes", async () => {
    const world = new World();
    const book = new PolicyBook(world, judge);
    const client = new FakeStatusClient();
    let holding = ["n1", "n2"];
    const writer = new PolicyStatusWriter(book, world, () => client, silentLogger(), {
      debounceMs: 60_000,
      nodesOf: () => holding,
    });
    const w = new WorldWriter(world, "east", silentLogger(), undefined, book);
    for (const k of KINDS) w.listed(k);
    w.upsert({ kind: "Node", metadata: { name: "n1", labels: { dns: "on" } } });
    w.upsert({ kind: "Node", metadata: { name: "n2" } });
    w.upsert(policy("all"));
    w.upsert(policy("some", { nodeSelector: { matchLabels: { dns: "on" } } }));
    w.upsert(policy("loser-1"));
    await writer.flush();
    const nodes = () => Object.fromEntries(client.patches.map((p) => [p.name, p.status.nodes]));
    assert.deepEqual(nodes(), { all: 2, some: 1, "loser-1": undefined });
    holding = ["n1", "n2", "n3"];
    client.patches = [];
    await writer.flush();
    assert.deepEqual(nodes(), { all: 3 }, "only what changed is written");
    await writer.close();
  });

  it("a cluster that leaves takes its refusals with it (they do not come back with a cluster of its name)", () => {
    const { world, book, w } = setup();
    w.upsert(policy("bad", BOTH));
    assert.equal(book.rows().length, 1);
    world.removeCluster("east");
    world.cluster("east");
    assert.deepEqual(book.rows(), []);
  });

  it("a status patch that changes nothing else does not touch the world (no rebuild)", () => {
    const { world, w } = setup({ judge });
    w.upsert(policy("dns"));
    const gen = world.cluster("east").generation;
    w.upsert(policy("dns", {}, 1, { observedGeneration: 1 }));
    assert.equal(world.cluster("east").generation, gen);
    w.upsert(policy("dns", { skipRedirectFromBackend: true }, 2));
    assert.equal(world.cluster("east").generation, gen + 1);
  });

  it("a LocalRedirectPolicy and a BalancingPolicy of one name are two policies: each judged, refused and written as its kind", async () => {
    const { client, writer, w, book } = setup({ judge: clusterPolicyVerdicts });
    const svc = {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "kube-dns", namespace: "kube-system" },
      spec: { clusterIP: "10.96.0.10", ports: [{ name: "dns", port: 53, protocol: "UDP" }] },
    };
    assert.ok(w.upsert(svc));
    // the LocalRedirectPolicy is older: it holds kube-dns, the BalancingPolicy of the same name is refused
    assert.ok(w.upsert(policy("dns")));
    const bp = {
      apiVersion: "switchyard.io/v1alpha1",
      kind: "BalancingPolicy",
      metadata: {
        name: "dns",
        namespace: "kube-system",
        generation: 4,
        creationTimestamp: "2026-01-02T00:00:00Z",
      },
      spec: {
        frontend: { service: { name: "kube-dns", ports: ["dns"] } },
        backend: {
          serviceEndpoint: {
            selector: { matchLabels: { app: "dns" } },
            toPorts: [{ name: "dns", port: 53, protocol: "UDP" }],
          },
        },
      },
    };
    assert.ok(w.upsert(bp));
    assert.deepEqual(
      book.rows().map((r) => [r.kind, r.name, r.reason, r.winner]),
      [
        ["BalancingPolicy", "dns", "Conflict", "LocalRedirectPolicy kube-system/dns"],
        ["LocalRedirectPolicy", "dns", "Accepted", ""],
      ],
    );
    await writer.flush();
    assert.deepEqual(client.patches.map((p) => [p.kind, p.name, p.status.conditions[0]!.reason]).sort(), [
      ["BalancingPolicy", "dns", "Conflict"],
      ["LocalRedirectPolicy", "dns", "Accepted"],
    ]);
    // a bad update of the BalancingPolicy is its own refusal; the LocalRedirectPolicy's row is untouched
    const bad = structuredClone(bp);
    (bad.spec.backend as Record<string, unknown>)["addressEndpoint"] = {
      addresses: ["192.0.2.1"],
      toPorts: [],
    };
    bad.metadata.generation = 5;
    assert.equal(w.upsert(bad), false);
    const rows = book.rows().map((r) => [r.kind, r.reason, r.generation]);
    assert.deepEqual(rows, [
      ["BalancingPolicy", "InvalidSpec", 5],
      ["LocalRedirectPolicy", "Accepted", 1],
    ]);
    w.remove("BalancingPolicy", "kube-system", "dns");
    assert.deepEqual(
      book.rows().map((r) => r.kind),
      ["LocalRedirectPolicy"],
    );
    await writer.close();
  });
});
