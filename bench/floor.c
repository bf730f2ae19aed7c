/* floor.c - the exec-into-container floor: what any remote exec must at least
 * do on the node once the request has arrived.
 *
 *   floor PID [ARGV...]          one exec (default ARGV: /bin/true), exit status
 *                                of ARGV's process (hyperfine/interleave rows)
 *   floor -n N PID [ARGV...]     N execs in a loop; prints one line per exec (µs)
 *
 * One exec: open /proc/PID/ns/{ipc,uts,net,pid,mnt} and /proc/PID/root, fork;
 * the child setns()es into each, fchdir()s to the container's root and
 * chroot(".")s, then forks again (a setns into a PID namespace only applies to
 * children) and the grandchild execve()s ARGV; each parent waits.
 * Namespaces the container shares with us are skipped (setns would be a no-op).
 * Built by bench/lib.sh with `cc -O2`; no dependencies beyond libc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const ns_names[] = { "ipc", "uts", "net", "pid", "mnt" };
enum { NNS = sizeof ns_names / sizeof ns_names[0] };

struct target {
	int nsfd[NNS]; /* -1: shared with us, skip */
	int rootfd;
};

static int open_target(int pid, struct target *t)
{
	char p[64], q[64];
	struct stat a, b;
	for (int i = 0; i < NNS; i++) {
		snprintf(p, sizeof p, "/proc/%d/ns/%s", pid, ns_names[i]);
		snprintf(q, sizeof q, "/proc/self/ns/%s", ns_names[i]);
		t->nsfd[i] = -1;
		if (stat(p, &a) != 0)
			return -errno;
		if (stat(q, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			continue;
		t->nsfd[i] = open(p, O_RDONLY | O_CLOEXEC);
		if (t->nsfd[i] < 0)
			return -errno;
	}
	snprintf(p, sizeof p, "/proc/%d/root", pid);
	t->rootfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return t->rootfd < 0 ? -errno : 0;
}

/* Returns the wait status of ARGV's process, or -1. */
static int one(const struct target *t, char **argv)
{
	pid_t c = fork();
	if (c < 0)
		return -1;
	if (c == 0) {
		for (int i = 0; i < NNS; i++)
			if (t->nsfd[i] >= 0 && setns(t->nsfd[i], 0) != 0)
				_exit(126);
		if (fchdir(t->rootfd) != 0 || chroot(".") != 0)
			_exit(126);
		pid_t g = fork();
		if (g < 0)
			_exit(126);
		if (g == 0) {
			execv(argv[0], argv);
			_exit(127);
		}
		int st;
		while (waitpid(g, &st, 0) < 0)
			if (errno != EINTR)
				_exit(126);
		_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	}
	int st;
	while (waitpid(c, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return st;
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
	long n = 0;
	int a = 1;
	if (a + 1 < argc && strcmp(argv[a], "-n") == 0) {
		n = strtol(argv[a + 1], NULL, 10);
		if (n < 1 || n > 10000000) {
			fprintf(stderr, "floor: -n wants 1..10000000\n");
			return 2;
		}
		a += 2;
	}
	if (a >= argc) {
		fprintf(stderr, "usage: floor [-n N] PID [ARGV...]\n");
		return 2;
	}
	int pid = atoi(argv[a++]);
	static char *def[] = { "/bin/true", NULL };
	char **cmd = a < argc ? argv + a : def;
	struct target t;
	int rc = open_target(pid, &t);
	if (rc != 0) {
		fprintf(stderr, "floor: pid %d: %s\n", pid, strerror(-rc));
		return 2;
	}
	if (n == 0) {
		int st = one(&t, cmd);
		return st < 0 ? 125 : WIFEXITED(st) ? WEXITSTATUS(st) : 125;
	}
	for (long i = 0; i < n; i++) {
		double t0 = now_us();
		int st = one(&t, cmd);
		double t1 = now_us();
		if (st != 0) {
			fprintf(stderr, "floor: exec %ld: status %d\n", i, st);
			return 1;
		}
		printf("%.1f\n", t1 - t0);
	}
	return 0;
}
