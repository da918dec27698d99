/** `switchyard-hub token create|list|revoke`: join tokens, through the running hub or on the state. */
import { parseArgs } from "node:util";
import { parseDuration } from "@switchyard/lib/duration";
import type {
  CreateTokenResponse,
  ListTokensResponse,
  RevokeTokenResponse,
  TokenInfo,
} from "@switchyard/proto/admin";
import { call, tokenInfo } from "../admin/admin-server.ts";
import { checkTokenScope, TokenStore } from "../auth/tokens.ts";
import { fail, STATE_FLAGS, table, viaHubOrState } from "./common.ts";
import { printHelp } from "./help.ts";

function printTokens(tokens: TokenInfo[]): void {
  const rows = [["ID", "CLUSTER", "REACH", "EXPIRES", "NODES", "DESCRIPTION"]];
  for (const t of tokens)
    rows.push([
      t.id,
      t.cluster,
      t.reach,
      t.expiresAt || "never",
      `${t.nodes.length}${t.maxNodes ? `/${t.maxNodes}` : ""} ${t.nodePattern !== "*" ? `(${t.nodePattern})` : ""}`.trim(),
      t.description,
    ]);
  process.stdout.write(table(rows));
}

export async function tokenCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...STATE_FLAGS,
      cluster: { type: "string" },
      ttl: { type: "string", default: "24h" },
      description: { type: "string", default: "" },
      "node-pattern": { type: "string", default: "*" },
      "max-nodes": { type: "string", default: "0" },
      reach: { type: "string", default: "pod" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return printHelp();
  const [sub, arg] = positionals;
  if (sub !== "create" && sub !== "list" && sub !== "revoke")
    fail(`unknown token command "${sub ?? ""}": use create, list or revoke`);
  await viaHubOrState(values, async ({ hub, state }) => {
    const store = state ? new TokenStore(state) : undefined;
    if (sub === "create") {
      if (!values.cluster) fail("token create needs --cluster NAME (the cluster the token admits agents to)");
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
