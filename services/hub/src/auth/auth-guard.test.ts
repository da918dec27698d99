import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AuthGuard, type AuthLimits } from "./auth-guard.ts";
import { type Refusal, refusal, TOKEN_NOT_ACCEPTED } from "./refusal.ts";

const LIMITS: AuthLimits = {
  perSource: { burst: 3, refillMs: 1000, maxBlockMs: 8000, maxKeys: 1000 },
  perToken: { burst: 5, refillMs: 1000, maxBlockMs: 8000, maxKeys: 1000 },
  maxLines: 2,
};
const unknown: Refusal = refusal(
  "token-unknown",
  TOKEN_NOT_ACCEPTED,
  "join token aaaaaa is unknown or revoked",
);
const wrong: Refusal = refusal(
  "token-wrong-secret",
  TOKEN_NOT_ACCEPTED,
  "join token bbbbbb has a wrong secret",
);
const notAdmitted: Refusal = refusal("not-admitted", "join token bbbbbb admits nodes named edge-*");

describe("auth guard", () => {
  type Attempt = { source: string; tokenId?: string; refusal?: Refusal };
  const cases: Array<{ name: string; attempts: Attempt[]; admitted: boolean[] }> = [
    {
      name: "a source is refused unchecked after its burst of failures",
      attempts: Array.from({ length: 5 }, () => ({ source: "s1", tokenId: "aaaaaa", refusal: unknown })),
      admitted: [true, true, true, false, false],
    },
    {
      name: "another source is not affected",
      attempts: [
        ...Array.from({ length: 3 }, () => ({ source: "s1", refusal: unknown })),
        { source: "s2", tokenId: "cccccc" },
      ],
      admitted: [true, true, true, true],
    },
    {
      name: "a token id guessed from many sources is refused unchecked after its burst, for every source",
      attempts: [
        ...Array.from({ length: 5 }, (_, i) => ({ source: `s${i}`, tokenId: "bbbbbb", refusal: wrong })),
        { source: "s9", tokenId: "bbbbbb" },
        { source: "s9", tokenId: "cccccc" },
      ],
      admitted: [true, true, true, true, true, false, true],
    },
    {
      name: "an unknown id is counted exactly like a known one with a wrong secret",
      attempts: [
        ...Array.from({ length: 5 }, (_, i) => ({ source: `s${i}`, tokenId: "zzzzzz", refusal: unknown })),
        { source: "s9", tokenId: "zzzzzz" },
      ],
      admitted: [true, true, true, true, true, false],
    },
    {
      name: "a token refused with its right secret (not admitted) counts against the source only",
      attempts: [
        ...Array.from({ length: 2 }, (_, i) => ({
          source: `s${i}`,
          tokenId: "bbbbbb",
          refusal: notAdmitted,
        })),
        { source: "s8", tokenId: "bbbbbb" },
      ],
      admitted: [true, true, true],
    },
    {
      name: "successes cost nothing",
      attempts: Array.from({ length: 10 }, () => ({ source: "s1", tokenId: "aaaaaa" })),
      admitted: Array.from({ length: 10 }, () => true),
    },
  ];
  for (const c of cases)
    it(c.name, () => {
      const g = new AuthGuard(LIMITS);
      const got = c.attempts.map((a) => {
        const ok = g.admit(a.source, a.tokenId, 0).ok;
        if (ok && a.refusal) g.refused(a.source, a.tokenId, a.refusal, 0);
        return ok;
      });
      assert.deepEqual(got, c.admitted);
    });

  it("summarises refusals per source per drain: counts by reason, a few token ids, the last detail", () => {
    const g = new AuthGuard({ ...LIMITS, perSource: { ...LIMITS.perSource, burst: 1000 } });
    for (let i = 0; i < 300; i++) {
      const id = `id${String(i).padStart(4, "0")}`;
      if (g.admit("10.0.0.1", id, 0).ok) g.refused("10.0.0.1", id, i % 2 ? wrong : unknown, 0);
    }
    const lines = g.drain();
    assert.equal(lines.length, 1);
    const [l] = lines;
    assert.equal(l!.source, "10.0.0.1");
    assert.equal(l!.failures, 300);
    assert.deepEqual(l!.reasons, { "token-unknown": 150, "token-wrong-secret": 150 });
    assert.equal(l!.tokenIds!.length, 5, "a few token ids, not all");
    assert.match(l!.last!, /wrong secret/);
    assert.deepEqual(g.drain(), [], "a drain starts the next interval");
  });

  it("folds sources beyond maxLines into one line and counts throttled attempts", () => {
    const g = new AuthGuard(LIMITS);
    for (const s of ["a", "b", "c", "d"])
      for (let i = 0; i < (s === "a" ? 10 : 1); i++)
        if (g.admit(s, undefined, 0).ok) g.refused(s, undefined, unknown, 0);
    const lines = g.drain();
    assert.equal(lines.length, 3);
    assert.deepEqual(lines[0], {
      source: "a",
      failures: 3,
      throttled: 7,
      reasons: { "token-unknown": 3, throttled: 7 },
      last: unknown.detail,
    });
    assert.equal(lines[1]!.failures, 1);
    assert.deepEqual(lines[2], { sources: 2, failures: 2, throttled: 0, reasons: { "token-unknown": 2 } });
    assert.equal(g.totals.get("throttled"), 7);
    assert.equal(g.totals.get("token-unknown"), 6);
  });

  it("keeps its memory bounded under refusals from very many sources", () => {
    const g = new AuthGuard({ ...LIMITS, maxLines: 20 });
    for (let i = 0; i < 50_000; i++)
      if (g.admit(`s${i}`, undefined, 0).ok) g.refused(`s${i}`, undefined, unknown, 0);
    const lines = g.drain();
    assert.equal(lines.length, 21);
    const folded = lines[20]!;
    assert.equal(
      lines.reduce((n, l) => n + l.failures, 0),
      50_000,
      "every refusal is counted",
    );
    assert.ok(folded.sources! >= 1000, String(folded.sources));
  });
});
