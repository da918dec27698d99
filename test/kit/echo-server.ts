/**
 * A backend for tests and the demo: answers every TCP connection (and UDP
 * datagram) with "<name> <peer>\n". Prints "ready" once listening.
 * Usage: node echo-server.ts NAME HOST PORT
 */
import dgram from "node:dgram";
import net from "node:net";

const [name, host, portText] = process.argv.slice(2);
if (!name || !host || !portText) {
  process.stderr.write("usage: echo-server.ts NAME HOST PORT\n");
  process.exit(2);
}
const port = Number(portText);
const server = net.createServer((s) => {
  s.on("error", () => {});
  s.end(`${name} ${s.remoteAddress}:${s.remotePort}\n`);
});
const udp = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
udp.on("message", (_msg, rinfo) =>
  udp.send(`${name} ${rinfo.address}:${rinfo.port}\n`, rinfo.port, rinfo.address),
);
let ready = 0;
const done = () => {
  if (++ready === 2) process.stdout.write("ready\n");
};
server.listen(port, host, done);
udp.bind(port, host, done);
process.on("SIGTERM", () => process.exit(0));
