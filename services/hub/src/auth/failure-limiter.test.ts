import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type FailureLimit, FailureLimiter } from "./failure-limiter.ts";
import { sourceKey } from "./source-key.ts";

const LIMIT: FailureLimit = { burst: 3, refillMs: 1000, maxBlockMs: 4000, maxKeys: 100 };

/** a step: at time `t`, `admit` (expect ok or the wait), or `fail` */
type Step =
  | { t: number; op: "admit"; ok: true }
  | { t: number; op: "admit"; wait: number }
  | { t: number; op: "fail" };

describe("failure limiter", () => {
  const cases: Array<{ name: string; steps: Step[] }> = [
    {
      name: "a key that never failed is admitted",
      steps: [{ t: 0, op: "admit", ok: true }],
    },
    {
      name: "a burst of failures is allowed, then the key is blocked for one refill",
      steps: [
        { t: 0, op: "fail" },
        { t: 0, op: "admit", ok: true },
        { t: 0, op: "fail" },
        { t: 0, op: "admit", ok: true },
        { t: 0, op: "fail" },
        { t: 0, op: "admit", wait: 1000 },
        { t: 999, op: "admit", wait: 1 },
        { t: 1000, op: "admit", ok: true },
      ],
    },
    {
      name: "failing again after a block doubles the next one, up to the maximum",
      steps: [
        { t: 0, op: "fail" },
        { t: 0, op: "fail" },
        { t: 0, op: "fail" },
        { t: 1000, op: "fail" },
        { t: 1000, op: "admit", wait: 2000 },
        { t: 3000, op: "fail" },
        { t: 3000, op: "admit", wait: 4000 },
        { t: 7000, op: "fail" },
        { t: 7000, op: "admit", wait: 4000 },
      ],
    },
    {
      name: "attempts refused while blocked do not lengthen the block",
      steps: [
        { t: 0, op: "fail" },
        { t: 0, op: "fail" },
        { t: 0, op: "fail" },
        { t: 10, op: "admit", wait: 990 },
        { t: 20, op: "admit", wait: 980 },
        { t: 1000, op: "admit", ok: true },
      ],
    },
    {
      name: "failures spread out slower than the refill are never blocked",
      steps: [
        { t: 0, op: "fail" },
        { t: 1000, op: "fail" },
        { t: 2000, op: "fail" },
        { t: 3000, op: "fail" },
        { t: 3000, op: "admit", ok: true },
      ],
    },
    {
      name: "a full bucket forgets the backoff",
      steps: [
        { t: 0, op: "fail" },
        { t: 0, op: "fail" },
        { t: 0, op: "fail" },
        { t: 1000, op: "fail" },
        { t: 3000, op: "admit", ok: true },
        // refilled to the burst by t=6000: the next block is one refill again
        { t: 10_000, op: "fail" },
        { t: 10_000, op: "fail" },
        { t: 10_000, op: "fail" },
        { t: 10_000, op: "admit", wait: 1000 },
      ],
    },
  ];
  for (const c of cases)
    it(c.name, () => {
      const l = new FailureLimiter(LIMIT);
      for (const [i, s] of c.steps.entries()) {
        if (s.op === "fail") {
          l.fail("k", s.t);
          continue;
        }
        const a = l.admit("k", s.t);
        if ("ok" in s) assert.deepEqual(a, { ok: true }, `step ${i} (t=${s.t})`);
        else assert.deepEqual(a, { ok: false, retryAfterMs: s.wait }, `step ${i} (t=${s.t})`);
      }
    });

  it("keeps keys apart", () => {
    const l = new FailureLimiter(LIMIT);
    for (let i = 0; i < 3; i++) l.fail("a", 0);
    assert.equal(l.admit("a", 0).ok, false);
    assert.equal(l.admit("b", 0).ok, true);
  });

  it("holds at most maxKeys keys however many are invented, and keeps a blocked one", () => {
    const l = new FailureLimiter({ ...LIMIT, maxKeys: 10 });
    for (let i = 0; i < 3; i++) l.fail("attacker", 0);
    for (let i = 0; i < 10_000; i++) l.fail(`k${i}`, 0);
    assert.equal(l.size, 10);
    assert.equal(l.admit("attacker", 0).ok, false, "inventing keys does not lift a block");
  });
});

describe("source key", () => {
  const cases: Array<[string, string]> = [
    ["127.0.0.1:5678", "127.0.0.1"],
    ["::ffff:10.1.2.3:443", "10.1.2.3"],
    ["[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"],
    ["2001:db8:1:2::9:443", "2001:db8:1:2::/64"],
    ["2001:0db8:0000:0002:aaaa::1", "2001:db8:0:2::/64"],
    ["::1:5678", "0:0:0:0::/64"],
    ["[::1]:5678", "0:0:0:0::/64"],
    ["10.0.0.7", "10.0.0.7"],
  ];
  for (const [peer, key] of cases) it(`${peer} → ${key}`, () => assert.equal(sourceKey(peer), key));
});
