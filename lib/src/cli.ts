/**
 * The command-line frame both binaries share: one table of subcommands with
 * their help (cli/help.ts of each binary), `--version`, `--help` on every
 * command, usage errors as one line with exit code 2 (never a stack trace),
 * and a reader that went away (`dump | head`) as a quiet end, not an EPIPE
 * crash.
 *
 * A new subcommand: a file in the binary's cli/ exporting a `Command`, and
 * one line in that binary's cli/help.ts. Its flags are read with
 * `parseFlags`, which turns unknown flags, missing values and stray
 * arguments into `UsageError`s; `--help`/`-h` never reach it.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type ParseArgsOptionsConfig, parseArgs } from "node:util";
import { SwitchyardError } from "./errors.ts";

/** A wrong command line: said in one line, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Ends the command with a usage error (one line on stderr, exit code 2). */
export function usageError(message: string): never {
  throw new UsageError(message);
}

export type Command = {
  /** the first word: `token`, `run` */
  name: string;
  /** the overview's lines: [usage, what it does] (what it does may wrap with "\n") */
  summary: Array<[string, string]>;
  /** the whole text `BIN NAME --help` prints: usage and every flag */
  help: string;
  run: (argv: string[]) => Promise<void> | void;
};

export type Cli = {
  bin: string;
  /** one line under the name in the overview */
  about: string;
  commands: Command[];
  /** text after the command list in the overview */
  footer?: string;
};

/** The product's version: the repository's package.json (the one the binaries ship with). */
export const VERSION: string = (() => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  try {
    const pkg = JSON.parse(fs.readFileSync(path.resolve(here, "../../package.json"), "utf8")) as {
      version?: unknown;
    };
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
})();

/** The overview: every command's summary lines, aligned. */
export function formatOverview(cli: Cli): string {
  const rows = cli.commands.flatMap((c) => c.summary.map(([u, what]) => [`${cli.bin} ${u}`, what] as const));
  const width = Math.min(44, Math.max(...rows.map(([u]) => u.length)) + 2);
  const lines = [`${cli.bin} ${VERSION} — ${cli.about}`, "", "Usage:"];
  for (const [u, what] of rows) {
    const [first, ...more] = what.split("\n");
    if (u.length + 2 > width) lines.push(`  ${u}`, `  ${" ".repeat(width)}${first}`);
    else lines.push(`  ${u.padEnd(width)}${first}`);
    for (const m of more) lines.push(`  ${" ".repeat(width)}${m}`);
  }
  lines.push(
    `  ${`${cli.bin} --version`.padEnd(width)}print the version`,
    "",
    `Every command takes --help (e.g. ${cli.bin} ${cli.commands[0]?.name ?? ""} --help) for its flags.`,
  );
  if (cli.footer) lines.push("", cli.footer.trimEnd());
  return `${lines.join("\n")}\n`;
}

const HELP_WORDS = new Set(["--help", "-h"]);

/** `BIN COMMAND` of the command running, for "see … --help" in usage errors */
let running = "";

/** `--help`/`-h` among the arguments (before a `--`). */
function asksHelp(argv: string[]): boolean {
  for (const a of argv) {
    if (a === "--") return false;
    if (HELP_WORDS.has(a)) return true;
  }
  return false;
}

/**
 * Reads a command's flags. parseArgs' own errors (unknown flag, missing
 * value, an argument the command does not take) become one-line UsageErrors
 * that say what to fix.
 */
export function parseFlags<O extends ParseArgsOptionsConfig>(
  argv: string[],
  options: O,
  opts: { positionals?: boolean } = {},
) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: opts.positionals ?? false, strict: true });
  } catch (e) {
    throw new UsageError(describeParseError(e as Error & { code?: string }, running));
  }
}

/** parseArgs' message → one line that names the flag and what to do. */
export function describeParseError(e: Error & { code?: string }, command?: string): string {
  const see = `see ${command ? `${command} ` : ""}--help`;
  const msg = e.message;
  if (e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const flag = /'([^']+)'/.exec(msg)?.[1] ?? msg;
    return `unknown flag ${flag}; ${see}`;
  }
  if (e.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    const m = /'(--?[\w-]+)(?: <value>)?'/.exec(msg);
    const flag = m?.[1] ?? "";
    if (/argument missing/.test(msg)) return `${flag} needs a value; ${see}`;
    if (/does not take an argument/.test(msg)) return `${flag} takes no value; ${see}`;
    if (/ambiguous/.test(msg)) return `${flag}'s value starts with a dash: write it as ${flag}=VALUE; ${see}`;
    return `${msg.split("\n")[0]}; ${see}`;
  }
  if (e.code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
    const arg = /'([^']*)'/.exec(msg)?.[1] ?? "";
    return `unexpected argument "${arg}"; ${see}`;
  }
  return msg.split("\n")[0] ?? msg;
}

/**
 * A whole number flag within bounds, or a UsageError naming the flag.
 * `what` completes "must be …" (e.g. "a whole number ≥ 1").
 */
export function parseIntFlag(
  flag: string,
  value: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const n = /^-?\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max)
    usageError(
      `--${flag} "${value}" must be a whole number ${max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `from ${min} to ${max}`}`,
    );
  return n;
}

/** True when an error is one a person caused or can fix: said as its message, no stack. */
function isExplained(e: unknown): e is Error {
  if (e instanceof UsageError || e instanceof SwitchyardError) return true;
  const code = (e as { code?: unknown })?.code;
  // system errors (ENOENT, EACCES, EPERM ...) name the file and the call
  return e instanceof Error && typeof code === "string" && /^E[A-Z]+$/.test(code);
}

/** What the top of a binary prints for an error that reached it; the exit code. */
export function describeFatal(bin: string, e: unknown): { text: string; code: number } {
  if (e instanceof UsageError) return { text: `${bin}: ${e.message}\n`, code: 2 };
  if (isExplained(e)) return { text: `${bin}: ${e.message}\n`, code: 1 };
  const err = e instanceof Error ? e : new Error(String(e));
  const detail = process.env["SWITCHYARD_DEBUG"]
    ? `\n${err.stack ?? ""}`
    : " (an internal error: set SWITCHYARD_DEBUG=1 for the stack, and report it)";
  return { text: `${bin}: ${err.message}${detail}\n`, code: 1 };
}

/**
 * A reader that closed its end (`dump | head`) ends the process quietly
 * with 0, as `cat` does, instead of an unhandled EPIPE.
 */
export function endQuietlyOnEpipe(stream: NodeJS.WriteStream = process.stdout): void {
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  });
}

/**
 * Runs a binary: `--version`, the overview (no command, `help`, `--help`),
 * `help CMD` and `CMD --help`, else the command; errors end it with one line.
 */
export async function runCli(cli: Cli, argv: string[]): Promise<void> {
  endQuietlyOnEpipe(process.stdout);
  try {
    await dispatch(cli, argv);
  } catch (e) {
    const { text, code } = describeFatal(cli.bin, e);
    process.stderr.write(text);
    process.exitCode = code;
    // a command may hold handles (sockets, timers): a failed command ends here
    process.exit(code);
  }
}

async function dispatch(cli: Cli, argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  const out = (s: string) => void process.stdout.write(s);
  if (cmd === "--version" || cmd === "-V" || cmd === "version") return out(`${cli.bin} ${VERSION}\n`);
  if (cmd === undefined || HELP_WORDS.has(cmd)) return out(formatOverview(cli));
  const find = (name: string) => cli.commands.find((c) => c.name === name);
  if (cmd === "help") {
    const target = rest[0] === undefined ? undefined : find(rest[0]);
    if (rest[0] !== undefined && !target)
      usageError(`unknown command "${rest[0]}"; commands: ${cli.commands.map((c) => c.name).join(", ")}`);
    return out(target ? target.help : formatOverview(cli));
  }
  const command = find(cmd);
  if (!command)
    usageError(
      `unknown command "${cmd}"; commands: ${cli.commands.map((c) => c.name).join(", ")} (see ${cli.bin} --help)`,
    );
  if (asksHelp(rest)) return out(command.help);
  running = `${cli.bin} ${command.name}`;
  await command.run(rest);
}
