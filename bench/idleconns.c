/* idleconns.c -- open many keep-alive client connections, make one request on each, hold them.
 *
 * usage: idleconns HOST PORT COUNT PATH [SETUP_SECONDS]
 *
 * Opens COUNT TCP connections to HOST:PORT (non-blocking connects, at most 256
 * under way at once so the listener's backlog never overflows), sends
 * "GET PATH HTTP/1.1" on each and reads the whole answer. When every
 * connection is answered or failed, or SETUP_SECONDS (default 60) have passed,
 * it prints one line
 *   answered=N failed=M pending=P first_error=TEXT
 * and then holds the answered connections idle until SIGTERM or SIGINT, counting
 * the ones the server closes; on the signal it prints
 *   closed_by_peer=K
 * and exits 0. Exit status 1 on a usage or setup error. It exists for bench/run.sh,
 * which measures the server's memory per idle connection while they are held. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_UNDERWAY 256  /* connections connecting or waiting for their answer */
#define RESP_CAP     2048 /* the hello answer is far smaller; larger heads count as failures */

enum cstate { C_CONNECTING, C_READING, C_IDLE, C_DEAD };

struct conn {
	int fd;
	enum cstate st;
	size_t len;
	char *resp; /* allocated while reading only: idle connections hold no buffer */
};

static struct conn *conns;
static int ep;
static char req[512];
static size_t req_len;
static long n_answered, n_failed, n_closed;
static int underway;
static char first_error[128];

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Records the first failure's reason, since they are usually all the same one. */
static void fail_conn(struct conn *c, const char *why, int err)
{
	if (!first_error[0])
		snprintf(first_error, sizeof(first_error), "%s%s%s", why, err ? ": " : "",
			 err ? strerror(err) : "");
	if (c->st == C_CONNECTING || c->st == C_READING)
		underway--;
	free(c->resp);
	c->resp = NULL;
	close(c->fd);
	c->fd = -1;
	c->st = C_DEAD;
	n_failed++;
}

static int start_conn(struct conn *c, const struct sockaddr_in *sa)
{
	c->st = C_CONNECTING;
	c->len = 0;
	c->resp = NULL;
	underway++;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fail_conn(c, "socket", errno);
		return -1;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 && errno != EINPROGRESS) {
		fail_conn(c, "connect", errno);
		return -1;
	}
	struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.ptr = c};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		fail_conn(c, "epoll_ctl", errno);
		return -1;
	}
	return 0;
}

/* Returns 1 when c->resp holds a complete answer (Content-Length or chunked), else 0. */
static int answer_complete(const struct conn *c)
{
	const char *end = memmem(c->resp, c->len, "\r\n\r\n", 4);
	if (!end)
		return 0;
	size_t head = (size_t)(end - c->resp) + 4;
	for (const char *p = c->resp; p < end; p++) {
		if (p[0] != '\n')
			continue;
		if (strncasecmp(p + 1, "content-length:", 15) == 0)
			return c->len >= head + strtoul(p + 16, NULL, 10);
		if (strncasecmp(p + 1, "transfer-encoding:", 18) == 0)
			return memmem(c->resp + head, c->len - head, "0\r\n\r\n", 5) != NULL;
	}
	return 1; /* no body framing: a 204/304 or a head-only answer */
}

/* Prints the setup summary and closes the connections still unanswered, so that only idle
 * ones are held (and an unanswered socket cannot keep waking the loop). */
static void report(long count)
{
	printf("answered=%ld failed=%ld pending=%ld first_error=%s\n", n_answered, n_failed,
	       count - n_answered - n_failed, first_error[0] ? first_error : "none");
	for (long i = 0; i < count; i++) {
		struct conn *c = &conns[i];
		if (c->st == C_CONNECTING || c->st == C_READING) {
			free(c->resp);
			c->resp = NULL;
			close(c->fd);
			c->fd = -1;
			c->st = C_DEAD;
		}
	}
}

static void on_event(struct conn *c, uint32_t events)
{
	if (c->st == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
			fail_conn(c, "connect", err ? err : errno);
			return;
		}
		if (!(events & EPOLLOUT))
			return;
		/* The request is tiny: a fresh socket's send buffer always takes it whole. */
		if (write(c->fd, req, req_len) != (ssize_t)req_len) {
			fail_conn(c, "write", errno);
			return;
		}
		c->st = C_READING;
		c->resp = malloc(RESP_CAP);
		if (!c->resp) {
			fail_conn(c, "malloc", ENOMEM);
			return;
		}
		struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		return;
	}
	if (c->st == C_READING) {
		ssize_t n = read(c->fd, c->resp + c->len, RESP_CAP - c->len);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			fail_conn(c, n == 0 ? "closed before the answer" : "read",
				  n == 0 ? 0 : errno);
			return;
		}
		c->len += (size_t)n;
		if (answer_complete(c)) {
			if (c->len < 12 || memcmp(c->resp + 9, "200", 3) != 0) {
				fail_conn(c, "answer was not 200", 0);
				return;
			}
			free(c->resp);
			c->resp = NULL;
			c->st = C_IDLE;
			underway--;
			n_answered++;
		} else if (c->len == RESP_CAP) {
			fail_conn(c, "answer too large", 0);
		}
		return;
	}
	if (c->st == C_IDLE && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
		close(c->fd);
		c->fd = -1;
		c->st = C_DEAD;
		n_closed++;
	}
}

int main(int argc, char **argv)
{
	if (argc < 5 || argc > 6) {
		fprintf(stderr, "usage: idleconns HOST PORT COUNT PATH [SETUP_SECONDS]\n");
		return 1;
	}
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
	if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
		fprintf(stderr, "idleconns: %s is not an IPv4 address\n", argv[1]);
		return 1;
	}
	long count = atol(argv[3]);
	double setup = argc == 6 ? atof(argv[5]) : 60.0;
	if (count <= 0 || setup <= 0) {
		fprintf(stderr, "idleconns: COUNT and SETUP_SECONDS must be positive\n");
		return 1;
	}
	req_len = (size_t)snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s:%s\r\n\r\n",
				   argv[4], argv[1], argv[2]);
	if (req_len >= sizeof(req)) {
		fprintf(stderr, "idleconns: PATH is too long\n");
		return 1;
	}

	/* Every connection is a descriptor: the default soft limit (often 1024) is far too low. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < count + 16) {
			fprintf(stderr,
				"idleconns: the open-file limit (%ld) is below %ld connections; "
				"raise it with ulimit -n\n",
				(long)rl.rlim_cur, count);
			return 1;
		}
	}

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	ep = epoll_create1(EPOLL_CLOEXEC);
	conns = calloc((size_t)count, sizeof(*conns));
	if (sfd < 0 || ep < 0 || !conns) {
		perror("idleconns: setup");
		return 1;
	}
	struct epoll_event sev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &sev);
	setvbuf(stdout, NULL, _IOLBF, 0);

	double deadline = now_s() + setup;
	long next = 0;
	int reported = 0, stop = 0;
	struct epoll_event evs[512];
	while (!stop) {
		while (!reported && next < count && underway < MAX_UNDERWAY)
			start_conn(&conns[next++], &sa);
		if (!reported && ((next == count && underway == 0) || now_s() >= deadline)) {
			report(count);
			reported = 1;
		}
		int n = epoll_wait(ep, evs, 512, reported ? -1 : 100);
		if (n < 0 && errno != EINTR) {
			perror("idleconns: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL) {
				stop = 1;
				continue;
			}
			struct conn *c = evs[i].data.ptr;
			if (c->st != C_DEAD)
				on_event(c, evs[i].events);
		}
	}
	if (!reported)
		report(count);
	printf("closed_by_peer=%ld\n", n_closed);
	return 0;
}
