/**
 * Removed pods' UDP flows: which targets an entry-set change removes (pure),
 * that EntrySync deletes their conntrack entries after the table swap and
 * says once when the tool is missing, and the conntrack adapter against
 * the kernel (entries inserted in a network namespace of its own).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import { SwitchyardError } from "@switchyard/lib/errors";
import { FakeEntryTable } from "../testing/entry-table.ts";
import { ConntrackEntryFlows, conntrackDeleteArgs } from "./conntrack.ts";
import {
  computeRemovedUdpTargets,
  type EntryFlows,
  type RemovedTarget,
  showRemovedTarget,
} from "./entry-flows.ts";
import { EntrySync } from "./entry-sync.ts";
import type { EntryRule } from "./nft-ruleset.ts";

const rule = (address: string, protocol: "TCP" | "UDP", ...ips: string[]): EntryRule => ({
  address,
  port: 8080,
  protocol,
  targets: ips.map((ip) => ({ ip, port: 8080 })),
  owner: "bp/c1/ns/web",
});

describe("computeRemovedUdpTargets", () => {
  const cases: Array<{ name: string; before: EntryRule[]; after: EntryRule[]; want: string[] }> = [
    { name: "nothing before", before: [], after: [rule("10.0.0.1", "UDP", "10.1.0.5")], want: [] },
    {
      name: "a pod added removes nothing",
      before: [rule("10.0.0.1", "UDP", "10.1.0.5")],
      after: [rule("10.0.0.1", "UDP", "10.1.0.5", "10.1.0.6")],
      want: [],
    },
    {
      name: "a pod that left the set",
      before: [rule("10.0.0.1", "UDP", "10.1.0.5", "10.1.0.6")],
      after: [rule("10.0.0.1", "UDP", "10.1.0.6")],
      want: ["10.0.0.1:8080/UDP -> 10.1.0.5:8080"],
    },
    {
      name: "per entry port: another port keeping the pod does not keep it here",
      before: [rule("10.0.0.1", "UDP", "10.1.0.5"), rule("10.0.0.2", "UDP", "10.1.0.5")],
      after: [rule("10.0.0.1", "UDP", "10.1.0.6"), rule("10.0.0.2", "UDP", "10.1.0.5")],
      want: ["10.0.0.1:8080/UDP -> 10.1.0.5:8080"],
    },
    {
      name: "an entry port gone takes all its targets, v6 too",
      before: [rule("fd00::1", "UDP", "fd01::5", "fd01::6")],
      after: [],
      want: ["[fd00::1]:8080/UDP -> [fd01::5]:8080", "[fd00::1]:8080/UDP -> [fd01::6]:8080"],
    },
    {
      name: "TCP connections are left to drain",
      before: [rule("10.0.0.1", "TCP", "10.1.0.5", "10.1.0.6")],
      after: [],
      want: [],
    },
  ];
  for (const c of cases)
    it(c.name, () =>
      assert.deepEqual(computeRemovedUdpTargets(c.before, c.after).map(showRemovedTarget), c.want),
    );
});

/** Records what it was asked to forget, and what the table held at that moment. */
class FakeFlows implements EntryFlows {
  calls: Array<{ r: RemovedTarget; tableHeld: string[] }> = [];
  missing = false;
  private readonly table: FakeEntryTable;
  constructor(table: FakeEntryTable) {
    this.table = table;
  }
  forget(r: RemovedTarget): number {
    if (this.missing) throw new SwitchyardError("unavailable", "the conntrack command is not installed");
    this.calls.push({ r, tableHeld: (this.table.held ?? []).flatMap((e) => e.targets.map((t) => t.ip)) });
    return 2;
  }
}

describe("EntrySync forgets the flows of removed targets", () => {
  it("after the swap, only the removed pod's, and none when nothing was removed", () => {
    const t = new FakeEntryTable();
    const flows = new FakeFlows(t);
    const s = new EntrySync(t, flows);
    s.sync([rule("10.0.0.1", "UDP", "10.1.0.5")]);
    s.sync([rule("10.0.0.1", "UDP", "10.1.0.5", "10.1.0.6")]);
    assert.equal(flows.calls.length, 0, "adding a pod deletes nothing");
    const out = s.sync([rule("10.0.0.1", "UDP", "10.1.0.6")]);
    assert.deepEqual(out.forgotten, { targets: ["10.0.0.1:8080/UDP -> 10.1.0.5:8080"], deleted: 2 });
    assert.deepEqual(flows.calls[0]?.tableHeld, ["10.1.0.6"], "the table had the new set when flows went");
    assert.equal(out.flowProblem, undefined);
  });

  it("a restarted agent compares with the table it finds (a crashed run's)", () => {
    const t = new FakeEntryTable();
    new EntrySync(t).sync([rule("10.0.0.1", "UDP", "10.1.0.5", "10.1.0.6")]);
    const flows = new FakeFlows(t);
    const out = new EntrySync(t, flows).sync([rule("10.0.0.1", "UDP", "10.1.0.6")], true);
    assert.deepEqual(out.forgotten?.targets, ["10.0.0.1:8080/UDP -> 10.1.0.5:8080"]);
  });

  it("a missing conntrack tool is said once (a warning, not a NACK), and the table is written all the same", () => {
    const t = new FakeEntryTable();
    const flows = new FakeFlows(t);
    flows.missing = true;
    const s = new EntrySync(t, flows);
    s.sync([rule("10.0.0.1", "UDP", "10.1.0.5", "10.1.0.6")]);
    const first = s.sync([rule("10.0.0.1", "UDP", "10.1.0.6")]);
    assert.equal(first.written, true);
    assert.deepEqual(first.problems, []);
    assert.match(first.flowProblem ?? "", /conntrack command is not installed/);
    const second = s.sync([rule("10.0.0.1", "UDP", "10.1.0.7")]);
    assert.equal(second.written, true);
    assert.equal(second.flowProblem, undefined, "said once");
  });
});

describe("ConntrackEntryFlows", () => {
  it("passes the entry and the target as arguments (no shell), with the family and protocol", () => {
    assert.deepEqual(
      conntrackDeleteArgs({
        address: "fd00::1",
        port: 53,
        protocol: "UDP",
        target: { ip: "fd01::5", port: 5353 },
      }),
      [
        ...["-D", "-f", "ipv6", "-p", "udp"],
        ...[
          "--orig-dst",
          "fd00::1",
          "--orig-port-dst",
          "53",
          "--reply-src",
          "fd01::5",
          "--reply-port-src",
          "5353",
        ],
      ],
    );
  });

  it("a command that is not there is 'unavailable'", () => {
    assert.throws(
      () =>
        new ConntrackEntryFlows(["switchyard-no-such-conntrack"]).forget({
          address: "10.0.0.1",
          port: 1,
          protocol: "TCP",
          target: { ip: "10.1.0.5", port: 1 },
        }),
      (e: unknown) => e instanceof SwitchyardError && e.code === "unavailable",
    );
  });

  it("deletes the removed target's entries and keeps the others (kernel, own netns; needs root and conntrack)", (t) => {
    try {
      execFileSync("conntrack", ["--version"], { stdio: "ignore" });
    } catch {
      t.skip("no conntrack command (scripts/setup.sh installs it)");
      return;
    }
    const ns = `sy-ct-unit-${process.pid}`;
    const ct = (args: string[]) =>
      execFileSync("ip", ["netns", "exec", ns, "conntrack", ...args], { encoding: "utf8", stdio: "pipe" });
    const insert = (proto: string, sport: number, pod: string, client: string, entry: string) =>
      ct([
        ...["-I", "-p", proto, "-s", client, "-d", entry, "--sport", String(sport), "--dport", "8080"],
        ...[
          "--reply-src",
          pod,
          "--reply-dst",
          client,
          "--reply-port-src",
          "8080",
          "--reply-port-dst",
          String(sport),
        ],
        ...(proto === "tcp" ? ["--state", "ESTABLISHED"] : []),
        ...["-t", "60"],
      ]);
    execFileSync("ip", ["netns", "add", ns]);
    try {
      insert("udp", 5000, "10.1.0.5", "198.18.0.9", "198.18.0.1");
      insert("udp", 5001, "10.1.0.5", "198.18.0.9", "198.18.0.1");
      insert("udp", 5002, "10.1.0.6", "198.18.0.9", "198.18.0.1");
      insert("tcp", 5003, "10.1.0.5", "198.18.0.9", "198.18.0.1");
      insert("tcp", 5000, "fd01::5", "fd00::9", "fd00::1");
      const flows = new ConntrackEntryFlows(["ip", "netns", "exec", ns, "conntrack"]);
      const udp = { address: "198.18.0.1", port: 8080, protocol: "UDP" as const };
      assert.equal(flows.forget({ ...udp, target: { ip: "10.1.0.5", port: 8080 } }), 2);
      assert.equal(
        flows.forget({ ...udp, target: { ip: "10.1.0.5", port: 8080 } }),
        0,
        "none left: 0, no error",
      );
      assert.equal(
        flows.forget({
          address: "fd00::1",
          port: 8080,
          protocol: "TCP",
          target: { ip: "fd01::5", port: 8080 },
        }),
        1,
      );
      const left = `${ct(["-L"])}${ct(["-L", "-f", "ipv6"])}`;
      assert.match(left, /sport=5002 .*src=10\.1\.0\.6/, "another pod's flow stays");
      assert.match(
        left,
        /tcp .*sport=5003 .*src=10\.1\.0\.5/,
        "the same pod's TCP flow stays: another entry port",
      );
      const udpLines = left.split("\n").filter((l) => l.startsWith("udp "));
      assert.deepEqual(
        udpLines.map((l) => / sport=(\d+) /.exec(l)?.[1]),
        ["5002"],
        "the removed pod's two UDP flows are gone",
      );
      assert.doesNotMatch(left, /fd01::5/);
    } finally {
      execFileSync("ip", ["netns", "del", ns]);
    }
  });
});
