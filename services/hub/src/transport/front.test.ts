import assert from "node:assert/strict";
import http2 from "node:http2";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { type Front, serveFront } from "./front.ts";
import { type GrpcCall, grpcFrame, parseGrpcTimeout, Status } from "./grpc-call.ts";

const ECHO = "/test.Echo/Chat";
const id = (b: Buffer) => b;

/**
 * A routed bidi method that answers each message with its length (4 bytes)
 * and refuses on request: first byte 0xee → PERMISSION_DENIED with a
 * non-ASCII reason, before any response (trailers-only).
 */
function echo(call: GrpcCall): void {
  if (call.metadata("x-refuse")) {
    call.finish(Status.PERMISSION_DENIED, "refusé: node “n1” is not yours");
    return;
  }
  call.start({
    onMessage: (m) => {
      // 0xde: a bug in the handler
      if (m[0] === 0xde) throw new Error("handler bug (on purpose)");
      // 0xbb + a length: answer with that many bytes (each its index mod 251), else with the length received
      if (m[0] === 0xbb && m.length === 5) {
        const big = Buffer.alloc(m.readUInt32BE(1));
        for (let i = 0; i < big.length; i++) big[i] = i % 251;
        call.write(grpcFrame(big));
        return;
      }
      const out = Buffer.alloc(4);
      out.writeUInt32BE(m.length, 0);
      call.write(grpcFrame(out));
    },
    onClose: () => {},
  });
}

type Result = { lengths: number[]; code: number; details: string };

function chat(client: grpc.Client, messages: Buffer[], md = new grpc.Metadata()): Promise<Result> {
  return new Promise((resolve) => {
    const lengths: number[] = [];
    const call = client.makeBidiStreamRequest(ECHO, id, id, md);
    call.on("data", (b: Buffer) => lengths.push(b.readUInt32BE(0)));
    call.on("error", (e: grpc.ServiceError) => resolve({ lengths, code: e.code, details: e.details }));
    call.on("status", (s: grpc.StatusObject) => {
      if (s.code === 0) resolve({ lengths, code: 0, details: s.details });
    });
    for (const m of messages) call.write(m);
    call.end();
  });
}

for (const ioThreads of [0, 2])
  describe(`the hub's front (node:http2: routed gRPC calls, the rest through grpc-js), connections on ${ioThreads ? `${ioThreads} I/O threads` : "the main thread"}`, () => {
    let served: Front;
    let client: grpc.Client;
    const internalErrors: Error[] = [];
    const fallback = new grpc.Server();
    fallback.addService(
      {
        hello: {
          path: "/test.Other/Hello",
          requestStream: false,
          responseStream: false,
          requestSerialize: id,
          requestDeserialize: id,
          responseSerialize: id,
          responseDeserialize: id,
        },
      },
      {
        hello: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
          cb(null, Buffer.concat([Buffer.from("hello "), call.request])),
      },
    );

    before(async () => {
      served = await serveFront({
        host: "127.0.0.1",
        port: 0,
        routes: new Map([[ECHO, echo]]),
        fallback,
        maxMessageBytes: 1024 * 1024,
        keepaliveIntervalMs: 200,
        keepaliveTimeoutMs: 200,
        ioThreads,
        onInternalError: (e) => internalErrors.push(e),
      });
      client = new grpc.Client(`127.0.0.1:${served.port}`, grpc.credentials.createInsecure());
    });
    after(async () => {
      client.close();
      await served.close();
      fallback.forceShutdown();
    });

    it("delivers whole messages, however HTTP/2 splits them, and ends with OK on half-close", async () => {
      const r = await chat(client, [
        Buffer.alloc(3),
        Buffer.alloc(300_000, 1),
        Buffer.alloc(0),
        Buffer.alloc(70_000),
      ]);
      assert.deepEqual(r, { lengths: [3, 300_000, 0, 70_000], code: Status.OK, details: "" });
    });

    it("sends messages larger than the client's flow-control window whole and in order, on several streams at once", async () => {
      const ask = (n: number) => {
        const m = Buffer.alloc(5, 0xbb);
        m.writeUInt32BE(n, 1);
        return m;
      };
      const sizes = [200_000, 70_000, 1, 3 * 65_535 + 7];
      const replies = await Promise.all(
        [0, 1, 2].map(
          () =>
            new Promise<Buffer[]>((resolve, reject) => {
              const got: Buffer[] = [];
              const call = client.makeBidiStreamRequest(ECHO, id, id, new grpc.Metadata());
              call.on("data", (b: Buffer) => got.push(b));
              call.on("error", reject);
              call.on("status", (st: grpc.StatusObject) =>
                st.code === 0 ? resolve(got) : reject(new Error(st.details)),
              );
              for (const n of sizes) call.write(ask(n));
              call.end();
            }),
        ),
      );
      for (const got of replies) {
        assert.deepEqual(
          got.map((b) => b.length),
          sizes,
        );
        for (const b of got)
          assert.ok(
            b.every((x, i) => x === i % 251),
            "bytes intact",
          );
      }
    });

    it("refuses a message over the limit with RESOURCE_EXHAUSTED, naming both sizes", async () => {
      const r = await chat(client, [Buffer.alloc(5), Buffer.alloc(2 * 1024 * 1024)]);
      assert.equal(r.code, Status.RESOURCE_EXHAUSTED);
      assert.match(r.details, /2097152 bytes exceeds the hub's limit of 1048576/);
      assert.deepEqual(r.lengths, [5], "what came before is answered");
    });

    it("sends a refusal before any message as a status, its reason intact (percent-encoded on the wire)", async () => {
      const md = new grpc.Metadata();
      md.set("x-refuse", "1");
      const r = await chat(client, [Buffer.alloc(1)], md);
      assert.deepEqual(r, {
        lengths: [],
        code: Status.PERMISSION_DENIED,
        details: "refusé: node “n1” is not yours",
      });
    });

    it("refuses a compressed message with UNIMPLEMENTED", async () => {
      const s = http2.connect(`http://127.0.0.1:${served.port}`);
      try {
        const req = s.request({
          ":method": "POST",
          ":path": ECHO,
          "content-type": "application/grpc",
          te: "trailers",
        });
        const framed = grpcFrame(Buffer.from("zz"));
        framed[0] = 1;
        req.end(framed);
        const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) => {
          req.on("response", (h) => {
            if (h["grpc-status"] !== undefined) resolve(h);
          });
          req.on("trailers", resolve);
          req.resume();
        });
        assert.equal(trailers["grpc-status"], String(Status.UNIMPLEMENTED));
        assert.match(
          decodeURIComponent(String(trailers["grpc-message"])),
          /compressed messages are not supported/,
        );
      } finally {
        s.close();
      }
    });

    it("serves every other method through the grpc-js server, which answers unknown ones UNIMPLEMENTED", async () => {
      const hello = await new Promise<Buffer>((resolve, reject) =>
        client.makeUnaryRequest("/test.Other/Hello", id, id, Buffer.from("hub"), (e, v) =>
          e ? reject(e) : resolve(v!),
        ),
      );
      assert.equal(hello.toString(), "hello hub");
      const err = await new Promise<grpc.ServiceError>((resolve) =>
        client.makeUnaryRequest("/test.Nope/Nothing", id, id, Buffer.alloc(0), (e) => resolve(e!)),
      );
      assert.equal(err.code, Status.UNIMPLEMENTED);
    });

    it("answers a request that is not gRPC with 415", async () => {
      const s = http2.connect(`http://127.0.0.1:${served.port}`);
      try {
        const status = await new Promise<number>((resolve) => {
          const req = s.request({ ":method": "GET", ":path": "/" });
          req.on("response", (h) => resolve(Number(h[":status"])));
          req.resume();
        });
        assert.equal(status, 415);
      } finally {
        s.close();
      }
    });

    it("drops a connection whose peer stops answering keepalive pings", async () => {
      const sock = net.connect(served.port, "127.0.0.1");
      // the HTTP/2 preface and an empty SETTINGS frame, then silence: no SETTINGS ACK, no PING ACK
      sock.write(
        Buffer.concat([
          Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
          Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]),
        ]),
      );
      sock.resume();
      await new Promise<void>((resolve) => sock.on("close", () => resolve()));
    });

    it("survives HTTP/2-level garbage: the bad connection is closed, the others are served", async () => {
      let seed = 7;
      const rand = () => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed;
      };
      for (let round = 0; round < 30; round++) {
        const junk = Buffer.alloc(9 + (rand() % 300));
        for (let i = 0; i < junk.length; i++) junk[i] = rand() & 0xff;
        // a valid frame header now and then: known types with nonsense payloads
        if (round % 2 === 0) {
          junk.writeUIntBE(junk.length - 9, 0, 3);
          junk[3] = round % 10;
        }
        const sock = net.connect(served.port, "127.0.0.1");
        sock.on("error", () => {});
        sock.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), junk, junk]));
        sock.resume();
        // closed by the hub, or still open and harmless: either way a well-formed call works meanwhile
        const r = await chat(client, [Buffer.alloc(9)]);
        assert.deepEqual(r.lengths, [9], `round ${round}`);
        sock.destroy();
      }
    });

    it("closes only the connection whose handler threw, and reports the exception", async () => {
      const other = new grpc.Client(`127.0.0.1:${served.port}`, grpc.credentials.createInsecure());
      try {
        const before = internalErrors.length;
        const bad = await chat(other, [Buffer.from([0xde])]);
        assert.notEqual(bad.code, 0);
        assert.equal(internalErrors.length, before + 1);
        assert.match(internalErrors.at(-1)!.message, /handler bug/);
        // the first client's connection is untouched
        assert.deepEqual((await chat(client, [Buffer.alloc(3)])).lengths, [3]);
      } finally {
        other.close();
      }
    });

    it("refuses a port something already listens on", async () => {
      const taken = net.createServer();
      await new Promise<void>((r) => taken.listen(0, "127.0.0.1", () => r()));
      try {
        await assert.rejects(
          serveFront({
            host: "127.0.0.1",
            port: (taken.address() as net.AddressInfo).port,
            routes: new Map(),
            fallback,
            maxMessageBytes: 1024,
            ioThreads,
          }),
          /EADDRINUSE/,
        );
      } finally {
        taken.close();
      }
    });

    // (with connections on the main thread there is no thread to lose)
    if (ioThreads > 0)
      it("serves again after an I/O thread dies: its calls end, a new thread takes new connections", async () => {
        const victims = served.ioWorkers();
        assert.equal(victims.length, ioThreads);
        const c = new grpc.Client(`127.0.0.1:${served.port}`, grpc.credentials.createInsecure());
        try {
          const call = c.makeBidiStreamRequest(ECHO, id, id);
          const ended = new Promise<number>((resolve) => {
            call.on("error", (e: grpc.ServiceError) => resolve(e.code));
            call.on("status", (st: grpc.StatusObject) => resolve(st.code));
          });
          const echoed = new Promise<void>((resolve) => call.once("data", () => resolve()));
          call.write(Buffer.alloc(2));
          // the call is open and nothing is on its way to the thread: Node 24 aborts the whole process
          // (stream_base.cc "onread->IsFunction()") when Worker.terminate() meets an HTTP/2 DATA frame
          // arriving at that moment — terminate() is the test's way to kill a thread, not the hub's
          await echoed;
          await Promise.all(victims.map((w) => w.terminate()));
          assert.notEqual(await ended, Status.OK, "a call of a dead thread ends with an error");
          // new threads come up on the same port; a new connection is served
          for (let i = 0; ; i++) {
            const fresh = new grpc.Client(`127.0.0.1:${served.port}`, grpc.credentials.createInsecure());
            const r = await chat(fresh, [Buffer.alloc(4)]);
            fresh.close();
            if (r.code === 0) {
              assert.deepEqual(r.lengths, [4]);
              break;
            }
            assert.ok(i < 100, `no I/O thread came back: ${r.details}`);
            await new Promise((r) => setTimeout(r, 100));
          }
          // every thread comes back (they start one by one)
          for (let i = 0; served.ioWorkers().length < ioThreads; i++) {
            assert.ok(i < 100, `${served.ioWorkers().length} of ${ioThreads} I/O threads came back`);
            await new Promise((r) => setTimeout(r, 100));
          }
          const back = served.ioWorkers();
          assert.ok(back.every((w) => !victims.includes(w)));
          // the client of the earlier tests reconnects too
          client.close();
          client = new grpc.Client(`127.0.0.1:${served.port}`, grpc.credentials.createInsecure());
        } finally {
          c.close();
        }
      });

    it("counts open streams per thread that serves them", async () => {
      const total = () => [...served.openStreams().values()].reduce((a, n) => a + n, 0);
      assert.deepEqual(
        [...served.openStreams().keys()],
        ioThreads ? Array.from({ length: ioThreads }, (_, i) => String(i)) : ["main"],
      );
      const before = total();
      const call = client.makeBidiStreamRequest(ECHO, id, id);
      const replied = new Promise<void>((resolve) => call.once("data", () => resolve()));
      call.write(Buffer.alloc(1));
      await replied;
      assert.equal(total(), before + 1);
      const ended = new Promise<void>((resolve) => call.on("status", () => resolve()));
      call.resume();
      call.end();
      await ended;
      // the hub forgets a finished stream at once (main thread) or when the I/O thread's word arrives
      for (let i = 0; total() !== before; i++) {
        assert.ok(i < 100, `still ${total()} streams open, ${before} before the call`);
        await new Promise((r) => setTimeout(r, 20));
      }
    });

    it("reads grpc-timeout values", () => {
      assert.equal(parseGrpcTimeout("5S"), 5000);
      assert.equal(parseGrpcTimeout("250m"), 250);
      assert.equal(parseGrpcTimeout("1H"), 3_600_000);
      assert.equal(parseGrpcTimeout("12x"), undefined);
      assert.equal(parseGrpcTimeout(undefined), undefined);
    });
  });
