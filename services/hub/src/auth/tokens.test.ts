import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { FileState } from "../state/hub-state.ts";
import { CredentialAuthority } from "./credentials.ts";
import { CREDENTIAL_NOT_ACCEPTED, TOKEN_NOT_ACCEPTED } from "./refusal.ts";
import { type Kek, parseKek } from "./signing-key.ts";
import { TokenStore } from "./tokens.ts";

const KEK: Kek = (() => {
  const k = parseKek(Buffer.alloc(32, 7).toString("base64"), "test KEK");
  if (!k.ok) throw new Error(k.error);
  return k.value;
})();

const dirs: string[] = [];
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "sy-tokens-"));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function tmpState(): FileState {
  return new FileState(tmpDir());
}

function store(): TokenStore {
  return new TokenStore(tmpState());
}

describe("join tokens", () => {
  it("admits a created token to its cluster and stores only a hash of the secret", async () => {
    const s = store();
    const { token, record } = await s.create("east");
    const r = s.verify(token);
    assert.ok(r.ok);
    assert.deepEqual(r.value, { id: record.id, cluster: "east", reach: "pod" });
    assert.ok(!JSON.stringify(s.list()).includes(token.split(".")[1]!), "the secret is not stored in clear");
  });

  it("refuses malformed, unknown, wrong-secret, expired and revoked tokens; the agent cannot tell unknown from wrong, the log can", async () => {
    const s = store();
    const now = new Date("2026-01-01T00:00:00Z");
    const { token, record } = await s.create("east", { ttlMs: 60_000, now });
    const { record: other } = await s.create("east", { now });
    await s.revoke(other.id);
    // token, when → what the agent is told, the reason logged, what the log's detail says
    const cases: Array<[string, Date, string | RegExp, string, RegExp | undefined]> = [
      ["garbage", now, /malformed/, "token-malformed", undefined],
      ["zzzzzz.0123456789abcdef", now, TOKEN_NOT_ACCEPTED, "token-unknown", /zzzzzz is unknown or revoked/],
      [`${record.id}.0123456789abcdef`, now, TOKEN_NOT_ACCEPTED, "token-wrong-secret", /wrong secret/],
      [`${other.id}.0123456789abcdef`, now, TOKEN_NOT_ACCEPTED, "token-unknown", /unknown or revoked/],
      [token, new Date(now.getTime() + 61_000), /expired/, "token-expired", undefined],
    ];
    for (const [t, when, message, reason, detail] of cases) {
      const r = s.verify(t, when);
      assert.ok(!r.ok, t);
      if (typeof message === "string") assert.equal(r.error.message, message, t);
      else assert.match(r.error.message, message, t);
      assert.equal(r.error.reason, reason, t);
      if (detail) assert.match(r.error.detail ?? "", detail, t);
    }
    assert.ok(s.verify(token, now).ok);
    assert.ok(await s.revoke(record.id));
    const r = s.verify(token, now);
    assert.ok(!r.ok);
    assert.equal(r.error.message, TOKEN_NOT_ACCEPTED);
    assert.equal(r.error.reason, "token-unknown");
  });

  it("sees tokens created by another process (the CLI) without a restart", async () => {
    const dir = tmpDir();
    const hub = new TokenStore(new FileState(dir));
    assert.equal(hub.list().length, 0);
    const { token } = await new TokenStore(new FileState(dir)).create("west");
    assert.ok(hub.verify(token).ok);
  });

  it("keeps a token's node limit and name pattern", async () => {
    const s = store();
    const { record } = await s.create("edge", { nodePattern: "edge-*", maxNodes: 1 });
    assert.ok((await s.admitNode(record.id, "edge-1")).ok);
    assert.ok((await s.admitNode(record.id, "edge-1")).ok, "the same node again is fine");
    const second = await s.admitNode(record.id, "edge-2");
    assert.ok(!second.ok);
    assert.match(second.error, /already admitted its 1 node/);
    const wrong = await s.admitNode(record.id, "core-1");
    assert.ok(!wrong.ok);
    assert.match(wrong.error, /admits nodes named "edge-\*", not "core-1"/);
    assert.deepEqual(s.list()[0]!.nodes, ["edge-1"]);
  });

  it("bounds the nodes of a token created without a limit: new names beyond the default are refused, unwritten", async () => {
    const state = tmpState();
    const s = new TokenStore(state, { defaultMaxNodes: 3 });
    const { record } = await s.create("edge");
    for (const n of ["a", "b", "c"]) assert.ok((await s.admitNode(record.id, n)).ok, n);
    const fourth = await s.admitNode(record.id, "invented-4");
    assert.ok(!fourth.ok);
    assert.match(
      fourth.error,
      /already admitted its 3 node\(s\) \(the limit of tokens created without --max-nodes\)/,
    );
    assert.ok((await s.admitNode(record.id, "b")).ok, "a node already admitted comes back");
    assert.equal(state.list("tokennode/").length, 3, "nothing written for the refused name");
    assert.equal(s.get(record.id)!.maxNodes, 3, "the limit in force is shown");
  });
});

describe("agent credentials", () => {
  async function setup() {
    const state = tmpState();
    const tokens = new TokenStore(state);
    const { record } = await tokens.create("east");
    const ca = await CredentialAuthority.open(state, 60_000, KEK);
    return { state, tokens, ca, tokenId: record.id };
  }
  const t0 = new Date("2026-01-01T00:00:00Z");
  const at = (ms: number) => new Date(t0.getTime() + ms);

  it("binds a credential to its cluster and node, and verifies it", async () => {
    const { ca, tokenId } = await setup();
    const c = await ca.issue({ cluster: "east", node: "n1", reach: "pod", tokenId }, t0);
    const v = ca.verify(c.token, at(1000));
    assert.ok(v.ok);
    assert.equal(v.value.node, "n1");
    assert.equal(v.value.cluster, "east");
    assert.equal(ca.agents()[0]!.node, "n1");
  });

  it("refuses forged, tampered, expired, revoked-agent and revoked-token credentials; forgeries all get one answer", async () => {
    const { state, tokens, ca, tokenId } = await setup();
    const c = await ca.issue({ cluster: "east", node: "n1", reach: "pod", tokenId }, t0);
    const [, body, sig] = c.token.split(".") as [string, string, string];
    const other = await CredentialAuthority.open(tmpState(), 60_000, KEK);
    const forged = (await other.issue({ cluster: "east", node: "n1", reach: "pod", tokenId }, t0)).token;
    const tamperedBody = Buffer.from(
      Buffer.from(body, "base64url").toString().replace('"n1"', '"n2"'),
    ).toString("base64url");
    // credential, when → what the agent is told, the reason logged, the log's detail
    const cases: Array<[string, Date, string | RegExp, string, RegExp]> = [
      [
        forged,
        at(1),
        CREDENTIAL_NOT_ACCEPTED,
        "credential-unknown-key",
        /signed with hub key [0-9a-f]{8}, which these hubs do not have/,
      ],
      [
        `sya1.${tamperedBody}.${sig}`,
        at(1),
        CREDENTIAL_NOT_ACCEPTED,
        "credential-bad-signature",
        /bad signature/,
      ],
      ["sya1.garbage", at(1), CREDENTIAL_NOT_ACCEPTED, "credential-malformed", /malformed/],
      // a genuine credential is told what became of it
      [c.token, at(60_001), /expired; join again/, "credential-expired", /expired/],
    ];
    for (const [tok, when, message, reason, detail] of cases) {
      const r = ca.verify(tok, when);
      assert.ok(!r.ok, tok);
      if (typeof message === "string") assert.equal(r.error.message, message, tok);
      else assert.match(r.error.message, message, tok);
      assert.equal(r.error.reason, reason, tok);
      assert.match(r.error.detail ?? r.error.message, detail, tok);
    }
    await ca.revokeAgent("east", "n1", at(10));
    const revoked = ca.verify(c.token, at(20));
    assert.ok(!revoked.ok);
    assert.match(revoked.error.message, /agent east\/n1 was revoked/);
    const fresh = await ca.issue({ cluster: "east", node: "n1", reach: "pod", tokenId }, at(30));
    assert.ok(ca.verify(fresh.token, at(40)).ok, "a credential issued after the revocation works");
    await tokens.revoke(tokenId);
    const gone = ca.verify(fresh.token, at(40));
    assert.ok(!gone.ok);
    assert.match(gone.error.message, /join token .* was revoked/);
    assert.ok(state.get("signing-key"), "the key lives in the shared state");
    assert.doesNotMatch(JSON.stringify(state.list("")), /PRIVATE KEY/, "but only sealed");
  });

  it("asks for rotation when a third of the lifetime is left", async () => {
    const { ca, tokenId } = await setup();
    const c = await ca.issue({ cluster: "east", node: "n1", reach: "pod", tokenId }, t0);
    assert.equal(ca.needsRotation(c.identity, at(30_000)), false);
    assert.equal(ca.needsRotation(c.identity, at(41_000)), true);
  });

  it("shares one signing key between hubs on the same state", async () => {
    const { state, ca, tokenId } = await setup();
    const replica = await CredentialAuthority.open(state, 60_000, KEK);
    const c = await ca.issue({ cluster: "east", node: "n1", reach: "pod", tokenId }, t0);
    assert.ok(replica.verify(c.token, at(1)).ok);
  });

  it("rotates the signing key: old credentials verify until they expire, streams are asked to rotate, every replica follows", async () => {
    const { state, ca, tokenId } = await setup();
    const replica = await CredentialAuthority.open(state, 60_000, KEK);
    const old = await ca.issue({ cluster: "east", node: "n1", reach: "pod", tokenId }, t0);
    const r = await replica.rotate({}, at(1000));
    assert.equal(r.previousKeyId, old.identity.keyId);
    assert.notEqual(r.keyId, r.previousKeyId);
    assert.equal(r.previousValidUntil, at(61_000).toISOString(), "one credential lifetime");
    assert.equal(ca.keyId, r.keyId, "the other replica signs with the new key at once");
    assert.ok(ca.verify(old.token, at(2000)).ok, "the old key's credentials still work");
    assert.equal(ca.needsRotation(old.identity, at(2000)), true, "but their streams get new ones now");
    const fresh = await ca.issue({ cluster: "east", node: "n1", reach: "pod", tokenId }, at(2000));
    assert.equal(fresh.identity.keyId, r.keyId);
    assert.equal(ca.needsRotation(fresh.identity, at(3000)), false);
    assert.ok(replica.verify(fresh.token, at(3000)).ok);
  });

  it("retires a leaked key at once: its credentials are refused and their streams cut", async () => {
    const { ca, tokenId } = await setup();
    const old = await ca.issue({ cluster: "east", node: "n1", reach: "pod", tokenId }, t0);
    await ca.rotate({ retireNow: true }, at(1000));
    const v = ca.verify(old.token, at(1001));
    assert.ok(!v.ok);
    assert.match(
      v.error.message,
      /signed with hub key [0-9a-f]{8}, retired at 2026-01-01T00:00:01.000Z; join again/,
    );
    const still = ca.stillValid(old.identity, at(1001));
    assert.ok(!still.ok, "an open stream with it is cut at the next check");
    assert.ok(
      ca.verify(
        (await ca.issue({ cluster: "east", node: "n1", reach: "pod", tokenId }, at(1001))).token,
        at(1002),
      ).ok,
    );
  });
});
