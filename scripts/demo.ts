/**
 * `npm run demo`: Switchyard's main job on the embedded default cluster
 * (deploy/examples, a directory of Kubernetes YAML), with no Kubernetes:
 * a nats-server, a hub, an agent on this machine, two backends, and a
 * client in a network namespace + cgroup that connects to the Service's
 * ClusterIP. Edit deploy/examples/web.yaml while it runs to see changes
 * applied live. Ctrl-C stops everything and removes what it made.
 *
 *   node scripts/demo.ts [--rounds N] [--examples DIR]   (N rounds then exit; default: until Ctrl-C)
 *
 * An edit of the examples' YAML is echoed in words as it is saved
 * ("endpoint removed: demo/web 198.18.0.12"), then the next connects follow it.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";
import { readObjects } from "../services/hub/src/sources/directory.ts";
import { REPO } from "../test/kit/proc.ts";
import { AGENT, Stack } from "../test/kit/stack.ts";
import { describeEdit, summarizeObjects } from "./demo-edits.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "0" },
    "interval-ms": { type: "string", default: "2000" },
    // the directory of YAML the hub watches as cluster "demo" (tests edit a copy)
    examples: { type: "string", default: path.join(REPO, "deploy/examples") },
  },
});
const rounds = Number(values.rounds);
const intervalMs = Number(values["interval-ms"]);
const VIP = "10.96.0.10";
const say = (s: string) => process.stdout.write(`${s}\n`);

if (process.getuid?.() !== 0) {
  say("The demo loads eBPF programs and makes a network namespace and a cgroup: run it as root.");
  process.exit(1);
}

const stack = Stack.create("demo");
let stopping = false;
async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    say("\nstopping: agent, hub, nats-server, backends; removing pins, cgroup and namespace …");
    await stack.cleanup();
    say("clean.");
  }
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(0));
process.on("SIGTERM", () => void shutdown(0));

try {
  say("Switchyard demo — one Service resolved at the socket, no Kubernetes needed\n");
  say(
    `• sandbox: network namespace ${stack.sandbox.netns} (no route out) and cgroup ${stack.sandbox.cgroup}`,
  );
  await stack.startBackend("backend-a", "198.18.0.11", 8080);
  await stack.startBackend("backend-b", "198.18.0.12", 8080);
  say("• backends: backend-a on 198.18.0.11:8080 and backend-b on 198.18.0.12:8080, inside the namespace");
  const nats = await stack.startNats();
  say(`• nats-server on ${nats.url}`);
  const examples = path.resolve(values.examples);
  await stack.startHub([`demo=dir:${examples}`]);
  say(
    `• hub on ${stack.hubAddress}, watching ${path.relative(process.cwd(), examples) || examples} as cluster "demo"`,
  );
  const token = stack.createToken("demo", ["--description", "demo agent"]);
  say(`• join token created for cluster "demo": ${token.split(".")[0]}.****************`);
  echoEdits(examples);
  await stack.startAgent(token);
  say(`• agent joined, programs attached to the sandbox cgroup, maps pinned in ${stack.pinDir}\n`);

  const nc = await connect({ servers: nats.url });
  const sub = nc.subscribe("switchyard.nat.>");
  (async () => {
    for await (const m of sub) {
      const e = m.json<Record<string, string | number | boolean>>();
      const what = e["isSuccess"]
        ? `${e["originalDestIp"]}:${e["originalDestPort"]} → ${e["natIp"]}:${e["natPort"]}`
        : `${e["originalDestIp"]}:${e["originalDestPort"]} refused (${e["failureCode"]})`;
      say(
        `    event on ${m.subject}: ${e["service"]} ${e["protocol"]} ${what} (pid ${e["pid"]}, ${e["hook"]})`,
      );
    }
  })().catch(() => {});

  // wait for the first assignment to land
  for (let i = 0; i < 200; i++) {
    const p = await stack.probe(VIP, 80);
    if (p.ok) break;
  }
  say("What the agent wrote into its BPF maps (switchyard-agent dump):");
  say(
    execFileSync(
      process.execPath,
      [
        path.join(REPO, AGENT),
        "dump",
        "--pin-dir",
        stack.pinDir,
        "--state-dir",
        path.join(stack.stateDir, "agent"),
      ],
      {
        encoding: "utf8",
      },
    )
      .trimEnd()
      .split("\n")
      .map((l) => `    ${l}`)
      .join("\n"),
  );
  say(
    `\nA client in the sandbox now connects to the Service demo/web at ${VIP}:80 every ${intervalMs / 1000}s.`,
  );
  say(
    "Edit deploy/examples/web.yaml (remove an endpoint, change a port) and watch it follow. Ctrl-C to stop.\n",
  );
  for (let n = 1; rounds === 0 || n <= rounds; n++) {
    const p = await stack.probe(VIP, 80);
    if (p.ok) {
      const [name, client] = p.reply.split(" ");
      say(
        `[${n}] connect ${VIP}:80 → reached ${name}; getpeername() still says ${p.peer} (the backend saw the client as ${client})`,
      );
    } else {
      say(`[${n}] connect ${VIP}:80 → failed: ${p.code}`);
    }
    await nc.flush();
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  await nc.close();
  await shutdown(0);
} catch (e) {
  say(`demo failed: ${(e as Error).message}`);
  await shutdown(1);
}

/** Says each edit of the YAML in `dir` in words as it is saved (the hub applies it at the same time). */
function echoEdits(dir: string): void {
  const read = () => {
    const objects: unknown[] = [];
    for (const f of fs.readdirSync(dir, { recursive: true, encoding: "utf8" }))
      if (/\.ya?ml$/.test(f)) {
        const r = readObjects(fs.readFileSync(path.join(dir, f), "utf8"));
        if (r.error) throw new Error(r.error);
        objects.push(...r.objects);
      }
    return summarizeObjects(objects);
  };
  let seen = read();
  let timer: NodeJS.Timeout | undefined;
  fs.watch(dir, { recursive: true }, () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      let now: Map<string, string>;
      try {
        now = read();
      } catch {
        return; // a file half written: the next event reads it whole
      }
      for (const line of describeEdit(seen, now)) say(`  ✎ you edited ${path.basename(dir)}: ${line}`);
      seen = now;
    }, 150);
  }).unref();
}
