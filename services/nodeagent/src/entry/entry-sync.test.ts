import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import { Protocol, Resource } from "@switchyard/proto/assignment";
import { FakeEntryTable } from "../testing/entry-table.ts";
import { EntrySync, entriesFromResources, forwardingProblems } from "./entry-sync.ts";
import { computeEntryRuleset, type EntryRule, normaliseEntries, parseEntryTable } from "./nft-ruleset.ts";
import { NftEntryTable } from "./nft-table.ts";

const web: EntryRule = {
  address: "10.0.0.1",
  port: 8080,
  protocol: "TCP",
  targets: [{ ip: "10.1.0.5", port: 8080 }],
  owner: "bp/c1/ns/web",
};

describe("EntrySync", () => {
  it("writes once, then nothing while the set is unchanged", () => {
    const t = new FakeEntryTable();
    const s = new EntrySync(t);
    assert.equal(s.sync([web]).written, true);
    assert.equal(s.sync([web]).written, false);
    assert.equal(t.applies, 1);
  });

  it("a node with no entries and no table gets none", () => {
    const t = new FakeEntryTable();
    assert.equal(new EntrySync(t).sync([], true).written, false);
    assert.equal(t.applies, 0);
  });

  it("a start that finds the right table (an earlier run's) writes nothing", () => {
    const t = new FakeEntryTable();
    t.held = normaliseEntries([web]).entries;
    assert.equal(new EntrySync(t).sync([web], true).written, false);
    assert.equal(t.applies, 0);
  });

  it("a stale table (a crashed agent's) is replaced by one transaction", () => {
    const t = new FakeEntryTable();
    t.held = normaliseEntries([{ ...web, targets: [{ ip: "10.1.0.9", port: 8080 }] }]).entries;
    const out = new EntrySync(t).sync([web], true);
    assert.equal(out.written, true);
    assert.deepEqual(out.problems, []);
    assert.deepEqual(t.held?.[0]?.targets, [{ ip: "10.1.0.5", port: 8080 }]);
    assert.equal(t.applies, 1);
  });

  it("verify finds drift (the table flushed behind its back) and repairs it", () => {
    const t = new FakeEntryTable();
    const s = new EntrySync(t);
    s.sync([web]);
    t.held = undefined;
    assert.equal(s.sync([web]).written, false, "without verify it trusts what it wrote");
    assert.equal(s.sync([web], true).written, true);
    assert.equal((t.held as EntryRule[] | undefined)?.length, 1);
  });

  it("a refused write is reported naming the table and nft's reason, and tried again next time", () => {
    const t = new FakeEntryTable();
    t.failApply = "nft refused the entry table inet switchyard_entry: Error: Could not process rule";
    const s = new EntrySync(t);
    const out = s.sync([web]);
    assert.equal(out.problems.length, 1);
    assert.equal(out.problems[0]!.entry, "table inet switchyard_entry");
    assert.match(out.problems[0]!.message, /Could not process rule/);
    t.failApply = undefined;
    assert.equal(s.sync([web]).written, true);
  });

  it("a bad entry is named and the rest is written", () => {
    const t = new FakeEntryTable();
    const out = new EntrySync(t).sync([web, { ...web, port: 9, targets: [{ ip: "fd01::1", port: 9 }] }]);
    assert.equal(out.written, true);
    assert.equal(t.held?.length, 1);
    assert.match(out.problems[0]!.message, /family/);
  });
});

describe("entriesFromResources", () => {
  const res = (name: string) =>
    Resource.fromPartial({
      name,
      version: "1",
      body: {
        $case: "nodeEntry",
        value: {
          ports: [
            {
              address: "fd00::1",
              port: 53,
              protocol: Protocol.PROTOCOL_UDP,
              targets: [{ ip: "fd01::5", port: 53 }],
              policy: "bp/c1/ns/dns",
            },
          ],
        },
      },
    });
  it("takes this node's entry resource, not another node's", () => {
    const got = entriesFromResources([res("entry/c1/n1"), res("entry/c1/n2")], "c1", "n1");
    assert.deepEqual(got, [
      {
        address: "fd00::1",
        port: 53,
        protocol: "UDP",
        targets: [{ ip: "fd01::5", port: 53 }],
        owner: "bp/c1/ns/dns",
      },
    ]);
  });
});

describe("forwardingProblems", () => {
  it("says which sysctl is off for which family's entries", () => {
    const v6 = { ...web, address: "fd00::1" };
    assert.deepEqual(forwardingProblems([web, v6], { ipv4: "1", ipv6: "1" }), []);
    const p = forwardingProblems([web, v6], { ipv4: "0", ipv6: "1" });
    assert.equal(p.length, 1);
    assert.match(p[0]!, /net\.ipv4\.ip_forward is 0: .*10\.0\.0\.1:8080\/TCP.*set net\.ipv4\.ip_forward=1/);
    assert.match(
      forwardingProblems([v6], { ipv4: "0", ipv6: "0" })[0]!,
      /net\.ipv6\.conf\.all\.forwarding is 0/,
    );
    assert.deepEqual(forwardingProblems([], { ipv4: "0", ipv6: "0" }), []);
  });
});

describe("NftEntryTable (kernel, in a network namespace of its own; needs root)", () => {
  it("applies, reads back, replaces a stale table whole and removes it", () => {
    const ns = `sy-entry-unit-${process.pid}`;
    execFileSync("ip", ["netns", "add", ns]);
    try {
      const t = new NftEntryTable(["ip", "netns", "exec", ns, "nft"]);
      assert.equal(t.read(), undefined);
      const s = new EntrySync(t);
      const two = [
        web,
        {
          ...web,
          address: "fd00::1",
          protocol: "UDP" as const,
          targets: [
            { ip: "fd01::5", port: 53 },
            { ip: "fd01::6", port: 53 },
          ],
        },
      ];
      assert.deepEqual(s.sync(two, true).problems, []);
      const back = parseEntryTable(t.read()!);
      assert.ok(back.ok);
      assert.equal(back.entries.length, 2);
      // a new run (no memory) with another set: one transaction, no duplicate table or chains
      const again = new EntrySync(t).sync([web], true);
      assert.equal(again.written, true);
      assert.deepEqual(again.problems, []);
      const listed = execFileSync("ip", ["netns", "exec", ns, "nft", "list", "ruleset"], {
        encoding: "utf8",
      });
      assert.equal(listed.match(/table inet switchyard_entry/g)?.length, 1);
      assert.equal(listed.match(/dnat/g)?.length, 1);
      assert.equal(computeEntryRuleset([]).includes("delete table"), true);
      assert.equal(t.remove(), true);
      assert.equal(t.read(), undefined);
      assert.equal(t.remove(), false);
    } finally {
      execFileSync("ip", ["netns", "del", ns]);
    }
  });
});
