import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseNodeReport } from "./node-report.ts";

describe("parseNodeReport", () => {
  const cases: Array<{ name: string; addresses: string[]; want: string[] | RegExp }> = [
    {
      name: "v4 and v6, sorted, canonical",
      addresses: ["2001:db8:0::7", "192.0.2.7"],
      want: ["192.0.2.7", "2001:db8::7"],
    },
    { name: "none (the interface has no address)", addresses: [], want: [] },
    { name: "not an IP", addresses: ["vxlan0"], want: /"vxlan0" is not an IP address/ },
    { name: "loopback", addresses: ["127.0.0.1"], want: /loopback, unspecified or link-local/ },
    { name: "link-local", addresses: ["fe80::1"], want: /link-local/ },
    {
      name: "too many",
      addresses: Array.from({ length: 17 }, (_, i) => `192.0.2.${i + 1}`),
      want: /at most 16/,
    },
  ];
  for (const c of cases)
    it(c.name, () => {
      const r = parseNodeReport({ entryAddresses: c.addresses, entryProblem: "" });
      if (Array.isArray(c.want)) assert.deepEqual(r, { ok: true, value: c.want });
      else assert.match(r.ok ? "" : r.error, c.want);
    });
});
