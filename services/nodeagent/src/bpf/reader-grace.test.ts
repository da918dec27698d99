import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FrontendModel, MapOp } from "./maps.ts";
import { type GracePeriod, ReaderGrace } from "./reader-grace.ts";

const key = (port: number) => ({ ip: "10.96.0.1", port, proto: 6, scope: 0 });
const value = (setId: number, count: number): FrontendModel => ({
  svcId: 1,
  setId,
  count,
  affinityTimeoutS: 0,
  portId: 1,
  fbSetId: 0,
  fbCount: 0,
  qosPerSecond: 0,
  natType: 1,
  natMode: 1,
  flags: 0,
});
const b = (n: number) => ({ ip: `10.0.0.${n}`, port: 8080 });
const putSet = (setId: number, n: number): MapOp[] =>
  Array.from({ length: n }, (_, i) => ({ op: "put-backend", setId, index: i, backend: b(i + 1) }));
const delSet = (setId: number, n: number): MapOp[] =>
  Array.from({ length: n }, (_, i) => ({ op: "delete-backend", setId, index: n - 1 - i, backend: b(n - i) }));
const flip = (port: number, setId: number, count: number): MapOp => ({
  op: "put-frontend",
  key: key(port),
  value: value(setId, count),
});

/** Runs ops through the tracker; returns the index of each op a grace period was waited for before. */
function waitsBefore(grace: ReaderGrace, ops: MapOp[]): number[] {
  const at: number[] = [];
  ops.forEach((o, i) => {
    const before = grace.blockingWaits;
    grace.before(o);
    if (grace.blockingWaits > before) at.push(i);
    grace.after(o);
  });
  return at;
}

function tracker(): { grace: ReaderGrace; settles: Array<(ok: boolean) => void> } {
  const settles: Array<(ok: boolean) => void> = [];
  const period: GracePeriod = { kind: "test", wait: () => {}, settle: (done) => settles.push(done) };
  return { grace: new ReaderGrace(period), settles };
}

describe("ReaderGrace: waits for the programs only where a write could change what one holds", () => {
  it("a cold start (only inserts) never waits", () => {
    const { grace } = tracker();
    const ops = [
      { op: "put-name", svcId: 1, name: "a" } as MapOp,
      ...putSet(1, 3),
      flip(80, 1, 3),
      ...putSet(2, 2),
      flip(81, 2, 2),
    ];
    assert.deepEqual(waitsBefore(grace, ops), []);
  });

  it("a swap deletes the old set only after a grace period that began after the flip", () => {
    const { grace } = tracker();
    waitsBefore(grace, [...putSet(1, 2), flip(80, 1, 2)]);
    const swap = [...putSet(2, 3), flip(80, 2, 3), ...delSet(1, 2)];
    // index 4: the first delete of set 1, right after the flip (index 3); the rest of the set follows without waiting
    assert.deepEqual(waitsBefore(grace, swap), [4]);
  });

  it("after deletions, the next insert into the same map waits once (freed elements are reused at once)", () => {
    const { grace } = tracker();
    waitsBefore(grace, [...putSet(1, 2), flip(80, 1, 2)]);
    waitsBefore(grace, [...putSet(2, 2), flip(80, 2, 2), ...delSet(1, 2)]);
    // the second swap: its first put waits (set 1's elements were freed), its first delete waits (the flip)
    assert.deepEqual(waitsBefore(grace, [...putSet(3, 2), flip(80, 3, 2), ...delSet(2, 2)]), [0, 3]);
  });

  it("a grace period started off the main thread after a plan spares the next plan its first wait", () => {
    const { grace, settles } = tracker();
    waitsBefore(grace, [...putSet(1, 2), flip(80, 1, 2)]);
    waitsBefore(grace, [...putSet(2, 2), flip(80, 2, 2), ...delSet(1, 2)]);
    grace.settleAsync();
    assert.equal(settles.length, 1);
    grace.settleAsync();
    assert.equal(settles.length, 1, "one at a time");
    settles[0]!(true);
    assert.equal(grace.owed, false);
    assert.deepEqual(waitsBefore(grace, [...putSet(3, 2), flip(80, 3, 2), ...delSet(2, 2)]), [3]);
  });

  it("a grace period that started before a later free does not cover it", () => {
    const { grace, settles } = tracker();
    waitsBefore(grace, [...putSet(1, 2), flip(80, 1, 2)]);
    waitsBefore(grace, [...putSet(2, 2), flip(80, 2, 2), ...delSet(1, 2)]);
    grace.settleAsync();
    // more deletions while it runs
    waitsBefore(grace, [{ op: "delete-frontend", key: key(80) }, ...delSet(2, 2)]);
    settles[0]!(true);
    assert.equal(grace.owed, true);
    assert.deepEqual(waitsBefore(grace, putSet(3, 1)), [0]);
  });

  it("a deleted frontend's element is not reused before a grace period; names never wait", () => {
    const { grace } = tracker();
    waitsBefore(grace, [flip(80, 0, 0)]);
    const ops: MapOp[] = [
      { op: "delete-frontend", key: key(80) },
      { op: "delete-name", svcId: 1 },
      { op: "put-name", svcId: 2, name: "b" },
      flip(81, 0, 0),
    ];
    assert.deepEqual(waitsBefore(grace, ops), [3]);
  });

  it("node addresses: an insert after a delete waits", () => {
    const { grace } = tracker();
    const ops: MapOp[] = [
      { op: "put-node-ip", ip: "192.0.2.1" },
      { op: "delete-node-ip", ip: "192.0.2.1" },
      { op: "put-node-ip", ip: "192.0.2.2" },
    ];
    assert.deepEqual(waitsBefore(grace, ops), [2]);
  });

  it("a set retired after a grace period is deleted without a wait, and the next inserts do not wait either", () => {
    const { grace, settles } = tracker();
    waitsBefore(grace, [...putSet(1, 2), flip(80, 1, 2)]);
    // the agent's path: new set, flip, then set 1's deletion handed to afterReaders
    waitsBefore(grace, [...putSet(2, 2), flip(80, 2, 2)]);
    const mark = grace.mark();
    let landed = 0;
    grace.afterReaders(mark, () => {
      landed++;
      for (const o of delSet(1, 2)) {
        grace.before(o, { setsUnlinkedAt: mark });
        grace.after(o, { setsUnlinkedAt: mark });
      }
    });
    assert.equal(landed, 0, "not before the grace period");
    settles[0]!(true);
    assert.equal(landed, 1);
    // another swap right away (no grace period since the deletions): its puts reuse freed elements without a wait
    assert.deepEqual(waitsBefore(grace, [...putSet(1, 3), flip(80, 1, 3)]), []);
    assert.equal(grace.blockingWaits, 0);
  });

  it("afterReaders: a grace period that began before the mark does not release it; the next one is started", () => {
    const { grace, settles } = tracker();
    waitsBefore(grace, [...putSet(1, 1), flip(80, 1, 1)]);
    grace.settleAsync();
    assert.equal(settles.length, 1);
    waitsBefore(grace, [...putSet(2, 1), flip(80, 2, 1)]);
    const calls: string[] = [];
    grace.afterReaders(grace.mark(), () => calls.push("set 1"));
    assert.equal(settles.length, 1, "one at a time");
    settles[0]!(true);
    assert.deepEqual(calls, [], "the first grace period began before the flip");
    assert.equal(settles.length, 2, "the next one started as the first ended");
    settles[1]!(true);
    assert.deepEqual(calls, ["set 1"]);
    assert.equal(grace.blockingWaits, 0);
  });

  it("afterReaders on a failed grace period falls back to one wait on the calling thread (counted)", () => {
    const { grace, settles } = tracker();
    waitsBefore(grace, [...putSet(1, 1), flip(80, 1, 1)]);
    const calls: number[] = [];
    grace.afterReaders(grace.mark(), () => calls.push(1));
    settles[0]!(false);
    assert.deepEqual(calls, [1]);
    assert.equal(grace.blockingWaits, 1);
  });

  it("an unannounced set deletion after a flip still waits (the safety net)", () => {
    const { grace } = tracker();
    waitsBefore(grace, [...putSet(1, 1), flip(80, 1, 1)]);
    assert.deepEqual(waitsBefore(grace, [...putSet(2, 1), flip(80, 2, 1), ...delSet(1, 1)]), [2]);
    assert.equal(grace.blockingWaits, 1);
  });
});
