import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type ClusterHealth, type ClusterSync, HEALTHY } from "../model/world.ts";
import { computeViewHold } from "./view-hold.ts";

const WITHDRAWN: ClusterHealth = { stale: true, withdrawn: true, staleSince: 1, reason: "x" };
const STALE: ClusterHealth = { stale: true, withdrawn: false, staleSince: 1, reason: "x" };

function states(spec: Record<string, [ClusterSync, ClusterHealth]>) {
  return new Map(Object.entries(spec).map(([k, [sync, health]]) => [k, { sync, health }]));
}

describe("computeViewHold: a view waits for clusters the hub has not seen", () => {
  const cases: Array<{
    name: string;
    view: string[];
    spec: Record<string, [ClusterSync, ClusterHealth]>;
    want: string[];
  }> = [
    {
      name: "every cluster listed: served",
      view: ["east", "west"],
      spec: { east: ["synced", HEALTHY], west: ["synced", HEALTHY] },
      want: [],
    },
    {
      name: "an imported cluster not listed yet: held",
      view: ["east", "west"],
      spec: { east: ["synced", HEALTHY], west: ["pending", HEALTHY] },
      want: ["west"],
    },
    {
      name: "an imported cluster unreachable and unseen, within its grace: held",
      view: ["east", "west"],
      spec: { east: ["synced", HEALTHY], west: ["pending", STALE] },
      want: ["west"],
    },
    {
      name: "an imported cluster unseen past its grace (withdrawn): served without it",
      view: ["east", "west"],
      spec: { east: ["synced", HEALTHY], west: ["pending", WITHDRAWN] },
      want: [],
    },
    {
      name: "the home cluster unseen past its grace: its own view stays held",
      view: ["west", "east"],
      spec: { east: ["synced", HEALTHY], west: ["pending", WITHDRAWN] },
      want: ["west"],
    },
    {
      name: "restored from the last known state, unreachable: served (stale)",
      view: ["east", "west"],
      spec: { east: ["synced", HEALTHY], west: ["restored", STALE] },
      want: [],
    },
    {
      name: "several unseen: all named, home first",
      view: ["a", "b", "c"],
      spec: { a: ["pending", HEALTHY], b: ["synced", HEALTHY], c: ["pending", HEALTHY] },
      want: ["a", "c"],
    },
    {
      name: "a cluster not configured (not in the world) is not waited for",
      view: ["east", "gone"],
      spec: { east: ["synced", HEALTHY] },
      want: [],
    },
  ];
  for (const c of cases)
    it(c.name, () => {
      assert.deepEqual(computeViewHold(c.view, states(c.spec)), c.want);
    });
});
