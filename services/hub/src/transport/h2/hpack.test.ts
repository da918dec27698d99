import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeHeaders, HpackDecoder, HpackError } from "./hpack.ts";

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ""), "hex");

describe("HPACK decoder", () => {
  it("decodes RFC 7541 C.4 (requests with Huffman, one connection's dynamic table)", () => {
    const d = new HpackDecoder();
    assert.deepEqual(d.decode(hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")), [
      [":method", "GET"],
      [":scheme", "http"],
      [":path", "/"],
      [":authority", "www.example.com"],
    ]);
    assert.deepEqual(d.decode(hex("8286 84be 5886 a8eb 1064 9cbf")), [
      [":method", "GET"],
      [":scheme", "http"],
      [":path", "/"],
      [":authority", "www.example.com"],
      ["cache-control", "no-cache"],
    ]);
    assert.deepEqual(d.decode(hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf")), [
      [":method", "GET"],
      [":scheme", "https"],
      [":path", "/index.html"],
      [":authority", "www.example.com"],
      ["custom-key", "custom-value"],
    ]);
  });

  it("reads what it encodes", () => {
    const fields: Array<[string, string]> = [
      [":status", "200"],
      ["grpc-message", "x".repeat(300)],
      ["content-type", "application/grpc+proto"],
    ];
    assert.deepEqual(new HpackDecoder().decode(encodeHeaders(fields)), fields);
  });

  it("refuses bad input with an HpackError, never anything else", () => {
    for (const bad of ["ff", "be", "41", "4185", "3fe21f", "0081ff", "82" + "3f".repeat(1)]) {
      assert.throws(() => new HpackDecoder().decode(hex(bad)), HpackError, bad);
    }
    // Huffman padding must be a prefix of EOS (all ones, at most 7 bits)
    assert.throws(() => new HpackDecoder().decode(hex("0081 00")), HpackError);
  });
});
