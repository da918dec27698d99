import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { computeHubReadiness } from "./readiness.ts";

describe("hub readiness", () => {
  const cases = [
    { name: "no clusters", clusters: [], ready: true },
    { name: "listed", clusters: [{ name: "a", sync: "synced" as const, failed: false }], ready: true },
    { name: "restored", clusters: [{ name: "a", sync: "restored" as const, failed: false }], ready: true },
    { name: "failed source", clusters: [{ name: "a", sync: undefined, failed: true }], ready: true },
    {
      name: "one still pending",
      clusters: [
        { name: "a", sync: "synced" as const, failed: false },
        { name: "b", sync: "pending" as const, failed: false },
      ],
      ready: false,
    },
    { name: "not in the world yet", clusters: [{ name: "a", sync: undefined, failed: false }], ready: false },
  ];
  for (const c of cases)
    it(c.name, () => {
      const r = computeHubReadiness(c.clusters);
      assert.equal(r.ready, c.ready);
      if (!r.ready) assert.match(r.reason, /clusters not listed yet/);
    });
});
