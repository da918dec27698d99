/**
 * Which Service or ServiceImport serves a frontend (ip, port, protocol)
 * several of them claim (no I/O, no time): a resource of the view's home
 * cluster first, then the first by resource name; the others are told, and
 * get it when the owner lets go.
 */
import { NatMode, type ServiceAssignment } from "@switchyard/proto/assignment";

function frontendKey(f: { ip: string; port: number; protocol: number; mode: NatMode }): string {
  return `${f.ip}|${f.port}|${f.protocol}|${f.mode === NatMode.NAT_MODE_NODE_PORT ? "node" : ""}`;
}

export class FrontendClaims {
  /** frontend key → resources claiming it */
  private readonly claims = new Map<string, Set<string>>();
  /** resource name → the frontend keys it claims */
  private readonly claimedBy = new Map<string, string[]>();

  private readonly home: string | undefined;

  constructor(home: string | undefined) {
    this.home = home;
  }

  clear(): void {
    this.claims.clear();
    this.claimedBy.clear();
  }

  claim(resName: string, frontends: ServiceAssignment["frontends"]): void {
    const keys = frontends.map(frontendKey);
    this.claimedBy.set(resName, keys);
    for (const k of keys) {
      const set = this.claims.get(k) ?? new Set<string>();
      set.add(resName);
      this.claims.set(k, set);
    }
  }

  drop(resName: string): void {
    for (const k of this.claimedBy.get(resName) ?? []) {
      const set = this.claims.get(k);
      set?.delete(resName);
      if (set && set.size === 0) this.claims.delete(k);
    }
    this.claimedBy.delete(resName);
  }

  /** The resources that claim any frontend this one claims (itself included when it claims one). */
  *sharing(resName: string): Generator<string> {
    for (const k of this.claimedBy.get(resName) ?? []) yield* this.claims.get(k) ?? [];
  }

  /**
   * Who serves a frontend several Services claim: a Service of the view's
   * home cluster first (an agent reaches its own cluster's ClusterIP as its
   * cluster does), then the first by resource name. The others are told.
   */
  private owner(key: string): string | undefined {
    let best: string | undefined;
    const home = this.home;
    const isHome = (n: string) => home !== undefined && n.split("/", 2)[1] === home;
    for (const n of this.claims.get(key) ?? []) {
      if (best === undefined) best = n;
      else {
        const nHome = isHome(n);
        const bHome = isHome(best);
        if ((nHome && !bHome) || (nHome === bHome && n < best)) best = n;
      }
    }
    return best;
  }

  /** Drops frontends another resource owns, saying so. */
  ownFrontends(resName: string, body: ServiceAssignment, notes: string[]): void {
    body.frontends = body.frontends.filter((f) => {
      const owner = this.owner(frontendKey(f));
      if (owner && owner !== resName) {
        notes.push(`frontend ${f.ip || "<node>"}:${f.port} is already served by ${owner}; not assigned`);
        return false;
      }
      return true;
    });
  }
}
