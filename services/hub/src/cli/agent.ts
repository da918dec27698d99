/** `switchyard-hub agent revoke CLUSTER/NODE`: revokes an agent's credentials and cuts its stream. */
import { type Command, parseFlags } from "@switchyard/lib/cli";
import type { RevokeAgentResponse } from "@switchyard/proto/admin";
import { call } from "../admin/admin-server.ts";
import { fail, STATE_FLAGS, STATE_NATS_HELP, viaHubOrState } from "./common.ts";

const HELP = `switchyard-hub agent — one agent's credentials

Usage:
  switchyard-hub agent revoke CLUSTER/NODE [flags]   revoke the agent's credentials and cut its stream;
                                                      it must join again with a token

Through the running hub's admin socket, else on the state directly.

Flags:
  --state-dir DIR         the hub's state directory (default /var/lib/switchyard-hub)
  --state-nats URL        the hub's shared state in NATS JetStream KV (repeatable; only when no hub
                          runs on --state-dir)
${STATE_NATS_HELP}
`;

export const agentCommand: Command = {
  name: "agent",
  summary: [["agent revoke CLUSTER/NODE", "revoke an agent's credentials and cut its stream"]],
  help: HELP,
  run: runAgent,
};

async function runAgent(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(argv, STATE_FLAGS, { positionals: true });
  const [sub, who] = positionals;
  if (sub !== "revoke") fail(`unknown agent command "${sub ?? ""}": use revoke CLUSTER/NODE`);
  const m = /^([a-z0-9-]+)\/([a-z0-9.-]+)$/.exec(who ?? "");
  if (!m) fail(`agent revoke needs CLUSTER/NODE, e.g. prod/edge-7 (got "${who ?? ""}")`);
  const [cluster, node] = [m[1]!, m[2]!];
  await viaHubOrState(values, async ({ hub, state }) => {
    if (hub) {
      const r = await call<RevokeAgentResponse>((cb) => hub.revokeAgent({ cluster, node }, cb));
      process.stdout.write(`revoked ${cluster}/${node}; ${r.agentsCutOff} stream(s) cut off\n`);
      return;
    }
    await state.put(`revoked/${cluster}/${node}`, { at: new Date().toISOString() });
    process.stdout.write(
      `revoked ${cluster}/${node} (no hub running here; hubs cut it off within a second)\n`,
    );
  });
}
