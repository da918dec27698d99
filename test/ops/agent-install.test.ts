/**
 * `switchyard-agent install` / `uninstall` into a temporary root: the unit,
 * the token file (0600) and the state directory (0700) are written, the unit
 * passes `systemd-analyze verify`, and uninstall removes all of it and the
 * pins the unit names. Nothing is enabled or started (the unit directory is
 * not systemd's).
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { REPO } from "../kit/proc.ts";
import { uniqueName } from "../kit/sandbox.ts";

const AGENT = path.join(REPO, "bin/switchyard-agent");
const TOKEN = "abc123.0123456789abcdef";
const HASH = `sha256:${"ab".repeat(32)}`;

const mode = (p: string) => fs.statSync(p).mode & 0o777;

describe("switchyard-agent install / uninstall", () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "sy-install-"));
  after(() => fs.rmSync(root, { recursive: true, force: true }));
  const unitDir = path.join(root, "etc/systemd/system");
  const tokenFile = path.join(root, "etc/switchyard/agent.env");
  const stateDir = path.join(root, "var/lib/switchyard-agent");
  // a stand-in for the bpffs pin directory (uninstall unlinks what is in links/ and maps/)
  const pinDir = path.join(root, "pins");
  const unit = path.join(unitDir, "switchyard-agent.service");
  const flags = [
    "--unit-dir",
    unitDir,
    "--token-file",
    tokenFile,
    "--state-dir",
    stateDir,
    "--pin-dir",
    pinDir,
  ];

  it("writes a unit that systemd-analyze verify accepts, the token 0600 and the state directory 0700", () => {
    execFileSync(
      AGENT,
      [
        "install",
        "--hub",
        "hub.example.com:7443",
        "--token",
        TOKEN,
        "--hub-ca-hash",
        HASH,
        ...flags,
        "--",
        "--max-backends",
        "4096",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    assert.equal(mode(unit), 0o644);
    assert.equal(mode(tokenFile), 0o600);
    assert.equal(mode(stateDir), 0o700);
    assert.match(
      fs.readFileSync(tokenFile, "utf8"),
      new RegExp(`^SWITCHYARD_TOKEN=${TOKEN.replace(".", "\\.")}$`, "m"),
    );
    const text = fs.readFileSync(unit, "utf8");
    assert.ok(!text.includes(TOKEN), "the token stays out of the unit");
    assert.match(
      text,
      new RegExp(
        `^ExecStart=${AGENT} run --hub hub.example.com:7443 --hub-ca-hash ${HASH} --max-backends 4096 --state-dir ${stateDir} --pin-dir ${pinDir}$`,
        "m",
      ),
    );

    const verify = spawnSync("systemd-analyze", ["verify", unit], { encoding: "utf8" });
    assert.ok(
      !verify.error,
      `systemd-analyze is needed for this test (Debian: apt-get install systemd): ${verify.error?.message}`,
    );
    assert.equal(verify.status, 0, verify.stderr);
    // warnings (an unknown key, a path that is not absolute) are failures too
    assert.equal(verify.stderr.trim(), "");
  });

  it("--hub-ca FILE: the CA is copied into the state directory (0600) and the unit names the copy", () => {
    const other = path.join(root, "other");
    const ca = path.join(root, "ca.crt");
    fs.writeFileSync(ca, "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n");
    execFileSync(AGENT, [
      "install",
      "--hub",
      "hub.example.com:7443",
      "--token",
      TOKEN,
      "--hub-ca",
      ca,
      "--unit-dir",
      path.join(other, "units"),
      "--token-file",
      path.join(other, "agent.env"),
      "--state-dir",
      path.join(other, "state"),
      "--pin-dir",
      path.join(other, "pins"),
    ]);
    const copy = path.join(other, "state", "hub-ca.crt");
    assert.equal(fs.readFileSync(copy, "utf8"), fs.readFileSync(ca, "utf8"));
    assert.equal(mode(copy), 0o600);
    assert.match(
      fs.readFileSync(path.join(other, "units", "switchyard-agent.service"), "utf8"),
      new RegExp(`--hub-ca ${copy} `),
    );
  });

  it("--nats-creds and --nats-tls-ca FILE are copied into the state directory (0600), the unit names the copies", () => {
    const other = path.join(root, "other-nats");
    const creds = path.join(root, "own.creds");
    fs.writeFileSync(
      creds,
      "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QifQ.e30.sig\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\nSUAEXAMPLE\n------END USER NKEY SEED------\n",
    );
    const ca = path.join(root, "nats-ca.crt");
    fs.writeFileSync(ca, "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n");
    const args = (...more: string[]) => [
      "install",
      "--hub",
      "hub.example.com:7443",
      "--token",
      TOKEN,
      "--hub-ca-hash",
      HASH,
      "--nats",
      "tls://nats.example.com:4222",
      ...more,
      "--unit-dir",
      path.join(other, "units"),
      "--token-file",
      path.join(other, "agent.env"),
      "--state-dir",
      path.join(other, "state"),
      "--pin-dir",
      path.join(other, "pins"),
    ];
    execFileSync(
      AGENT,
      args("--nats-creds", creds, "--nats-tls-ca", ca, "--nats-tls-server-name", "nats.internal"),
    );
    const credsCopy = path.join(other, "state", "nats-own.creds");
    const caCopy = path.join(other, "state", "nats-ca.crt");
    assert.equal(fs.readFileSync(credsCopy, "utf8"), fs.readFileSync(creds, "utf8"));
    assert.equal(fs.readFileSync(caCopy, "utf8"), fs.readFileSync(ca, "utf8"));
    assert.equal(mode(credsCopy), 0o600);
    assert.equal(mode(caCopy), 0o600);
    assert.match(
      fs.readFileSync(path.join(other, "units", "switchyard-agent.service"), "utf8"),
      new RegExp(
        `--nats tls://nats\\.example\\.com:4222 --nats-creds ${credsCopy} --nats-tls-ca ${caCopy} --nats-tls-server-name nats\\.internal `,
      ),
    );
    // a file that is not a .creds file is said so, with its flag, in one line
    const r = spawnSync(AGENT, args("--nats-creds", ca), { encoding: "utf8" });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--nats-creds .*nats-ca\.crt: not a NATS \.creds file/);
  });

  it("refuses a token that is not one and a missing hub CA, in one line", () => {
    for (const [args, want] of [
      [["--token", "nope"], /--token is not a join token/],
      [["--token", TOKEN], /give --hub-ca-hash/],
    ] as const) {
      const r = spawnSync(AGENT, ["install", "--hub", "h:1", ...args, ...flags], { encoding: "utf8" });
      assert.equal(r.status, 2);
      assert.match(r.stderr, want);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    }
  });

  it("warns that a state directory under /tmp is hidden from the service (PrivateTmp=yes)", () => {
    // this test's state directory is under os.tmpdir(): the unit is still written (for elsewhere);
    // a checkout under /tmp, /root or /home adds a warning about --exec first (any line may match)
    const r = spawnSync(
      AGENT,
      ["install", "--hub", "h:1", "--token", TOKEN, "--hub-ca-hash", HASH, ...flags],
      {
        encoding: "utf8",
      },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stderr,
      /^switchyard-agent: warning: --state-dir \/tmp\/.* is under \/tmp, which the unit hides from the agent \(PrivateTmp=yes\), so the service would fail to start/m,
    );
  });

  it("uninstall with another --pin-dir (a test's, a second agent's) leaves the service and its node entry table alone", () => {
    // in a network namespace of its own holding the service's node entry table (not the host's)
    const ns = uniqueName("uninst");
    execFileSync("ip", ["netns", "add", ns]);
    try {
      execFileSync("ip", ["netns", "exec", ns, "nft", "add", "table", "inet", "switchyard_entry"]);
      const r = spawnSync(
        "ip",
        [
          "netns",
          "exec",
          ns,
          AGENT,
          "uninstall",
          "--unit-dir",
          unitDir,
          "--pin-dir",
          path.join(root, "other-pins"),
        ],
        { encoding: "utf8" },
      );
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /are left in place/);
      for (const p of [unit, tokenFile, stateDir]) assert.ok(fs.existsSync(p), `${p} was removed`);
      assert.match(
        execFileSync("ip", ["netns", "exec", ns, "nft", "list", "tables"], { encoding: "utf8" }),
        /table inet switchyard_entry/,
        "the service's node entry table stays",
      );
    } finally {
      execFileSync("ip", ["netns", "del", ns]);
    }
  });

  it("uninstall removes the unit, the token file, the state directory and the pins", () => {
    fs.writeFileSync(path.join(stateDir, "credential"), "x");
    for (const sub of ["links", "maps"]) {
      fs.mkdirSync(path.join(pinDir, sub), { recursive: true });
      fs.writeFileSync(path.join(pinDir, sub, `sy_${sub}`), "");
    }
    // in a network namespace of its own: uninstall also removes the node entry table, never the host's here
    const ns = uniqueName("uninst");
    execFileSync("ip", ["netns", "add", ns]);
    try {
      execFileSync("ip", ["netns", "exec", ns, "nft", "add", "table", "inet", "switchyard_entry"]);
      const out = execFileSync("ip", ["netns", "exec", ns, AGENT, "uninstall", "--unit-dir", unitDir], {
        encoding: "utf8",
      });
      assert.match(out, /removed 2 pins/);
      assert.match(out, /removed the node entry table inet switchyard_entry/);
    } finally {
      execFileSync("ip", ["netns", "del", ns]);
    }
    for (const p of [unit, tokenFile, stateDir, pinDir]) assert.ok(!fs.existsSync(p), `${p} is left`);
  });
});
