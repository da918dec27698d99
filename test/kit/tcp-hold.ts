/**
 * A TCP connection held open, as a client with a pooled connection would
 * hold it: connects, prints {"ok":true,"peer":"ip:port"} (getpeername) once
 * connected, and keeps the socket open until the process is stopped: it
 * never reads, so the server's reply and FIN leave it open.
 * {"ok":false,"code":...} if the connect fails.
 * Usage: node tcp-hold.ts HOST PORT
 */
import net from "node:net";

const [host, port] = process.argv.slice(2);
const s = net.connect({ host: host!, port: Number(port), allowHalfOpen: true });
s.pause();
s.on("connect", () => {
  process.stdout.write(`${JSON.stringify({ ok: true, peer: `${s.remoteAddress}:${s.remotePort}` })}\n`);
});
// a socket that is not reading keeps no event loop alive: this does, until the process is stopped
setInterval(() => {}, 1 << 30);
s.on("error", (e: NodeJS.ErrnoException) => {
  process.stdout.write(`${JSON.stringify({ ok: false, code: e.code ?? e.message })}\n`);
  process.exit(0);
});
