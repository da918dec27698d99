import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseDestination } from "./destination.ts";

describe("parseDestination", () => {
  it("reads IPv4 and IPv6 destinations with an optional protocol", () => {
    assert.deepEqual(parseDestination("10.96.0.10:80"), {
      ok: true,
      value: { ip: "10.96.0.10", port: 80, protocol: "tcp" },
    });
    assert.deepEqual(parseDestination("10.96.0.10:53/UDP"), {
      ok: true,
      value: { ip: "10.96.0.10", port: 53, protocol: "udp" },
    });
    assert.deepEqual(parseDestination("[fd00::10]:443"), {
      ok: true,
      value: { ip: "fd00::10", port: 443, protocol: "tcp" },
    });
    assert.deepEqual(parseDestination("fd00::10:443/tcp"), {
      ok: true,
      value: { ip: "fd00::10", port: 443, protocol: "tcp" },
    });
  });
  it("refuses what is not one, saying the form", () => {
    for (const bad of ["10.96.0.10", "10.96.0.10:0", "10.96.0.10:70000", "web:80", "10.96.0.10:80/sctp"]) {
      const r = parseDestination(bad);
      assert.ok(!r.ok, bad);
      assert.match(r.error, /is not IP:PORT\[\/tcp\|udp\]/);
    }
  });
});
