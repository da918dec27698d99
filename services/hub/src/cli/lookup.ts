/** `switchyard-hub lookup --node NODE IP:PORT[/proto]`: where a connect goes on a node, from the hub's view. */
import { type Command, parseFlags, usageError } from "@switchyard/lib/cli";
import { parseDestination } from "@switchyard/lib/destination";
import type { LookupResponse } from "@switchyard/proto/admin";
import { call } from "../admin/admin-server.ts";
import { fail, runningHub, STATE_FLAGS } from "./common.ts";

const HELP = `switchyard-hub lookup — where a connect to IP:PORT goes on a node, from the hub's view

Usage:
  switchyard-hub lookup --node NODE [--cluster C] [--reach pod|nodeport] IP:PORT[/tcp|udp] [--json]

Reads what the hub sends NODE's agents (its view: its cluster and the
clusters it imports) and says which LocalRedirectPolicy, BalancingPolicy or
Service takes IP:PORT there (LocalRedirect > Balancing > Service), its
backends (ready or not, which the agent uses after the traffic policies and
failover), or why there is none: no (ready) endpoints, none on this node for
a Local traffic policy, a policy that lost a conflict or is invalid, the
address's Service in a cluster outside the node's view. On the node itself,
\`switchyard-agent dump IP:PORT\` shows what its maps hold.
Asks the hub running on --state-dir (through its admin socket).

Flags:
  --node NODE             the node (as its agent is named)
  --cluster C             the node's cluster (default: the cluster of the agent of that name
                          connected to the hub, else the hub's only cluster)
  --reach pod|nodeport    how the node's agents reach backends, as their join token says (default pod)
  --json                  the admin API's answer as JSON
  --state-dir DIR         the hub's state directory (default /var/lib/switchyard-hub)
`;

export const lookupCommand: Command = {
  name: "lookup",
  summary: [
    [
      "lookup --node NODE IP:PORT[/proto]",
      "where a connect goes on a node: Service or policy,\nbackends, or why none",
    ],
  ],
  help: HELP,
  run: runLookup,
};

async function runLookup(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(
    argv,
    {
      "state-dir": STATE_FLAGS["state-dir"],
      node: { type: "string" },
      cluster: { type: "string", default: "" },
      reach: { type: "string", default: "pod" },
      json: { type: "boolean", default: false },
    },
    { positionals: true },
  );
  if (!values.node) usageError("give --node NODE: the node whose view to look in");
  if (positionals.length !== 1)
    usageError("give one destination, IP:PORT[/tcp|udp] (e.g. 10.96.0.10:53/udp)");
  const dest = parseDestination(positionals[0]!);
  if (!dest.ok) usageError(dest.error);
  const hub = await runningHub(values["state-dir"]);
  if (!hub) fail(`no hub is running on --state-dir ${values["state-dir"]} (no admin socket answers there)`);
  try {
    const r = await call<LookupResponse>((cb) =>
      hub.lookup(
        {
          node: values.node!,
          cluster: values.cluster,
          ip: dest.value.ip,
          port: dest.value.port,
          protocol: dest.value.protocol,
          reach: values.reach,
        },
        cb,
      ),
    );
    process.stdout.write(values.json ? `${JSON.stringify(r, null, 2)}\n` : formatLookup(r));
  } catch (e) {
    fail((e as { details?: string }).details ?? (e as Error).message);
  } finally {
    hub.close();
  }
}

/** The answer, then each match with its backends, then the notes. */
export function formatLookup(r: LookupResponse): string {
  const lines = [r.answer, `view of ${r.cluster}: ${r.view.join(", ")}`];
  for (const m of r.matches) {
    lines.push(`${m.inForce ? "*" : " "} ${m.kind} ${m.name} (${m.mode})${m.reason ? `: ${m.reason}` : ""}`);
    for (const b of m.backends) {
      const state = b.ready
        ? "ready"
        : b.terminating
          ? b.serving
            ? "terminating, serving"
            : "terminating"
          : "not ready";
      const addr = b.address.includes(":") ? `[${b.address}]` : b.address;
      lines.push(`    ${b.used ? "->" : "  "} ${addr}:${b.port}  ${b.node || "-"}  ${state}  ${b.source}`);
    }
  }
  for (const n of r.notes) lines.push(`note: ${n}`);
  return `${lines.join("\n")}\n`;
}
