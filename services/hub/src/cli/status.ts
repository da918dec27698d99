/** `switchyard-hub agents|clusters|policies [--json]`: what the running hub reports, as tables. */
import { type Command, parseFlags } from "@switchyard/lib/cli";
import type { ListAgentsResponse, ListClustersResponse, ListPoliciesResponse } from "@switchyard/proto/admin";
import { call } from "../admin/admin-server.ts";
import { fail, runningHub, STATE_FLAGS, table } from "./common.ts";

type What = "agents" | "clusters" | "policies";

const ABOUT: Record<What, string> = {
  agents: "connected agents: auth, acked version, pending, lag, NACKs",
  clusters: "clusters: source, view, health (why not ok), objects,\nrejected objects and why",
  policies:
    "policies of every cluster: frontend, state (Accepted, or why\nnot: Conflict with the winner, InvalidSpec, ServiceNotFound)",
};

const helpOf = (what: What) => `switchyard-hub ${what} — ${ABOUT[what].replace("\n", " ")}

Usage:
  switchyard-hub ${what} [--json] [--state-dir DIR]

Asks the hub running on --state-dir (through its admin socket).

Flags:
  --json                  JSON (an array of objects, as the admin API returns them) instead of a table
  --state-dir DIR         the hub's state directory (default /var/lib/switchyard-hub)
`;

const statusOf = (what: What): Command => ({
  name: what,
  summary: [[`${what} [--json]`, ABOUT[what]]],
  help: helpOf(what),
  run: (argv) => statusCommand(what, argv),
});
export const agentsCommand = statusOf("agents");
export const clustersCommand = statusOf("clusters");
export const policiesCommand = statusOf("policies");

/** `agents`, `clusters` and `policies`: tables from the running hub. */
async function statusCommand(what: What, argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    "state-dir": STATE_FLAGS["state-dir"],
    json: { type: "boolean", default: false },
  });
  const hub = await runningHub(values["state-dir"]);
  if (!hub) fail(`no hub is running on --state-dir ${values["state-dir"]} (no admin socket answers there)`);
  try {
    if (what === "agents") {
      const { agents } = await call<ListAgentsResponse>((cb) => hub.listAgents({}, cb));
      if (values.json) return void process.stdout.write(`${JSON.stringify(agents, null, 2)}\n`);
      const rows = [
        ["NODE", "CLUSTER", "AUTH", "PEER", "ACKED", "VIEW", "PENDING", "LAG", "ACKS", "NACKS", "LAST NACK"],
      ];
      for (const a of agents)
        rows.push([
          a.node,
          a.cluster,
          a.auth,
          a.peer,
          a.ackedVersion.slice(0, 12),
          a.viewVersion.slice(0, 12),
          String(a.pendingResources),
          `${a.lagMs}ms`,
          String(a.acks),
          String(a.nacks),
          a.lastNack,
        ]);
      process.stdout.write(table(rows));
    } else if (what === "policies") {
      // every policy of every cluster: its frontend, whether it is in force, and why not
      const { policies } = await call<ListPoliciesResponse>((cb) => hub.listPolicies({}, cb));
      if (values.json) return void process.stdout.write(`${JSON.stringify(policies, null, 2)}\n`);
      const rows = [["CLUSTER", "KIND", "POLICY", "GEN", "FRONTEND", "STATE", "REASON", "WINNER", "MESSAGE"]];
      for (const p of policies)
        rows.push([
          p.cluster,
          p.kind,
          `${p.namespace}/${p.name}`,
          String(p.generation),
          p.frontend || "-",
          p.state,
          p.reason || "-",
          p.winner || "-",
          p.message,
        ]);
      process.stdout.write(table(rows));
    } else {
      const { clusters } = await call<ListClustersResponse>((cb) => hub.listClusters({}, cb));
      if (values.json) return void process.stdout.write(`${JSON.stringify(clusters, null, 2)}\n`);
      const rows = [
        [
          "NAME",
          "SOURCE",
          "IMPORTS",
          "HEALTH",
          "SERVICES",
          "SLICES",
          "NODES",
          "PODS",
          // LocalRedirectPolicies and BalancingPolicies with a valid spec
          "LRP",
          "BP",
          "REJECTED",
          "REASON",
        ],
      ];
      for (const c of clusters)
        rows.push([
          c.name,
          c.source,
          c.imports.join(",") || "-",
          c.failed
            ? "failed"
            : c.withdrawn
              ? `withdrawn (since ${c.staleSince})`
              : c.stale
                ? `stale (since ${c.staleSince})`
                : "ok",
          String(c.services),
          String(c.endpointSlices),
          String(c.nodes),
          String(c.pods),
          String(c.localRedirectPolicies),
          String(c.balancingPolicies),
          String(c.rejectedObjects),
          c.reason,
        ]);
      process.stdout.write(table(rows));
      // the objects refused now, each with why (the previous version of each is what is served)
      const refused = clusters.flatMap((c) => c.rejected.map((r) => ({ cluster: c.name, ...r })));
      if (refused.length > 0) {
        const list = [["CLUSTER", "KIND", "OBJECT", "WHY REJECTED"]];
        for (const r of refused)
          list.push([r.cluster, r.kind, r.namespace ? `${r.namespace}/${r.name}` : r.name, r.reason]);
        process.stdout.write(
          `\nrejected objects (their previous version, if any, is served):\n${table(list)}`,
        );
      }
    }
  } finally {
    hub.close();
  }
}
