/**
 * switchyard-hub's commands: the one list of subcommands with their help
 * (the overview is made from each command's summary lines). A new command:
 * a file in cli/ exporting a `Command` (lib/cli.ts), and one line below.
 */
import type { Cli } from "@switchyard/lib/cli";
import { agentCommand } from "./agent.ts";
import { clusterCommand } from "./cluster.ts";
import { lookupCommand } from "./lookup.ts";
import { natsCommand, natsCredsCommand } from "./nats.ts";
import { pkiCommand } from "./pki.ts";
import { serveCommand } from "./serve.ts";
import { signingKeyCommand } from "./signing-key.ts";
import { agentsCommand, clustersCommand, policiesCommand } from "./status.ts";
import { tokenCommand } from "./token.ts";

export const HUB_CLI: Cli = {
  bin: "switchyard-hub",
  about: "aggregates Services from clusters and pushes NAT assignments to agents",
  commands: [
    serveCommand,
    tokenCommand,
    agentsCommand,
    clustersCommand,
    policiesCommand,
    agentCommand,
    signingKeyCommand,
    pkiCommand,
    natsCommand,
    natsCredsCommand,
    clusterCommand,
    lookupCommand,
  ],
  footer: `The commands other than serve talk to the running hub through its admin socket
(STATE-DIR/admin.sock, mode 0600); token, agent and signing-key also work with
no hub running, on the state directly. Results go to stdout, errors and notes
to stderr; serve logs JSON lines (pino) on stdout. NAT events: \`switchyard events\`
(bin/switchyard), with credentials from nats-creds create.`,
};
