/**
 * Adapter: the agent's nftables table through the `nft` command (one
 * transaction per write, `nft -f -`; read back with `nft -j list table`),
 * and the sysctls a forwarding entry node needs. Holds no policy: what to
 * write is computed by nft-ruleset.ts, when by entry-sync.ts.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { SwitchyardError } from "@switchyard/lib/errors";
import { ENTRY_FAMILY, ENTRY_TABLE } from "./nft-ruleset.ts";

/** The port entry-sync.ts writes through (a fake in unit tests). */
export interface EntryTable {
  /** Applies one `nft -f` transaction; throws a SwitchyardError with nft's message. */
  apply(ruleset: string): void;
  /** `nft -j list table` of the agent's table, or undefined when there is none. */
  read(): string | undefined;
  /** Deletes the table; false when there was none. */
  remove(): boolean;
}

function stderrOf(e: unknown): string {
  const err = e as { stderr?: Buffer | string; message?: string; code?: string };
  if (err.code === "ENOENT") return "the nft command is not installed (install the nftables package)";
  const text = err.stderr?.toString().trim();
  return text || err.message || String(e);
}

export class NftEntryTable implements EntryTable {
  /** `command`: how to run nft (tests run it in a network namespace: `["ip", "netns", "exec", ns, "nft"]`) */
  private readonly command: readonly string[];
  constructor(command: readonly string[] = ["nft"]) {
    this.command = command;
  }

  private run(args: string[], input?: string): string {
    const [cmd, ...pre] = this.command as [string, ...string[]];
    return execFileSync(cmd, [...pre, ...args], {
      encoding: "utf8",
      ...(input === undefined ? {} : { input }),
      stdio: ["pipe", "pipe", "pipe"],
    });
  }

  apply(ruleset: string): void {
    try {
      this.run(["-f", "-"], ruleset);
    } catch (e) {
      throw new SwitchyardError(
        "internal",
        `nft refused the entry table ${ENTRY_FAMILY} ${ENTRY_TABLE}: ${stderrOf(e)}`,
        e,
      );
    }
  }

  read(): string | undefined {
    try {
      return this.run(["-j", "list", "table", ENTRY_FAMILY, ENTRY_TABLE]);
    } catch (e) {
      const msg = stderrOf(e);
      // no table; or no nft at all, so no table either (a write would say that nft is missing)
      if (/No such file or directory/.test(msg) || (e as { code?: string }).code === "ENOENT")
        return undefined;
      throw new SwitchyardError(
        "internal",
        `cannot read the entry table ${ENTRY_FAMILY} ${ENTRY_TABLE}: ${msg}`,
        e,
      );
    }
  }

  remove(): boolean {
    if (this.read() === undefined) return false;
    this.apply(`delete table ${ENTRY_FAMILY} ${ENTRY_TABLE}\n`);
    return true;
  }
}

/** The forwarding sysctls of the agent's network namespace (undefined: not readable). */
export function readForwardingSysctls(): { ipv4: string | undefined; ipv6: string | undefined } {
  const read = (p: string) => {
    try {
      return fs.readFileSync(p, "utf8").trim();
    } catch {
      return undefined;
    }
  };
  return {
    ipv4: read("/proc/sys/net/ipv4/ip_forward"),
    ipv6: read("/proc/sys/net/ipv6/conf/all/forwarding"),
  };
}
