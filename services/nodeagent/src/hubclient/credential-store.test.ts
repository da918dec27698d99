/**
 * The stored credential names the agent's cluster (a restarted agent knows
 * it before any hub answers, so its events go out on its own subject).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { CredentialStore, parseCredentialCluster } from "./credential-store.ts";

const credential = (payload: unknown) =>
  `sya1.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.c2ln`;

describe("CredentialStore cluster", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-credstore-"));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("parseCredentialCluster reads the cluster a hub credential is bound to, and nothing from other tokens", () => {
    const cases: Array<[string, string | undefined]> = [
      [credential({ c: "east", n: "n1", exp: 1 }), "east"],
      [credential({ c: "", n: "n1" }), undefined],
      [credential({ n: "n1" }), undefined],
      [credential({ c: 7 }), undefined],
      ["sya1.not-base64-json.sig", undefined],
      ["abcdef.0123456789abcdef", undefined],
      ["", undefined],
    ];
    for (const [token, want] of cases) assert.equal(parseCredentialCluster(token), want, token);
  });

  it("cluster() is the stored credential's, expired or not, and only for this node", () => {
    const now = Date.parse("2026-12-02T08:00:00Z");
    const store = new CredentialStore(dir, "n1", () => now);
    assert.equal(store.cluster(), undefined, "nothing stored yet");
    store.save(credential({ c: "east", n: "n1" }), "2026-12-01T00:00:00Z");
    assert.equal(store.load(), undefined, "expired: not presented to a hub");
    assert.equal(store.cluster(), "east", "but its cluster is still this node's");
    assert.equal(new CredentialStore(dir, "n2").cluster(), undefined, "another node's state");
  });
});
