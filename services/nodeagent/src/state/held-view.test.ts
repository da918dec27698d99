import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { type Resource, ResourceBatch } from "@switchyard/proto/assignment";
import {
  encodeHeldView,
  HELD_VIEW_FILE,
  HeldViewKeeper,
  parseHeldView,
  readHeldView,
  writeHeldView,
} from "./held-view.ts";

const slice = (name: string): Resource => ({
  name,
  version: "v1",
  body: { $case: "backendSlice", value: { service: "svc/c/ns/a", ports: [], endpoints: [] } },
});
const view = (node = "node-1") => ({
  header: { node, cluster: "c", viewVersion: "00000000000000ab", savedAt: "2026-12-02T00:00:00Z", count: 2 },
  resources: [slice("eps/c/ns/a-1"), slice("eps/c/ns/a-2")],
});

describe("held view file", () => {
  it("round-trips through the state directory, replacing the old file atomically", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-held-"));
    try {
      assert.equal(readHeldView(dir, "node-1"), undefined, "no file: nothing held");
      writeHeldView(dir, view());
      writeHeldView(dir, view());
      const got = readHeldView(dir, "node-1");
      assert.ok(got?.ok);
      assert.deepEqual(
        got.value.resources.map((r) => r.name),
        ["eps/c/ns/a-1", "eps/c/ns/a-2"],
      );
      assert.deepEqual(fs.readdirSync(dir), [HELD_VIEW_FILE], "no temporary file left");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("names what is wrong with a file it cannot use", () => {
    const good = encodeHeldView(view());
    const cases: Array<[string, Buffer, RegExp]> = [
      ["another format", Buffer.from("hello world"), /wrong magic/],
      ["another node's", encodeHeldView(view("node-2")), /written by node "node-2".*"node-1"/],
      ["truncated header", good.subarray(0, 12), /runs past the end/],
      ["truncated resources", good.subarray(0, good.length - 10), /cannot be decoded|header says 2/],
    ];
    for (const [what, bytes, re] of cases) {
      const r = parseHeldView(bytes, "node-1");
      assert.ok(!r.ok, what);
      assert.match(r.error, re, what);
    }
  });

  it("encodes the resources byte for byte as a ResourceBatch (from each resource's cached encoding)", () => {
    const v = view();
    const bytes = encodeHeldView(v);
    const body = Buffer.from(ResourceBatch.encode({ resources: v.resources }).finish());
    assert.ok(bytes.subarray(bytes.length - body.length).equals(body));
    assert.ok(encodeHeldView(v).equals(bytes), "the second encoding (from the cache) is the same");
  });

  it("keeps the view: one write per interval off the event loop, and a last one at stop", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-keeper-"));
    try {
      let snapshots = 0;
      const errors: string[] = [];
      const keeper = new HeldViewKeeper(
        dir,
        () => {
          snapshots++;
          return view();
        },
        (m) => errors.push(m),
        1,
      );
      keeper.flush();
      assert.equal(readHeldView(dir, "node-1"), undefined, "nothing applied: nothing written");
      keeper.schedule();
      keeper.schedule();
      for (let i = 0; i < 200 && !fs.existsSync(path.join(dir, HELD_VIEW_FILE)); i++)
        await new Promise((r) => setTimeout(r, 10));
      assert.ok(readHeldView(dir, "node-1")?.ok, "written after the interval");
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(snapshots, 1, "two views applied within one interval: one write");
      keeper.schedule();
      keeper.flush();
      assert.equal(snapshots, 2, "a view applied before stop is written at stop");
      assert.deepEqual(errors, []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("writes nothing while what is held is not a complete view, and keeps the earlier file", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-keeper-partial-"));
    try {
      writeHeldView(dir, view());
      const before = fs.readFileSync(path.join(dir, HELD_VIEW_FILE));
      const keeper = new HeldViewKeeper(
        dir,
        () => undefined,
        () => {},
        1,
      );
      keeper.schedule();
      keeper.flush();
      assert.ok(fs.readFileSync(path.join(dir, HELD_VIEW_FILE)).equals(before));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
