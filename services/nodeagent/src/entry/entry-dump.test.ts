import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatEntryTable } from "./entry-dump.ts";

describe("formatEntryTable", () => {
  it("one line per entry port with its pods and policy; nothing without a table; an unreadable table says so", () => {
    assert.equal(formatEntryTable(undefined), "");
    assert.equal(
      formatEntryTable([
        {
          address: "fd00::1",
          port: 53,
          protocol: "UDP",
          targets: [
            { ip: "fd01::5", port: 53 },
            { ip: "fd01::6", port: 53 },
          ],
          owner: "bp/c/ns/dns",
        },
      ]),
      "node entry (nft table inet switchyard_entry): 1 port\n  [fd00::1]:53/UDP -> [fd01::5]:53, [fd01::6]:53  (bp/c/ns/dns)\n",
    );
    assert.match(
      formatEntryTable({ error: "nft: Permission denied" }),
      /not readable: nft: Permission denied/,
    );
  });
});
