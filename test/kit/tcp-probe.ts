/**
 * One TCP connect, as a client program would do it; prints one JSON line:
 * {"ok":true,"reply":"...","peer":"ip:port"} or {"ok":false,"code":"ECONNREFUSED"}.
 * Usage: node tcp-probe.ts HOST PORT
 */
import net from "node:net";

const [host, port] = process.argv.slice(2);
const s = net.connect({ host: host!, port: Number(port) });
let reply = "";
s.setTimeout(5000, () => {
  process.stdout.write(`${JSON.stringify({ ok: false, code: "TIMEOUT" })}\n`);
  process.exit(0);
});
s.on("connect", () => {
  s.on("data", (d) => {
    reply += d.toString();
  });
});
s.on("end", () => {
  process.stdout.write(
    `${JSON.stringify({ ok: true, reply: reply.trim(), peer: `${s.remoteAddress}:${s.remotePort}` })}\n`,
  );
  process.exit(0);
});
s.on("error", (e: NodeJS.ErrnoException) => {
  process.stdout.write(`${JSON.stringify({ ok: false, code: e.code ?? e.message })}\n`);
  process.exit(0);
});
