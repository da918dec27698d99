/**
 * `npm run package` (scripts/package.ts): the tarball unpacked anywhere runs
 * both binaries with its own Node.js runtime and a PATH without node; it holds
 * the BPF object and no dev dependencies or tests.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { REPO, watchProcess } from "../kit/proc.ts";

const { version } = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")) as {
  version: string;
};
const NAME = `switchyard-${version}-linux-${process.arch}`;

describe("npm run package", () => {
  let tmp = "";
  let root = "";
  /** PATH: only readlink (coreutils), no node */
  let env: NodeJS.ProcessEnv = {};
  const run = (bin: string, args: string[]) =>
    execFileSync(path.join(root, "bin", bin), args, {
      env,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sy-package-"));
    execFileSync(
      process.execPath,
      [path.join(REPO, "scripts/package.ts"), "--out", path.join(tmp, "dist"), "--fast"],
      {
        stdio: ["ignore", "ignore", "inherit"],
      },
    );
    const tarball = path.join(tmp, "dist", `${NAME}.tar.gz`);
    assert.ok(fs.existsSync(tarball), tarball);
    fs.mkdirSync(path.join(tmp, "opt"));
    execFileSync("tar", ["-C", path.join(tmp, "opt"), "-xzf", tarball]);
    root = path.join(tmp, "opt", NAME);
    fs.mkdirSync(path.join(tmp, "tools"));
    fs.symlinkSync(
      execFileSync("sh", ["-c", "command -v readlink"], { encoding: "utf8" }).trim(),
      path.join(tmp, "tools/readlink"),
    );
    env = { PATH: path.join(tmp, "tools") };
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("holds the runtime, the BPF object and libsyring.so, and no tests or dev dependencies", () => {
    for (const f of [
      "node_modules/.bin/node",
      "bpf/build/switchyard.bpf.o",
      "bpf/build/libsyring.so",
      "deploy/rbac/hub.yaml",
    ])
      assert.ok(fs.existsSync(path.join(root, f)), f);
    assert.equal(
      execFileSync(path.join(root, "node_modules/.bin/node"), ["--version"], { encoding: "utf8" }).trim(),
      process.version,
    );
    for (const f of [
      "node_modules/typescript",
      "node_modules/@biomejs",
      "test",
      "services/hub/src/config.test.ts",
    ])
      assert.ok(!fs.existsSync(path.join(root, f)), `${f} should not be packaged`);
  });

  it("bin/switchyard-agent --version and --help, bin/switchyard-hub --version and --help run with no node on PATH", () => {
    assert.match(run("switchyard-agent", ["--version"]), new RegExp(version.replaceAll(".", "\\.")));
    assert.match(run("switchyard-hub", ["--version"]), new RegExp(version.replaceAll(".", "\\.")));
    assert.match(run("switchyard-agent", ["--help"]), /^switchyard-agent /);
    assert.match(run("switchyard-hub", ["--help"]), /^switchyard-hub /);
  });

  it("the packaged hub serves (its production dependencies are all there)", async () => {
    const hub = watchProcess(
      spawn(
        path.join(root, "bin/switchyard-hub"),
        [
          "serve",
          "--cluster",
          `demo=dir:${path.join(root, "deploy/examples")}`,
          "--listen",
          "127.0.0.1:0",
          "--state-dir",
          path.join(tmp, "hub-state"),
        ],
        { env, stdio: ["ignore", "pipe", "pipe"] },
      ),
    );
    try {
      await hub.waitFor(/listening 127\.0\.0\.1:\d+/);
    } finally {
      await hub.stop();
    }
  });
});
