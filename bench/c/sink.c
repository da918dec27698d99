// A fast benchmark sink: accepts and closes TCP connections, and receives UDP
// datagrams, on ADDR:PORT; a datagram that starts with '?' is sent back to its
// sender (the client's request/reply mode). Two threads; prints "ready" when
// listening.
// Usage: sink ADDR PORT
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in addr;

static void *udp_loop(void *arg)
{
	int fd = *(int *)arg;
	char buf[2048];

	for (;;) {
		struct sockaddr_in from;
		socklen_t len = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len);

		if (n > 0 && buf[0] == '?')
			sendto(fd, buf, n, 0, (struct sockaddr *)&from, len);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int one = 1, lfd, ufd;
	pthread_t t;

	if (argc != 3) {
		fprintf(stderr, "usage: sink ADDR PORT\n");
		return 2;
	}
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons(atoi(argv[2]));
	inet_pton(AF_INET, argv[1], &addr.sin_addr);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 65535)) {
		perror("tcp");
		return 1;
	}
	ufd = socket(AF_INET, SOCK_DGRAM, 0);
	if (bind(ufd, (struct sockaddr *)&addr, sizeof(addr))) {
		perror("udp");
		return 1;
	}
	pthread_create(&t, NULL, udp_loop, &ufd);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int c = accept(lfd, NULL, NULL);

		if (c >= 0)
			close(c);
	}
}
