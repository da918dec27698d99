/**
 * One unconnected UDP socket that keeps sending to one address (a statsd or
 * DNS client's socket): sends BURST datagrams at start and NEXT (default
 * BURST) more on every SIGUSR1, one at a time, each waiting for its reply (2 s). Prints a
 * line per datagram, numbered from 0 over the socket's life:
 * {"i":N,"ok":true,"reply":"...","from":"ip:port"} or {"i":N,"ok":false,"code":"..."}.
 * Usage: node udp-flow.ts HOST PORT BURST [NEXT]
 */
import dgram from "node:dgram";
import { isIPv6 } from "node:net";

const [host, portText, burstText, nextText] = process.argv.slice(2);
const port = Number(portText);
let burst = Number(burstText);
const next = Number(nextText ?? burstText);
const sock = dgram.createSocket(isIPv6(host!) ? "udp6" : "udp4");
let i = 0;
let pending: ((o: object) => void) | undefined;
const print = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);

sock.on("message", (msg, rinfo) =>
  pending?.({ ok: true, reply: msg.toString().trim(), from: `${rinfo.address}:${rinfo.port}` }),
);
sock.on("error", (e: NodeJS.ErrnoException) => pending?.({ ok: false, code: e.code ?? e.message }));

function one(): Promise<object> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => finish({ ok: false, code: "TIMEOUT" }), 2000);
    const finish = (o: object) => {
      clearTimeout(timer);
      pending = undefined;
      resolve(o);
    };
    pending = finish;
    sock.send(`n${i}`, port, host!, (e) => {
      if (e) finish({ ok: false, code: (e as NodeJS.ErrnoException).code ?? e.message });
    });
  });
}

let running = Promise.resolve();
function sendBurst(): void {
  running = running.then(async () => {
    for (let k = 0; k < burst; k++) {
      const r = await one();
      print({ i: i++, ...r });
    }
    burst = next;
  });
}
process.on("SIGUSR1", sendBurst);
sock.bind(0, sendBurst);
