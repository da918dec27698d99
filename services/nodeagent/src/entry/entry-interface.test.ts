import assert from "node:assert/strict";
import type os from "node:os";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import type { NodeReport } from "@switchyard/proto/assignment";
import { computeEntryReport, EntryReporter } from "./entry-interface.ts";

/** a send that takes the report (or not, while `up()` is false) */
const into =
  (sent: NodeReport[], up: () => boolean = () => true) =>
  (x: NodeReport) => {
    if (!up()) return false;
    sent.push(x);
    return true;
  };

const addr = (address: string, family: "IPv4" | "IPv6") =>
  ({
    address,
    family,
    netmask: "",
    mac: "",
    internal: false,
    cidr: null,
    scopeid: 0,
  }) as os.NetworkInterfaceInfo;

describe("computeEntryReport", () => {
  const cases: Array<{ name: string; ifaces: NodeJS.Dict<os.NetworkInterfaceInfo[]>; want: NodeReport }> = [
    {
      name: "v4 and global v6, link-local left out",
      ifaces: { vxlan0: [addr("fe80::1", "IPv6"), addr("fd00::7", "IPv6"), addr("192.0.2.7", "IPv4")] },
      want: { entryAddresses: ["192.0.2.7", "fd00::7"], entryProblem: "" },
    },
    {
      name: "missing interface",
      ifaces: { eth0: [addr("10.0.0.1", "IPv4")] },
      want: {
        entryAddresses: [],
        entryProblem: "interface vxlan0 not found on this node (or it has no address)",
      },
    },
    {
      name: "only link-local",
      ifaces: { vxlan0: [addr("fe80::1", "IPv6")] },
      want: { entryAddresses: [], entryProblem: "interface vxlan0 has no IPv4 or global IPv6 address" },
    },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(computeEntryReport(c.ifaces, "vxlan0"), c.want));
});

describe("EntryReporter", () => {
  it("reports after a Welcome naming an interface, again only on a change, and again on a new stream", () => {
    const sent: NodeReport[] = [];
    let ifaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = { vxlan0: [addr("192.0.2.7", "IPv4")] };
    const r = new EntryReporter(into(sent), silentLogger(), () => ifaces);
    r.check();
    assert.equal(sent.length, 0, "nothing before the hub names an interface");
    r.onWelcome("vxlan0");
    r.check();
    assert.deepEqual(
      sent.map((s) => s.entryAddresses),
      [["192.0.2.7"]],
    );
    ifaces = { vxlan0: [addr("192.0.2.8", "IPv4")] };
    r.check();
    r.onWelcome("vxlan0");
    assert.deepEqual(
      sent.map((s) => s.entryAddresses),
      [["192.0.2.7"], ["192.0.2.8"], ["192.0.2.8"]],
    );
  });

  it("a report the stream could not take is tried again at the next check", () => {
    let up = false;
    const sent: NodeReport[] = [];
    const r = new EntryReporter(
      into(sent, () => up),
      silentLogger(),
      () => ({ vxlan0: [addr("192.0.2.7", "IPv4")] }),
    );
    r.onWelcome("vxlan0");
    up = true;
    r.check();
    assert.equal(sent.length, 1);
  });

  it("a Welcome without an interface reports nothing", () => {
    const sent: NodeReport[] = [];
    const r = new EntryReporter(into(sent), silentLogger(), () => ({}));
    r.onWelcome("");
    r.check();
    assert.equal(sent.length, 0);
  });
});
