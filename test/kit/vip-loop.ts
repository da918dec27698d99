/**
 * Connects to several TCP targets over and over, CONCURRENCY connections at
 * a time, until COUNT connects in all; each target is taken in turn. Reads
 * each answer's first word (an echo-server's name) and prints one JSON line:
 * {"ok":N,"failed":N,"targets":{"HOST:PORT":{"replies":{"name":N},"errors":{"ECONNREFUSED":N}}}}.
 * Usage: node vip-loop.ts COUNT CONCURRENCY HOST:PORT [HOST:PORT...]
 */
import net from "node:net";

const [countText, concurrencyText, ...targets] = process.argv.slice(2);
const count = Number(countText);
const concurrency = Number(concurrencyText);
if (!(count > 0) || !(concurrency > 0) || targets.length === 0) {
  process.stderr.write("usage: vip-loop.ts COUNT CONCURRENCY HOST:PORT [HOST:PORT...]\n");
  process.exit(2);
}
type Tally = { replies: Record<string, number>; errors: Record<string, number> };
const tallies: Record<string, Tally> = Object.fromEntries(
  targets.map((t) => [t, { replies: {}, errors: {} }]),
);
let started = 0;
let ok = 0;
let failed = 0;

function once(target: string): Promise<void> {
  const i = target.lastIndexOf(":");
  const tally = tallies[target]!;
  return new Promise((resolve) => {
    const s = net.connect({ host: target.slice(0, i), port: Number(target.slice(i + 1)) });
    let data = "";
    s.on("data", (d) => {
      data += d.toString();
    });
    s.on("end", () => {
      ok++;
      const name = data.split(" ")[0] || "(empty)";
      tally.replies[name] = (tally.replies[name] ?? 0) + 1;
      resolve();
    });
    s.on("error", (e: NodeJS.ErrnoException) => {
      failed++;
      const code = e.code ?? e.message;
      tally.errors[code] = (tally.errors[code] ?? 0) + 1;
      resolve();
    });
  });
}

async function worker(): Promise<void> {
  while (started < count) await once(targets[started++ % targets.length]!);
}

await Promise.all(Array.from({ length: concurrency }, worker));
process.stdout.write(`${JSON.stringify({ ok, failed, targets: tallies })}\n`);
