/**
 * A backend for tests and the demo: answers every TCP connection (and UDP
 * datagram) with "<name> <peer>\n". Prints "ready" once listening. More
 * than one NAME HOST PORT makes one process serve them all (a test with
 * dozens of backends starts one process, not dozens).
 * Usage: node echo-server.ts NAME HOST PORT [NAME HOST PORT...]
 */
import dgram from "node:dgram";
import net from "node:net";

const args = process.argv.slice(2);
if (args.length === 0 || args.length % 3 !== 0) {
  process.stderr.write("usage: echo-server.ts NAME HOST PORT [NAME HOST PORT...]\n");
  process.exit(2);
}
let ready = 0;
const done = () => {
  if (++ready === (args.length / 3) * 2) process.stdout.write("ready\n");
};
for (let i = 0; i < args.length; i += 3) {
  const [name, host, portText] = args.slice(i, i + 3) as [string, string, string];
  const port = Number(portText);
  const server = net.createServer((s) => {
    s.on("error", () => {});
    s.end(`${name} ${s.remoteAddress}:${s.remotePort}\n`);
  });
  const udp = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
  udp.on("message", (_msg, rinfo) =>
    udp.send(`${name} ${rinfo.address}:${rinfo.port}\n`, rinfo.port, rinfo.address),
  );
  server.listen(port, host, done);
  udp.bind(port, host, done);
}
process.on("SIGTERM", () => process.exit(0));
