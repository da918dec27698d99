/**
 * `switchyard-hub pki init`: the hub serves TLS with what it made, and a real
 * agent joins with nothing but the --hub-ca-hash it printed (it fetches the
 * CA from the hub's chain and checks it against the hash).
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { computeCaHash } from "@switchyard/lib/ca-pin";
import { REPO } from "../kit/proc.ts";
import { requireRoot } from "../kit/sandbox.ts";
import { HUB, Stack } from "../kit/stack.ts";

describe("switchyard-hub pki init", () => {
  let stack: Stack;
  before(() => {
    requireRoot();
    stack = Stack.create("sy-pki");
  });
  after(async () => stack.cleanup());

  it("makes a CA and the hub's certificate; a real agent joins the TLS hub with the printed hash", async () => {
    const dir = path.join(stack.stateDir, "pki");
    const hash = execFileSync(
      process.execPath,
      [
        path.join(REPO, HUB),
        "pki",
        "init",
        "--out",
        dir,
        "--san",
        "hub.example.com",
        "--san",
        "127.0.0.1",
        "--days",
        "30",
      ],
      { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
    ).trim();
    assert.match(hash, /^sha256:[0-9a-f]{64}$/);
    assert.equal(hash, computeCaHash(fs.readFileSync(path.join(dir, "ca.crt"))), "the agent's hash function");
    for (const k of ["ca.key", "hub.key"])
      assert.equal(fs.statSync(path.join(dir, k)).mode & 0o777, 0o600, k);

    await stack.startHub(
      [`prod=dir:${path.join(REPO, "deploy/examples")}`],
      [
        "--tls-cert",
        path.join(dir, "hub.crt"),
        "--tls-key",
        path.join(dir, "hub.key"),
        "--tls-ca",
        path.join(dir, "ca.crt"),
      ],
    );
    const agent = await stack.startAgent(stack.createToken("prod"), ["--hub-ca-hash", hash]);
    await agent.waitFor(/"msg":"joined hub"/);
    assert.match(
      fs.readFileSync(path.join(stack.stateDir, "agent", "hub-ca.crt"), "utf8"),
      /BEGIN CERTIFICATE/,
    );
  });

  it("never overwrites, and refuses a SAN that is neither a name nor an address, in one line", () => {
    const dir = path.join(stack.stateDir, "pki");
    for (const [args, want] of [
      [["--out", dir, "--san", "x.example"], /exists: pki init never overwrites/],
      [
        ["--out", `${dir}-2`, "--san", "not a name"],
        /--san "not a name" is neither an IP address nor a DNS name/,
      ],
      [["--out", `${dir}-2`], /give --san/],
    ] as const) {
      const r = spawnSync(process.execPath, [path.join(REPO, HUB), "pki", "init", ...args], {
        encoding: "utf8",
      });
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, want);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    }
  });
});
