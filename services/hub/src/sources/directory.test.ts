import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import { World } from "../model/world.ts";
import { PolicyBook } from "../status/policy-status.ts";
import { DirectorySource } from "./directory.ts";
import { WorldWriter } from "./source.ts";

const BAD = `apiVersion: switchyard.io/v1alpha1
kind: LocalRedirectPolicy
metadata: { name: bad, namespace: kube-system }
spec:
  frontend: { service: { name: kube-dns } }
  backend: { selector: {}, toPorts: [{ name: dns, port: 53 }] }
`;
const POD = `apiVersion: v1
kind: Pod
metadata: { name: dns-a, namespace: kube-system, uid: u1, labels: { app: dns } }
spec: { nodeName: n1 }
status: { podIPs: [{ ip: 10.0.0.5 }], conditions: [{ type: Ready, status: "True" }] }
`;

describe("a directory cluster's Pods and policies", () => {
  it("reads Pods and policies; a refused policy is listed until it leaves its file", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-dir-policies-"));
    const world = new World();
    const book = new PolicyBook(world);
    const src = new DirectorySource(
      dir,
      new WorldWriter(world, "edge", silentLogger(), undefined, book),
      silentLogger(),
    );
    try {
      fs.writeFileSync(path.join(dir, "a.yaml"), `${BAD}---\n${POD}`);
      await src.start();
      assert.equal(world.cluster("edge").pods.get("kube-system/dns-a")?.ready, true);
      assert.deepEqual(
        book.rows().map((r) => [r.name, r.reason]),
        [["bad", "InvalidSpec"]],
      );
      src.rescan();
      assert.equal(book.rows().length, 1, "unchanged: still listed once");
      fs.writeFileSync(path.join(dir, "a.yaml"), POD);
      src.rescan();
      assert.deepEqual(book.rows(), [], "gone from the file: gone from the list");
      assert.equal(world.cluster("edge").pods.size, 1);
    } finally {
      await src.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
