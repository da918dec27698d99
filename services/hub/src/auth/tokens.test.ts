import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { TokenStore } from "./tokens.ts";

function store(): TokenStore {
  return new TokenStore(fs.mkdtempSync(path.join(os.tmpdir(), "sy-tokens-")));
}

describe("join tokens", () => {
  it("admits a created token to its cluster and stores only a hash of the secret", () => {
    const s = store();
    const { token, record } = s.create("east");
    const r = s.verify(token);
    assert.ok(r.ok);
    assert.deepEqual(r.value, { id: record.id, cluster: "east", reach: "pod" });
    assert.ok(!JSON.stringify(s.list()).includes(token.split(".")[1]!), "the secret is not stored in clear");
  });

  it("refuses malformed, unknown, wrong-secret, expired and revoked tokens with a reason", () => {
    const s = store();
    const now = new Date("2026-01-01T00:00:00Z");
    const { token, record } = s.create("east", { ttlMs: 60_000, now });
    const cases: Array<[string, Date, RegExp]> = [
      ["garbage", now, /malformed/],
      ["zzzzzz.0123456789abcdef", now, /unknown or revoked/],
      [`${record.id}.0123456789abcdef`, now, /wrong secret/],
      [token, new Date(now.getTime() + 61_000), /expired/],
    ];
    for (const [t, when, re] of cases) {
      const r = s.verify(t, when);
      assert.ok(!r.ok, t);
      assert.match(r.error, re);
    }
    assert.ok(s.verify(token, now).ok);
    assert.ok(s.revoke(record.id));
    const r = s.verify(token, now);
    assert.ok(!r.ok);
    assert.match(r.error, /unknown or revoked/);
  });

  it("sees tokens created by another process (the CLI) without a restart", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-tokens-"));
    const hub = new TokenStore(dir);
    assert.equal(hub.list().length, 0);
    const { token } = new TokenStore(dir).create("west");
    assert.ok(hub.verify(token).ok);
  });
});
