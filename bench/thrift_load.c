/* thrift_load.c -- a Thrift load generator: N connections, each a loop of one
 * echo call at a time (framed binary, or Kitex TTHeader with int keys naming
 * the service), for a fixed duration; prints calls/s and p50/p99 latency.
 *
 *   thrift_load HOST PORT framed|ttheader CONNS SECONDS [MSGBYTES [SERVICE]]
 *
 * Output (one line): calls=N secs=S calls_per_s=R p50_us=A p99_us=B errors=E
 * A reply that is not a REPLY message for the call's seqid counts as an error
 * and ends that connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_US 1000000 /* latencies above 1 s share the last bucket */

struct conn {
	int fd;
	uint8_t req[4096 + 256];
	size_t req_len, req_off;
	size_t seq_at; /* offset of the message seqid in req */
	int32_t seqid;
	uint8_t *in;
	size_t in_len, in_cap;
	uint64_t t_sent;
	int dead, want_out;
};

static int ttheader;
static const char *service = "EchoService";
static uint32_t *hist;
static uint64_t calls, errors;

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Builds the request frame once; only the seqids change per call. */
static void build(struct conn *c, size_t msglen)
{
	uint8_t msg[4096 + 64], hdr[128];
	size_t n = 0, h = 0, sl = strlen(service);

	put32(msg, 0x80010001u); /* strict binary CALL */
	put32(msg + 4, 4);
	memcpy(msg + 8, "echo", 4);
	put32(msg + 12, 0); /* seqid */
	n = 16;
	msg[n++] = 11; /* field 1: string */
	msg[n++] = 0;
	msg[n++] = 1;
	put32(msg + n, (uint32_t)msglen);
	n += 4;
	memset(msg + n, 'x', msglen);
	n += msglen;
	msg[n++] = 0;

	if (!ttheader) {
		put32(c->req, (uint32_t)n);
		memcpy(c->req + 4, msg, n);
		c->req_len = 4 + n;
		c->seq_at = 4 + 12;
		return;
	}
	hdr[h++] = 0; /* binary */
	hdr[h++] = 0; /* no transforms */
	hdr[h++] = 0x10;
	hdr[h++] = 0;
	hdr[h++] = 2; /* two int key/values */
	hdr[h++] = 0;
	hdr[h++] = 6; /* ToService */
	hdr[h++] = (uint8_t)(sl >> 8);
	hdr[h++] = (uint8_t)sl;
	memcpy(hdr + h, service, sl);
	h += sl;
	hdr[h++] = 0;
	hdr[h++] = 9; /* ToMethod */
	hdr[h++] = 0;
	hdr[h++] = 4;
	memcpy(hdr + h, "echo", 4);
	h += 4;
	while (h % 4)
		hdr[h++] = 0;
	put32(c->req, (uint32_t)(10 + h + n));
	c->req[4] = 0x10;
	c->req[5] = 0x00;
	c->req[6] = c->req[7] = 0;
	put32(c->req + 8, 0);
	c->req[12] = (uint8_t)((h / 4) >> 8);
	c->req[13] = (uint8_t)(h / 4);
	memcpy(c->req + 14, hdr, h);
	memcpy(c->req + 14 + h, msg, n);
	c->req_len = 14 + h + n;
	c->seq_at = 14 + h + 12;
}

static int send_call(struct conn *c)
{
	ssize_t w;

	if (c->req_off == 0) {
		c->seqid++;
		put32(c->req + c->seq_at, (uint32_t)c->seqid);
		if (ttheader)
			put32(c->req + 8, (uint32_t)c->seqid);
		c->t_sent = now_us();
	}
	while (c->req_off < c->req_len) {
		w = send(c->fd, c->req + c->req_off, c->req_len - c->req_off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN)
				return 0;
			return -1;
		}
		c->req_off += (size_t)w;
	}
	return 0;
}

/* Checks one whole reply frame: a REPLY for this seqid. */
static int check_reply(struct conn *c, const uint8_t *f, size_t n)
{
	const uint8_t *m = f + 4;
	size_t mn = n - 4;
	uint32_t nl;

	if (ttheader) {
		size_t off;
		if (n < 14 || f[4] != 0x10 || f[5] != 0x00 || (int32_t)get32(f + 8) != c->seqid)
			return -1;
		off = 14 + 4 * (size_t)((f[12] << 8) | f[13]);
		if (off + 12 > n)
			return -1;
		m = f + off;
		mn = n - off;
		if (!(m[0] == 0x80 && m[1] == 0x01)) { /* TTHeader-framed payload */
			m += 4;
			mn -= 4;
		}
	}
	if (mn < 12 || get32(m) != 0x80010002u)
		return -1;
	nl = get32(m + 4);
	if (8 + (size_t)nl + 4 > mn || (int32_t)get32(m + 8 + nl) != c->seqid)
		return -1;
	return 0;
}

static int on_readable(struct conn *c, int recording)
{
	for (;;) {
		ssize_t r;
		if (c->in_cap - c->in_len < 65536) {
			c->in_cap = c->in_cap * 2 + 65536;
			c->in = realloc(c->in, c->in_cap);
			if (c->in == NULL)
				return -1;
		}
		r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
		if (r == 0)
			return -1;
		if (r < 0)
			return errno == EAGAIN ? 0 : -1;
		c->in_len += (size_t)r;
		while (c->in_len >= 4) {
			size_t n = 4 + (size_t)get32(c->in);
			uint64_t us;
			if (c->in_len < n)
				break;
			if (check_reply(c, c->in, n) < 0)
				return -1;
			us = now_us() - c->t_sent;
			if (recording) {
				hist[us < MAX_US ? us : MAX_US]++;
				calls++;
			}
			memmove(c->in, c->in + n, c->in_len - n);
			c->in_len -= n;
			c->req_off = 0;
			if (send_call(c) < 0)
				return -1;
		}
	}
}

static uint64_t percentile(double p)
{
	uint64_t want = (uint64_t)(p * (double)calls), seen = 0;
	uint64_t i;

	for (i = 0; i <= MAX_US; i++) {
		seen += hist[i];
		if (seen > want)
			return i;
	}
	return MAX_US;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa;
	struct epoll_event ev, evs[256];
	struct conn *cs;
	int ep, nconn, i, one = 1;
	double secs;
	size_t msglen = 32;
	uint64_t t0, end;

	if (argc < 6) {
		fprintf(stderr,
			"usage: %s HOST PORT framed|ttheader CONNS SECONDS [MSGBYTES [SERVICE]]\n",
			argv[0]);
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
		fprintf(stderr, "thrift_load: %s is not an IPv4 address\n", argv[1]);
		return 2;
	}
	ttheader = strcmp(argv[3], "ttheader") == 0;
	if (!ttheader && strcmp(argv[3], "framed") != 0) {
		fprintf(stderr, "thrift_load: the mode must be framed or ttheader, not %s\n",
			argv[3]);
		return 2;
	}
	nconn = atoi(argv[4]);
	secs = atof(argv[5]);
	if (argc > 6)
		msglen = (size_t)atoi(argv[6]);
	if (argc > 7)
		service = argv[7];
	if (nconn < 1 || secs <= 0 || msglen > 4096 || strlen(service) > 64) {
		fprintf(stderr, "thrift_load: CONNS >= 1, SECONDS > 0, MSGBYTES <= 4096\n");
		return 2;
	}
	hist = calloc(MAX_US + 1, sizeof(*hist));
	cs = calloc((size_t)nconn, sizeof(*cs));
	ep = epoll_create1(0);
	if (hist == NULL || cs == NULL || ep < 0) {
		perror("thrift_load");
		return 1;
	}
	for (i = 0; i < nconn; i++) {
		struct conn *c = &cs[i];
		c->fd = socket(AF_INET, SOCK_STREAM, 0);
		if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			fprintf(stderr, "thrift_load: cannot connect to %s:%s: %s\n", argv[1],
				argv[2], strerror(errno));
			return 1;
		}
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
		build(c, msglen);
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
			perror("thrift_load: epoll_ctl");
			return 1;
		}
	}
	t0 = now_us();
	end = t0 + (uint64_t)(secs * 1e6);
	for (i = 0; i < nconn; i++)
		if (send_call(&cs[i]) < 0) {
			cs[i].dead = 1;
			errors++;
		}
	while (now_us() < end) {
		int n = epoll_wait(ep, evs, 256, 50), k;
		for (k = 0; k < n; k++) {
			struct conn *c = evs[k].data.ptr;
			if (c->dead)
				continue;
			if ((evs[k].events & EPOLLOUT) && send_call(c) < 0) {
				c->dead = 1;
				errors++;
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				continue;
			}
			if (on_readable(c, 1) < 0) {
				c->dead = 1;
				errors++;
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				continue;
			}
			/* Ask for EPOLLOUT only while a call is partly sent (rare: calls are
			 * small). */
			if ((c->req_off < c->req_len) != c->want_out) {
				c->want_out = c->req_off < c->req_len;
				ev.events = EPOLLIN | (c->want_out ? EPOLLOUT : 0);
				ev.data.ptr = c;
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
			}
		}
	}
	secs = (double)(now_us() - t0) / 1e6;
	printf("calls=%llu secs=%.2f calls_per_s=%.0f p50_us=%llu p99_us=%llu errors=%llu\n",
	       (unsigned long long)calls, secs, (double)calls / secs,
	       (unsigned long long)percentile(0.50), (unsigned long long)percentile(0.99),
	       (unsigned long long)errors);
	for (i = 0; i < nconn; i++) {
		close(cs[i].fd);
		free(cs[i].in);
	}
	free(cs);
	free(hist);
	return errors ? 1 : 0;
}
