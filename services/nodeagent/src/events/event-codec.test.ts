import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sampleNatEvent } from "../testing/nat-event.ts";
import { decodeNatEvent, encodeNatEvent } from "./event-codec.ts";
import type { NatEvent } from "./nat-event.ts";

const ev: NatEvent = sampleNatEvent({
  protocol: "udp",
  hook: "sendmsg4",
  originalDestPort: 53,
  natPort: 5353,
  datagrams: 3,
  seq: 9,
});

describe("NAT event wire format", () => {
  it("decodes what the publisher encodes", () => {
    assert.deepEqual(decodeNatEvent(encodeNatEvent(ev)), { ok: true, value: ev });
  });

  it("names what makes a message not an event", () => {
    const cases: Array<[string, RegExp]> = [
      ["{", /not JSON/],
      ["[1]", /not a JSON object/],
      [JSON.stringify({ ...ev, node: 3 }), /field node is not a string/],
      [JSON.stringify({ ...ev, natPort: "80" }), /field natPort is not a number/],
      [JSON.stringify({ ...ev, protocol: "sctp" }), /protocol is not tcp or udp/],
      [JSON.stringify({ ...ev, seq: "1" }), /field seq is not a number/],
    ];
    for (const [text, why] of cases) {
      const r = decodeNatEvent(text);
      assert.ok(!r.ok, text);
      assert.match(r.error, why);
    }
  });
});
