/**
 * A fake of the agent's nftables table (entry/nft-table.ts): keeps the
 * entries of the last transaction and lists them the way `nft -j` does,
 * so EntrySync's read-back sees what was written.
 */
import type { EntryRule } from "../entry/nft-ruleset.ts";
import type { EntryTable } from "../entry/nft-table.ts";

/** A table that keeps the last ruleset's entries (parsed back the way nft would list them). */
export class FakeEntryTable implements EntryTable {
  held: EntryRule[] | undefined;
  applies = 0;
  /** every transaction applied, in order */
  writes: string[] = [];
  failApply: string | undefined;
  read(): string | undefined {
    if (!this.held) return undefined;
    return JSON.stringify({ nftables: this.held.flatMap(listed) });
  }
  apply(ruleset: string): void {
    this.applies++;
    if (this.failApply) throw new Error(this.failApply);
    // the fake understands only what computeEntryRuleset writes: take the entries from the text's comments
    this.writes.push(ruleset);
    this.held = parseRules(ruleset);
  }
  remove(): boolean {
    const had = this.held !== undefined;
    this.held = undefined;
    return had;
  }
}

function listed(e: EntryRule, i: number): object[] {
  return [
    {
      rule: {
        chain: "entries",
        expr: [
          {
            vmap: {
              data: {
                set: [
                  [
                    { concat: [e.address, e.protocol.toLowerCase(), e.port] },
                    { goto: { target: `entry_${i}` } },
                  ],
                ],
              },
            },
          },
        ],
      },
    },
    {
      rule: {
        chain: `entry_${i}`,
        comment: `x ${e.owner}`,
        expr: [
          {
            dnat: {
              addr: { map: { data: { set: e.targets.map((t, j) => [j, { concat: [t.ip, t.port] }]) } } },
            },
          },
        ],
      },
    },
  ];
}

function parseRules(text: string): EntryRule[] {
  const out: EntryRule[] = [];
  for (const m of text.matchAll(/(\S+) \. (tcp|udp) \. (\d+) : goto (entry_\d+)/g)) {
    const chain = new RegExp(`chain ${m[4]} \\{\\n.*map \\{ ([^}]*) \\} comment "\\S+ (\\S+)"`).exec(text)!;
    out.push({
      address: m[1]!,
      protocol: m[2]!.toUpperCase() as "TCP",
      port: Number(m[3]),
      targets: chain[1]!.split(", ").map((x) => {
        const [, ip, port] = /\d+ : (\S+) \. (\d+)/.exec(x)!;
        return { ip: ip!, port: Number(port) };
      }),
      owner: chain[2]!,
    });
  }
  return out;
}
