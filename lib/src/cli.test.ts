/** The command-line frame: parseArgs' errors in one line that names the flag, whole-number flags, fatal errors. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { describeFatal, formatOverview, parseFlags, parseIntFlag, UsageError } from "./cli.ts";
import { SwitchyardError } from "./errors.ts";

const usage = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof UsageError, String(e));
    return e.message;
  }
  assert.fail("no usage error");
};

describe("cli frame", () => {
  it("turns parseArgs' errors into one line that names the flag", () => {
    const opts = { hub: { type: "string" as const }, json: { type: "boolean" as const } };
    assert.match(
      usage(() => parseFlags(["--nope"], opts)),
      /^unknown flag --nope; see .*--help$/,
    );
    assert.match(
      usage(() => parseFlags(["--hub"], opts)),
      /^--hub needs a value; see/,
    );
    assert.match(
      usage(() => parseFlags(["--json=1"], opts)),
      /^--json takes no value; see/,
    );
    assert.match(
      usage(() => parseFlags(["stray"], opts)),
      /^unexpected argument "stray"; see/,
    );
    assert.deepEqual(parseFlags(["--hub", "h:1", "x"], opts, { positionals: true }).positionals, ["x"]);
  });

  it("reads whole-number flags within bounds, naming the flag otherwise", () => {
    assert.equal(parseIntFlag("max", "12", 1), 12);
    assert.match(
      usage(() => parseIntFlag("max", "1.5", 1)),
      /^--max "1\.5" must be a whole number ≥ 1$/,
    );
    assert.match(
      usage(() => parseIntFlag("n", "0", 1, 9)),
      /^--n "0" must be a whole number from 1 to 9$/,
    );
  });

  it("says errors without a stack: usage → exit 2, explained → 1, internal → 1 with a hint", () => {
    assert.deepEqual(describeFatal("b", new UsageError("bad")), { text: "b: bad\n", code: 2 });
    assert.deepEqual(describeFatal("b", new SwitchyardError("bpf", "no")), { text: "b: no\n", code: 1 });
    const enoent = Object.assign(new Error("ENOENT: no such file"), { code: "ENOENT" });
    assert.deepEqual(describeFatal("b", enoent), { text: "b: ENOENT: no such file\n", code: 1 });
    const internal = describeFatal("b", new TypeError("x is undefined"));
    assert.match(
      internal.text,
      /^b: x is undefined \(an internal error: set SWITCHYARD_DEBUG=1 for the stack/,
    );
    assert.doesNotMatch(internal.text, /\n\s+at /);
  });

  it("makes the overview from each command's summary lines", () => {
    const text = formatOverview({
      bin: "tool",
      about: "does things",
      commands: [
        { name: "go", summary: [["go [flags]", "go somewhere\nand back"]], help: "", run: () => {} },
      ],
    });
    assert.match(
      text,
      /^tool \S+ — does things\n\nUsage:\n {2}tool go \[flags\] +go somewhere\n +and back\n {2}tool --version/,
    );
  });
});
