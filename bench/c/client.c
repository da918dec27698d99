// Benchmark client: for DURATION_MS, either TCP connect+RST-close in a loop,
// or unconnected UDP sendto in a loop, to ADDR:PORT. Two more modes run the
// reverse hooks: tcppeer (connect, getpeername, close) and udprr (sendto a
// request, recvfrom its reply); an answer whose address is not the one the
// client asked for counts as an error. ADDR may be a
// comma-separated list, used in turn (so a direct run spreads over the same
// backends a service would). Prints {"ops":N,"errors":N,"seconds":S,"cpu_seconds":C}:
// C is the CPU time the client itself used (user + system, the kernel's
// socket path and the BPF programs included), which other jobs on a shared
// machine do not inflate as they inflate S.
// Usage: client tcp|udp|tcppeer|udprr ADDR[,ADDR...] PORT DURATION_MS
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addrs[64];
	int naddr = 0, k = 0;
	char *list, *tok;
	struct linger lg = { 1, 0 };
	long ops = 0, errors = 0;
	double start, end, cpu_start;
	int udp, peer, rr;

	if (argc != 5) {
		fprintf(stderr, "usage: client tcp|udp|tcppeer|udprr ADDR PORT DURATION_MS\n");
		return 2;
	}
	rr = strcmp(argv[1], "udprr") == 0;
	udp = rr || strcmp(argv[1], "udp") == 0;
	peer = strcmp(argv[1], "tcppeer") == 0;
	list = strdup(argv[2]);
	for (tok = strtok(list, ","); tok && naddr < 64; tok = strtok(NULL, ",")) {
		memset(&addrs[naddr], 0, sizeof(addrs[naddr]));
		addrs[naddr].sin_family = AF_INET;
		addrs[naddr].sin_port = htons(atoi(argv[3]));
		if (inet_pton(AF_INET, tok, &addrs[naddr].sin_addr) != 1) {
			fprintf(stderr, "bad address %s\n", tok);
			return 2;
		}
		naddr++;
	}
	start = now();
	cpu_start = cpu_now();
	end = start + atoi(argv[4]) / 1000.0;
	if (udp) {
		int fd = socket(AF_INET, SOCK_DGRAM, 0);
		char msg[32] = "x";
		struct timeval tv = { 1, 0 };

		if (rr) {
			msg[0] = '?';
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		}
		while (1) {
			for (int i = 0; i < 256; i++) {
				struct sockaddr_in *a = &addrs[k++ % naddr];
				struct sockaddr_in from;
				socklen_t len = sizeof(from);

				if (sendto(fd, msg, sizeof(msg), 0, (struct sockaddr *)a, sizeof(*a)) < 0)
					errors++;
				else if (!rr)
					ops++;
				else if (recvfrom(fd, msg, sizeof(msg), 0, (struct sockaddr *)&from, &len) < 0 ||
					 from.sin_addr.s_addr != a->sin_addr.s_addr || from.sin_port != a->sin_port)
					errors++;
				else
					ops++;
			}
			if (now() >= end)
				break;
		}
	} else {
		while (1) {
			for (int i = 0; i < 32; i++) {
				int fd = socket(AF_INET, SOCK_STREAM, 0);
				struct sockaddr_in *a = &addrs[k++ % naddr];

				struct sockaddr_in p;
				socklen_t len = sizeof(p);

				if (connect(fd, (struct sockaddr *)a, sizeof(*a)) != 0)
					errors++;
				else if (peer && (getpeername(fd, (struct sockaddr *)&p, &len) != 0 ||
						  p.sin_addr.s_addr != a->sin_addr.s_addr || p.sin_port != a->sin_port))
					errors++;
				else
					ops++;
				setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
				close(fd);
			}
			if (now() >= end)
				break;
		}
	}
	printf("{\"ops\":%ld,\"errors\":%ld,\"seconds\":%.3f,\"cpu_seconds\":%.6f}\n", ops, errors, now() - start,
	       cpu_now() - cpu_start);
	return 0;
}
