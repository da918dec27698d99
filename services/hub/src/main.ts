#!/usr/bin/env node
/**
 * switchyard-hub: watches clusters and serves NAT assignments to agents.
 *
 *   switchyard-hub serve --cluster NAME=dir:PATH|kubeconfig:PATH|in-cluster ...
 *   switchyard-hub token create|list|revoke ...
 *
 * This file only dispatches: the composition root is serve/serve.ts, the
 * other commands are in cli/ (one file each), listed with their help in
 * cli/help.ts; lib/cli.ts runs them (--version, --help, usage errors).
 */
import { runCli } from "@switchyard/lib/cli";
import { HUB_CLI } from "./cli/help.ts";

await runCli(HUB_CLI, process.argv.slice(2));
