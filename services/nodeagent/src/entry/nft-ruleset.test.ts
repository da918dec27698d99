import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  computeEntryRuleset,
  type EntryRule,
  normaliseEntries,
  parseEntryTable,
  sameEntries,
} from "./nft-ruleset.ts";

const rule = (over: Partial<EntryRule>): EntryRule => ({
  address: "10.0.0.1",
  port: 8080,
  protocol: "TCP",
  targets: [{ ip: "10.1.0.5", port: 8080 }],
  owner: "bp/c1/ns/web",
  ...over,
});

describe("computeEntryRuleset", () => {
  const cases: Array<{ name: string; entries: EntryRule[]; has: string[]; lacks?: string[] }> = [
    {
      name: "no entries: the table and its hooks, no dispatch",
      entries: [],
      has: [
        "table inet switchyard_entry {}\ndelete table inet switchyard_entry\ntable inet switchyard_entry {",
        "type nat hook prerouting priority -110; policy accept;",
        "type nat hook output priority -110; policy accept;",
      ],
      lacks: ["vmap", "dnat"],
    },
    {
      name: "one v4 TCP entry, two pods: numgen over both",
      entries: [
        rule({
          targets: [
            { ip: "10.1.0.6", port: 8080 },
            { ip: "10.1.0.5", port: 8080 },
          ],
        }),
      ],
      has: [
        "ip daddr . meta l4proto . th dport vmap { 10.0.0.1 . tcp . 8080 : goto entry_0 }",
        "meta l4proto tcp dnat ip addr . port to numgen random mod 2 map { 0 : 10.1.0.5 . 8080, 1 : 10.1.0.6 . 8080 }",
        'comment "10.0.0.1:8080/TCP bp/c1/ns/web"',
      ],
    },
    {
      name: "v6 UDP entry: ip6 dispatch and dnat, address compressed",
      entries: [
        rule({
          address: "fd00:0:0::1",
          port: 53,
          protocol: "UDP",
          targets: [{ ip: "fd01::5", port: 5353 }],
        }),
      ],
      has: [
        "ip6 daddr . meta l4proto . th dport vmap { fd00::1 . udp . 53 : goto entry_0 }",
        "meta l4proto udp dnat ip6 addr . port to numgen random mod 1 map { 0 : fd01::5 . 5353 }",
      ],
      lacks: ["ip daddr"],
    },
    {
      name: "an entry with no pods is not programmed",
      entries: [rule({ targets: [] })],
      has: ["chain entries {"],
      lacks: ["vmap"],
    },
  ];
  for (const c of cases)
    it(c.name, () => {
      const text = computeEntryRuleset(normaliseEntries(c.entries).entries);
      for (const h of c.has) assert.ok(text.includes(h), `missing ${h}\n${text}`);
      for (const l of c.lacks ?? []) assert.ok(!text.includes(l), `unexpected ${l}\n${text}`);
    });

  it("is the same text whatever order the entries and pods come in", () => {
    const a = [
      rule({}),
      rule({ port: 53, protocol: "UDP" }),
      rule({
        address: "fd00::1",
        targets: [
          { ip: "fd01::2", port: 1 },
          { ip: "fd01::1", port: 1 },
        ],
      }),
    ];
    const b = [a[2]!, a[0]!, a[1]!].map((e) => ({ ...e, targets: [...e.targets].reverse() }));
    assert.equal(
      computeEntryRuleset(normaliseEntries(a).entries),
      computeEntryRuleset(normaliseEntries(b).entries),
    );
  });
});

describe("normaliseEntries", () => {
  const cases: Array<{ name: string; entry: EntryRule; problem: RegExp }> = [
    {
      name: "address not an IP",
      entry: rule({ address: "node-1" }),
      problem: /"node-1" is not an IP address/,
    },
    { name: "port out of range", entry: rule({ port: 70000 }), problem: /entry port 70000 is out of range/ },
    {
      name: "target of the other family",
      entry: rule({ targets: [{ ip: "fd01::5", port: 1 }] }),
      problem: /not of the entry address's family \(IPv4\)/,
    },
    {
      name: "loopback target (would need route_localnet)",
      entry: rule({ targets: [{ ip: "127.0.0.1", port: 80 }] }),
      problem: /loopback address.*route_localnet/,
    },
    {
      name: "target port out of range",
      entry: rule({ targets: [{ ip: "10.1.0.5", port: 0 }] }),
      problem: /target 10.1.0.5 port 0 is out of range/,
    },
  ];
  for (const c of cases)
    it(`refuses ${c.name}, naming the owner and the entry, and keeps the others`, () => {
      const out = normaliseEntries([c.entry, rule({ port: 9999 })]);
      assert.equal(out.entries.length, 1);
      assert.equal(out.entries[0]!.port, 9999);
      assert.equal(out.problems.length, 1);
      assert.match(out.problems[0]!.entry, /^bp\/c1\/ns\/web: entry /);
      assert.match(out.problems[0]!.message, c.problem);
    });

  it("a second claim on one entry port is left out and names the first", () => {
    const out = normaliseEntries([rule({}), rule({ owner: "bp/c1/ns/other" })]);
    assert.equal(out.entries.length, 1);
    assert.equal(out.entries[0]!.owner, "bp/c1/ns/web");
    assert.match(out.problems[0]!.message, /already taken by bp\/c1\/ns\/web/);
  });

  it("dedups pods and keeps TCP and UDP of one port apart", () => {
    const out = normaliseEntries([
      rule({
        targets: [
          { ip: "10.1.0.5", port: 8080 },
          { ip: "10.1.0.5", port: 8080 },
        ],
      }),
      rule({ protocol: "UDP" }),
    ]);
    assert.equal(out.entries.length, 2);
    assert.equal(out.entries[0]!.targets.length, 1);
  });
});

/** What nft 1.0.6 prints for a table computeEntryRuleset wrote (trimmed to what the parser reads). */
const LISTED = JSON.stringify({
  nftables: [
    { metainfo: { version: "1.0.6" } },
    { table: { family: "inet", name: "switchyard_entry", handle: 2 } },
    { rule: { chain: "prerouting", expr: [{ jump: { target: "entries" } }] } },
    {
      rule: {
        chain: "entries",
        expr: [
          {
            vmap: {
              key: {
                concat: [{ payload: { protocol: "ip", field: "daddr" } }, { meta: { key: "l4proto" } }],
              },
              data: {
                set: [
                  [{ concat: ["10.0.0.1", "tcp", 8080] }, { goto: { target: "entry_0" } }],
                  [{ concat: ["10.0.0.1", "udp", 53] }, { goto: { target: "entry_1" } }],
                ],
              },
            },
          },
        ],
      },
    },
    {
      rule: {
        chain: "entry_0",
        comment: "10.0.0.1:8080/TCP bp/c1/ns/web",
        expr: [
          { match: { op: "==", left: { meta: { key: "l4proto" } }, right: "tcp" } },
          {
            dnat: {
              family: "ip",
              addr: {
                map: {
                  key: { numgen: { mode: "random", mod: 2, offset: 0 } },
                  data: {
                    set: [
                      [0, { concat: ["10.1.0.5", 8080] }],
                      [1, { concat: ["10.1.0.6", 8080] }],
                    ],
                  },
                },
              },
            },
          },
        ],
      },
    },
    {
      rule: {
        chain: "entry_1",
        comment: "10.0.0.1:53/UDP bp/c1/ns/dns",
        expr: [
          {
            dnat: {
              family: "ip",
              addr: { map: { key: {}, data: { set: [[0, { concat: ["10.1.0.7", 53] }]] } } },
            },
          },
        ],
      },
    },
  ],
});

describe("parseEntryTable", () => {
  it("reads back the entry set nft lists", () => {
    const got = parseEntryTable(LISTED);
    assert.ok(got.ok);
    const want = normaliseEntries([
      rule({
        targets: [
          { ip: "10.1.0.6", port: 8080 },
          { ip: "10.1.0.5", port: 8080 },
        ],
      }),
      rule({ port: 53, protocol: "UDP", targets: [{ ip: "10.1.0.7", port: 53 }], owner: "bp/c1/ns/dns" }),
    ]).entries;
    assert.ok(sameEntries(got.entries, want), JSON.stringify(got.entries));
    assert.equal(got.entries.find((e) => e.port === 53)?.owner, "bp/c1/ns/dns");
  });

  it("an empty table is an empty set", () => {
    const got = parseEntryTable(JSON.stringify({ nftables: [{ table: { name: "switchyard_entry" } }] }));
    assert.deepEqual(got, { ok: true, entries: [] });
  });

  it("says what it could not read", () => {
    assert.match(String((parseEntryTable("nope") as { error: string }).error), /not JSON/);
    const dangling = JSON.parse(LISTED);
    dangling.nftables = dangling.nftables.filter(
      (x: { rule?: { chain: string } }) => x.rule?.chain !== "entry_1",
    );
    assert.match(
      String((parseEntryTable(JSON.stringify(dangling)) as { error: string }).error),
      /chain entry_1, which holds no DNAT rule/,
    );
  });
});
