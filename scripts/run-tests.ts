/**
 * Runs every *.test.ts with node:test. Privileged tests (BPF, cgroups,
 * network namespaces) need root: without it they fail loudly, never skip.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const repo = path.resolve(import.meta.dirname, "..");
const roots = ["lib", "services", "test", "bpf"];
const files: string[] = [];
for (const r of roots) {
  for (const f of fs.readdirSync(path.join(repo, r), { recursive: true }).map(String)) {
    if (f.includes("node_modules")) continue;
    if (f.endsWith(".test.ts")) files.push(path.join(r, f));
  }
}
files.sort();
const filter = process.argv.slice(2);
const selected = filter.length ? files.filter((f) => filter.some((x) => f.includes(x))) : files;
if (process.getuid?.() !== 0) {
  console.error(
    "WARNING: not root. Privileged tests (BPF, cgroups, netns) will FAIL, not skip. CI runs as root.",
  );
}
console.log(`running ${selected.length} test files`);
const r = spawnSync(
  process.execPath,
  ["--test", "--test-concurrency=2", "--test-reporter=spec", ...selected],
  { cwd: repo, stdio: "inherit" },
);
process.exit(r.status ?? 1);
