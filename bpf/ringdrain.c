// SPDX-License-Identifier: Apache-2.0
/*
 * libsyring: drains the events ring buffer into one caller-provided buffer
 * per call, so user space crosses the FFI boundary once per batch instead of
 * once per event (libbpf's ring_buffer__consume calls back per record).
 *
 *   h = sy_ring_new(map_fd);  n = sy_ring_drain(h, out, cap);  sy_ring_free(h);
 *
 * The output is the records back to back, each preceded by its length as a
 * little-endian u32. `cap` should be at least the ring's size: a record that
 * does not fit is counted in sy_ring_lost() (libbpf has consumed it already).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>

struct sy_ring {
	struct ring_buffer *rb;
	uint8_t *out;
	size_t cap;
	size_t used;
	uint64_t lost;
};

static int on_sample(void *ctx, void *data, size_t size)
{
	struct sy_ring *r = ctx;
	uint32_t len = (uint32_t)size;

	if (r->used + sizeof(len) + size > r->cap) {
		r->lost++;
		return 0;
	}
	memcpy(r->out + r->used, &len, sizeof(len));
	memcpy(r->out + r->used + sizeof(len), data, size);
	r->used += sizeof(len) + size;
	return 0;
}

struct sy_ring *sy_ring_new(int map_fd)
{
	struct sy_ring *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->rb = ring_buffer__new(map_fd, on_sample, r, NULL);
	if (!r->rb) {
		free(r);
		return NULL;
	}
	return r;
}

/* Bytes written to out (records with their length prefixes), or a negative errno. */
long sy_ring_drain(struct sy_ring *r, uint8_t *out, size_t cap)
{
	int err;

	r->out = out;
	r->cap = cap;
	r->used = 0;
	err = ring_buffer__consume(r->rb);
	r->out = NULL;
	if (err < 0)
		return err;
	return (long)r->used;
}

int sy_ring_epoll_fd(struct sy_ring *r)
{
	return ring_buffer__epoll_fd(r->rb);
}

uint64_t sy_ring_lost(struct sy_ring *r)
{
	return r->lost;
}

void sy_ring_free(struct sy_ring *r)
{
	if (!r)
		return;
	ring_buffer__free(r->rb);
	free(r);
}
