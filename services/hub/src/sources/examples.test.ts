/**
 * The YAML examples under deploy/examples/ are read by the hub as they are:
 * every object parses, and every policy is accepted.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { silentLogger } from "@switchyard/lib/log";
import { World } from "../model/world.ts";
import { PolicyBook } from "../status/policy-status.ts";
import { localRedirectVerdicts, policyVerdicts } from "../translate/local-redirect.ts";
import { DirectorySource } from "./directory.ts";
import { WorldWriter } from "./source.ts";

const examples = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../deploy/examples");

describe("deploy/examples", () => {
  it("node-local-dns: both policies (the kube-dns Service and the link-local address) are accepted", async () => {
    const world = new World();
    const book = new PolicyBook(world);
    const src = new DirectorySource(
      path.join(examples, "node-local-dns"),
      new WorldWriter(world, "demo", silentLogger(), undefined, book),
      silentLogger(),
    );
    try {
      await src.start();
      assert.deepEqual(
        book.rows().filter((r) => r.reason === "InvalidSpec"),
        [],
        "no policy refused",
      );
      const verdicts = [...localRedirectVerdicts(world.cluster("demo")).values()].map((v) => [
        `${v.namespace}/${v.name}`,
        v.reason,
      ]);
      assert.deepEqual(verdicts.sort(), [
        ["kube-system/node-local-dns", "Accepted"],
        ["kube-system/node-local-dns-address", "Accepted"],
      ]);
      assert.equal(world.cluster("demo").pods.size, 1);
    } finally {
      await src.stop();
    }
  });

  it("balancing: every BalancingPolicy (one per backend mode) is accepted", async () => {
    const world = new World();
    const book = new PolicyBook(world);
    const src = new DirectorySource(
      path.join(examples, "balancing"),
      new WorldWriter(world, "demo", silentLogger(), undefined, book),
      silentLogger(),
    );
    try {
      await src.start();
      assert.deepEqual(
        book.rows().filter((r) => r.reason === "InvalidSpec"),
        [],
        "no policy refused",
      );
      const verdicts = [...policyVerdicts(world.cluster("demo")).balancing.values()].map((v) => [
        `${v.namespace}/${v.name}`,
        v.reason,
      ]);
      assert.deepEqual(verdicts.sort(), [
        ["shop/partner-api", "Accepted"],
        ["shop/web-entry", "Accepted"],
        ["shop/web-host", "Accepted"],
        ["shop/web-pods", "Accepted"],
      ]);
    } finally {
      await src.stop();
    }
  });
});
