#!/usr/bin/env node
/**
 * switchyard-agent: resolves Services at the socket on this node.
 *
 *   switchyard-agent run --hub HOST:PORT --token ID.SECRET ...
 *   switchyard-agent dump [--pin-dir DIR]
 *   switchyard-agent uninstall [--pin-dir DIR]
 *
 * This file only dispatches: the composition root is run.ts, the other
 * commands are in cli/, the help text in cli/help.ts.
 */
import { fail } from "./cli/common.ts";
import { eventsCommand } from "./cli/events.ts";
import { printHelp } from "./cli/help.ts";
import { dumpCommand, uninstallCommand } from "./cli/pins.ts";
import { run } from "./run.ts";

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === "--help" || cmd === "-h" || cmd === "help") return printHelp();
  if (cmd === "events") return eventsCommand(rest);
  if (cmd === "dump") return dumpCommand(rest);
  if (cmd === "uninstall") return uninstallCommand(rest);
  if (cmd !== "run") fail(`unknown command "${cmd}"; see --help`);
  return run(rest);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`switchyard-agent: ${(e as Error).message}\n`);
  process.exit(1);
});
