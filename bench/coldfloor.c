/* coldfloor.c -- the bare cold-start floor: fork+exec a server, connect-poll until it
 * accepts, one request and its first response byte; no sandbox, no gateway.
 *
 * usage: coldfloor RUNS PORT DIR CMD [ARGS...]
 *
 * Each run forks, execs CMD in DIR with PORT=<PORT> in the environment, then tries to
 * connect to 127.0.0.1:PORT every 20 us until it accepts, sends "GET / HTTP/1.1" and
 * waits for the first byte of the answer. The time from just before fork to that
 * byte is one sample; the server is then killed and reaped. Prints one line per run
 * (microseconds) on stdout, then "p50 US p99 US" on stderr. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* One cold start; returns microseconds, or a negative number on failure. */
static double one(int port, const char *dir, char **argv)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timespec nap = {0, 20000};
	char env[32], c;
	double t0, t1 = -1;
	pid_t pid;
	int fd = -1, tries;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	snprintf(env, sizeof(env), "PORT=%d", port);
	t0 = now_us();
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		char *envp[] = {env, "PATH=/usr/bin:/bin", NULL};
		int nul = open("/dev/null", O_WRONLY);
		/* Its output would mix with the samples on stdout. */
		if (nul < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0 || chdir(dir) < 0)
			_exit(127);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	for (tries = 0; tries < 250000; tries++) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			break;
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			break;
		close(fd);
		fd = -1;
		nanosleep(&nap, NULL);
	}
	if (fd >= 0 && write(fd, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1 &&
	    read(fd, &c, 1) == 1)
		t1 = now_us();
	if (fd >= 0)
		close(fd);
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return t1 < 0 ? -1 : t1 - t0;
}

int main(int argc, char **argv)
{
	double *v;
	int runs, port, i, n = 0;

	if (argc < 5) {
		fprintf(stderr, "usage: coldfloor RUNS PORT DIR CMD [ARGS...]\n");
		return 2;
	}
	runs = atoi(argv[1]);
	port = atoi(argv[2]);
	if (runs < 1 || port < 1 || port > 65535) {
		fprintf(stderr, "coldfloor: RUNS must be at least 1 and PORT a TCP port\n");
		return 2;
	}
	v = calloc((size_t)runs, sizeof(*v));
	if (v == NULL)
		return 1;
	for (i = 0; i < runs; i++) {
		double us = one(port, argv[3], argv + 4);
		if (us < 0) {
			fprintf(stderr, "coldfloor: run %d failed (does %s listen on $PORT?)\n", i,
				argv[4]);
			continue;
		}
		v[n++] = us;
		printf("%.0f\n", us);
	}
	if (n == 0)
		return 1;
	qsort(v, (size_t)n, sizeof(*v), cmp);
	fprintf(stderr, "p50 %.0f p99 %.0f\n", v[n / 2],
		v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1]);
	free(v);
	return 0;
}
