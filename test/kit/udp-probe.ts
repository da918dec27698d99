/**
 * One UDP exchange, as a client would do it; prints one JSON line:
 * {"ok":true,"reply":"...","from":"ip:port","peer":"ip:port"|null} or {"ok":false,"code":"..."}.
 * "from" is the reply's source as recvmsg() reports it; "peer" is
 * getpeername() of a connected socket.
 * Usage: node udp-probe.ts HOST PORT connected|unconnected
 */
import dgram from "node:dgram";
import { isIPv6 } from "node:net";

const [host, portText, mode] = process.argv.slice(2);
const port = Number(portText);
const sock = dgram.createSocket(isIPv6(host!) ? "udp6" : "udp4");
const done = (o: object) => {
  process.stdout.write(`${JSON.stringify(o)}\n`);
  process.exit(0);
};
setTimeout(() => done({ ok: false, code: "TIMEOUT" }), 5000).unref();
sock.on("error", (e: NodeJS.ErrnoException) => done({ ok: false, code: e.code ?? e.message }));
sock.on("message", (msg, rinfo) => {
  let peer: string | null = null;
  if (mode === "connected") {
    const r = sock.remoteAddress();
    peer = `${r.address}:${r.port}`;
  }
  done({ ok: true, reply: msg.toString().trim(), from: `${rinfo.address}:${rinfo.port}`, peer });
});
if (mode === "connected") {
  sock.connect(port, host!, () => sock.send("hello"));
} else {
  sock.bind(0, () => sock.send("hello", port, host!));
}
