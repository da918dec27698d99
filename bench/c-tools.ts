/** Builds the benchmarks' C client and sink (bench/c) into bench/build; returns their paths. */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { REPO } from "../test/kit/proc.ts";

export function buildCTools(): { buildDir: string; client: string; sink: string } {
  const buildDir = path.join(REPO, "bench/build");
  fs.mkdirSync(buildDir, { recursive: true });
  const sink = path.join(buildDir, "sink");
  const client = path.join(buildDir, "client");
  execFileSync("cc", ["-O2", "-pthread", "-o", sink, path.join(REPO, "bench/c/sink.c")]);
  execFileSync("cc", ["-O2", "-o", client, path.join(REPO, "bench/c/client.c")]);
  return { buildDir, client, sink };
}
