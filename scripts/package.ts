/**
 * `npm run package`: builds dist/switchyard-<version>-linux-<arch>.tar.gz, a
 * self-contained distribution for hosts: the pinned Node.js runtime
 * (node_modules/node-linux-<arch>), the hub and agent sources (TypeScript,
 * run by Node's type stripping), their production dependencies, the BPF
 * object (CO-RE: one build serves every kernel with BTF) and libsyring.so,
 * the .proto files, deploy/ (RBAC, CRDs) and the launchers in bin/.
 *
 *   node scripts/package.ts [--out DIR] [--fast]
 *
 * --fast compresses with gzip -1 (tests); the default is gzip -6. The
 * production dependencies are the ones `npm ls --omit=dev` lists for the
 * four runtime workspaces, copied from this checkout's node_modules (run
 * `npm run setup` first); nothing is fetched.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

const repo = path.resolve(import.meta.dirname, "..");
const WORKSPACES = ["lib", "proto", "services/hub", "services/nodeagent"];
/** what each workspace ships besides its package.json */
const WORKSPACE_CONTENT: Record<string, string[]> = {
  lib: ["src"],
  proto: ["gen", "switchyard"],
  "services/hub": ["src"],
  "services/nodeagent": ["src"],
};
const TOP_FILES = ["package.json", "README.md", "LICENSE", "bin", "deploy"];
const BPF_FILES = ["bpf/build/switchyard.bpf.o", "bpf/build/libsyring.so"];
/** files a runtime never reads: tests, type declarations, source maps */
const SKIP = /(\.test\.ts|\.d\.[cm]?ts|\.map)$/;

function fail(msg: string): never {
  process.stderr.write(`package: ${msg}\n`);
  process.exit(2);
}

function copy(rel: string, stage: string, opts: { skipNested?: boolean } = {}): void {
  const from = path.join(repo, rel);
  fs.cpSync(from, path.join(stage, rel), {
    recursive: true,
    verbatimSymlinks: true,
    filter: (src) => {
      if (SKIP.test(src)) return false;
      // nested node_modules are listed (and copied) on their own, only when production needs them
      if (opts.skipNested && src !== from && path.basename(src) === "node_modules") return false;
      return true;
    },
  });
}

/** node_modules paths (relative to the repo) the runtime workspaces need in production */
function productionModules(): string[] {
  const out = execFileSync(
    "npm",
    ["ls", "--omit=dev", "--parseable", "--all", ...WORKSPACES.flatMap((w) => ["-w", w])],
    { cwd: repo, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
  );
  return out
    .split("\n")
    .filter((p) => p.includes(`${path.sep}node_modules${path.sep}`))
    .map((p) => path.relative(repo, p));
}

export function buildPackage(outDir: string, gzipLevel: number): string {
  const { version } = JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8")) as {
    version: string;
  };
  const arch = process.arch;
  if (arch !== "x64" && arch !== "arm64") fail(`no pinned Node.js runtime for ${arch} (x64 and arm64 only)`);
  const runtime = `node_modules/node-linux-${arch}`;
  for (const f of [...BPF_FILES, `${runtime}/bin/node`])
    if (!fs.existsSync(path.join(repo, f))) fail(`${f} is missing: run \`npm run setup\` first`);

  const name = `switchyard-${version}-linux-${arch}`;
  fs.mkdirSync(outDir, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(outDir, ".stage-"));
  try {
    const stage = path.join(tmp, name);
    for (const f of TOP_FILES) if (fs.existsSync(path.join(repo, f))) copy(f, stage);
    for (const w of WORKSPACES)
      for (const f of ["package.json", ...WORKSPACE_CONTENT[w]!]) copy(path.join(w, f), stage);
    for (const f of BPF_FILES) copy(f, stage);
    for (const m of productionModules()) {
      // workspaces are links (node_modules/@switchyard/hub -> ../../services/hub): Node resolves them to
      // their real path, outside node_modules, where it strips types
      if (fs.lstatSync(path.join(repo, m)).isSymbolicLink()) {
        fs.mkdirSync(path.dirname(path.join(stage, m)), { recursive: true });
        fs.symlinkSync(fs.readlinkSync(path.join(repo, m)), path.join(stage, m));
      } else copy(m, stage, { skipNested: true });
    }
    // the runtime: the binary and its licence (no headers, no man pages), reached as node_modules/.bin/node
    for (const f of ["package.json", "LICENSE", "bin/node"]) copy(path.join(runtime, f), stage);
    fs.mkdirSync(path.join(stage, "node_modules/.bin"), { recursive: true });
    fs.symlinkSync(`../node-linux-${arch}/bin/node`, path.join(stage, "node_modules/.bin/node"));

    // a tarball whose binaries cannot start (a dependency npm ls did not list) is never written
    for (const bin of ["switchyard-hub", "switchyard-agent", "switchyard"])
      try {
        execFileSync(path.join(stage, "bin", bin), ["--version"], {
          env: { PATH: "/usr/bin:/bin" },
          stdio: ["ignore", "ignore", "pipe"],
        });
      } catch (e) {
        const why = String((e as { stderr?: Buffer }).stderr ?? "")
          .split("\n")
          .find((l) => /Error|error/.test(l));
        fs.rmSync(tmp, { recursive: true, force: true }); // fail() exits: no finally runs
        fail(
          `the packaged ${bin} does not start (${why?.trim() ?? (e as Error).message}); check that \`npm ls --omit=dev\` in ${repo} lists the production dependencies without problems (npm run setup)`,
        );
      }

    const tarball = path.join(outDir, `${name}.tar.gz`);
    execFileSync("tar", [
      "-C",
      tmp,
      "--owner=0",
      "--group=0",
      "-I",
      `gzip -${gzipLevel}`,
      "-cf",
      tarball,
      name,
    ]);
    return tarball;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { out: { type: "string", default: path.join(repo, "dist") }, fast: { type: "boolean" } },
  });
  const tarball = buildPackage(path.resolve(values.out), values.fast ? 1 : 6);
  process.stdout.write(`${tarball} (${(fs.statSync(tarball).size / 2 ** 20).toFixed(1)} MiB)\n`);
}
