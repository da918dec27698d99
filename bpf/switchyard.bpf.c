// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Socket-level service resolution. cgroup sock_addr hooks rewrite the
 * destination of connect() (TCP, connected UDP) and of every unconnected UDP
 * sendmsg() from a service frontend to one of its backends, and rewrite the
 * source of recvmsg() and the peer of getpeername() back to the frontend, so
 * applications only ever see the service address.
 *
 * One lookup in the hot path: priorities and traffic policies are resolved in
 * user space into the frontend entry. NodePort frontends are keyed by port
 * only (scope SY_SCOPE_NODE_PORT) and apply to any address in sy_node_ips.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "include/switchyard.h"

#define SY_SOCK_STREAM 1
#define SY_SOCK_DGRAM 2
#define SY_IPPROTO_TCP 6
#define SY_IPPROTO_UDP 17
#define SY_ECONNREFUSED 111
#define SY_NS_PER_S 1000000000ull

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SY_MAX_FRONTENDS);
	__type(key, struct sy_frontend_key);
	__type(value, struct sy_frontend);
} sy_frontends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SY_MAX_BACKENDS);
	__type(key, struct sy_backend_key);
	__type(value, struct sy_backend);
} sy_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SY_MAX_BACKENDS);
	__type(key, struct sy_member_key);
	__type(value, __u32);
} sy_members SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SY_MAX_NODE_IPS);
	__type(key, __u8[16]);
	__type(value, __u8);
} sy_node_ips SEC(".maps");

/* port (host order) -> SY_NP_* bits: which NodePort frontends exist on it; written by the agent */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} sy_node_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SY_MAX_SERVICES);
	/* read only by the agent: entries take memory as they are written, not SY_MAX_SERVICES x 256 bytes up front */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct sy_svc_name);
} sy_svc_names SEC(".maps");

/*
 * Resolutions per Service and result (enum sy_stat). The agent creates a
 * Service's entry (zeros) when it writes its name and deletes it with the
 * name, so the programs never insert; a hash, as svc ids are 32-bit and not
 * dense. Sized like sy_svc_names (--max-frontends). The commonest result,
 * ok, is counted per CPU in sy_svc_ok while the id fits there; what lands
 * here is rare (refusals, fallbacks), so it is one shared value with atomic
 * adds, preallocated (~100 bytes an entry whatever the CPUs): an element
 * allocated at run time (BPF_F_NO_PREALLOC) failed with ENOMEM when the
 * agent wrote a thousand at once (bpf_mem_alloc refills its caches
 * asynchronously).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SY_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct sy_svc_stats);
} sy_svc_stats SEC(".maps");

/*
 * Successful resolutions of svc_id, per CPU, for ids below its size (the
 * agent hands ids out from 1 upward; sized with --max-frontends): an array
 * lookup is almost free, a hash lookup costs about 50 ns a datagram. An id
 * past its end counts ok in sy_svc_stats. The agent zeroes a slot when it
 * creates the Service's sy_svc_stats entry and when it deletes it.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SY_MAX_SERVICES);
	__type(key, __u32);
	__type(value, __u64);
} sy_svc_ok SEC(".maps");

/* per-socket translation of connected sockets: lives and dies with the socket */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sy_sock_nat);
} sy_sock_nats SEC(".maps");

/*
 * Connected TCP sockets' translations, one slot per socket: cookie modulo
 * SY_TCP_NAT_SLOTS. Socket storage (sy_sock_nats) costs two allocations
 * charged to a memory cgroup per connect and their freeing after an RCU
 * grace period per close, about a microsecond a connection in all; a hash
 * keyed by cookie costs most of that in cache misses on its buckets. Cookies
 * are handed out in sequence, so the slots of consecutive connects are
 * neighbours. A connect takes its slot when it is free (compare-and-swap of
 * the cookie, so two CPUs never share one), sy_sock_release frees it at
 * close; a socket whose slot another open socket holds keeps its translation
 * in socket storage instead. Nothing is ever lost or mistaken: a slot is
 * read only by the socket whose cookie it holds.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SY_TCP_NAT_SLOTS);
	__type(key, __u32);
	__type(value, struct sy_tcp_nat);
} sy_tcp_nats SEC(".maps");

/* The socket's slot in sy_tcp_nats (NULL only if the verifier's bound check fails). */
static __always_inline struct sy_tcp_nat *sy_tcp_slot(__u64 cookie)
{
	__u32 idx = cookie & (SY_TCP_NAT_SLOTS - 1);

	return bpf_map_lookup_elem(&sy_tcp_nats, &idx);
}

/*
 * Whether a TCP socket may hold a slot: a user socket. The kernel runs
 * sock_release programs only for those (inet_release skips sk_kern_sock),
 * so a kernel client's socket (an NFS or Ceph mount, an MPTCP subflow,
 * whose connect the hook sees but whose close it never does) keeps its
 * translation in socket storage, which goes with the socket.
 */
static __always_inline int sy_tcp_slot_allowed(struct bpf_sock_addr *ctx)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(ctx->sk);

	return tp && !BPF_CORE_READ_BITFIELD(&tp->inet_conn.icsk_inet.sk, sk_kern_sock);
}

/* Records a connected TCP socket's translation in its slot; 0 when the slot is another open socket's. */
static __always_inline int sy_tcp_remember(struct bpf_sock_addr *ctx, const struct sy_sock_nat *nat)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct sy_tcp_nat *slot = sy_tcp_slot(cookie);

	if (!slot)
		return 0;
	/* a socket connecting again (after a failed connect) already holds its slot */
	if (slot->cookie != cookie && __sync_val_compare_and_swap(&slot->cookie, 0, cookie) != 0)
		return 0;
	__builtin_memcpy(&slot->nat, nat, sizeof(*nat));
	return 1;
}

/* unconnected UDP: the socket's last translation (struct sy_udp_last) */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sy_udp_last);
} sy_udp_lasts SEC(".maps");

/*
 * The generation of frontends and node addresses: the agent adds one after
 * every write of either, so a translation cached with an older one is
 * resolved again.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sy_gen SEC(".maps");

/* unconnected UDP: (socket cookie, backend) -> service address */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SY_MAX_REVNAT);
	__type(key, struct sy_revnat_key);
	__type(value, struct sy_revnat);
} sy_revnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SY_MAX_AFFINITY);
	__type(key, struct sy_affinity_key);
	__type(value, struct sy_affinity);
} sy_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sy_settings);
} sy_settings_map SEC(".maps");

/* local redirect QoS windows, per frontend; written by the programs (an LRU: a gone frontend's window ages out) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SY_MAX_FRONTENDS);
	__type(key, struct sy_frontend_key);
	__type(value, struct sy_qos_window);
} sy_qos SEC(".maps");

/* skipRedirectFromBackend: (policy id, cgroup id of a selected pod) -> 1; written by the agent */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SY_MAX_SERVICES);
	__type(key, struct sy_skip_key);
	__type(value, __u8);
} sy_lrp_skip SEC(".maps");

/* filled by the agent just before it runs sy_destroy_udp, emptied after */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sy_dead_key);
	__type(value, __u8);
} sy_dead_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SY_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} sy_counters SEC(".maps");

/* events each CPU reserved since it last woke the reader */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} sy_events_unwoken SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SY_EVENTS_BYTES);
} sy_events SEC(".maps");

static __always_inline void sy_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&sy_counters, &idx);

	if (v)
		*v += 1;
}

/* One resolution of Service svc_id: its result (enum sy_failure), and whether it took a local redirect's fallback. */
static __always_inline void sy_count_svc(__u32 svc_id, __u32 result, __u8 fallback)
{
	struct sy_svc_stats *st;

	if (result == SY_STAT_OK && fallback == SY_FB_NONE) {
		__u64 *ok = bpf_map_lookup_elem(&sy_svc_ok, &svc_id);

		if (ok) {
			*ok += 1;
			return;
		}
	}
	st = bpf_map_lookup_elem(&sy_svc_stats, &svc_id);
	if (!st)
		return;
	if (result < SY_STAT_FALLBACK)
		__sync_fetch_and_add(&st->count[result], 1);
	if (fallback != SY_FB_NONE)
		__sync_fetch_and_add(&st->count[SY_STAT_FALLBACK], 1);
}

static __always_inline int sy_is_v4mapped(const __u8 *a)
{
	__u64 lo;
	__u32 mid;

	__builtin_memcpy(&lo, a, 8);
	__builtin_memcpy(&mid, a + 8, 4);
	return lo == 0 && mid == bpf_htonl(0x0000ffff);
}

/*
 * A real subprogram (not inlined), so struct sy_event is described in the
 * object's BTF, which the layout test checks user space against.
 */
static __noinline int sy_fill_event(struct sy_event *ev, const struct sy_frontend_key *key, const struct sy_frontend *fe,
				    const struct sy_backend *be, __u32 hook_failure)
{
	__u16 failure = hook_failure & 0xffff;
	/* hook_failure: fallback << 24 | hook << 16 | failure (five arguments is the most a subprogram takes) */

	if (!ev || !key || !fe)
		return 0;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->cgroup_id = bpf_get_current_cgroup_id();
	ev->pid_tgid = bpf_get_current_pid_tgid();
	ev->svc_id = fe->svc_id;
	ev->orig_port = key->port;
	__builtin_memcpy(ev->orig_addr, key->addr, 16);
	if (be) {
		ev->nat_port = be->port;
		__builtin_memcpy(ev->nat_addr, be->addr, 16);
	} else {
		ev->nat_port = 0;
		__builtin_memset(ev->nat_addr, 0, 16);
	}
	ev->family = sy_is_v4mapped(key->addr) ? 4 : 6;
	ev->proto = key->proto;
	ev->hook = (hook_failure >> 16) & 0xff;
	ev->fallback = hook_failure >> 24;
	__builtin_memset(ev->pad, 0, sizeof(ev->pad));
	ev->nat_type = fe->nat_type;
	ev->nat_mode = fe->nat_mode;
	ev->success = failure == SY_FAIL_NONE;
	ev->failure_code = failure;
	return 0;
}

static __always_inline void sy_emit_n(const struct sy_frontend_key *key, const struct sy_frontend *fe,
				      const struct sy_backend *be, __u8 hook, __u16 failure, __u8 fallback, __u32 count)
{
	__u32 zero = 0;
	struct sy_settings *s = bpf_map_lookup_elem(&sy_settings_map, &zero);
	struct sy_event *ev;
	__u64 wakeup = BPF_RB_NO_WAKEUP;
	__u32 *unwoken;

	if (!s || !(s->flags & SY_SETTINGS_EVENTS_ON))
		return;
	if (s->sample_one_in > 1 && bpf_get_prandom_u32() % s->sample_one_in != 0) {
		sy_count(SY_CNT_EVENTS_SAMPLED_OUT);
		return;
	}
	ev = bpf_ringbuf_reserve(&sy_events, sizeof(*ev), 0);
	if (!ev) {
		sy_count(SY_CNT_EVENTS_DROPPED);
		return;
	}
	sy_fill_event(ev, key, fe, be, ((__u32)fallback << 24) | ((__u32)hook << 16) | failure);
	ev->count = count;
	/*
	 * Wake the reader only once a batch is waiting; the agent also drains on a
	 * short timer, so a quiet node still sees its events promptly. One wakeup
	 * per event would cost more than the translation itself, and asking the
	 * ring how much is waiting (bpf_ringbuf_query) reads the positions every
	 * producer and the reader write: a per-CPU count costs nothing.
	 */
	unwoken = bpf_map_lookup_elem(&sy_events_unwoken, &zero);
	if (unwoken && ++*unwoken >= SY_EVENTS_WAKEUP_EVERY) {
		*unwoken = 0;
		wakeup = BPF_RB_FORCE_WAKEUP;
	}
	bpf_ringbuf_submit(ev, wakeup);
}

static __always_inline void sy_emit(const struct sy_frontend_key *key, const struct sy_frontend *fe,
				    const struct sy_backend *be, __u8 hook, __u16 failure, __u8 fallback)
{
	sy_emit_n(key, fe, be, hook, failure, fallback, 1);
}

static __always_inline int sy_events_on(void)
{
	__u32 zero = 0;
	struct sy_settings *s = bpf_map_lookup_elem(&sy_settings_map, &zero);

	return s && (s->flags & SY_SETTINGS_EVENTS_ON);
}

static __always_inline __u64 sy_generation(void)
{
	__u32 zero = 0;
	__u64 *g = bpf_map_lookup_elem(&sy_gen, &zero);

	return g ? *g : 0;
}

static __always_inline int sy_same_frontend_key(const struct sy_frontend_key *a, const struct sy_frontend_key *b)
{
	__u64 a0, a1, b0, b1;
	__u32 a2, b2;

	__builtin_memcpy(&a0, a, 8);
	__builtin_memcpy(&a1, (const __u8 *)a + 8, 8);
	__builtin_memcpy(&a2, (const __u8 *)a + 16, 4);
	__builtin_memcpy(&b0, b, 8);
	__builtin_memcpy(&b1, (const __u8 *)b + 8, 8);
	__builtin_memcpy(&b2, (const __u8 *)b + 16, 4);
	return a0 == b0 && a1 == b1 && a2 == b2;
}

static __always_inline __u8 sy_proto(const struct bpf_sock_addr *ctx)
{
	if (ctx->type == SY_SOCK_STREAM)
		return SY_IPPROTO_TCP;
	if (ctx->type == SY_SOCK_DGRAM)
		return SY_IPPROTO_UDP;
	return 0;
}

/* The socket address the hook sees (destination, or source for recvmsg), 16-byte form. */
static __always_inline void sy_read_addr(const struct bpf_sock_addr *ctx, int v6, __u8 *addr)
{
	if (v6) {
		__u32 w[4];

		w[0] = ctx->user_ip6[0];
		w[1] = ctx->user_ip6[1];
		w[2] = ctx->user_ip6[2];
		w[3] = ctx->user_ip6[3];
		__builtin_memcpy(addr, w, 16);
	} else {
		__u32 ip4 = ctx->user_ip4;

		__builtin_memset(addr, 0, 10);
		addr[10] = 0xff;
		addr[11] = 0xff;
		__builtin_memcpy(addr + 12, &ip4, 4);
	}
}

/* Writes addr:port into the hook's socket address; fails for an IPv6 address on an IPv4 hook. */
static __always_inline int sy_write_addr(struct bpf_sock_addr *ctx, int v6, const __u8 *addr, __u16 port)
{
	if (v6) {
		__u32 w[4];

		__builtin_memcpy(w, addr, 16);
		ctx->user_ip6[0] = w[0];
		ctx->user_ip6[1] = w[1];
		ctx->user_ip6[2] = w[2];
		ctx->user_ip6[3] = w[3];
	} else {
		__u32 ip4;

		if (!sy_is_v4mapped(addr))
			return -1;
		__builtin_memcpy(&ip4, addr + 12, 4);
		ctx->user_ip4 = ip4;
	}
	ctx->user_port = port;
	return 0;
}

static __always_inline int sy_is_loopback6(const __u8 *a)
{
	__u64 lo, hi;

	__builtin_memcpy(&lo, a, 8);
	__builtin_memcpy(&hi, a + 8, 8);
	return lo == 0 && hi == bpf_cpu_to_be64(1);
}

static __always_inline int sy_is_node_addr(const __u8 *addr)
{
	/* 127.0.0.0/8 (also as ::ffff:127.x from an IPv6 socket) and ::1 are always this node's */
	if (sy_is_v4mapped(addr) && addr[12] == 127)
		return 1;
	if (sy_is_loopback6(addr))
		return 1;
	return bpf_map_lookup_elem(&sy_node_ips, addr) != NULL;
}

/* Whether a NodePort frontend of this protocol and family exists on the key's port (an array load). */
static __always_inline int sy_node_port_here(const struct sy_frontend_key *key)
{
	__u32 port = bpf_ntohs(key->port);
	__u8 *bits = bpf_map_lookup_elem(&sy_node_ports, &port);
	__u8 want;

	if (!bits)
		return 0;
	if (key->proto == SY_IPPROTO_TCP)
		want = sy_is_v4mapped(key->addr) ? SY_NP_TCP4 : SY_NP_TCP6;
	else
		want = sy_is_v4mapped(key->addr) ? SY_NP_UDP4 : SY_NP_UDP6;
	return (*bits & want) != 0;
}

static __always_inline struct sy_backend *sy_pick(struct bpf_sock_addr *ctx, const struct sy_frontend *fe)
{
	struct sy_backend_key bkey = { .set_id = fe->set_id };
	struct sy_affinity_key akey = {};
	struct sy_affinity *aff = NULL;
	struct sy_backend *be = NULL;
	__u64 now = 0;

	if (fe->affinity_timeout_s) {
		akey.netns_cookie = bpf_get_netns_cookie(ctx);
		akey.port_id = fe->port_id;
		akey.svc_id = fe->svc_id;
		now = bpf_ktime_get_ns();
		aff = bpf_map_lookup_elem(&sy_affinity, &akey);
		if (aff && now - aff->last_ns <= (__u64)fe->affinity_timeout_s * SY_NS_PER_S) {
			struct sy_member_key mkey = { .set_id = fe->set_id, .port = aff->port };
			__u32 *idx;

			__builtin_memcpy(mkey.addr, aff->addr, 16);
			/* only a backend still in the live set is reused */
			idx = bpf_map_lookup_elem(&sy_members, &mkey);
			if (idx) {
				bkey.index = *idx;
				be = bpf_map_lookup_elem(&sy_backends, &bkey);
				if (be) {
					aff->last_ns = now;
					sy_count(SY_CNT_AFFINITY_HIT);
					return be;
				}
			}
		}
	}
	bkey.index = bpf_get_prandom_u32() % fe->count;
	be = bpf_map_lookup_elem(&sy_backends, &bkey);
	if (be && fe->affinity_timeout_s) {
		struct sy_affinity fresh = { .last_ns = now, .port = be->port };

		__builtin_memcpy(fresh.addr, be->addr, 16);
		bpf_map_update_elem(&sy_affinity, &akey, &fresh, BPF_ANY);
	}
	return be;
}

static __always_inline int sy_same_peer(const __u8 *a, const __u8 *b)
{
	__u64 a0, a1, b0, b1;

	__builtin_memcpy(&a0, a, 8);
	__builtin_memcpy(&a1, a + 8, 8);
	__builtin_memcpy(&b0, b, 8);
	__builtin_memcpy(&b1, b + 8, 8);
	return a0 == b0 && a1 == b1;
}

/*
 * Copies one frontend value out of the map under its lock. The agent
 * rewrites a frontend in place under the same lock (BPF_F_LOCK), so the copy
 * is one whole value: its set_id and count belong together, and to this
 * frontend. Everything after the lookup reads the copy, never the map.
 */
static __always_inline void sy_read_frontend(struct sy_frontend *slot, struct sy_frontend *out)
{
	bpf_spin_lock(&slot->lock);
	out->svc_id = slot->svc_id;
	out->set_id = slot->set_id;
	out->count = slot->count;
	out->affinity_timeout_s = slot->affinity_timeout_s;
	out->port_id = slot->port_id;
	out->fb_set_id = slot->fb_set_id;
	out->fb_count = slot->fb_count;
	out->qos_per_s = slot->qos_per_s;
	out->nat_type = slot->nat_type;
	out->nat_mode = slot->nat_mode;
	out->flags = slot->flags;
	bpf_spin_unlock(&slot->lock);
}

/*
 * Whether this redirect fits in the frontend's QoS window (one per second).
 * Approximate under concurrency, by design: the count is an atomic add, but
 * two CPUs that see a new second at once both start the window, and two
 * that find no window both insert one, so a second may let a few more
 * through than the limit (about one per CPU); never fewer.
 */
static __always_inline int sy_qos_allow(const struct sy_frontend_key *key, __u32 limit)
{
	__u64 now_s = bpf_ktime_get_ns() / SY_NS_PER_S;
	struct sy_qos_window *w = bpf_map_lookup_elem(&sy_qos, key);

	if (!w) {
		struct sy_qos_window fresh = { .second = now_s, .count = 1 };

		bpf_map_update_elem(&sy_qos, key, &fresh, BPF_NOEXIST);
		return 1;
	}
	if (w->second != now_s) {
		w->second = now_s;
		w->count = 1;
		return 1;
	}
	return __sync_fetch_and_add(&w->count, 1) < limit;
}

/* Whether the caller's cgroup, or one of its ancestors, is a selected pod of policy svc_id. */
static __always_inline int sy_from_backend(__u32 svc_id)
{
	struct sy_skip_key k = { .svc_id = svc_id, .cgroup_id = bpf_get_current_cgroup_id() };
	int level;

	if (bpf_map_lookup_elem(&sy_lrp_skip, &k))
		return 1;
	/* a container's cgroup sits under its pod's: absolute levels 1..N, up to the client's own */
	for (level = 1; level <= SY_SKIP_ANCESTOR_LEVELS; level++) {
		k.cgroup_id = bpf_get_current_ancestor_cgroup_id(level);
		if (!k.cgroup_id)
			break;
		if (bpf_map_lookup_elem(&sy_lrp_skip, &k))
			return 1;
	}
	return 0;
}

/*
 * A local redirect frontend carries two sets: the node's own pods (set_id)
 * and the fallback (fb_set_id, the Service's backends). Chooses one in the
 * copy; returns why the fallback was taken (SY_FB_NONE: the local set).
 */
static __always_inline __u8 sy_local_redirect(const struct sy_frontend_key *key, struct sy_frontend *fe)
{
	__u8 why = SY_FB_NONE;

	if (fe->count == 0)
		why = SY_FB_NO_LOCAL;
	else if ((fe->flags & SY_FE_SKIP_FROM_BACKEND) && sy_from_backend(fe->svc_id))
		why = SY_FB_FROM_BACKEND;
	else if (fe->qos_per_s && !sy_qos_allow(key, fe->qos_per_s))
		why = SY_FB_QOS;
	if (why != SY_FB_NONE) {
		fe->set_id = fe->fb_set_id;
		fe->count = fe->fb_count;
	}
	return why;
}

/*
 * Unconnected UDP to the frontend this socket sent to last, with frontends
 * and node addresses unchanged since (sy_gen): the same backend, with no
 * frontend lookup, no backend pick and no reverse-NAT write. The flow
 * emits an event at most every SY_FLOW_EVENT_MS, counting the datagrams
 * since its last one. Returns 1 when it translated, 0 when the datagram
 * takes the full path.
 */
static __always_inline int sy_udp_cached(struct bpf_sock_addr *ctx, int v6, const struct sy_frontend_key *key,
					 __u8 hook)
{
	struct sy_udp_last *c = bpf_sk_storage_get(&sy_udp_lasts, ctx->sk, NULL, 0);
	__u64 now, jiffies;

	if (!c || !sy_same_frontend_key(&c->front, key) || c->gen != sy_generation())
		return 0;
	if (sy_write_addr(ctx, v6, c->back_addr, c->back_port) < 0)
		return 0;
	sy_count(SY_CNT_TRANSLATED);
	sy_count_svc(c->svc_id, SY_FAIL_NONE, SY_FB_NONE);
	c->ev_count += 1;
	if (!sy_events_on())
		return 1;
	/* the clock is read once per jiffy at most (a load, where the clock costs more): the period is checked then */
	jiffies = bpf_jiffies64();
	if (jiffies == c->ev_jiffies)
		return 1;
	c->ev_jiffies = jiffies;
	now = bpf_ktime_get_ns();
	if (now - c->ev_ns >= SY_FLOW_EVENT_MS * 1000000ull) {
		struct sy_frontend fe = { .svc_id = c->svc_id, .nat_type = c->nat_type, .nat_mode = c->nat_mode };
		struct sy_backend be = { .port = c->back_port };

		__builtin_memcpy(be.addr, c->back_addr, 16);
		sy_emit_n(key, &fe, &be, hook, SY_FAIL_NONE, SY_FB_NONE, c->ev_count);
		c->ev_count = 0;
		c->ev_ns = now;
	}
	return 1;
}

/* Remembers an unconnected UDP socket's translation (not for affinity or local redirect: those decide per datagram). */
static __always_inline void sy_udp_remember(struct bpf_sock_addr *ctx, const struct sy_frontend_key *key,
					    const struct sy_frontend *fe, const struct sy_backend *be, __u64 gen)
{
	struct sy_udp_last *c;

	if (fe->affinity_timeout_s || fe->nat_type == SY_NAT_LOCAL_REDIRECT)
		return;
	c = bpf_sk_storage_get(&sy_udp_lasts, ctx->sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!c)
		return;
	__builtin_memcpy(&c->front, key, sizeof(*key));
	__builtin_memcpy(c->back_addr, be->addr, 16);
	c->back_port = be->port;
	c->gen = gen;
	c->svc_id = fe->svc_id;
	c->nat_type = fe->nat_type;
	c->nat_mode = fe->nat_mode;
	/* this datagram's event (if events are on) is emitted by the caller: the flow's next is due a period later */
	c->ev_ns = bpf_ktime_get_ns();
	c->ev_jiffies = bpf_jiffies64();
	c->ev_count = 0;
}

/* Forward translation for connect and sendmsg. Returns the hook's verdict. */
static __always_inline int sy_forward(struct bpf_sock_addr *ctx, int v6, __u8 hook, int connected)
{
	struct sy_frontend_key key = {};
	struct sy_frontend copy = {};
	struct sy_frontend *slot;
	const struct sy_frontend *fe = &copy;
	struct sy_backend *be;
	__u8 proto = sy_proto(ctx);
	__u8 fallback = SY_FB_NONE;
	__u64 gen = 0;

	if (!proto)
		return 1;
	sy_read_addr(ctx, v6, key.addr);
	key.port = (__u16)ctx->user_port;
	key.proto = proto;
	if (!connected) {
		if (sy_udp_cached(ctx, v6, &key, hook))
			return 1;
		/* read before the frontend: a write after this read makes the cached translation stale */
		gen = sy_generation();
	}
	slot = bpf_map_lookup_elem(&sy_frontends, &key);
	if (!slot) {
		struct sy_frontend_key nkey = { .port = key.port, .proto = proto, .scope = SY_SCOPE_NODE_PORT };

		/* no frontend: one lookup, and an array load to tell that no NodePort is on this port */
		if (!sy_node_port_here(&key) || !sy_is_node_addr(key.addr)) {
			sy_count(SY_CNT_MISS);
			return 1;
		}
		/* node ports are kept per family: ::ffff:0.0.0.0 for IPv4, :: for IPv6 */
		if (sy_is_v4mapped(key.addr)) {
			nkey.addr[10] = 0xff;
			nkey.addr[11] = 0xff;
		}
		slot = bpf_map_lookup_elem(&sy_frontends, &nkey);
		if (!slot) {
			sy_count(SY_CNT_MISS);
			return 1;
		}
	}
	sy_read_frontend(slot, &copy);
	if (copy.nat_type == SY_NAT_LOCAL_REDIRECT)
		fallback = sy_local_redirect(&key, &copy);
	if (fe->count == 0) {
		__u16 why = (fe->flags & SY_FE_LOCAL_ONLY) ? SY_FAIL_NO_LOCAL_BACKEND : SY_FAIL_NO_BACKEND;

		sy_count(SY_CNT_FAILED);
		sy_count_svc(fe->svc_id, why, fallback);
		sy_emit(&key, fe, NULL, hook, why, fallback);
		bpf_set_retval(-SY_ECONNREFUSED);
		return 0;
	}
	be = sy_pick(ctx, fe);
	if (!be) {
		sy_count(SY_CNT_FAILED);
		sy_count_svc(fe->svc_id, SY_FAIL_BACKEND_MISSING, fallback);
		sy_emit(&key, fe, NULL, hook, SY_FAIL_BACKEND_MISSING, fallback);
		bpf_set_retval(-SY_ECONNREFUSED);
		return 0;
	}
	if (sy_write_addr(ctx, v6, be->addr, be->port) < 0) {
		sy_count(SY_CNT_FAILED);
		sy_count_svc(fe->svc_id, SY_FAIL_FAMILY, fallback);
		sy_emit(&key, fe, be, hook, SY_FAIL_FAMILY, fallback);
		bpf_set_retval(-SY_ECONNREFUSED);
		return 0;
	}
	if (connected) {
		/* one peer per connected socket: TCP in its slot, UDP (and TCP whose slot is taken) on the socket itself */
		struct sy_sock_nat nat = { .front_port = key.port, .back_port = be->port };
		int slotted = proto == SY_IPPROTO_TCP && sy_tcp_slot_allowed(ctx);
		struct sy_sock_nat *st;

		__builtin_memcpy(nat.front_addr, key.addr, 16);
		__builtin_memcpy(nat.back_addr, be->addr, 16);
		if (!slotted || !sy_tcp_remember(ctx, &nat)) {
			if (slotted)
				sy_count(SY_CNT_TCP_SLOT_TAKEN);
			st = bpf_sk_storage_get(&sy_sock_nats, ctx->sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
			if (st)
				__builtin_memcpy(st, &nat, sizeof(nat));
		}
	} else {
		struct sy_revnat rv = { .port = key.port };
		struct sy_revnat_key rk = { .cookie = bpf_get_socket_cookie(ctx), .port = be->port };
		struct sy_revnat *cur;

		__builtin_memcpy(rk.addr, be->addr, 16);
		__builtin_memcpy(rv.addr, key.addr, 16);
		/* every datagram passes here: write only when the entry is new or different */
		cur = bpf_map_lookup_elem(&sy_revnat, &rk);
		if (!cur || cur->port != rv.port || !sy_same_peer(cur->addr, rv.addr))
			bpf_map_update_elem(&sy_revnat, &rk, &rv, BPF_ANY);
		sy_udp_remember(ctx, &key, fe, be, gen);
	}
	sy_count(SY_CNT_TRANSLATED);
	sy_count_svc(fe->svc_id, SY_FAIL_NONE, fallback);
	sy_emit(&key, fe, be, hook, SY_FAIL_NONE, fallback);
	return 1;
}

/* Reverse translation for recvmsg (reply source) and getpeername (peer). */
static __always_inline int sy_reverse(struct bpf_sock_addr *ctx, int v6)
{
	struct sy_revnat_key rk = {};
	struct sy_udp_last *last;
	struct sy_sock_nat *st;
	struct sy_revnat *rv;

	if (!sy_proto(ctx))
		return 1;
	sy_read_addr(ctx, v6, rk.addr);
	rk.port = (__u16)ctx->user_port;
	st = NULL;
	if (ctx->type == SY_SOCK_STREAM) {
		__u64 cookie = bpf_get_socket_cookie(ctx);
		struct sy_tcp_nat *slot = sy_tcp_slot(cookie);

		if (slot && slot->cookie == cookie)
			st = &slot->nat;
	}
	/* connected UDP; a TCP socket whose slot was taken, or that an earlier build translated */
	if (!st)
		st = bpf_sk_storage_get(&sy_sock_nats, ctx->sk, NULL, 0);
	if (st && st->back_port == rk.port && sy_same_peer(st->back_addr, rk.addr)) {
		if (sy_write_addr(ctx, v6, st->front_addr, st->front_port) == 0)
			sy_count(SY_CNT_REVERSED);
		return 1;
	}
	/* unconnected UDP: a reply from the backend this socket sent to last */
	last = bpf_sk_storage_get(&sy_udp_lasts, ctx->sk, NULL, 0);
	if (last && last->back_port == rk.port && sy_same_peer(last->back_addr, rk.addr)) {
		if (sy_write_addr(ctx, v6, last->front.addr, last->front.port) == 0)
			sy_count(SY_CNT_REVERSED);
		return 1;
	}
	rk.cookie = bpf_get_socket_cookie(ctx);
	rv = bpf_map_lookup_elem(&sy_revnat, &rk);
	if (!rv)
		return 1;
	if (sy_write_addr(ctx, v6, rv->addr, rv->port) == 0)
		sy_count(SY_CNT_REVERSED);
	return 1;
}

SEC("cgroup/connect4")
int sy_connect4(struct bpf_sock_addr *ctx)
{
	return sy_forward(ctx, 0, SY_HOOK_CONNECT4, 1);
}

SEC("cgroup/connect6")
int sy_connect6(struct bpf_sock_addr *ctx)
{
	return sy_forward(ctx, 1, SY_HOOK_CONNECT6, 1);
}

SEC("cgroup/sendmsg4")
int sy_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sy_forward(ctx, 0, SY_HOOK_SENDMSG4, 0);
}

SEC("cgroup/sendmsg6")
int sy_sendmsg6(struct bpf_sock_addr *ctx)
{
	return sy_forward(ctx, 1, SY_HOOK_SENDMSG6, 0);
}

SEC("cgroup/recvmsg4")
int sy_recvmsg4(struct bpf_sock_addr *ctx)
{
	return sy_reverse(ctx, 0);
}

SEC("cgroup/recvmsg6")
int sy_recvmsg6(struct bpf_sock_addr *ctx)
{
	return sy_reverse(ctx, 1);
}

SEC("cgroup/getpeername4")
int sy_getpeername4(struct bpf_sock_addr *ctx)
{
	return sy_reverse(ctx, 0);
}

SEC("cgroup/getpeername6")
int sy_getpeername6(struct bpf_sock_addr *ctx)
{
	return sy_reverse(ctx, 1);
}

/* A TCP socket is closed: its slot in sy_tcp_nats, if it holds one, is free again. */
SEC("cgroup/sock_release")
int sy_sock_release(struct bpf_sock *ctx)
{
	struct sy_tcp_nat *slot;
	__u64 cookie;

	if (ctx->protocol != SY_IPPROTO_TCP)
		return 1;
	cookie = bpf_get_socket_cookie(ctx);
	slot = sy_tcp_slot(cookie);
	/* only the socket whose cookie a slot holds ever changes it from that cookie */
	if (slot && slot->cookie == cookie)
		slot->cookie = 0;
	return 1;
}

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

#define SY_AF_INET 2
#define SY_AF_INET6 10

/*
 * Socket iterator (kernel >= 6.5): destroys connected UDP sockets whose peer
 * is a backend that was just removed, so a client (a DNS resolver, say)
 * does not keep sending to a dead pod. Only sockets this agent translated
 * are touched: their connect left sy_sock_nats on them (so they live in the
 * cgroup the programs are attached to), and they are still connected to the
 * backend it chose. A socket of another process that connects to the same
 * address by itself is left alone. The agent runs the iterator once per
 * network namespace of the processes in its cgroup; each destroyed socket's
 * peer is written to the iterator's output, which the agent counts.
 */
SEC("iter/udp")
int sy_destroy_udp(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp = ctx->udp_sk;
	struct sock *sk = (struct sock *)udp;
	struct sy_dead_key k = {};
	struct sy_sock_nat *st;
	__u16 family;

	if (!sk)
		return 0;
	st = bpf_sk_storage_get(&sy_sock_nats, sk, NULL, 0);
	if (!st)
		return 0;
	family = sk->__sk_common.skc_family;
	if (family == SY_AF_INET) {
		__u32 d = sk->__sk_common.skc_daddr;

		k.addr[10] = 0xff;
		k.addr[11] = 0xff;
		__builtin_memcpy(&k.addr[12], &d, 4);
	} else if (family == SY_AF_INET6) {
		__builtin_memcpy(k.addr, sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16);
	} else {
		return 0;
	}
	k.port = sk->__sk_common.skc_dport;
	/* a later connect to an address that is no frontend leaves the storage behind */
	if (!k.port || k.port != st->back_port || !sy_same_peer(k.addr, st->back_addr))
		return 0;
	if (!bpf_map_lookup_elem(&sy_dead_backends, &k))
		return 0;
	if (bpf_sock_destroy((struct sock_common *)sk) == 0) {
		sy_count(SY_CNT_UDP_DESTROYED);
		bpf_seq_write(ctx->meta->seq, &k, sizeof(k));
	}
	return 0;
}

char _license[] SEC("license") = "Dual BSD/GPL";
