#!/usr/bin/env node
/**
 * switchyard-agent: resolves Services at the socket on this node.
 *
 *   switchyard-agent run --hub HOST:PORT --token ID.SECRET ...
 *   switchyard-agent dump [--pin-dir DIR]
 *   switchyard-agent uninstall [--pin-dir DIR]
 *
 * This file only dispatches: the composition root is run.ts, the other
 * commands are in cli/, listed with their help in cli/help.ts; lib/cli.ts
 * runs them (--version, --help, usage errors).
 */
import { runCli } from "@switchyard/lib/cli";
import { AGENT_CLI } from "./cli/help.ts";

await runCli(AGENT_CLI, process.argv.slice(2));
