/**
 * Both binaries treat people well, driven as a user would: --version, --help
 * on every command (from each binary's one command table), usage errors as
 * one line with exit code 2 and never a stack trace.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { HUB_CLI } from "../../services/hub/src/cli/help.ts";
import { AGENT_CLI } from "../../services/nodeagent/src/cli/help.ts";
import { REPO } from "../kit/proc.ts";
import { AGENT, HUB } from "../kit/stack.ts";

const BINS = { "switchyard-hub": HUB, "switchyard-agent": AGENT } as const;
const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")) as { version: string })
  .version;

function run(bin: keyof typeof BINS, args: string[]) {
  const r = spawnSync(process.execPath, [path.join(REPO, BINS[bin]), ...args], {
    encoding: "utf8",
    timeout: 30_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("the CLI of both binaries", () => {
  for (const bin of Object.keys(BINS) as Array<keyof typeof BINS>) {
    it(`${bin} --version prints the version of package.json`, () => {
      for (const flag of ["--version", "version"]) {
        const r = run(bin, [flag]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, `${bin} ${VERSION}\n`);
      }
    });

    const cli = bin === "switchyard-hub" ? HUB_CLI : AGENT_CLI;
    it(`${bin}: every command answers --help with its own usage and flags (exit 0)`, () => {
      // each command's own --help; `-h` and `help CMD` go the same way (tried on the first)
      const first = cli.commands[0]!.name;
      const tries = [
        ...cli.commands.map((c) => ({ name: c.name, args: [c.name, "--help"] })),
        { name: first, args: [first, "-h"] },
        { name: first, args: ["help", first] },
      ];
      for (const { name, args } of tries) {
        const r = run(bin, args);
        assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
        assert.ok(
          r.stdout.startsWith(`${bin} ${name}`),
          `${args.join(" ")} prints its own help:\n${r.stdout}`,
        );
        assert.match(r.stdout, /\nUsage:\n/);
      }
      const overview = run(bin, ["--help"]);
      assert.equal(overview.code, 0);
      for (const c of cli.commands)
        assert.ok(overview.stdout.includes(`${bin} ${c.name}`), `overview lists ${c.name}`);
    });
  }

  const usageErrors: Array<[keyof typeof BINS, string[], RegExp]> = [
    [
      "switchyard-hub",
      ["token", "create", "--bogus"],
      /^switchyard-hub: unknown flag --bogus; see switchyard-hub token --help$/,
    ],
    [
      "switchyard-hub",
      ["token", "create", "--ttl"],
      /^switchyard-hub: --ttl needs a value; see switchyard-hub token --help$/,
    ],
    [
      "switchyard-hub",
      ["clusters", "extra"],
      /^switchyard-hub: unexpected argument "extra"; see switchyard-hub clusters --help$/,
    ],
    [
      "switchyard-hub",
      ["clusters", "--json=yes"],
      /^switchyard-hub: --json takes no value; see switchyard-hub clusters --help$/,
    ],
    [
      "switchyard-hub",
      ["frobnicate"],
      /^switchyard-hub: unknown command "frobnicate"; commands: serve, token, .*\(see switchyard-hub --help\)$/,
    ],
    [
      "switchyard-agent",
      ["dump", "--bogus"],
      /^switchyard-agent: unknown flag --bogus; see switchyard-agent dump --help$/,
    ],
    [
      "switchyard-agent",
      ["run", "--hub"],
      /^switchyard-agent: --hub needs a value; see switchyard-agent run --help$/,
    ],
    [
      "switchyard-agent",
      [
        "run",
        "--hub",
        "127.0.0.1:1",
        "--token",
        "abcdef.0123456789abcdef",
        "--max-frontends",
        "lots",
        "--pin-dir",
        "/sys/fs/bpf/sy-cli-none",
        "--state-dir",
        "/nonexistent/sy-cli",
      ],
      /^switchyard-agent: --max-frontends "lots" must be a whole number ≥ 1$/,
    ],
    [
      "switchyard-agent",
      ["events", "on", "off"],
      /^switchyard-agent: events takes one argument, on or off \(got "on off"\)$/,
    ],
    // said before the pins are looked for (none here)
    [
      "switchyard-agent",
      ["events", "bogus", "--pin-dir", "/nonexistent"],
      /^switchyard-agent: events: "bogus" is not on or off$/,
    ],
    [
      "switchyard-agent",
      ["events", "--sample", "0", "--pin-dir", "/nonexistent"],
      /^switchyard-agent: --sample "0" must be a whole number ≥ 1$/,
    ],
  ];
  it("says a wrong command line in one line on stderr, with exit code 2 and no stack trace", () => {
    for (const [bin, args, want] of usageErrors) {
      const r = run(bin, args);
      assert.equal(r.code, 2, `${bin} ${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
      assert.equal(r.stdout, "", `${bin} ${args.join(" ")} prints nothing on stdout`);
      assert.match(r.stderr.trimEnd(), want, `${bin} ${args.join(" ")}`);
      assert.equal(r.stderr.trimEnd().split("\n").length, 1, `one line: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
    }
  });
});
