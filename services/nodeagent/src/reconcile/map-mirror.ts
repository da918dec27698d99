/**
 * The agent's mirror of the maps it writes: what it believes they hold
 * (adopted from a read, then following every op that landed), how many
 * backend-set slots hold each backend, and the names and free ids plans
 * need. Nothing is read back after a write.
 */
import { applyOpToState, type Backend, type MapOp, type MapState } from "../bpf/maps.ts";
import { MapStateIndex } from "../plan/plan-maps.ts";

export class MapMirror {
  /** what the maps hold, as far as this agent knows */
  readonly state: MapState;
  /** how many backend-set slots hold each backend ("ip|port"): a backend at 0 left the maps */
  private readonly refs: Map<string, number>;
  /** names and free ids of the mirror, for scoped plans */
  readonly index: MapStateIndex;

  /** Takes what the maps hold (a read) as the truth to plan against. */
  constructor(state: MapState) {
    this.state = state;
    this.refs = countBackends(state);
    this.index = MapStateIndex.of(state);
  }

  /** whether the maps hold no entry the agent writes */
  get isEmpty(): boolean {
    const s = this.state;
    return s.frontends.size === 0 && s.backendSets.size === 0 && s.names.size === 0 && s.nodeIps.size === 0;
  }

  /** Follows ops that landed in the maps; returns the backends no set holds any more. */
  track(landed: readonly MapOp[]): Backend[] {
    return applyTracked(this.state, this.refs, landed, this.index);
  }

  /** entries of the maps the agent writes, as the mirror knows them (no map read) */
  get entryCounts(): Record<string, number> {
    let backends = 0;
    for (const set of this.state.backendSets.values()) backends += set.length;
    return {
      sy_frontends: this.state.frontends.size,
      sy_backends: backends,
      sy_members: backends,
      sy_svc_names: this.state.names.size,
      sy_node_ips: this.state.nodeIps.size,
    };
  }
}

const backendKey = (b: Backend) => `${b.ip}|${b.port}`;

/** Pure: how many backend-set slots hold each backend. */
export function countBackends(state: MapState): Map<string, number> {
  const refs = new Map<string, number>();
  for (const set of state.backendSets.values())
    for (const b of set) if (b) refs.set(backendKey(b), (refs.get(backendKey(b)) ?? 0) + 1);
  return refs;
}

/**
 * Applies ops (already written to the maps) to the mirror and the backend
 * counts; returns the backends that are in no set any more (for UDP sockets
 * to let go of them). Costs the ops, not the size of the maps.
 */
export function applyTracked(
  state: MapState,
  refs: Map<string, number>,
  ops: readonly MapOp[],
  index?: MapStateIndex,
): Backend[] {
  const dropped = new Map<string, Backend>();
  const dec = (b: Backend | undefined) => {
    if (!b) return;
    const k = backendKey(b);
    const n = (refs.get(k) ?? 1) - 1;
    if (n <= 0) {
      refs.delete(k);
      dropped.set(k, b);
    } else refs.set(k, n);
  };
  for (const o of ops) {
    if (o.op === "put-backend") {
      dec(state.backendSets.get(o.setId)?.[o.index]);
      const k = backendKey(o.backend);
      refs.set(k, (refs.get(k) ?? 0) + 1);
    } else if (o.op === "delete-backend") dec(state.backendSets.get(o.setId)?.[o.index]);
    index?.note(state, o);
    applyOpToState(state, o);
  }
  return [...dropped].filter(([k]) => !refs.has(k)).map(([, b]) => b);
}
