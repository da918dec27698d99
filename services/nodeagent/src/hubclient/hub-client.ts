/**
 * gRPC adapter: keeps one assignment stream open to one of several hubs,
 * failing over with jittered exponential backoff. Each received delta is
 * handed to `onDelta`, whose answer (errors or none) becomes the ACK/NACK.
 * A refusal (bad token) is reported clearly and retried slowly, never
 * silently.
 *
 * Authentication: the agent's own credential when it holds one (issued by
 * the hub after the first join, rotated by the hub), else the join token.
 * When the hub refuses the credential, the next attempt uses the join token.
 */
import fs from "node:fs";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "@switchyard/lib/log";
import {
  AssignmentServiceClient,
  type NodeReport,
  ResourceEncoding,
  type StreamAssignmentsRequest,
  type StreamAssignmentsResponse,
  type Welcome,
} from "@switchyard/proto/assignment";
import type { ResourceError } from "../desired/resources.ts";
import type { CredentialStore } from "./credential-store.ts";
import {
  type CaSource,
  explainTlsError,
  explainTransportMismatch,
  isConnectFailure,
  probeHubTransport,
} from "./transport-diagnosis.ts";
import { unpackResources } from "./unpack.ts";

export type HubClientOptions = {
  hubs: string[];
  /** join token ("" when the agent relies on its stored credential) */
  token: string;
  credentials?: CredentialStore;
  nodeName: string;
  nodeAddresses: string[];
  agentVersion: string;
  /** PEM CA bundle that signs the hub's certificate; insecure when absent */
  caFile: string | undefined;
  /** the flag caFile came from, for errors that say which one to fix */
  caSource?: CaSource;
  log: Logger;
  /** versions held, sent as initial_resource_versions when the hub asks for them */
  heldVersions: () => Record<string, string>;
  /** the view version of what is held ("" when nothing is): the resume shortcut */
  heldViewVersion?: () => string;
  onWelcome: (w: Welcome) => void;
  onDelta: (m: StreamAssignmentsResponse) => Promise<ResourceError[]> | ResourceError[];
  onRefused?: (message: string) => void;
  /** why the agent cannot join, in words, once until it changes or the agent joins (run: a line on stderr) */
  onCannotJoin?: (reason: string) => void;
  maxBackoffMs?: number;
};

export class HubClient {
  private readonly opts: HubClientOptions;
  private stopped = false;
  private hubIndex = 0;
  private backoffMs = 250;
  private timer: NodeJS.Timeout | undefined;
  private client: AssignmentServiceClient | undefined;
  private call: grpc.ClientDuplexStream<StreamAssignmentsRequest, StreamAssignmentsResponse> | undefined;
  connectedHub: string | undefined;
  /** the hub said our held view version is not its view's: list every version next time */
  private resendVersions = false;
  /** the next attempt goes at once (the hub asked for the versions held), without touching the backoff */
  private immediate = false;
  /** the last failure explained in words (logged once until it changes or the agent joins) */
  private explained: string | undefined;
  /** the last reason given to onCannotJoin (said again only when it changes, or after a join) */
  private told: string | undefined;
  private probing = false;

  constructor(opts: HubClientOptions) {
    if (opts.hubs.length === 0) throw new Error("at least one hub address is needed");
    this.opts = opts;
  }

  start(): void {
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.call?.cancel();
    this.client?.close();
  }

  private credentials(): grpc.ChannelCredentials {
    if (!this.opts.caFile) return grpc.credentials.createInsecure();
    return grpc.credentials.createSsl(fs.readFileSync(this.opts.caFile));
  }

  /** Sends a NodeReport (the entry interface's addresses) on the open stream; false while none is joined. */
  sendNodeReport(report: NodeReport): boolean {
    if (!this.call || this.connectedHub === undefined) return false;
    this.call.write({ kind: { $case: "nodeReport", value: report } });
    return true;
  }

  private connect(): void {
    if (this.stopped) return;
    const hub = this.opts.hubs[this.hubIndex % this.opts.hubs.length]!;
    const log = this.opts.log.child({ hub });
    this.client?.close();
    const client = new AssignmentServiceClient(hub, this.credentials(), {
      "grpc.max_receive_message_length": 256 * 1024 * 1024,
      "grpc.keepalive_time_ms": 30_000,
    });
    this.client = client;
    const md = new grpc.Metadata();
    const credential = this.opts.credentials?.load();
    const usingCredential = credential !== undefined;
    md.set("authorization", `Bearer ${credential?.token ?? this.opts.token}`);
    const call = client.streamAssignments(md);
    this.call = call;
    let gotWelcome = false;
    let queue = Promise.resolve();
    call.on("data", (m: StreamAssignmentsResponse) => {
      if (m.welcome) {
        gotWelcome = true;
        this.backoffMs = 250;
        this.connectedHub = hub;
        this.resendVersions = false;
        this.explained = undefined;
        this.told = undefined;
        log.info({ hubId: m.welcome.hubId, cluster: m.welcome.cluster }, "joined hub");
        this.opts.onWelcome(m.welcome);
      }
      if (m.credential?.token) {
        try {
          this.opts.credentials?.save(m.credential.token, m.credential.expiresAt, m.credential.natsCreds);
          log.info(
            { expiresAt: m.credential.expiresAt, natsUser: m.credential.natsCreds !== "" },
            "agent credential received",
          );
        } catch (e) {
          // the stream goes on; the next connect presents the join token again
          log.error({ err: (e as Error).message }, "cannot keep the agent credential in the state directory");
        }
      }
      if (!m.nonce) return;
      // deltas are applied one at a time, in order
      queue = queue.then(async () => {
        // a stream given up (below) applies nothing more: its later messages may complete a view it lacks a part of
        if (call !== this.call) return;
        let errors: ResourceError[];
        /** the message could not be taken at all: what the agent holds is not what the hub believes */
        let whole = false;
        try {
          const delta = unpackResources(m);
          if (delta.ok && m.resourcesZstd.length > 0)
            log.debug(
              { nonce: m.nonce, packedBytes: m.resourcesZstd.length, bytes: m.resourcesZstdSize },
              "packed batch unpacked",
            );
          // a batch that cannot be unpacked changes nothing: NACKed whole, the last good state stays
          whole = !delta.ok;
          errors = delta.ok
            ? await this.opts.onDelta(delta.value)
            : [{ name: "(resources_zstd)", message: delta.error }];
        } catch (e) {
          whole = true;
          errors = [{ name: "(agent)", message: `applying assignments failed: ${(e as Error).message}` }];
        }
        if (call !== this.call) return;
        const ack: StreamAssignmentsRequest = {
          kind: {
            $case: "ack",
            value: {
              responseNonce: m.nonce,
              error:
                errors.length > 0
                  ? { message: `${errors.length} resource(s) not applied`, resourceErrors: errors }
                  : undefined,
            },
          },
        };
        if (!whole) call.write(ack);
        else {
          // the hub would go on and mark the view complete without what this message carried: start
          // again, listing every version held, so the hub sends what is missing before the view is complete
          log.warn(
            { nonce: m.nonce, reason: errors[0]!.message },
            "message not applied; resuming the stream",
          );
          this.resendVersions = true;
          this.backoffMs = Math.max(this.backoffMs, 1000);
          this.call = undefined;
          // the NACK goes out first (the hub records it); the stream is half-closed and, a little later, cancelled
          call.write(ack);
          call.end();
          setTimeout(() => call.cancel(), 2000).unref();
          this.retry();
        }
      });
    });
    call.on("error", (e: grpc.ServiceError) => {
      // a stream given up on ends with an error too: only the current stream decides what happens next
      if (this.stopped || (this.call !== undefined && call !== this.call)) return;
      if (e.code === grpc.status.UNAUTHENTICATED || e.code === grpc.status.PERMISSION_DENIED) {
        log.error(
          { reason: e.details, auth: usingCredential ? "credential" : "join token" },
          "hub refused this agent",
        );
        // a refused credential is dropped: the next attempt presents the join token
        if (usingCredential && this.opts.token) this.opts.credentials?.clear();
        this.tell(
          `the hub refused this agent's ${usingCredential ? "credential" : "join token"}: ${e.details}`,
        );
        this.opts.onRefused?.(e.details);
        this.backoffMs = Math.max(this.backoffMs, 5000);
      } else if (e.code === grpc.status.FAILED_PRECONDITION && e.details.startsWith("resend versions")) {
        // the view moved on while we were away: list every version held, at once, to the same hub
        log.info({ reason: e.details }, "hub asks for the versions held");
        this.resendVersions = true;
        this.hubIndex--;
        // once, at once: the backoff itself stays (a hub that then goes away is retried with it)
        this.immediate = true;
      } else if (!this.explainFailure(hub, e.details, log)) {
        log.warn(
          { code: grpc.status[e.code], reason: e.details, wasJoined: gotWelcome },
          "hub stream failed",
        );
      }
      this.retry();
    });
    call.on("end", () => {
      if (!this.stopped && call === this.call) this.retry();
    });
    // resume: one version for everything held, unless the hub asked for the list
    const held = this.opts.heldViewVersion?.() ?? "";
    const shortcut = held !== "" && held !== "0000000000000000" && !this.resendVersions;
    call.write({
      kind: {
        $case: "hello",
        value: {
          nodeName: this.opts.nodeName,
          agentVersion: this.opts.agentVersion,
          initialResourceVersions: shortcut ? {} : this.opts.heldVersions(),
          nodeAddresses: this.opts.nodeAddresses,
          heldViewVersion: shortcut ? held : "",
          acceptEncodings: [ResourceEncoding.RESOURCE_ENCODING_ZSTD],
        },
      },
    });
  }

  private tell(reason: string): void {
    if (reason === this.told) return;
    this.told = reason;
    this.opts.onCannotJoin?.(reason);
  }

  /**
   * A failure that has a cause a person can fix (a CA that did not sign the
   * hub's certificate, TLS on one side only) is said in words, once until
   * it changes; true when it was (the raw line is then left out).
   */
  private explainFailure(hub: string, details: string, log: Logger): boolean {
    const ca =
      this.opts.caSource ??
      (this.opts.caFile ? { flag: "--hub-ca" as const, file: this.opts.caFile } : undefined);
    const said = (reason: string) => {
      if (reason !== this.explained) log.error({ reason }, "cannot join the hub");
      this.explained = reason;
      this.tell(reason);
    };
    const tlsProblem = explainTlsError(details, hub, ca);
    if (tlsProblem) {
      said(tlsProblem);
      return true;
    }
    if (!isConnectFailure(details)) return false;
    if (this.explained && this.probing) return true;
    if (!this.probing) {
      this.probing = true;
      void probeHubTransport(hub).then((p) => {
        this.probing = false;
        const mismatch = explainTransportMismatch(hub, p.speaks, ca);
        if (mismatch && !this.stopped && this.connectedHub === undefined) said(mismatch);
      });
    }
    return this.explained !== undefined;
  }

  private retry(): void {
    if (this.stopped || this.timer) return;
    this.call = undefined;
    this.connectedHub = undefined;
    this.hubIndex++;
    const max = this.opts.maxBackoffMs ?? 30_000;
    const delay = this.immediate ? 0 : Math.min(this.backoffMs, max) * (0.5 + Math.random() * 0.5);
    this.immediate = false;
    this.backoffMs = Math.min(this.backoffMs * 2, max);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.connect();
    }, delay);
  }
}
