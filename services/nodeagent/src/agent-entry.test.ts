/**
 * Node-entry DNAT in the agent: the node's `entry/<cluster>/<node>` resource
 * is written to the entry table, follows its changes and removal, a table
 * nft refuses becomes the NACK naming it, and a node without forwarding is
 * told so in the log.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import { Protocol, Resource, StreamAssignmentsResponse } from "@switchyard/proto/assignment";
import { AgentCore } from "./agent.ts";
import { FakeMaps } from "./bpf/maps.ts";
import { EntrySync } from "./entry/entry-sync.ts";
import { parseEntryTable } from "./entry/nft-ruleset.ts";
import { complete } from "./testing/assignments.ts";
import { FakeEntryTable } from "./testing/entry-table.ts";

class RecordingTable extends FakeEntryTable {
  fail: string | undefined;
  override apply(ruleset: string): void {
    if (this.fail) throw new Error(this.fail);
    super.apply(ruleset);
  }
}

const entry = (node: string, pods: string[]) =>
  Resource.fromPartial({
    name: `entry/test/${node}`,
    version: pods.join(",") || "none",
    body: {
      $case: "nodeEntry",
      value: {
        ports: [
          {
            address: "192.0.2.1",
            port: 8080,
            protocol: Protocol.PROTOCOL_TCP,
            targets: pods.map((ip) => ({ ip, port: 8080 })),
            policy: "bp/test/ns/web",
          },
        ],
      },
    },
  });

describe("AgentCore: node entry", () => {
  it("writes this node's entries, follows a change and the removal, ignores another node's", () => {
    const table = new RecordingTable();
    const core = new AgentCore(new FakeMaps(), "node-1", [], silentLogger());
    core.cluster = "test";
    core.entries = new EntrySync(table);
    assert.deepEqual(
      core.onDelta(complete([entry("node-1", ["10.1.0.5"]), entry("node-2", ["10.1.0.9"])])),
      [],
    );
    const last = () => table.writes.at(-1) ?? "";
    assert.match(last(), /192\.0\.2\.1 \. tcp \. 8080 : goto entry_0/);
    assert.match(last(), /map \{ 0 : 10\.1\.0\.5 \. 8080 \}/);
    assert.doesNotMatch(last(), /10\.1\.0\.9/);
    core.onDelta(complete([entry("node-1", ["10.1.0.5", "10.1.0.6"])]));
    assert.match(last(), /mod 2 map \{ 0 : 10\.1\.0\.5 \. 8080, 1 : 10\.1\.0\.6 \. 8080 \}/);
    core.onDelta(
      StreamAssignmentsResponse.fromPartial({
        nonce: "x",
        removedResources: ["entry/test/node-1"],
        viewComplete: true,
      }),
    );
    assert.doesNotMatch(last(), /dnat/);
    assert.ok(parseEntryTable('{"nftables":[]}').ok);
  });

  it("a table nft refuses is in the NACK, naming the table and the reason", () => {
    const table = new RecordingTable();
    table.fail =
      "nft refused the entry table inet switchyard_entry: Error: Could not process rule: No such file";
    const core = new AgentCore(new FakeMaps(), "node-1", [], silentLogger());
    core.cluster = "test";
    core.entries = new EntrySync(table);
    const errors = core.onDelta(complete([entry("node-1", ["10.1.0.5"])]));
    assert.equal(errors.length, 1);
    assert.match(
      errors[0]!.message,
      /node entry not programmed: table inet switchyard_entry: .*Could not process rule/,
    );
  });

  it("an entry resource with a target of the other family is refused (NACK), the last good one stays", () => {
    const core = new AgentCore(new FakeMaps(), "node-1", [], silentLogger());
    const bad = entry("node-1", ["fd01::5"]);
    const errors = core.onDelta(complete([bad]));
    assert.equal(errors[0]?.name, "entry/test/node-1");
    assert.match(errors[0]!.message, /target "fd01::5" is not an IP address of the entry's family/);
  });

  it("checks forwarding when it writes entries, and says which sysctl to set", () => {
    const lines: Array<{ reason?: string; msg: string }> = [];
    const log = silentLogger();
    const spy = Object.assign(Object.create(log), {
      warn: (o: { reason?: string }, msg: string) => lines.push({ ...o, msg }),
      info: () => {},
      error: () => {},
    });
    const core = new AgentCore(new FakeMaps(), "node-1", [], spy);
    core.cluster = "test";
    core.entries = new EntrySync(new RecordingTable());
    core.readForwarding = () => ({ ipv4: "0", ipv6: "1" });
    core.onDelta(complete([entry("node-1", ["10.1.0.5"])]));
    const w = lines.find((l) => l.msg === "node entry needs forwarding");
    assert.match(
      w?.reason ?? "",
      /net\.ipv4\.ip_forward is 0: .*192\.0\.2\.1:8080\/TCP.*set net\.ipv4\.ip_forward=1/,
    );
  });
});
