/**
 * A long-lived connected UDP client (like a DNS resolver's socket): connects,
 * exchanges one datagram and prints {"phase":"first",...}; on SIGUSR1 it sends
 * again on the same socket and prints {"phase":"second","ok":...,"code":...}.
 * Any socket error seen meanwhile (e.g. ECONNABORTED when the socket is
 * destroyed) is reported.
 * Usage: node udp-session.ts HOST PORT
 */
import dgram from "node:dgram";
import { isIPv6 } from "node:net";

const [host, portText] = process.argv.slice(2);
const sock = dgram.createSocket(isIPv6(host!) ? "udp6" : "udp4");
let phase: "first" | "second" = "first";
let error: string | undefined;
const print = (o: object) => process.stdout.write(`${JSON.stringify({ phase, ...o })}\n`);
sock.on("error", (e: NodeJS.ErrnoException) => {
  error = e.code ?? e.message;
  if (phase === "second") {
    print({ ok: false, code: error });
    process.exit(0);
  }
});
sock.on("message", (msg) => {
  print({ ok: true, reply: msg.toString().trim() });
  if (phase === "second") process.exit(0);
});
process.on("SIGUSR1", () => {
  phase = "second";
  if (error) {
    print({ ok: false, code: error });
    process.exit(0);
  }
  sock.send("again", (e) => {
    if (e) {
      print({ ok: false, code: (e as NodeJS.ErrnoException).code ?? e.message });
      process.exit(0);
    }
  });
  setTimeout(() => {
    print({ ok: false, code: "TIMEOUT" });
    process.exit(0);
  }, 3000).unref();
});
// a refused connect (no frontend, no backend) is reported, not a crash on send
sock.connect(Number(portText), host!, (e?: Error) =>
  e ? print({ ok: false, code: (e as NodeJS.ErrnoException).code ?? e.message }) : sock.send("hello"),
);
