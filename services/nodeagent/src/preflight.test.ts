/**
 * What `run` checks before it loads anything: each problem is said with
 * what to fix (root or the capabilities, --cgroup, --hub-ca).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import {
  CGROUP2_SUPER_MAGIC,
  checkCaFile,
  computeCgroupProblem,
  computeMissingPrivileges,
  isLoopbackAddress,
} from "./preflight.ts";

const bit = (n: number) => (1n << BigInt(n)).toString(16);
const or = (...ns: number[]) => ns.reduce((a, n) => a | (1n << BigInt(n)), 0n).toString(16);

describe("preflight", () => {
  it("says which capabilities are missing, and whether the process is root", () => {
    assert.equal(computeMissingPrivileges("000001ffffffffff", 0), undefined, "root with every capability");
    assert.equal(
      computeMissingPrivileges(or(39, 38, 12), 1000),
      undefined,
      "CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN",
    );
    assert.equal(
      computeMissingPrivileges(or(21, 12), 1000),
      undefined,
      "CAP_SYS_ADMIN stands for CAP_BPF and CAP_PERFMON",
    );
    assert.match(
      computeMissingPrivileges(or(39, 12), 1000)!,
      /lacks CAP_PERFMON;/,
      "the verifier refuses without it",
    );
    assert.match(
      computeMissingPrivileges("0", 1000)!,
      /uid 1000, not root, and lacks CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN/,
    );
    assert.match(computeMissingPrivileges(bit(12), 0)!, /runs as root but lacks CAP_BPF and CAP_PERFMON;/);
    assert.match(computeMissingPrivileges(or(39, 38), 0)!, /lacks CAP_NET_ADMIN;.*AmbientCapabilities/);
  });

  it("says a --cgroup that is not a cgroup v2 directory as such, with where cgroup v2 is", () => {
    const mounts = ["/sys/fs/cgroup/unified"];
    assert.equal(computeCgroupProblem("/x", { isDirectory: true }, CGROUP2_SUPER_MAGIC, mounts), undefined);
    assert.match(
      computeCgroupProblem("/sys/fs/cgroup", { isDirectory: true }, 0x01021994n, mounts)!,
      /^--cgroup \/sys\/fs\/cgroup is not a cgroup v2 directory \(its filesystem type is 0x1021994.*mounted at \/sys\/fs\/cgroup\/unified/,
    );
    assert.match(
      computeCgroupProblem("/nope", undefined, undefined, mounts)!,
      /^--cgroup \/nope does not exist/,
    );
    assert.match(
      computeCgroupProblem("/f", { isDirectory: false }, undefined, [])!,
      /not a directory; no cgroup v2/,
    );
  });

  it("names a CA file that cannot be read, or holds no certificate, with its flag", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-preflight-"));
    try {
      const r = checkCaFile("--hub-ca", path.join(dir, "missing.crt"));
      assert.ok(
        !r.ok && /^--hub-ca .*missing\.crt: cannot read it \(no such file\)/.test(r.error),
        JSON.stringify(r),
      );
      fs.writeFileSync(path.join(dir, "junk.crt"), "not a certificate\n");
      const j = checkCaFile("--hub-ca", path.join(dir, "junk.crt"));
      assert.ok(!j.ok && /holds no PEM certificate/.test(j.error), JSON.stringify(j));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("knows loopback hub addresses (a token sent there in clear stays on the host)", () => {
    for (const a of ["127.0.0.1:7443", "localhost:1", "[::1]:7443", "127.8.9.1:80"])
      assert.ok(isLoopbackAddress(a), a);
    for (const a of ["10.0.0.1:7443", "hub.example:7443", "[fd00::1]:7443"])
      assert.ok(!isLoopbackAddress(a), a);
  });
});
