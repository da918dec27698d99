import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Backend } from "./maps.ts";
import { UdpSocketReaper, type UdpSocketWalker, type UdpWalkResult } from "./udp-reaper.ts";

/** A walker whose walks end only when the test says so. */
class FakeWalker implements UdpSocketWalker {
  readonly walks: Backend[][] = [];
  private ends: Array<{ resolve: (r: UdpWalkResult) => void; reject: (e: Error) => void }> = [];
  closed = false;

  walk(dead: readonly Backend[]): Promise<UdpWalkResult> {
    assert.equal(this.ends.length, 0, "a walk starts only after the one before it settled");
    this.walks.push([...dead]);
    return new Promise((resolve, reject) => this.ends.push({ resolve, reject }));
  }

  finish(destroyed: number): void {
    this.ends.shift()!.resolve({ destroyed, namespaces: 1, skipped: [], tid: 42 });
  }

  fail(message: string): void {
    this.ends.shift()!.reject(new Error(message));
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

const b = (n: number): Backend => ({ ip: `10.0.0.${n}`, port: 53 });
const turn = () => new Promise((r) => setImmediate(r));

describe("UdpSocketReaper", () => {
  it("starts a walk without waiting for it, and folds removals during a walk into one next walk", async () => {
    const w = new FakeWalker();
    const r = new UdpSocketReaper(w);
    r.add([b(1)]);
    assert.equal(r.busy, true, "add() returns while the walk runs");
    r.add([b(2)]);
    r.add([b(3), b(2)]);
    r.add([b(4)]);
    assert.deepEqual(w.walks, [[b(1)]], "one walk at a time: no walk per removal");
    w.finish(1);
    await turn();
    assert.deepEqual(
      w.walks,
      [[b(1)], [b(2), b(3), b(4)]],
      "everything removed meanwhile, once, in one walk",
    );
    w.finish(2);
    await r.idle();
    assert.deepEqual(r.totals, { walks: 2, failedWalks: 0, destroyed: 3 });
    assert.equal(r.busy, false);
  });

  it("reports a failed walk and keeps walking for later removals", async () => {
    const w = new FakeWalker();
    const errors: string[] = [];
    const r = new UdpSocketReaper(w, { onError: (e, dead) => errors.push(`${e.message} (${dead.length})`) });
    r.add([b(1), b(2)]);
    w.fail("thread ended");
    await r.idle();
    assert.deepEqual(errors, ["thread ended (2)"]);
    r.add([b(3)]);
    assert.deepEqual(w.walks.at(-1), [b(3)]);
    w.finish(1);
    await r.idle();
    assert.deepEqual(r.totals, { walks: 1, failedWalks: 1, destroyed: 1 });
  });

  it("a hook that throws does not stop the walks", async () => {
    const w = new FakeWalker();
    const r = new UdpSocketReaper(w, {
      onWalk: () => {
        throw new Error("logger broke");
      },
    });
    r.add([b(1)]);
    r.add([b(2)]);
    w.finish(0);
    await turn();
    w.finish(0);
    await r.idle();
    assert.equal(r.totals.walks, 2);
  });

  it("close drops what is pending, closes the walker and settles idle()", async () => {
    const w = new FakeWalker();
    const r = new UdpSocketReaper(w);
    r.add([b(1)]);
    r.add([b(2)]);
    const idle = r.idle();
    const closing = r.close();
    w.fail("terminated");
    await closing;
    await idle;
    assert.equal(w.closed, true);
    assert.equal(w.walks.length, 1, "the pending walk never started");
    r.add([b(3)]);
    assert.equal(w.walks.length, 1, "a closed reaper walks no more");
  });
});
