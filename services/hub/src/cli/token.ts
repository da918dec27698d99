/** `switchyard-hub token create|list|revoke`: join tokens, through the running hub or on the state. */

import fs from "node:fs";
import path from "node:path";
import { type Command, parseFlags } from "@switchyard/lib/cli";
import { parseDuration } from "@switchyard/lib/duration";
import type {
  CreateTokenResponse,
  ListTokensResponse,
  RevokeTokenResponse,
  TokenInfo,
} from "@switchyard/proto/admin";
import { call, tokenInfo } from "../admin/admin-server.ts";
import { checkTokenScope, TokenStore } from "../auth/tokens.ts";
import type { HubState } from "../state/hub-state.ts";
import { metaKey } from "../state/last-known.ts";
import { fail, STATE_FLAGS, STATE_NATS_HELP, table, viaHubOrState } from "./common.ts";

const HELP = `switchyard-hub token — join tokens: what admits a new agent to a cluster

Usage:
  switchyard-hub token create --cluster NAME [flags]   create a join token and print it (stdout)
  switchyard-hub token list [flags]                    tokens with expiry and the nodes they admitted
  switchyard-hub token revoke ID [flags]               revoke a token (its agents are cut off)

Through the running hub's admin socket, else on the state directly.

Flags:
  --cluster NAME          the cluster the token admits agents to (create; one the hub watches)
  --ttl DURATION          e.g. 24h, 7d (create; default 24h, 0 = never expires)
  --description TEXT      free text (create)
  --node-pattern GLOB     node names the token admits, e.g. edge-* (create; default *)
  --max-nodes N           how many distinct nodes may join with it (create; default 0 = 1000; at most
                          1000000): each new node name is a write to the shared state
  --reach pod|nodeport    how its agents reach backends (create): pod = pod IPs (cluster nodes,
                          hosts on a routable pod network; default); nodeport = the pod's node
                          IP + the Service's NodePort (KubeEdge edge nodes without CNI, other hosts)
  --state-dir DIR         the hub's state directory (default /var/lib/switchyard-hub)
  --state-nats URL        the hub's shared state in NATS JetStream KV (repeatable; only when no hub
                          runs on --state-dir)
${STATE_NATS_HELP}
  --new-state             create: make the state in --state-dir when no hub has run there yet (else
                          a directory without a hub's state is refused as a wrong --state-dir)
`;

type StateDirFlags = { "state-dir": string; "state-nats": string[]; "new-state": boolean };

/**
 * With no hub running, a state directory where no hub ever lived (no state
 * file) is a wrong --state-dir: `create` refuses to start one there (unless
 * --new-state), and `list` / `revoke` refuse to answer from it (an empty
 * list would say "no tokens" of a hub they never looked at).
 */
function refuseStateWithoutHub(flags: StateDirFlags, create: boolean): void {
  const stateDir = flags["state-dir"];
  if (
    flags["state-nats"].length === 0 &&
    !flags["new-state"] &&
    !fs.existsSync(path.join(stateDir, "state.json"))
  )
    fail(
      `no hub lives in --state-dir ${stateDir} (no hub answers on its admin socket and it holds no hub state); give the --state-dir the hub runs with${create ? ", or --new-state to make the state there before the hub's first start" : ""}`,
    );
}

/**
 * `token create` with no hub running: a cluster the state knows nothing of,
 * while it knows others (their last known state), is a typo.
 */
function refuseUnknownClusterInState(state: HubState, cluster: string): void {
  const known = state.list(metaKey("")).map(([k]) => k.slice(metaKey("").length));
  if (known.length > 0 && !known.includes(cluster))
    fail(`cluster "${cluster}" is not known to the hub of this state (it knows ${known.join(", ")})`);
}

/** now or later: an expired token is marked in the list (it admits nobody) */
function expiryOf(t: TokenInfo, now = Date.now()): string {
  if (!t.expiresAt) return "never";
  return Date.parse(t.expiresAt) <= now ? `${t.expiresAt} (expired)` : t.expiresAt;
}

function printTokens(tokens: TokenInfo[]): void {
  const rows = [["ID", "CLUSTER", "REACH", "EXPIRES", "NODES", "DESCRIPTION"]];
  for (const t of tokens)
    rows.push([
      t.id,
      t.cluster,
      t.reach,
      expiryOf(t),
      `${t.nodes.length}${t.maxNodes ? `/${t.maxNodes}` : ""} ${t.nodePattern !== "*" ? `(${t.nodePattern})` : ""}`.trim(),
      t.description,
    ]);
  process.stdout.write(table(rows));
}

export const tokenCommand: Command = {
  name: "token",
  summary: [
    ["token create --cluster NAME", "create a join token and print it"],
    ["token list", "join tokens with expiry and the nodes they admitted"],
    ["token revoke ID", "revoke a join token (its agents are cut off)"],
  ],
  help: HELP,
  run: runToken,
};

async function runToken(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(
    argv,
    {
      ...STATE_FLAGS,
      cluster: { type: "string" },
      ttl: { type: "string", default: "24h" },
      description: { type: "string", default: "" },
      "node-pattern": { type: "string", default: "*" },
      "max-nodes": { type: "string", default: "0" },
      reach: { type: "string", default: "pod" },
      "new-state": { type: "boolean", default: false },
    },
    { positionals: true },
  );
  const [sub, arg] = positionals;
  if (sub !== "create" && sub !== "list" && sub !== "revoke")
    fail(
      sub === undefined
        ? "give a token command: create, list or revoke (see switchyard-hub token --help)"
        : `unknown token command "${sub}": use create, list or revoke`,
    );
  await viaHubOrState(values, async ({ hub, state }) => {
    if (state) refuseStateWithoutHub(values, sub === "create");
    const store = state ? new TokenStore(state) : undefined;
    if (sub === "create") {
      if (!values.cluster) fail("token create needs --cluster NAME (the cluster the token admits agents to)");
      // with no hub answering: the state must be a hub's, and name the cluster when it names any
      if (state) refuseUnknownClusterInState(state, values.cluster);
      let ttlMs = 0;
      if (values.ttl !== "0") {
        const d = parseDuration(values.ttl);
        if (!d.ok) fail(`--ttl: ${d.error}`);
        ttlMs = d.value;
      }
      if (!/^\d+$/.test(values["max-nodes"]))
        fail(`--max-nodes "${values["max-nodes"]}" must be a whole number (0 = the default, 1000)`);
      const maxNodes = Number(values["max-nodes"]);
      const scopeError = checkTokenScope({
        nodePattern: values["node-pattern"],
        reach: values.reach,
        maxNodes,
      });
      if (scopeError) fail(scopeError);
      const req = {
        cluster: values.cluster,
        ttlMs,
        description: values.description,
        nodePattern: values["node-pattern"],
        maxNodes,
        reach: values.reach,
      };
      const token = hub
        ? (await call<CreateTokenResponse>((cb) => hub.createToken(req, cb))).token
        : (
            await store!.create(values.cluster, {
              ...(ttlMs ? { ttlMs } : {}),
              description: req.description,
              nodePattern: req.nodePattern,
              maxNodes,
              reach: values.reach === "nodeport" ? "nodeport" : "pod",
            })
          ).token;
      process.stdout.write(`${token}\n`);
      return;
    }
    if (sub === "list") {
      printTokens(
        hub
          ? (await call<ListTokensResponse>((cb) => hub.listTokens({}, cb))).tokens
          : store!.list().map(tokenInfo),
      );
      return;
    }
    if (!arg) fail("token revoke needs the token ID");
    if (hub) {
      const r = await call<RevokeTokenResponse>((cb) => hub.revokeToken({ id: arg }, cb));
      process.stdout.write(`revoked ${arg}; ${r.agentsCutOff} agent stream(s) cut off\n`);
    } else {
      if (!(await store!.revoke(arg))) fail(`no token with id ${arg}`);
      process.stdout.write(`revoked ${arg}\n`);
    }
  });
}
