import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import { FakeMaps, skipKey } from "../bpf/maps.ts";
import { computeSkipEntries, syncSkipCgroups } from "./skip-cgroups.ts";

describe("skip-from-backend cgroups", () => {
  it("computes (policy id, cgroup id) for every cgroup of every selected pod of a policy with an id", () => {
    const want = computeSkipEntries(
      new Map([
        ["lrp/c/ns/dns", ["u1", "u2"]],
        ["lrp/c/ns/not-written-yet", ["u3"]],
      ]),
      new Map([
        ["u1", [10n, 11n]],
        ["u3", [30n]],
      ]),
      (p) => (p === "lrp/c/ns/dns" ? 7 : undefined),
    );
    assert.deepEqual([...want].sort(), [skipKey(7, 10n), skipKey(7, 11n)].sort());
  });

  it("writes what is missing, deletes what no pod accounts for, and writes nothing the second time", () => {
    const maps = new FakeMaps();
    maps.skips.putSkip(7, 99n);
    const want = new Set([skipKey(7, 10n), skipKey(8, 20n)]);
    assert.equal(
      syncSkipCgroups(maps.skips, want, silentLogger(), () => undefined),
      3,
    );
    assert.deepEqual([...maps.skips.readSkips()].sort(), [...want].sort());
    assert.equal(
      syncSkipCgroups(maps.skips, want, silentLogger(), () => undefined),
      0,
    );
  });
});
