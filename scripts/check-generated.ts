/**
 * Fails when proto/gen is not what `npm run gen` makes from proto/ (so the
 * committed TypeScript never drifts from the .proto files).
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const repo = path.resolve(import.meta.dirname, "..");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sy-gen-"));
try {
  execFileSync("bash", [path.join(repo, "scripts/gen-proto.sh"), tmp], {
    cwd: repo,
    stdio: ["ignore", "ignore", "inherit"],
  });
  const diff = (a: string, b: string): string[] => {
    const out: string[] = [];
    const names = new Set(
      [...fs.readdirSync(a, { recursive: true }), ...fs.readdirSync(b, { recursive: true })].map(String),
    );
    for (const n of names) {
      const pa = path.join(a, n);
      const pb = path.join(b, n);
      if (fs.existsSync(pa) && fs.statSync(pa).isDirectory()) continue;
      if (!fs.existsSync(pa) || !fs.existsSync(pb) || !fs.readFileSync(pa).equals(fs.readFileSync(pb)))
        out.push(n);
    }
    return out;
  };
  const changed = diff(path.join(repo, "proto/gen"), tmp);
  if (changed.length > 0) {
    console.error(`proto/gen is stale (${changed.join(", ")}): run "npm run gen" and commit the result`);
    process.exit(1);
  }
  console.log("proto/gen is up to date");
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
