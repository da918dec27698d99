/** `switchyard-hub agent revoke CLUSTER/NODE`: revokes an agent's credentials and cuts its stream. */
import { parseArgs } from "node:util";
import type { RevokeAgentResponse } from "@switchyard/proto/admin";
import { call } from "../admin/admin-server.ts";
import { fail, STATE_FLAGS, viaHubOrState } from "./common.ts";
import { printHelp } from "./help.ts";

export async function agentCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ...STATE_FLAGS, help: { type: "boolean", short: "h" } },
  });
  if (values.help) return printHelp();
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
