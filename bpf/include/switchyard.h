/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one definition of every struct that crosses the kernel boundary.
 * Both the BPF programs and user space (services/nodeagent/src/bpf/layout.ts,
 * checked against the compiled object's BTF by a test) follow this file.
 *
 * Addresses are always 16 bytes: IPv6 as is, IPv4 as v4-mapped IPv6
 * (::ffff:a.b.c.d), so one map serves both families.
 * Ports are in network byte order, as the kernel hands them to the hooks.
 */
#ifndef SWITCHYARD_H
#define SWITCHYARD_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#include <linux/bpf.h> /* struct bpf_spin_lock */
#endif

/* Map sizes; overridable at build time (-DSY_MAX_FRONTENDS=...) and at load. */
#ifndef SY_MAX_FRONTENDS
#define SY_MAX_FRONTENDS 65536
#endif
#ifndef SY_MAX_BACKENDS
#define SY_MAX_BACKENDS 1048576
#endif
#ifndef SY_MAX_SERVICES
#define SY_MAX_SERVICES 65536
#endif
#ifndef SY_MAX_REVNAT
#define SY_MAX_REVNAT 262144
#endif
/* slots of sy_tcp_nats (a power of two): a TCP socket whose slot another open socket holds keeps its translation in socket storage */
#ifndef SY_TCP_NAT_SLOTS
#define SY_TCP_NAT_SLOTS 65536
#endif
#ifndef SY_MAX_AFFINITY
#define SY_MAX_AFFINITY 262144
#endif
#ifndef SY_MAX_NODE_IPS
#define SY_MAX_NODE_IPS 1024
#endif
#define SY_EVENTS_BYTES (1 << 22)
/*
 * each CPU wakes the reader after this many events (about 45 KiB of records);
 * the agent also drains every SY_EVENTS_DRAIN_MS
 */
#define SY_EVENTS_WAKEUP_EVERY 512
#define SY_EVENTS_DRAIN_MS 50
/* unconnected UDP: a flow (socket -> frontend -> backend) emits at most one event per this many ms, with a datagram count */
#define SY_FLOW_EVENT_MS 1000
/* a service name and its NUL; a longer name is stored cut, with a hash of the whole (storedServiceName in layout.ts) */
#define SY_NAME_LEN 256

/* sy_frontend.nat_type */
enum sy_nat_type {
	SY_NAT_SERVICE = 1,
	SY_NAT_LOCAL_REDIRECT = 2,
	SY_NAT_BALANCING = 3,
};

/* sy_frontend.nat_mode */
enum sy_nat_mode {
	SY_MODE_CLUSTER_IP = 1,
	SY_MODE_NODE_PORT = 2,
	SY_MODE_LOAD_BALANCER = 3,
	SY_MODE_EXTERNAL_IP = 4,
	SY_MODE_LOCAL_REDIRECT_SERVICE = 5, /* a LocalRedirectPolicy on a Service's ClusterIP */
	SY_MODE_LOCAL_REDIRECT_ADDRESS = 6, /* a LocalRedirectPolicy on a virtual address */
};

/* sy_frontend_key.scope */
enum sy_scope {
	SY_SCOPE_EXACT = 0,     /* addr:port as written */
	SY_SCOPE_NODE_PORT = 1, /* addr :: (IPv6) or ::ffff:0.0.0.0 (IPv4): any address in sy_node_ips (or 127/8, ::1) */
};

/*
 * sy_node_ports[port] bits: the NodePort frontends (scope SY_SCOPE_NODE_PORT)
 * there are on that port, so a destination that is no frontend costs one
 * lookup, not a second one in sy_node_ips
 */
#define SY_NP_TCP4 1u
#define SY_NP_TCP6 2u
#define SY_NP_UDP4 4u
#define SY_NP_UDP6 8u

/* sy_frontend.flags */
#define SY_FE_LOCAL_ONLY 1u /* a Local traffic policy filtered the set to this node's backends */
#define SY_FE_SKIP_FROM_BACKEND 2u /* local redirect: connects from the policy's own pods (sy_lrp_skip) take the fallback */

/* sy_event.fallback: why a local-redirect connect went to the fallback set (0 = it did not) */
enum sy_fallback {
	SY_FB_NONE = 0,
	SY_FB_NO_LOCAL = 1,     /* the node has no ready selected pod */
	SY_FB_QOS = 2,          /* over the frontend's redirects per second */
	SY_FB_FROM_BACKEND = 3, /* the client is one of the policy's pods (skipRedirectFromBackend) */
};

/* cgroup levels above the client's own that are checked in sy_lrp_skip (a container under its pod) */
#define SY_SKIP_ANCESTOR_LEVELS 8

/* sy_event.hook */
enum sy_hook {
	SY_HOOK_CONNECT4 = 1,
	SY_HOOK_CONNECT6 = 2,
	SY_HOOK_SENDMSG4 = 3,
	SY_HOOK_SENDMSG6 = 4,
};

/* sy_event.failure_code (0 = success) */
enum sy_failure {
	SY_FAIL_NONE = 0,
	SY_FAIL_NO_BACKEND = 1,       /* frontend has an empty backend set */
	SY_FAIL_BACKEND_MISSING = 2,  /* set entry not found (map inconsistent) */
	SY_FAIL_NO_LOCAL_BACKEND = 3, /* Local traffic policy and no backend on this node */
	SY_FAIL_FAMILY = 4,           /* IPv6 backend for an IPv4-only socket */
};

/* sy_counters index */
enum sy_counter {
	SY_CNT_TRANSLATED = 0,
	SY_CNT_MISS = 1,
	SY_CNT_FAILED = 2,
	SY_CNT_EVENTS_DROPPED = 3,
	SY_CNT_REVERSED = 4,
	SY_CNT_AFFINITY_HIT = 5,
	SY_CNT_EVENTS_SAMPLED_OUT = 6,
	SY_CNT_UDP_DESTROYED = 7,
	SY_CNT_TCP_SLOT_TAKEN = 8, /* a TCP connect whose sy_tcp_nats slot another open socket held (socket storage instead) */
	SY_CNT_MAX = 9,
};

/*
 * sy_svc_stats: resolutions per Service (svc_id) and result. The first five
 * are the result of a resolution (one each), indexed like enum sy_failure;
 * SY_STAT_FALLBACK counts, of those, the ones a local redirect sent to its
 * fallback set.
 */
enum sy_stat {
	SY_STAT_OK = 0,
	SY_STAT_NO_BACKEND = 1,
	SY_STAT_BACKEND_MISSING = 2,
	SY_STAT_NO_LOCAL_BACKEND = 3,
	SY_STAT_FAMILY = 4,
	SY_STAT_FALLBACK = 5,
	SY_STAT_MAX = 6,
};

/* sy_settings.flags */
#define SY_SETTINGS_EVENTS_ON 1u

struct sy_frontend_key {
	__u8 addr[16];
	__u16 port;
	__u8 proto; /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 scope; /* enum sy_scope */
};

/*
 * A frontend is rewritten in place, under `lock`: the agent writes with
 * BPF_F_LOCK and the programs copy the value out under the same lock, so a
 * reader sees one whole value, never a mix of two (docs/dataplane.md,
 * "Readers and writers").
 */
struct sy_frontend {
	__u32 svc_id;  /* agent-local id of the service (names in sy_svc_names) */
	__u32 set_id;  /* live backend set; replaced atomically by one update */
	__u32 count;   /* number of backends in the set */
	__u32 affinity_timeout_s; /* ClientIP session affinity; 0 = none */
	__u32 port_id; /* agent-local id of (service, port name): the affinity scope */
	__u32 fb_set_id; /* local redirect: the fallback set (the Service's backends); 0 = none */
	__u32 fb_count;  /* backends in the fallback set; 0 = a fallback connect is refused */
	__u32 qos_per_s; /* local redirect: at most this many redirects per second (sy_qos); 0 = no limit */
	__u8 nat_type; /* enum sy_nat_type */
	__u8 nat_mode; /* enum sy_nat_mode */
	__u16 flags;   /* SY_FE_* */
	struct bpf_spin_lock lock; /* the kernel's; user space writes zeros here and the kernel ignores them */
};

/* Local redirect QoS: one window per frontend, written by the programs (approximate under concurrency) */
struct sy_qos_window {
	__u64 second; /* bpf_ktime_get_ns() / 1e9 of the window */
	__u64 count;  /* redirects counted in it (atomic add) */
};

/* skipRedirectFromBackend: the cgroups of a policy's selected pods (value 1) */
struct sy_skip_key {
	__u32 svc_id; /* the policy's id */
	__u32 pad;
	__u64 cgroup_id;
};

struct sy_backend_key {
	__u32 set_id;
	__u32 index;
};

struct sy_backend {
	__u8 addr[16];
	__u16 port;
	__u16 pad;
};

/* Membership: is addr:port in set_id (for affinity checks)? value = index */
struct sy_member_key {
	__u32 set_id;
	__u16 port;
	__u16 pad;
	__u8 addr[16];
};

/* Reverse translation: (socket, backend) -> the service address it stands for */
struct sy_revnat_key {
	__u64 cookie;
	__u8 addr[16];
	__u16 port;
	__u16 pad[3];
};

struct sy_revnat {
	__u8 addr[16];
	__u16 port;
	__u16 pad;
};

/* Connected sockets: the one translation of this socket, kept in socket-local storage */
struct sy_sock_nat {
	__u8 front_addr[16];
	__u8 back_addr[16];
	__u16 front_port;
	__u16 back_port;
	__u32 pad;
};

/* A connected TCP socket's translation in sy_tcp_nats: the slot is the socket's while `cookie` is its cookie (0: free) */
struct sy_tcp_nat {
	__u64 cookie;
	struct sy_sock_nat nat;
};

/*
 * Unconnected UDP: the last translation of a socket (socket-local storage),
 * so a sender that keeps sending to one frontend pays one lookup per
 * datagram. Valid while sy_gen still holds `gen` (the agent bumps it after
 * every write of frontends or node addresses).
 */
struct sy_udp_last {
	struct sy_frontend_key front; /* the destination the application used */
	__u16 back_port;
	__u16 pad0;
	__u8 back_addr[16];
	__u64 gen;     /* sy_gen read before the frontend was */
	__u32 svc_id;
	__u8 nat_type;
	__u8 nat_mode;
	__u16 pad1;
	__u64 ev_ns;   /* when this flow last emitted an event */
	__u64 ev_jiffies; /* the jiffy in which the period was last checked */
	__u32 ev_count; /* datagrams since, not in an event yet */
	__u32 pad2;
};

/* A removed backend: connected UDP sockets to it are destroyed */
struct sy_dead_key {
	__u8 addr[16];
	__u16 port;
	__u16 pad;
};

/* ClientIP affinity is per client network namespace and service port */
struct sy_affinity_key {
	__u64 netns_cookie;
	__u32 port_id;
	__u32 svc_id;
};

struct sy_affinity {
	__u64 last_ns;
	__u8 addr[16];
	__u16 port;
	__u16 pad[3];
};

struct sy_svc_name {
	char name[SY_NAME_LEN];
};

/* per Service: written by the agent (zeros) with the Service's name, counted by the programs (atomic adds) */
struct sy_svc_stats {
	__u64 count[SY_STAT_MAX]; /* enum sy_stat */
};

struct sy_settings {
	__u32 flags;
	__u32 sample_one_in; /* emit one event in N (0 or 1 = every event) */
};

struct sy_event {
	__u64 ts_ns;
	__u64 cgroup_id;
	__u64 pid_tgid;
	__u32 svc_id;
	__u16 orig_port;
	__u16 nat_port;
	__u8 orig_addr[16];
	__u8 nat_addr[16];
	__u8 family; /* 4 or 6 */
	__u8 proto;
	__u8 hook;   /* enum sy_hook */
	__u8 nat_type;
	__u8 nat_mode;
	__u8 success;
	__u16 failure_code;
	__u8 fallback; /* enum sy_fallback */
	__u8 pad[3];
	__u32 count; /* unconnected UDP: datagrams of the flow this event stands for (1: its first); connects: 1 (0 from builds before it) */
};

_Static_assert(sizeof(struct sy_frontend_key) == 20, "sy_frontend_key layout");
_Static_assert(sizeof(struct sy_frontend) == 40, "sy_frontend layout");
_Static_assert(sizeof(struct sy_qos_window) == 16, "sy_qos_window layout");
_Static_assert(sizeof(struct sy_skip_key) == 16, "sy_skip_key layout");
_Static_assert(sizeof(struct sy_backend_key) == 8, "sy_backend_key layout");
_Static_assert(sizeof(struct sy_backend) == 20, "sy_backend layout");
_Static_assert(sizeof(struct sy_member_key) == 24, "sy_member_key layout");
_Static_assert(sizeof(struct sy_revnat_key) == 32, "sy_revnat_key layout");
_Static_assert(sizeof(struct sy_revnat) == 20, "sy_revnat layout");
_Static_assert(sizeof(struct sy_sock_nat) == 40, "sy_sock_nat layout");
_Static_assert(sizeof(struct sy_tcp_nat) == 48, "sy_tcp_nat layout");
_Static_assert((SY_TCP_NAT_SLOTS & (SY_TCP_NAT_SLOTS - 1)) == 0, "SY_TCP_NAT_SLOTS is a power of two");
_Static_assert(sizeof(struct sy_dead_key) == 20, "sy_dead_key layout");
_Static_assert(sizeof(struct sy_udp_last) == 80, "sy_udp_last layout");
_Static_assert(sizeof(struct sy_affinity_key) == 16, "sy_affinity_key layout");
_Static_assert(sizeof(struct sy_affinity) == 32, "sy_affinity layout");
_Static_assert(sizeof(struct sy_settings) == 8, "sy_settings layout");
_Static_assert(sizeof(struct sy_svc_stats) == 48, "sy_svc_stats layout");
_Static_assert(SY_STAT_NO_BACKEND == SY_FAIL_NO_BACKEND && SY_STAT_BACKEND_MISSING == SY_FAIL_BACKEND_MISSING &&
		       SY_STAT_NO_LOCAL_BACKEND == SY_FAIL_NO_LOCAL_BACKEND && SY_STAT_FAMILY == SY_FAIL_FAMILY,
	       "sy_stat follows sy_failure");
_Static_assert(sizeof(struct sy_event) == 80, "sy_event layout");

#endif
