import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkOutboxBalance, EVENT_OVERHEAD_BYTES, EventOutbox, type OutboxEvent } from "./event-outbox.ts";

const ev = (seq: number, size = 36): OutboxEvent => ({ seq, subject: "s.x", data: new Uint8Array(size) });
const cost = 3 + 36 + EVENT_OVERHEAD_BYTES;

describe("EventOutbox", () => {
  it("drops what does not fit in the budget as buffer_full, and the counts add up", () => {
    const o = new EventOutbox(cost * 3);
    for (let i = 1; i <= 5; i++) o.offer(ev(i));
    const c = o.counts();
    assert.equal(c.offered, 5);
    assert.equal(c.held, 3);
    assert.equal(c.heldBytes, cost * 3);
    assert.equal(c.dropped.buffer_full, 2);
    assert.ok(checkOutboxBalance(c));
  });

  it("sends in order; an unconfirmed batch goes back to the front and is sent again", () => {
    const o = new EventOutbox(1 << 20);
    for (let i = 1; i <= 5; i++) o.offer(ev(i));
    const a = o.take(2, 1 << 20);
    assert.deepEqual(
      a.map((e) => e.seq),
      [1, 2],
    );
    assert.equal(o.take(2, 1 << 20).length, 0, "one batch in flight at a time");
    o.unconfirmed();
    o.offer(ev(6));
    const b = o.take(10, 1 << 20);
    assert.deepEqual(
      b.map((e) => e.seq),
      [1, 2, 3, 4, 5, 6],
    );
    o.confirm();
    const c = o.counts();
    assert.equal(c.published, 6);
    assert.equal(c.held, 0);
    assert.equal(c.heldBytes, 0);
    assert.ok(checkOutboxBalance(c));
  });

  it("counts a batch in flight as held (its bytes stay in the budget until confirmed)", () => {
    const o = new EventOutbox(cost * 2);
    o.offer(ev(1));
    o.offer(ev(2));
    o.take(1, 1 << 20);
    assert.equal(o.offer(ev(3)), false, "the budget still holds the event in flight");
    o.confirm();
    assert.equal(o.offer(ev(4)), true);
    const c = o.counts();
    assert.deepEqual([c.published, c.held, c.inFlight, c.dropped.buffer_full], [1, 2, 0, 1]);
    assert.ok(checkOutboxBalance(c));
  });

  it("a batch stops at maxBytes, but always takes one event", () => {
    const o = new EventOutbox(1 << 20);
    o.offer(ev(1, 1000));
    o.offer(ev(2, 1000));
    assert.equal(o.take(10, 10).length, 1);
  });

  it("refused and rejected events and dropAll are counted per reason", () => {
    const o = new EventOutbox(1 << 20);
    for (let i = 1; i <= 4; i++) o.offer(ev(i));
    const batch = o.take(2, 1 << 20);
    o.refuse(batch[0]!, "publish_error");
    o.confirm();
    o.reject("stopped");
    assert.equal(o.dropAll("stopped"), 2);
    const c = o.counts();
    assert.deepEqual(c.dropped, { buffer_full: 0, publish_error: 1, stopped: 3 });
    assert.equal(c.published, 1);
    assert.equal(c.heldBytes, 0);
    assert.ok(checkOutboxBalance(c));
  });

  it("a confirmed batch with messages the server refused counts those as publish_error", () => {
    const o = new EventOutbox(1 << 20);
    for (let i = 1; i <= 5; i++) o.offer(ev(i));
    o.take(5, 1 << 20);
    o.confirm(2);
    const c = o.counts();
    assert.deepEqual([c.published, c.dropped.publish_error, c.held, c.heldBytes], [3, 2, 0, 0]);
    assert.ok(checkOutboxBalance(c));
  });

  it("holds unaddressed events (and all after them, in order) until address; then sends them with their subject", () => {
    const o = new EventOutbox(1 << 20);
    const un = (seq: number): OutboxEvent => ({ ...ev(seq), subject: "s._", unaddressed: true });
    o.offer(un(1));
    o.offer(un(2));
    o.offer(ev(3));
    assert.equal(o.take(10, 1 << 20).length, 0, "nothing goes out before its address is known");
    let c = o.counts();
    assert.deepEqual([c.held, c.unaddressed, c.published], [3, 2, 0]);
    assert.ok(checkOutboxBalance(c));
    // the real subject is longer than the placeholder: the held bytes follow
    assert.equal(
      o.address((e) => ({ seq: e.seq, subject: "s.east", data: e.data })),
      2,
    );
    c = o.counts();
    assert.equal(c.unaddressed, 0);
    assert.equal(c.heldBytes, 2 * (6 + 36 + EVENT_OVERHEAD_BYTES) + cost);
    const batch = o.take(10, 1 << 20);
    assert.deepEqual(
      batch.map((e) => [e.seq, e.subject, e.unaddressed]),
      [
        [1, "s.east", undefined],
        [2, "s.east", undefined],
        [3, "s.x", undefined],
      ],
    );
    o.confirm();
    c = o.counts();
    assert.deepEqual([c.published, c.held, c.heldBytes], [3, 0, 0]);
    assert.ok(checkOutboxBalance(c));
  });

  it("events before the first unaddressed one still go out; address overflowing the budget drops the newest as buffer_full", () => {
    const o = new EventOutbox(cost * 3);
    o.offer(ev(1));
    o.offer({ ...ev(2), unaddressed: true });
    o.offer({ ...ev(3), unaddressed: true });
    assert.deepEqual(
      o.take(10, 1 << 20).map((e) => e.seq),
      [1],
    );
    o.confirm();
    o.offer({ ...ev(4), unaddressed: true });
    // each rewritten event grows by 40 bytes: 3 held no longer fit, the newest goes
    o.address((e) => ({ ...e, subject: `s.x${"y".repeat(40)}` }));
    const c = o.counts();
    assert.deepEqual([c.published, c.held, c.dropped.buffer_full, c.unaddressed], [1, 2, 1, 0]);
    assert.ok(c.heldBytes <= o.budgetBytes);
    assert.ok(checkOutboxBalance(c));
    assert.deepEqual(
      o.take(10, 1 << 20).map((e) => e.seq),
      [2, 3],
    );
  });

  it("dropAll counts unaddressed events as dropped too", () => {
    const o = new EventOutbox(1 << 20);
    o.offer({ ...ev(1), unaddressed: true });
    assert.equal(o.dropAll("stopped"), 1);
    const c = o.counts();
    assert.deepEqual([c.held, c.unaddressed, c.dropped.stopped], [0, 0, 1]);
    assert.ok(checkOutboxBalance(c));
  });

  it("keeps the balance over many random operations", () => {
    const o = new EventOutbox(cost * 50);
    let seq = 0;
    let x = 7;
    const rnd = () => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return x / 2 ** 31;
    };
    let lastConfirmed = 0;
    for (let i = 0; i < 20_000; i++) {
      const r = rnd();
      if (r < 0.6) o.offer(ev(++seq));
      else if (r < 0.8) o.take(Math.ceil(rnd() * 20), 1 << 20);
      else if (r < 0.95) {
        const before = o.counts().published;
        o.confirm();
        assert.ok(o.counts().published >= before);
      } else o.unconfirmed();
      assert.ok(checkOutboxBalance(o.counts()));
      lastConfirmed = o.counts().published;
    }
    assert.ok(lastConfirmed > 0);
  });
});
