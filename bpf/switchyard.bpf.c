// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Socket-level service resolution: cgroup sock_addr hooks rewrite the
 * destination of connect() from a service frontend to one of its backends.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "include/switchyard.h"

#define SY_AF_INET 2
#define SY_SOCK_STREAM 1
#define SY_SOCK_DGRAM 2
#define SY_IPPROTO_TCP 6
#define SY_IPPROTO_UDP 17
#define SY_ECONNREFUSED 111

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
	__uint(max_entries, SY_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct sy_svc_name);
} sy_svc_names SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sy_settings);
} sy_settings_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SY_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} sy_counters SEC(".maps");

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

static __always_inline int sy_events_on(void)
{
	__u32 zero = 0;
	struct sy_settings *s = bpf_map_lookup_elem(&sy_settings_map, &zero);

	return s && (s->flags & SY_SETTINGS_EVENTS_ON);
}

/*
 * A real subprogram (not inlined), so struct sy_event is described in the
 * object's BTF, which the layout test checks user space against.
 */
static __noinline int sy_fill_event(struct sy_event *ev, const struct sy_frontend_key *key, const struct sy_frontend *fe,
				    const struct sy_backend *be, __u32 hook_failure)
{
	__u16 failure = hook_failure & 0xffff;

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
	ev->family = 4;
	ev->proto = key->proto;
	ev->hook = hook_failure >> 16;
	ev->nat_type = fe->nat_type;
	ev->nat_mode = fe->nat_mode;
	ev->success = failure == SY_FAIL_NONE;
	ev->failure_code = failure;
	return 0;
}

static __always_inline void sy_emit(const struct sy_frontend_key *key, const struct sy_frontend *fe,
				    const struct sy_backend *be, __u8 hook, __u16 failure)
{
	struct sy_event *ev;

	if (!sy_events_on())
		return;
	ev = bpf_ringbuf_reserve(&sy_events, sizeof(*ev), 0);
	if (!ev) {
		sy_count(SY_CNT_EVENTS_DROPPED);
		return;
	}
	sy_fill_event(ev, key, fe, be, ((__u32)hook << 16) | failure);
	bpf_ringbuf_submit(ev, 0);
}

static __always_inline void sy_key_v4(struct sy_frontend_key *key, __u32 ip4, __u32 port, __u8 proto)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->addr[10] = 0xff;
	key->addr[11] = 0xff;
	__builtin_memcpy(&key->addr[12], &ip4, 4);
	key->port = (__u16)port;
	key->proto = proto;
}

static __always_inline __u8 sy_proto(const struct bpf_sock_addr *ctx)
{
	if (ctx->type == SY_SOCK_STREAM)
		return SY_IPPROTO_TCP;
	if (ctx->type == SY_SOCK_DGRAM)
		return SY_IPPROTO_UDP;
	return 0;
}

SEC("cgroup/connect4")
int sy_connect4(struct bpf_sock_addr *ctx)
{
	struct sy_frontend_key key;
	struct sy_backend_key bkey;
	struct sy_frontend *fe;
	struct sy_backend *be;
	__u8 proto = sy_proto(ctx);
	__u32 ip4;

	if (!proto)
		return 1;
	sy_key_v4(&key, ctx->user_ip4, ctx->user_port, proto);
	fe = bpf_map_lookup_elem(&sy_frontends, &key);
	if (!fe) {
		sy_count(SY_CNT_MISS);
		return 1;
	}
	if (fe->count == 0) {
		sy_count(SY_CNT_FAILED);
		sy_emit(&key, fe, NULL, SY_HOOK_CONNECT4, SY_FAIL_NO_BACKEND);
		bpf_set_retval(-SY_ECONNREFUSED);
		return 0;
	}
	bkey.set_id = fe->set_id;
	bkey.index = bpf_get_prandom_u32() % fe->count;
	be = bpf_map_lookup_elem(&sy_backends, &bkey);
	if (!be) {
		sy_count(SY_CNT_FAILED);
		sy_emit(&key, fe, NULL, SY_HOOK_CONNECT4, SY_FAIL_BACKEND_MISSING);
		bpf_set_retval(-SY_ECONNREFUSED);
		return 0;
	}
	__builtin_memcpy(&ip4, &be->addr[12], 4);
	ctx->user_ip4 = ip4;
	ctx->user_port = be->port;
	sy_count(SY_CNT_TRANSLATED);
	sy_emit(&key, fe, be, SY_HOOK_CONNECT4, SY_FAIL_NONE);
	return 1;
}

char _license[] SEC("license") = "Dual BSD/GPL";
