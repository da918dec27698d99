/**
 * Both shared-state backends behave the same: create-if-absent, delete and
 * re-create, prefix listing, and (for JetStream KV, against a real
 * nats-server) a second replica sees the first one's writes.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { startNatsServer } from "../../../../test/kit/nats.ts";
import { waitUntil } from "../../../../test/kit/proc.ts";
import { FileState, type HubState, KvState } from "./hub-state.ts";

async function contract(a: HubState, b: HubState): Promise<void> {
  assert.equal(await a.create("token/x", { n: 1 }), true);
  assert.equal(await a.create("token/x", { n: 2 }), false, "create does not overwrite");
  await a.put("token/y", { n: 3 });
  await a.put("other/z", 1);
  assert.deepEqual(
    a.list<{ n: number }>("token/").map(([k, v]) => `${k}=${v.n}`),
    ["token/x=1", "token/y=3"],
  );
  await a.delete("token/x");
  assert.equal(a.get("token/x"), undefined);
  assert.equal(await a.create("token/x", { n: 4 }), true, "a deleted key can be created again");
  assert.deepEqual(a.get("token/x"), { n: 4 });
  // the other replica (or process) sees it all
  await waitUntil("the other side to see the writes", () =>
    b.get<{ n: number }>("token/x")?.n === 4 && b.get("token/y") !== undefined ? true : undefined,
  );
}

describe("shared hub state", () => {
  it("file: the same contract, and another reader sees the writes", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-state-"));
    try {
      await contract(new FileState(dir), new FileState(dir));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("file: writes of two processes at the same moment are both kept (none overwrites the other)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-state-"));
    try {
      const a = new FileState(dir);
      const b = new FileState(dir);
      await a.put("seed", 1);
      assert.equal(b.get("seed"), 1);
      // both read the same file, then write within the same window
      const [, , createdByB] = await Promise.all([
        a.put("token/a", { by: "a" }),
        b.put("token/b", { by: "b" }),
        b.create("token/a", { by: "b" }),
      ]);
      assert.equal(createdByB, false, "b's create loses to a's write it had not seen");
      const fresh = new FileState(dir);
      assert.deepEqual(
        fresh.list<{ by: string }>("token/").map(([k, v]) => `${k}=${v.by}`),
        ["token/a=a", "token/b=b"],
      );
      assert.equal(fs.existsSync(path.join(dir, "state.json.lock")), false, "the lock is released");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  describe("JetStream KV", () => {
    let nats: Awaited<ReturnType<typeof startNatsServer>>;
    before(async () => {
      nats = await startNatsServer({ jetstream: true });
    });
    after(async () => {
      await nats?.stop();
    });

    it("the same contract, and a second replica sees the writes", async () => {
      const bucket = `sy-test-${process.pid}`;
      const a = await KvState.open([nats.url], bucket);
      const b = await KvState.open([nats.url], bucket);
      try {
        await contract(a, b);
      } finally {
        await a.close();
        await b.close();
      }
    });
  });
});
