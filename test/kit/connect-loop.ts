/**
 * Connects to HOST:PORT over and over (one connection at a time) until
 * SIGTERM or COUNT connects, then prints one JSON line:
 * {"ok":N,"failed":N,"errors":{"ECONNREFUSED":N},"replies":{"backend-a":N}}.
 * Prints "started" after the first successful connect.
 * Usage: node connect-loop.ts HOST PORT [COUNT]
 */
import net from "node:net";

const [host, portText, countText] = process.argv.slice(2);
const port = Number(portText);
const max = countText ? Number(countText) : Number.POSITIVE_INFINITY;
let ok = 0;
let failed = 0;
let stop = false;
const errors: Record<string, number> = {};
const replies: Record<string, number> = {};
process.on("SIGTERM", () => {
  stop = true;
});

function once(): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host: host!, port });
    let data = "";
    s.on("data", (d) => {
      data += d.toString();
    });
    s.on("end", () => {
      ok++;
      const name = data.split(" ")[0] ?? "";
      replies[name] = (replies[name] ?? 0) + 1;
      if (ok === 1) process.stdout.write("started\n");
      resolve();
    });
    s.on("error", (e: NodeJS.ErrnoException) => {
      failed++;
      errors[e.code ?? e.message] = (errors[e.code ?? e.message] ?? 0) + 1;
      resolve();
    });
  });
}

while (!stop && ok + failed < max) await once();
process.stdout.write(`${JSON.stringify({ ok, failed, errors, replies })}\n`);
