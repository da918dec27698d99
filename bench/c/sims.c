// Simulated agents for `npm run bench:protocol`, in C: one process drives a
// share of the 1,000 agents over one epoll loop. Each agent is one TLS 1.3
// connection (OpenSSL, the hub's CA pinned, ALPN h2) carrying one gRPC call,
// StreamAssignments, spoken the way bench/protocol-sims.ts speaks it: Hello
// (node name, accept zstd-packed batches), a light protobuf walk of every
// response (nonce, system version, resource names, removals, packed batches
// inflated with libzstd), an ACK for every response with a nonce, and on a
// reconnect a Hello that resumes with the held view version.
//
// Why C: in the benchmark the simulated agents share the hub's 2 cores (on a
// real deployment each agent has its own machine). The Node version costs
// ~55-75 ms of CPU per change for 1,000 agents, as much as the hub itself;
// this one does the same protocol work for a fraction of it, so the hub's
// figures are less the benchmark's own load. `--sims node` runs the Node
// version for comparison.
//
// Talks to the driver (bench/protocol.ts) over stdin/stdout: commands are
// lines of space-separated words, events are JSON lines (see main()).
// Times are wall-clock ms (CLOCK_REALTIME) so processes agree.
//
// Build: cc -O2 -o sims sims.c -lssl -lcrypto -lzstd
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#define MAX_WATCH 4096
#define READ_CHUNK (64 * 1024)
#define MAX_WINDOW 0x7fffffffu
#define DEFAULT_WINDOW 65535u

static const char PATH[] = "/switchyard.v1.AssignmentService/StreamAssignments";

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void buf_reserve(struct buf *b, size_t more)
{
	if (b->len + more <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	b->p = realloc(b->p, cap);
	if (!b->p) {
		perror("realloc");
		exit(1);
	}
	b->cap = cap;
}

static void buf_put(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

/** drops the first n bytes */
static void buf_consume(struct buf *b, size_t n)
{
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

enum state { IDLE, CONNECTING, HANDSHAKE, OPEN };

struct sim {
	char *name;
	int fd;
	SSL *ssl;
	enum state state;
	struct buf in;	/* decrypted bytes: HTTP/2 frames not yet whole */
	struct buf msg; /* DATA payload of stream 1: gRPC messages not yet whole */
	struct buf out; /* to encrypt and send */
	uint64_t recv_unacked;
	long count;
	char *watched[MAX_WATCH]; /* version per watched name (index into watch_names) */
	char last_system_version[128];
	double last_msg_at;
	double bytes;
	int welcomed, synced, saw_change, resends;
	int want_write;
};

static struct sim *sims;
static int nsims;
static char *watch_names[MAX_WATCH];
static size_t watch_len[MAX_WATCH];
static int nwatch;
static SSL_CTX *ctx;
static int epfd;
static char host[256], port[16], token[512];
static long expected;
static int plain, full_decode;
static int synced_count, changed_count, welcomed_count, synced_sent, reattach_pending;
static int pending_watch = -1; /* index into watch_names, or -1 */
static char *pending_before[4096 * 4];
static double pending_since;
static double inflate_ms;
static long frames_reused;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/* --- a packed batch read once is not inflated again (as protocol-sims.ts: off with full decode) --- */

struct seen {
	uint8_t *frame;
	size_t len;
	long count;
	int nwatched;
	int *widx;
	char **wver;
};
static struct seen *seen;
static int nseen, capseen;

/* --- what one response carries --- */

struct read {
	char nonce[256];
	char system_version[128];
	int welcome;
	long count;
	int nwatched, capwatched;
	int *widx;     /* watch index */
	char **wver;   /* version (owned) */
	long removed;
};

static void read_add_watched(struct read *r, int idx, const uint8_t *v, size_t n)
{
	if (r->nwatched == r->capwatched) {
		r->capwatched = r->capwatched ? r->capwatched * 2 : 8;
		r->widx = realloc(r->widx, r->capwatched * sizeof(int));
		r->wver = realloc(r->wver, r->capwatched * sizeof(char *));
	}
	r->widx[r->nwatched] = idx;
	r->wver[r->nwatched] = strndup((const char *)v, n);
	r->nwatched++;
}

static void read_free(struct read *r)
{
	for (int i = 0; i < r->nwatched; i++)
		free(r->wver[i]);
	free(r->widx);
	free(r->wver);
}

static int uvarint(const uint8_t *p, size_t end, size_t *pos, uint64_t *out)
{
	uint64_t x = 0;
	int shift = 0;

	while (*pos < end && shift < 64) {
		uint8_t b = p[(*pos)++];
		x |= (uint64_t)(b & 0x7f) << shift;
		if (b < 0x80) {
			*out = x;
			return 0;
		}
		shift += 7;
	}
	return -1;
}

static int skip(const uint8_t *p, size_t end, size_t *pos, int wt)
{
	uint64_t v;

	switch (wt) {
	case 0:
		return uvarint(p, end, pos, &v);
	case 1:
		*pos += 8;
		break;
	case 2:
		if (uvarint(p, end, pos, &v))
			return -1;
		*pos += v;
		break;
	case 5:
		*pos += 4;
		break;
	default:
		return -1;
	}
	return *pos <= end ? 0 : -1;
}

/* watched names, by FNV-1a of their bytes (open addressing) */
#define WHASH 16384
static int whash[WHASH]; /* watch index + 1, 0 = empty */

static uint32_t fnv(const uint8_t *p, size_t n)
{
	uint32_t h = 0x811c9dc5u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x01000193u;
	return h;
}

static int watch_index(const uint8_t *p, size_t n)
{
	for (uint32_t h = fnv(p, n) % WHASH;; h = (h + 1) % WHASH) {
		int k = whash[h];
		if (!k)
			return -1;
		if (watch_len[k - 1] == n && !memcmp(watch_names[k - 1], p, n))
			return k - 1;
	}
}

/** one Resource (name = 1, version = 2): counted; its version kept when its name is watched */
static int read_resource(const uint8_t *p, size_t end, struct read *r)
{
	size_t pos = 0;
	int w = -1;

	r->count++;
	while (pos < end) {
		uint64_t tag, len;
		if (uvarint(p, end, &pos, &tag))
			return -1;
		if ((tag >> 3) == 1 && (tag & 7) == 2) {
			if (uvarint(p, end, &pos, &len) || pos + len > end)
				return -1;
			w = watch_index(p + pos, len);
			pos += len;
		} else if ((tag >> 3) == 2 && (tag & 7) == 2 && w >= 0) {
			if (uvarint(p, end, &pos, &len) || pos + len > end)
				return -1;
			read_add_watched(r, w, p + pos, len);
			pos += len;
		} else if (skip(p, end, &pos, tag & 7))
			return -1;
	}
	return 0;
}

/** the resources (field 4) of a message or of an inflated ResourceBatch */
static int read_resources(const uint8_t *p, size_t end, struct read *r)
{
	size_t pos = 0;

	while (pos < end) {
		uint64_t tag, len;
		if (uvarint(p, end, &pos, &tag))
			return -1;
		if ((tag >> 3) == 4 && (tag & 7) == 2) {
			if (uvarint(p, end, &pos, &len) || pos + len > end)
				return -1;
			if (read_resource(p + pos, len, r))
				return -1;
			pos += len;
		} else if (skip(p, end, &pos, tag & 7))
			return -1;
	}
	return 0;
}

static void copy_str(char *dst, size_t cap, const uint8_t *p, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, p, n);
	dst[n] = 0;
}

/** StreamAssignmentsResponse: nonce 1, system_version 2, welcome 3, resources 4, removed 5, resources_zstd 7, packed size 8 */
static int read_response(const uint8_t *p, size_t end, struct read *r)
{
	size_t pos = 0;
	uint64_t packed_size = 0;

	while (pos < end) {
		uint64_t tag, len;
		if (uvarint(p, end, &pos, &tag))
			return -1;
		int no = tag >> 3, wt = tag & 7;
		if (no == 8 && wt == 0) {
			if (uvarint(p, end, &pos, &packed_size))
				return -1;
			continue;
		}
		if (wt != 2) {
			if (skip(p, end, &pos, wt))
				return -1;
			continue;
		}
		if (uvarint(p, end, &pos, &len) || pos + len > end)
			return -1;
		const uint8_t *f = p + pos;
		pos += len;
		if (no == 1)
			copy_str(r->nonce, sizeof r->nonce, f, len);
		else if (no == 2)
			copy_str(r->system_version, sizeof r->system_version, f, len);
		else if (no == 3)
			r->welcome = 1;
		else if (no == 4) {
			if (read_resource(f, len, r))
				return -1;
		} else if (no == 5)
			r->removed++;
		else if (no == 7) {
			struct seen *known = NULL;
			if (!full_decode)
				for (int i = 0; i < nseen && !known; i++)
					if (seen[i].len == len && !memcmp(seen[i].frame, f, len))
						known = &seen[i];
			if (known) {
				frames_reused++;
				r->count += known->count;
				for (int i = 0; i < known->nwatched; i++)
					read_add_watched(r, known->widx[i], (const uint8_t *)known->wver[i],
							 strlen(known->wver[i]));
				continue;
			}
			struct read batch = { 0 };
			uint8_t *raw = malloc(packed_size ? packed_size : 1);
			double t0 = now_ms();
			size_t n = ZSTD_decompress(raw, packed_size, f, len);
			inflate_ms += now_ms() - t0;
			if (ZSTD_isError(n) || read_resources(raw, n, &batch)) {
				fprintf(stderr, "sims: bad packed batch (%zu bytes): %s\n", (size_t)len,
					ZSTD_isError(n) ? ZSTD_getErrorName(n) : "malformed");
				free(raw);
				read_free(&batch);
				return -1;
			}
			free(raw);
			r->count += batch.count;
			for (int i = 0; i < batch.nwatched; i++)
				read_add_watched(r, batch.widx[i], (const uint8_t *)batch.wver[i],
						 strlen(batch.wver[i]));
			if (!full_decode) {
				if (nseen == capseen) {
					capseen = capseen ? capseen * 2 : 64;
					seen = realloc(seen, capseen * sizeof *seen);
				}
				struct seen *s = &seen[nseen++];
				s->frame = malloc(len);
				memcpy(s->frame, f, len);
				s->len = len;
				s->count = batch.count;
				s->nwatched = batch.nwatched;
				s->widx = batch.widx;
				s->wver = batch.wver;
			} else
				read_free(&batch);
		}
	}
	return 0;
}

/* --- HTTP/2 and gRPC framing --- */

static void put_frame_head(struct buf *b, uint32_t len, uint8_t type, uint8_t flags, uint32_t stream)
{
	uint8_t h[9] = { len >> 16, len >> 8, len, type, flags, stream >> 24, stream >> 16, stream >> 8, stream };

	buf_put(b, h, 9);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/** HPACK integer with an n-bit prefix */
static void hpack_int(struct buf *b, uint8_t first, int bits, size_t v)
{
	size_t max = (1u << bits) - 1;
	uint8_t c;

	if (v < max) {
		c = first | v;
		buf_put(b, &c, 1);
		return;
	}
	c = first | max;
	buf_put(b, &c, 1);
	v -= max;
	while (v >= 128) {
		c = (v & 0x7f) | 0x80;
		buf_put(b, &c, 1);
		v >>= 7;
	}
	c = v;
	buf_put(b, &c, 1);
}

/** a literal header field without indexing, new name (RFC 7541 6.2.2), no Huffman */
static void hpack_literal(struct buf *b, const char *name, const char *value)
{
	hpack_int(b, 0x00, 4, 0);
	hpack_int(b, 0x00, 7, strlen(name));
	buf_put(b, name, strlen(name));
	hpack_int(b, 0x00, 7, strlen(value));
	buf_put(b, value, strlen(value));
}

/** one gRPC message in one DATA frame of stream 1 */
static void send_message(struct sim *s, const uint8_t *m, size_t n)
{
	uint8_t prefix[5] = { 0 };

	put_u32(prefix + 1, n);
	put_frame_head(&s->out, n + 5, 0 /* DATA */, 0, 1);
	buf_put(&s->out, prefix, 5);
	buf_put(&s->out, m, n);
}

/** a length-delimited protobuf field */
static void put_field(struct buf *b, int no, const void *p, size_t n)
{
	uint8_t c = (no << 3) | 2;

	buf_put(b, &c, 1);
	for (size_t v = n;; v >>= 7) {
		c = v < 128 ? v : (v & 0x7f) | 0x80;
		buf_put(b, &c, 1);
		if (v < 128)
			break;
	}
	buf_put(b, p, n);
}

static void send_hello(struct sim *s, int resume)
{
	struct buf hello = { 0 }, req = { 0 };

	put_field(&hello, 1, s->name, strlen(s->name));
	put_field(&hello, 2, "sim", 3);
	if (resume && s->last_system_version[0])
		put_field(&hello, 5, s->last_system_version, strlen(s->last_system_version));
	if (!plain) {
		uint8_t zstd = 1; /* RESOURCE_ENCODING_ZSTD, packed repeated */
		put_field(&hello, 6, &zstd, 1);
	}
	put_field(&req, 1, hello.p, hello.len);
	send_message(s, req.p, req.len);
	free(hello.p);
	free(req.p);
}

static void send_ack(struct sim *s, const char *nonce)
{
	size_t n = strlen(nonce);
	uint8_t ack[300];

	/* StreamAssignmentsRequest.ack (2) { response_nonce (1) } */
	ack[0] = (2 << 3) | 2;
	ack[1] = n + 2;
	ack[2] = (1 << 3) | 2;
	ack[3] = n;
	memcpy(ack + 4, nonce, n);
	send_message(s, ack, n + 4);
}

static void start_call(struct sim *s, int resume)
{
	static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	uint8_t settings[12], wu[4];
	struct buf block = { 0 };
	char authority[300], bearer[600];

	buf_put(&s->out, preface, sizeof preface - 1);
	/* ENABLE_PUSH 0, INITIAL_WINDOW_SIZE max; the connection window raised to max too */
	settings[0] = 0;
	settings[1] = 2;
	put_u32(settings + 2, 0);
	settings[6] = 0;
	settings[7] = 4;
	put_u32(settings + 8, MAX_WINDOW);
	put_frame_head(&s->out, 12, 4 /* SETTINGS */, 0, 0);
	buf_put(&s->out, settings, 12);
	put_u32(wu, MAX_WINDOW - DEFAULT_WINDOW);
	put_frame_head(&s->out, 4, 8 /* WINDOW_UPDATE */, 0, 0);
	buf_put(&s->out, wu, 4);
	snprintf(authority, sizeof authority, "%s:%s", host, port);
	snprintf(bearer, sizeof bearer, "Bearer %s", token);
	hpack_literal(&block, ":method", "POST");
	hpack_literal(&block, ":scheme", "https");
	hpack_literal(&block, ":path", PATH);
	hpack_literal(&block, ":authority", authority);
	hpack_literal(&block, "content-type", "application/grpc");
	hpack_literal(&block, "te", "trailers");
	hpack_literal(&block, "authorization", bearer);
	put_frame_head(&s->out, block.len, 1 /* HEADERS */, 0x4 /* END_HEADERS */, 1);
	buf_put(&s->out, block.p, block.len);
	free(block.p);
	send_hello(s, resume);
}

/* --- progress, reported to the driver --- */

static void check_progress(void)
{
	if (!synced_sent && synced_count == nsims) {
		double at = 0, bytes = 0;
		synced_sent = 1;
		for (int i = 0; i < nsims; i++) {
			if (sims[i].last_msg_at > at)
				at = sims[i].last_msg_at;
			bytes += sims[i].bytes;
		}
		printf("{\"ev\":\"synced\",\"at\":%.3f,\"bytes\":%.0f,\"cpuS\":%.4f,\"inflateS\":%.4f,\"framesReused\":%ld}\n",
		       at, bytes, cpu_s(), inflate_ms / 1000, frames_reused);
		fflush(stdout);
	}
	if (pending_watch >= 0 && changed_count == nsims) {
		double bytes = 0;
		pending_watch = -1;
		printf("{\"ev\":\"changed\",\"latencies\":[");
		for (int i = 0; i < nsims; i++) {
			printf("%s%.3f", i ? "," : "", sims[i].last_msg_at - pending_since);
			bytes += sims[i].bytes;
		}
		printf("],\"cpuS\":%.4f,\"bytes\":%.0f}\n", cpu_s(), bytes);
		fflush(stdout);
	}
	if (reattach_pending && welcomed_count == nsims) {
		double bytes = 0;
		int resends = 0;
		reattach_pending = 0;
		for (int i = 0; i < nsims; i++) {
			bytes += sims[i].bytes;
			resends += sims[i].resends;
		}
		printf("{\"ev\":\"reattached\",\"at\":%.3f,\"bytes\":%.0f,\"resends\":%d}\n", now_ms(), bytes,
		       resends);
		fflush(stdout);
	}
}

static int same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && !strcmp(a, b));
}

static void on_message(struct sim *s, const uint8_t *m, size_t n)
{
	struct read r = { 0 };

	s->bytes += n;
	if (read_response(m, n, &r)) {
		fprintf(stderr, "sims: %s: malformed response (%zu bytes)\n", s->name, n);
		read_free(&r);
		return;
	}
	if (r.welcome && !s->welcomed) {
		s->welcomed = 1;
		welcomed_count++;
	}
	if (r.nonce[0]) {
		s->count += r.count - r.nwatched;
		for (int i = 0; i < r.nwatched; i++) {
			int w = r.widx[i];
			if (!s->watched[w])
				s->count++;
			free(s->watched[w]);
			s->watched[w] = r.wver[i];
			r.wver[i] = NULL;
		}
		s->count -= r.removed;
		strcpy(s->last_system_version, r.system_version);
		s->last_msg_at = now_ms();
		send_ack(s, r.nonce);
		if (!s->synced && s->count >= expected) {
			s->synced = 1;
			synced_count++;
		}
		if (pending_watch >= 0 && !s->saw_change &&
		    !same(s->watched[pending_watch], pending_before[s - sims])) {
			s->saw_change = 1;
			changed_count++;
		}
	}
	read_free(&r);
	check_progress();
}

static void close_sim(struct sim *s)
{
	if (s->state == IDLE)
		return;
	if (s->state == OPEN && !s->welcomed)
		s->resends++; /* ended before the hub welcomed it: refused ("resend your versions") */
	epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
	if (s->ssl)
		SSL_free(s->ssl);
	close(s->fd);
	s->ssl = NULL;
	s->fd = -1;
	s->state = IDLE;
	s->in.len = s->msg.len = s->out.len = 0;
}

static void on_data(struct sim *s, const uint8_t *p, size_t n)
{
	buf_put(&s->msg, p, n);
	size_t pos = 0;
	while (s->msg.len - pos >= 5) {
		uint32_t len = (uint32_t)s->msg.p[pos + 1] << 24 | s->msg.p[pos + 2] << 16 |
			       s->msg.p[pos + 3] << 8 | s->msg.p[pos + 4];
		if (s->msg.len - pos < 5 + (size_t)len)
			break;
		on_message(s, s->msg.p + pos + 5, len);
		if (s->state != OPEN)
			return;
		pos += 5 + len;
	}
	buf_consume(&s->msg, pos);
}

/** whole frames in s->in; returns -1 when the call ended */
static int on_frames(struct sim *s)
{
	size_t pos = 0;

	while (s->in.len - pos >= 9) {
		const uint8_t *h = s->in.p + pos;
		uint32_t len = h[0] << 16 | h[1] << 8 | h[2];
		uint8_t type = h[3], flags = h[4];
		uint32_t stream = ((uint32_t)h[5] << 24 | h[6] << 16 | h[7] << 8 | h[8]) & 0x7fffffff;
		if (s->in.len - pos < 9 + (size_t)len)
			break;
		const uint8_t *p = h + 9;
		pos += 9 + len;
		if (type == 0 /* DATA */ && stream == 1) {
			size_t start = 0, end = len;
			if (flags & 0x8 /* PADDED */) {
				start = 1;
				end -= p[0];
			}
			s->recv_unacked += len;
			if (end > start)
				on_data(s, p + start, end - start);
			if (s->state != OPEN || (flags & 0x1)) {
				close_sim(s);
				return -1;
			}
		} else if (type == 1 /* HEADERS */ && stream == 1) {
			if (flags & 0x1) { /* trailers (or trailers-only): the call ended */
				close_sim(s);
				return -1;
			}
		} else if (type == 3 /* RST_STREAM */ && stream == 1) {
			close_sim(s);
			return -1;
		} else if (type == 4 /* SETTINGS */ && !(flags & 0x1)) {
			put_frame_head(&s->out, 0, 4, 0x1, 0);
		} else if (type == 6 /* PING */ && !(flags & 0x1) && len == 8) {
			put_frame_head(&s->out, 8, 6, 0x1, 0);
			buf_put(&s->out, p, 8);
		}
	}
	buf_consume(&s->in, pos);
	/* the windows were raised to the maximum; give them back long before they run out */
	if (s->recv_unacked > (1u << 30)) {
		uint8_t wu[4];
		put_u32(wu, s->recv_unacked);
		put_frame_head(&s->out, 4, 8, 0, 0);
		buf_put(&s->out, wu, 4);
		put_frame_head(&s->out, 4, 8, 0, 1);
		buf_put(&s->out, wu, 4);
		s->recv_unacked = 0;
	}
	return 0;
}

static void watch_events(struct sim *s, int out)
{
	struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = s };

	epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
	s->want_write = out;
}

static void flush_out(struct sim *s)
{
	while (s->out.len > 0 && s->state == OPEN) {
		int n = SSL_write(s->ssl, s->out.p, s->out.len);
		if (n > 0) {
			buf_consume(&s->out, n);
			continue;
		}
		int e = SSL_get_error(s->ssl, n);
		if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
			if (!s->want_write)
				watch_events(s, 1);
			return;
		}
		close_sim(s);
		return;
	}
	if (s->state == OPEN && s->want_write)
		watch_events(s, 0);
}

static void on_readable(struct sim *s);

static void handshake(struct sim *s)
{
	int r = SSL_connect(s->ssl);
	if (r == 1) {
		const unsigned char *alpn;
		unsigned alpn_len;
		SSL_get0_alpn_selected(s->ssl, &alpn, &alpn_len);
		if (alpn_len != 2 || memcmp(alpn, "h2", 2)) {
			fprintf(stderr, "sims: %s: the hub did not negotiate h2\n", s->name);
			close_sim(s);
			return;
		}
		s->state = OPEN;
		flush_out(s);
		if (s->state == OPEN && SSL_has_pending(s->ssl))
			on_readable(s); /* read ahead with the handshake's last flight */
		return;
	}
	int e = SSL_get_error(s->ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		watch_events(s, 0);
	else if (e == SSL_ERROR_WANT_WRITE)
		watch_events(s, 1);
	else {
		char err[256];
		ERR_error_string_n(ERR_get_error(), err, sizeof err);
		fprintf(stderr, "sims: %s: TLS handshake failed: %s\n", s->name, err);
		close_sim(s);
	}
}

static void on_readable(struct sim *s)
{
	uint8_t chunk[READ_CHUNK];

	for (;;) {
		int n = SSL_read(s->ssl, chunk, sizeof chunk);
		if (n > 0) {
			buf_put(&s->in, chunk, n);
			if (on_frames(s))
				return;
			/* nothing buffered in OpenSSL: epoll says when the socket has more (no read for EAGAIN) */
			if (!SSL_has_pending(s->ssl))
				break;
			continue;
		}
		int e = SSL_get_error(s->ssl, n);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			break;
		close_sim(s); /* closed by the hub, or an error */
		return;
	}
	flush_out(s);
}

static void on_event(struct sim *s, uint32_t events)
{
	if (s->state == CONNECTING) {
		int err = 0;
		socklen_t l = sizeof err;
		getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err) {
			fprintf(stderr, "sims: %s: connect: %s\n", s->name, strerror(err));
			close_sim(s);
			return;
		}
		s->state = HANDSHAKE;
	}
	if (s->state == HANDSHAKE) {
		handshake(s);
		if (s->state != OPEN)
			return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		on_readable(s);
	else if (events & EPOLLOUT)
		flush_out(s);
}

static void connect_sim(struct sim *s, int resume)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(atoi(port)) };
	int one = 1;

	close_sim(s);
	if (s->welcomed)
		welcomed_count--;
	s->welcomed = 0;
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "sims: the hub's address must be an IPv4 address, not %s\n", host);
		exit(2);
	}
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	s->ssl = SSL_new(ctx);
	SSL_set_fd(s->ssl, s->fd);
	SSL_set_mode(s->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), host);
	start_call(s, resume);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = s };
	epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev);
	s->want_write = 1;
	if (connect(s->fd, (struct sockaddr *)&sa, sizeof sa) && errno != EINPROGRESS) {
		fprintf(stderr, "sims: %s: connect: %s\n", s->name, strerror(errno));
		close_sim(s);
		return;
	}
	s->state = CONNECTING;
}

/* --- commands from the driver --- */

static char *next_word(char **line)
{
	char *w = strsep(line, " ");
	return w ? w : "";
}

static void command(char *line)
{
	char *cmd = next_word(&line);

	if (!strcmp(cmd, "W")) { /* W NAME...: the resources whose versions agents keep */
		memset(whash, 0, sizeof whash);
		nwatch = 0;
		for (char *w; (w = strsep(&line, " ")) && nwatch < MAX_WATCH;) {
			if (!*w || watch_index((uint8_t *)w, strlen(w)) >= 0)
				continue;
			watch_names[nwatch] = strdup(w);
			watch_len[nwatch] = strlen(w);
			uint32_t h = fnv((uint8_t *)w, watch_len[nwatch]) % WHASH;
			while (whash[h])
				h = (h + 1) % WHASH;
			whash[h] = ++nwatch;
		}
	} else if (!strcmp(cmd, "C")) { /* C HOST PORT TOKEN CA EXPECTED PLAIN FULLDECODE NAME... */
		snprintf(host, sizeof host, "%s", next_word(&line));
		snprintf(port, sizeof port, "%s", next_word(&line));
		snprintf(token, sizeof token, "%s", next_word(&line));
		const char *ca = next_word(&line);
		expected = atol(next_word(&line));
		plain = atoi(next_word(&line));
		full_decode = atoi(next_word(&line));
		ctx = SSL_CTX_new(TLS_client_method());
		if (!SSL_CTX_load_verify_locations(ctx, ca, NULL)) {
			fprintf(stderr, "sims: cannot read the hub's CA %s\n", ca);
			exit(2);
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x02h2", 3);
		/* read whole records (and what follows) in one read(), not a header and then a body */
		SSL_CTX_set_read_ahead(ctx, 1);
		int cap = 0;
		for (char *w; (w = strsep(&line, " "));) {
			if (!*w)
				continue;
			if (nsims == cap) {
				cap = cap ? cap * 2 : 256;
				sims = realloc(sims, cap * sizeof *sims);
			}
			memset(&sims[nsims], 0, sizeof *sims);
			sims[nsims].name = strdup(w);
			sims[nsims].fd = -1;
			nsims++;
		}
		if (nsims > (int)(sizeof pending_before / sizeof *pending_before)) {
			fprintf(stderr, "sims: at most %zu agents per process\n",
				sizeof pending_before / sizeof *pending_before);
			exit(2);
		}
		for (int i = 0; i < nsims; i++)
			connect_sim(&sims[i], 0);
	} else if (!strcmp(cmd, "w")) { /* w NAME SINCE: report when every agent holds a new version of NAME */
		const char *name = next_word(&line);
		int w = watch_index((const uint8_t *)name, strlen(name));
		if (w < 0) {
			fprintf(stderr, "sims: %s is not among the watched names\n", name);
			exit(2);
		}
		pending_since = atof(next_word(&line));
		for (int i = 0; i < nsims; i++) {
			free(pending_before[i]);
			pending_before[i] = sims[i].watched[w] ? strdup(sims[i].watched[w]) : NULL;
			sims[i].saw_change = 0;
		}
		changed_count = 0;
		pending_watch = w;
		check_progress();
	} else if (!strcmp(cmd, "r")) {
		for (int i = 0; i < nsims; i++)
			sims[i].bytes = 0;
		printf("{\"ev\":\"reset\"}\n");
		fflush(stdout);
	} else if (!strcmp(cmd, "R")) { /* R HOST PORT: every agent reconnects and resumes */
		snprintf(host, sizeof host, "%s", next_word(&line));
		snprintf(port, sizeof port, "%s", next_word(&line));
		reattach_pending = 1;
		for (int i = 0; i < nsims; i++)
			connect_sim(&sims[i], 1);
	} else if (!strcmp(cmd, "q")) {
		for (int i = 0; i < nsims; i++)
			close_sim(&sims[i]);
		exit(0);
	} else if (*cmd) {
		fprintf(stderr, "sims: unknown command %s\n", cmd);
		exit(2);
	}
}

int main(void)
{
	struct buf stdin_buf = { 0 };
	struct epoll_event evs[256];
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

	signal(SIGPIPE, SIG_IGN); /* a connection the hub closed is an error return, not a signal */
	epfd = epoll_create1(EPOLL_CLOEXEC);
	epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);
	printf("{\"ev\":\"ready\"}\n");
	fflush(stdout);
	for (;;) {
		int n = epoll_wait(epfd, evs, 256, -1);
		if (n < 0 && errno == EINTR)
			continue;
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL) {
				char chunk[65536];
				ssize_t r = read(0, chunk, sizeof chunk);
				if (r <= 0)
					exit(0); /* the driver is gone */
				buf_put(&stdin_buf, chunk, r);
				for (;;) {
					uint8_t *nl = memchr(stdin_buf.p, '\n', stdin_buf.len);
					if (!nl)
						break;
					*nl = 0;
					size_t used = nl - stdin_buf.p + 1;
					char *line = strdup((char *)stdin_buf.p);
					buf_consume(&stdin_buf, used);
					command(line);
					free(line);
				}
				continue;
			}
			struct sim *s = evs[i].data.ptr;
			if (s->state != IDLE)
				on_event(s, evs[i].events);
		}
	}
}
