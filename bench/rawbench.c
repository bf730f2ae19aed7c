/* rawbench.c - the raw limits one stream can reach on this machine.
 *
 *   rawbench pipe SIZE            a pipe
 *   rawbench tcp SIZE             one loopback TCP connection (TCP_NODELAY)
 *   rawbench tls SIZE CERT KEY    one TLS 1.3 TLS_AES_128_GCM_SHA256 stream over
 *                                 loopback (OpenSSL; no tickets, no resumption)
 *
 * A forked writer sends SIZE bytes of zeros in 64 KiB write()/SSL_write()
 * calls; the parent reads them in 64 KiB reads and counts them (the count is
 * checked). Prints one line: "MB/s CPU_s_per_GB bytes" where CPU is user+sys
 * of both processes (getrusage SELF + CHILDREN) and MB = 10^6 B, GB = 10^9 B.
 * Built by bench/lib.sh: cc -O2 rawbench.c -lssl -lcrypto.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { BUF = 65536 };
static char buf[BUF];

static void die(const char *m)
{
	fprintf(stderr, "rawbench: %s: %s\n", m, strerror(errno));
	ERR_print_errors_fp(stderr);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(int who)
{
	struct rusage r;
	getrusage(who, &r);
	return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

static void write_all_fd(int fd, unsigned long long size)
{
	while (size > 0) {
		size_t n = size < BUF ? size : BUF;
		ssize_t w = write(fd, buf, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			die("write");
		}
		size -= (unsigned long long)w;
	}
}

static unsigned long long read_all_fd(int fd)
{
	unsigned long long got = 0;
	for (;;) {
		ssize_t r = read(fd, buf, BUF);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("read");
		}
		if (r == 0)
			return got;
		got += (unsigned long long)r;
	}
}

static void nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Listens on 127.0.0.1:0; returns the listening fd and its port. */
static int listen_lo(int *port)
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof a;
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1) != 0 ||
	    getsockname(l, (struct sockaddr *)&a, &al) != 0)
		die("listen");
	*port = ntohs(a.sin_port);
	return l;
}

static int connect_lo(int port)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0)
		die("connect");
	nodelay(s);
	return s;
}

static SSL_CTX *tls_ctx(int server, const char *cert, const char *key)
{
	SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!c)
		die("SSL_CTX_new");
	SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
	if (SSL_CTX_set_ciphersuites(c, "TLS_AES_128_GCM_SHA256") != 1)
		die("ciphersuites");
	SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
	if (server) {
		SSL_CTX_set_num_tickets(c, 0);
		if (SSL_CTX_use_certificate_file(c, cert, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1)
			die("certificate");
	}
	return c;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: rawbench pipe|tcp|tls SIZE [CERT KEY]\n");
		return 2;
	}
	const char *mode = argv[1];
	unsigned long long size = strtoull(argv[2], NULL, 10);
	int tls = strcmp(mode, "tls") == 0;
	if (tls && argc < 5) {
		fprintf(stderr, "rawbench: tls needs CERT KEY\n");
		return 2;
	}
	int rfd = -1, port = 0, lfd = -1, pfd[2];
	if (strcmp(mode, "pipe") == 0) {
		if (pipe(pfd) != 0)
			die("pipe");
	} else if (strcmp(mode, "tcp") == 0 || tls) {
		lfd = listen_lo(&port);
	} else {
		fprintf(stderr, "rawbench: unknown mode %s\n", mode);
		return 2;
	}
	double t0 = now_s(), c0 = cpu_s(RUSAGE_SELF);
	pid_t w = fork();
	if (w < 0)
		die("fork");
	if (w == 0) { /* writer */
		if (lfd < 0) {
			close(pfd[0]);
			write_all_fd(pfd[1], size);
			_exit(0);
		}
		close(lfd);
		int s = connect_lo(port);
		if (!tls) {
			write_all_fd(s, size);
			shutdown(s, SHUT_WR);
			read(s, buf, 1); /* wait for the reader's close */
			_exit(0);
		}
		SSL_CTX *c = tls_ctx(0, NULL, NULL);
		SSL *ssl = SSL_new(c);
		SSL_set_fd(ssl, s);
		if (SSL_connect(ssl) != 1)
			die("SSL_connect");
		while (size > 0) {
			int n = size < BUF ? (int)size : BUF;
			int k = SSL_write(ssl, buf, n);
			if (k <= 0)
				die("SSL_write");
			size -= (unsigned long long)k;
		}
		SSL_shutdown(ssl);
		shutdown(s, SHUT_WR);
		read(s, buf, 1);
		_exit(0);
	}
	unsigned long long got = 0;
	if (lfd < 0) {
		close(pfd[1]);
		got = read_all_fd(pfd[0]);
	} else {
		rfd = accept(lfd, NULL, NULL);
		if (rfd < 0)
			die("accept");
		nodelay(rfd);
		if (!tls) {
			got = read_all_fd(rfd);
		} else {
			SSL_CTX *c = tls_ctx(1, argv[3], argv[4]);
			SSL *ssl = SSL_new(c);
			SSL_set_fd(ssl, rfd);
			if (SSL_accept(ssl) != 1)
				die("SSL_accept");
			for (;;) {
				int k = SSL_read(ssl, buf, BUF);
				if (k <= 0)
					break; /* close_notify (checked by the count) */
				got += (unsigned long long)k;
			}
		}
		close(rfd);
	}
	int st;
	waitpid(w, &st, 0);
	double t1 = now_s();
	double cpu = cpu_s(RUSAGE_SELF) - c0 + cpu_s(RUSAGE_CHILDREN);
	if (got != size) {
		fprintf(stderr, "rawbench: %s: got %llu bytes, want %llu\n", mode, got, size);
		return 1;
	}
	printf("%.0f %.3f %llu\n", size / 1e6 / (t1 - t0), cpu / (size / 1e9), got);
	return 0;
}
