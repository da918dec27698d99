/**
 * Adapter: deletes conntrack entries through the `conntrack` command
 * (Debian's conntrack package; arguments passed as they are, no shell).
 * Holds no policy: which entries go is computed by entry-flows.ts, when by
 * entry-sync.ts.
 */
import { spawnSync } from "node:child_process";
import { SwitchyardError } from "@switchyard/lib/errors";
import type { EntryFlows, RemovedTarget } from "./entry-flows.ts";

/** conntrack -D reports on stderr, and exits 1 when it deleted none: "… 0 flow entries have been deleted." */
const DELETED = /(\d+) flow entr(?:y has|ies have) been deleted/;

/** The arguments of one `conntrack -D`: original destination entry:port, reply source the target. */
export function conntrackDeleteArgs(r: RemovedTarget): string[] {
  return [
    "-D",
    "-f",
    r.address.includes(":") ? "ipv6" : "ipv4",
    "-p",
    r.protocol === "UDP" ? "udp" : "tcp",
    "--orig-dst",
    r.address,
    "--orig-port-dst",
    String(r.port),
    "--reply-src",
    r.target.ip,
    "--reply-port-src",
    String(r.target.port),
  ];
}

export class ConntrackEntryFlows implements EntryFlows {
  /** `command`: how to run conntrack (tests may run it in a network namespace: `["ip", "netns", "exec", ns, "conntrack"]`) */
  private readonly command: readonly string[];
  constructor(command: readonly string[] = ["conntrack"]) {
    this.command = command;
  }

  forget(r: RemovedTarget): number {
    const [cmd, ...pre] = this.command as [string, ...string[]];
    const args = [...pre, ...conntrackDeleteArgs(r)];
    // the deleted entries on stdout, the count on stderr (exit 1 when none)
    const run = spawnSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    if ((run.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT")
      throw new SwitchyardError(
        "unavailable",
        "the conntrack command is not installed (install the conntrack package): UDP flows DNATed to a removed pod keep reaching it until their conntrack entry times out",
        run.error,
      );
    const text = `${run.stderr ?? ""}`.trim();
    const m = DELETED.exec(text);
    if (m && (run.status === 0 || run.status === 1)) return Number(m[1]);
    throw new SwitchyardError(
      "internal",
      `conntrack ${args.join(" ")} failed: ${text || run.error?.message || `exit status ${run.status}`}`,
      run.error,
    );
  }
}
