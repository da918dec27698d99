#!/usr/bin/env node
/**
 * switchyard-hub: watches clusters and serves NAT assignments to agents.
 *
 *   switchyard-hub serve --cluster NAME=dir:PATH|kubeconfig:PATH|in-cluster ...
 *   switchyard-hub token create|list|revoke ...
 *
 * This file only dispatches: the composition root is serve/serve.ts, the
 * other commands are in cli/ (one file each), the help text in cli/help.ts.
 */
import { agentCommand } from "./cli/agent.ts";
import { fail } from "./cli/common.ts";
import { printHelp } from "./cli/help.ts";
import { signingKeyCommand } from "./cli/signing-key.ts";
import { statusCommand } from "./cli/status.ts";
import { tokenCommand } from "./cli/token.ts";
import { serve } from "./serve/serve.ts";

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === "--help" || cmd === "-h" || cmd === "help") return printHelp();
  if (cmd === "token") return tokenCommand(rest);
  if (cmd === "agent") return agentCommand(rest);
  if (cmd === "signing-key") return signingKeyCommand(rest);
  if (cmd === "agents" || cmd === "clusters" || cmd === "policies") return statusCommand(cmd, rest);
  if (cmd === "serve") return serve(rest);
  fail(`unknown command "${cmd}"; see --help`);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`switchyard-hub: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
