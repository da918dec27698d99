/**
 * Map values read while being replaced (issue 13, item 6), on the real
 * kernel: many Services swap their backend sets over and over while a client
 * in the sandbox connects to all of them, and every connect must reach a
 * backend of its own Service (each backend answers with its name) — none of
 * another Service, none refused for a set that was gone.
 *
 * Bounded by counts: the client makes CONNECTS connects; the agent side
 * swaps every Service's set, one plan per round, until the client is done,
 * and must have swapped at least MIN_ROUNDS times meanwhile — none of them
 * waiting for a grace period on the agent's main thread.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setImmediate as turn } from "node:timers/promises";
import type { Resource } from "@switchyard/proto/assignment";
import { DatapathHarness, serviceResource, sliceResource } from "../kit/datapath-harness.ts";
import { type Proc, REPO, watchProcess } from "../kit/proc.ts";

const SERVICES = 12;
const BACKENDS = 3;
const CONNECTS = Number(process.env.MAP_RACES_CONNECTS ?? 20_000);
const CONCURRENCY = 16;
const MIN_ROUNDS = 50;
const PORT = 8080;

const vip = (s: number) => `10.96.77.${s + 1}`;
const backend = (s: number, k: number) => ({ name: `s${s}-b${k}`, ip: `10.77.${s}.${k + 1}`, port: PORT });

/** Round r's set for Service s: sizes 3, 1, 2 in turn, in a rotating order (set ids and counts both change). */
function setOf(s: number, r: number): number[] {
  const phase = (r + s) % 3;
  if (phase === 0) return [0, 1, 2];
  if (phase === 1) return [(r + 1) % BACKENDS];
  return [(r + 2) % BACKENDS, r % BACKENDS];
}

function resources(r: number): Resource[] {
  const out: Resource[] = [];
  for (let s = 0; s < SERVICES; s++) {
    // every other Service has ClientIP affinity, so the sy_members path runs too
    const extra = s % 2 === 1 ? { affinityTimeoutSeconds: 3600 } : {};
    out.push(serviceResource(`race-${s}`, [{ ip: vip(s), port: 80 }], extra));
    out.push(
      sliceResource(
        `race-${s}`,
        PORT,
        setOf(s, r).map((k) => ({ ip: backend(s, k).ip })),
      ),
    );
  }
  return out;
}

type LoopResult = {
  ok: number;
  failed: number;
  targets: Record<string, { replies: Record<string, number>; errors: Record<string, number> }>;
};

describe("backend sets swapped while clients connect", { timeout: 300_000 }, () => {
  let h: DatapathHarness;
  before(async () => {
    h = DatapathHarness.create("races");
    await h.sandbox.startEchoServers(
      Array.from({ length: SERVICES }, (_, s) =>
        Array.from({ length: BACKENDS }, (_, k) => backend(s, k)),
      ).flat(),
    );
  });
  after(() => h?.cleanup());

  it("every connect reaches a backend of its own Service, none is refused", async () => {
    assert.deepEqual(h.assign(resources(0)), []);
    const client: Proc = watchProcess(
      h.sandbox.spawnInCgroup(process.execPath, [
        path.join(REPO, "test/kit/vip-loop.ts"),
        String(CONNECTS),
        String(CONCURRENCY),
        ...Array.from({ length: SERVICES }, (_, s) => `${vip(s)}:80`),
      ]),
    );
    let done = false;
    const result = client
      .waitFor(/^\{.*\}$/m, 240_000)
      .then((m) => JSON.parse(m[0]) as LoopResult)
      .finally(() => {
        done = true;
      });
    let rounds = 0;
    const nacks: string[] = [];
    while (!done) {
      rounds++;
      for (const e of h.assign(resources(rounds))) nacks.push(`${e.name}: ${e.message}`);
      await turn(); // let the client's output in
    }
    const r = await result;
    await client.stop();

    const wrong: string[] = [];
    for (const [target, t] of Object.entries(r.targets)) {
      const s = Number(target.split(".")[3]!.split(":")[0]) - 1;
      for (const [name, n] of Object.entries(t.replies))
        if (!name.startsWith(`s${s}-`)) wrong.push(`${target} answered by ${name} ×${n}`);
    }
    const counters = h.dp.maps.counters();
    const swaps = rounds * SERVICES;
    // the figures, for the record (a test checks behaviour, not timing)
    console.log(
      JSON.stringify({
        connects: r.ok + r.failed,
        rounds,
        swaps,
        graceWaitsBlocking: h.dp.maps.grace.blockingWaits,
        failedCounter: String(counters.failed),
      }),
    );
    assert.deepEqual(nacks, []);
    assert.deepEqual(wrong, [], "connects that reached another Service's backend");
    assert.deepEqual(
      Object.fromEntries(Object.entries(r.targets).filter(([, t]) => Object.keys(t.errors).length > 0)),
      {},
      "connects refused or failed",
    );
    assert.equal(r.ok, CONNECTS);
    assert.equal(counters.failed, 0n, "translations that failed in the program (SY_FAIL_BACKEND_MISSING)");
    assert.ok(rounds >= MIN_ROUNDS, `only ${rounds} rounds of swaps ran while the client connected`);
    // old sets are retired after grace periods run off the main thread: no swap waited on it
    assert.equal(h.dp.maps.grace.blockingWaits, 0, "grace periods waited for on the agent's main thread");
  });
});
