import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BatchSender, BatchWriter, Down, RelayError, readBatch, Up } from "./relay.ts";

type Rec = { op: number; key: number; flags: number; payload: string };

function records(batch: ArrayBuffer): Rec[] {
  const out: Rec[] = [];
  readBatch(batch, (op, key, flags, p) => out.push({ op, key, flags, payload: p.toString() }));
  return out;
}

describe("the I/O threads' relay batches", () => {
  it("carries records in order, payloads intact, and starts afresh after take()", () => {
    const w = new BatchWriter();
    assert.equal(w.empty, true);
    w.add(Up.OPEN, 1, 0, Buffer.from('["127.0.0.1:5",[]]'));
    w.add(Up.DATA, 1, 0, Buffer.from("hello"));
    w.add(Up.END, 1);
    w.add(Down.RESET, 0xfffffffe, 8);
    const batch = w.take();
    assert.equal(w.empty, true);
    assert.deepEqual(records(batch), [
      { op: Up.OPEN, key: 1, flags: 0, payload: '["127.0.0.1:5",[]]' },
      { op: Up.DATA, key: 1, flags: 0, payload: "hello" },
      { op: Up.END, key: 1, flags: 0, payload: "" },
      { op: Down.RESET, key: 0xfffffffe, flags: 8, payload: "" },
    ]);
    assert.deepEqual(records(w.take()), []);
  });

  it("carries a payload shared by many streams once, and each stream still reads it", () => {
    const w = new BatchWriter();
    const delta = Buffer.alloc(400, 7);
    for (let k = 1; k <= 500; k++) w.add(Down.WRITE, k, 0, delta, true);
    // another buffer with the same bytes is not the same payload: carried again
    w.add(Down.WRITE, 501, 0, Buffer.alloc(400, 7), true);
    const batch = w.take();
    assert.equal(batch.byteLength, 501 * 14 + 2 * 400);
    const got = records(batch);
    assert.equal(got.length, 501);
    assert.ok(got.every((r, i) => r.key === i + 1 && r.payload === delta.toString()));
  });

  it("grows past its first buffer for large payloads, then starts small again", () => {
    const w = new BatchWriter();
    const big = Buffer.alloc(5_000_000, 1);
    w.add(Down.WRITE, 9, 0, big);
    w.add(Down.WRITE, 10, 0, Buffer.from("x"));
    const got: Buffer[] = [];
    readBatch(w.take(), (_op, _key, _flags, p) => got.push(Buffer.from(p)));
    assert.deepEqual(got, [big, Buffer.from("x")]);
    // and a small batch after it (the writer gives the large buffer back)
    w.add(Down.WRITE, 11, 0, Buffer.from("after"));
    assert.deepEqual(records(w.take()), [{ op: Down.WRITE, key: 11, flags: 0, payload: "after" }]);
  });

  it("sends everything of one turn of the event loop as one batch, and nothing when there is nothing", async () => {
    const posts: ArrayBuffer[] = [];
    const sender = new BatchSender((b) => posts.push(b));
    for (let k = 1; k <= 3; k++) sender.add(Up.DATA, k, 0, Buffer.from(`m${k}`));
    assert.equal(posts.length, 0, "not before the turn ends");
    await new Promise((r) => setImmediate(r));
    assert.equal(posts.length, 1);
    assert.deepEqual(
      records(posts[0]!).map((r) => `${r.key}:${r.payload}`),
      ["1:m1", "2:m2", "3:m3"],
    );
    sender.flush();
    await new Promise((r) => setImmediate(r));
    assert.equal(posts.length, 1, "an empty batch is not sent");
  });

  it("refuses a batch cut short or pointing outside itself", () => {
    const w = new BatchWriter();
    w.add(Up.DATA, 1, 0, Buffer.from("hello"));
    const whole = new Uint8Array(w.take());
    assert.throws(() => records(whole.slice(0, 10).buffer), RelayError);
    assert.throws(() => records(whole.slice(0, 16).buffer), RelayError);
  });
});
