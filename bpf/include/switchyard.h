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
#define SY_EVENTS_BYTES (1 << 22)
#define SY_NAME_LEN 128

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
};

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
	SY_FAIL_NO_BACKEND = 1,     /* frontend has an empty backend set */
	SY_FAIL_BACKEND_MISSING = 2, /* set entry not found (map inconsistent) */
};

/* sy_counters index */
enum sy_counter {
	SY_CNT_TRANSLATED = 0,
	SY_CNT_MISS = 1,
	SY_CNT_FAILED = 2,
	SY_CNT_EVENTS_DROPPED = 3,
	SY_CNT_MAX = 4,
};

/* sy_settings.flags */
#define SY_SETTINGS_EVENTS_ON 1u

struct sy_frontend_key {
	__u8 addr[16];
	__u16 port;
	__u8 proto; /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 pad;
};

struct sy_frontend {
	__u32 svc_id;   /* agent-local id of the service (names in sy_svc_names) */
	__u32 set_id;   /* live backend set; replaced atomically by one update */
	__u32 count;    /* number of backends in the set */
	__u8 nat_type;  /* enum sy_nat_type */
	__u8 nat_mode;  /* enum sy_nat_mode */
	__u16 flags;
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

struct sy_svc_name {
	char name[SY_NAME_LEN];
};

struct sy_settings {
	__u32 flags;
	__u32 pad;
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
};

_Static_assert(sizeof(struct sy_frontend_key) == 20, "sy_frontend_key layout");
_Static_assert(sizeof(struct sy_frontend) == 16, "sy_frontend layout");
_Static_assert(sizeof(struct sy_backend_key) == 8, "sy_backend_key layout");
_Static_assert(sizeof(struct sy_backend) == 20, "sy_backend layout");
_Static_assert(sizeof(struct sy_settings) == 8, "sy_settings layout");
_Static_assert(sizeof(struct sy_event) == 72, "sy_event layout");

#endif
