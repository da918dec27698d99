/**
 * bin/switchyard-hub and bin/switchyard-agent run with the pinned Node
 * (node_modules/.bin/node) whatever `node` is on PATH: here PATH's node is
 * the machine's (20, which cannot run .ts), or there is none at all.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { REPO } from "../kit/proc.ts";

/** PATH with the machine's own node (not the pinned one), like a shell outside `npm run` */
const MACHINE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

function runBin(bin: string, args: string[], env: NodeJS.ProcessEnv): string {
  return execFileSync(bin, args, { env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

describe("launchers", () => {
  it("the machine's node on PATH is not the pinned one (else this test proves nothing)", () => {
    const v = execFileSync("node", ["--version"], { env: { PATH: MACHINE_PATH }, encoding: "utf8" });
    assert.notEqual(v.trim(), process.version);
  });

  for (const [bin, title] of [
    ["switchyard-hub", /^switchyard-hub [0-9.]+ — /],
    ["switchyard-agent", /^switchyard-agent [0-9.]+ — /],
    ["switchyard", /^switchyard [0-9.]+ — /],
  ] as const) {
    it(`bin/${bin} --help runs on the pinned Node with the machine's node on PATH`, () => {
      assert.match(runBin(path.join(REPO, "bin", bin), ["--help"], { PATH: MACHINE_PATH }), title);
    });

    it(`bin/${bin} runs through a link elsewhere, with no node on PATH`, () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-launch-"));
      try {
        fs.symlinkSync(path.join(REPO, "bin", bin), path.join(dir, bin));
        // PATH: only readlink (coreutils), no node
        fs.symlinkSync(
          execFileSync("sh", ["-c", "command -v readlink"], { encoding: "utf8" }).trim(),
          path.join(dir, "readlink"),
        );
        assert.match(runBin(path.join(dir, bin), ["--help"], { PATH: dir }), title);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
