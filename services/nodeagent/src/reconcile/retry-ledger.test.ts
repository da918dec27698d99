import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { computeRetryDelay, frontendEntry, frontendKeyOfEntry, RetryLedger } from "./retry-ledger.ts";

describe("RetryLedger", () => {
  it("backs off per entry: 1 s, doubling, capped at 60 s", () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 8, 40].map((n) => computeRetryDelay(n)),
      [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000],
    );
    const ledger = new RetryLedger();
    let now = 10_000;
    const waits: number[] = [];
    for (let i = 0; i < 8; i++) {
      const { retry } = ledger.fail("frontend a", "map full", now);
      waits.push(retry.retryAt - now);
      now = retry.retryAt;
    }
    assert.deepEqual(waits, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
    assert.equal(ledger.get("frontend a")?.attempts, 8);
    assert.equal(ledger.get("frontend a")?.since, 10_000, "the run of failures started at the first");
  });

  it("holds an entry until its retry is due, and says which entries are due", () => {
    const ledger = new RetryLedger();
    ledger.fail("frontend a", "x", 0);
    ledger.fail("frontend b", "x", 0);
    ledger.fail("frontend b", "x", 1000); // b's second failure: due at 3000
    assert.equal(ledger.isHeld("frontend a", 999), true);
    assert.equal(ledger.isHeld("frontend a", 1000), false);
    assert.equal(ledger.isHeld("frontend c", 0), false, "an entry that never failed is not held");
    assert.deepEqual(
      ledger.due(1000).map((r) => r.entry),
      ["frontend a"],
    );
    assert.equal(ledger.nextRetryAt(), 1000);
  });

  it("resets an entry's backoff once it is in step again", () => {
    const ledger = new RetryLedger();
    ledger.fail("frontend a", "x", 0);
    ledger.fail("frontend a", "x", 1000);
    assert.equal(ledger.succeed("frontend a"), true);
    assert.equal(ledger.size, 0);
    assert.equal(ledger.nextRetryAt(), undefined);
    assert.equal(ledger.fail("frontend a", "x", 5000).retry.retryAt, 6000, "starts from 1 s again");
  });

  it("tells news (a new entry or a new reason) from a repeat", () => {
    const ledger = new RetryLedger();
    assert.equal(ledger.fail("set 3", "EBUSY", 0).news, true);
    assert.equal(ledger.fail("set 3", "EBUSY", 1000).news, false);
    assert.equal(ledger.fail("set 3", "ENOMEM", 3000).news, true);
  });

  it("names frontend entries by their key", () => {
    assert.equal(frontendKeyOfEntry(frontendEntry("10.96.0.1|80|6|0")), "10.96.0.1|80|6|0");
    assert.equal(frontendKeyOfEntry("node-ip 10.0.0.1"), undefined);
  });
});
