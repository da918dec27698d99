#!/usr/bin/env node
/**
 * switchyard: the user's tool for what the agents report (a workstation
 * needs only NATS access and, with decentralized auth, a .creds file).
 *
 *   switchyard events --server URL [--creds FILE] [filters] [--since 10m] [--json]
 */
import { type Cli, runCli } from "@switchyard/lib/cli";
import { followEventsCommand } from "./observe/events-command.ts";

const SWITCHYARD_CLI: Cli = {
  bin: "switchyard",
  about: "observe Switchyard: the NAT events agents publish",
  commands: [followEventsCommand],
  footer: `Credentials: switchyard-hub nats-creds create --subscribe 'switchyard.nat.CLUSTER.>' --out FILE`,
};

await runCli(SWITCHYARD_CLI, process.argv.slice(2));
