/* hello.c -- a tiny, fast HTTP/1.1 server (epoll, non-blocking, keep-alive) run as a function.
 *
 * Listens on 127.0.0.1:$PORT and answers every request "hello from C\n"
 * (GET /healthz answers "ok"). Request bodies, with Content-Length or chunked,
 * are read and discarded so that POSTs of any size keep the connection usable.
 * Pipelined requests are answered in order. One thread: it is meant to be run
 * as several instances, not as one big process. */
#define _GNU_SOURCE /* accept4, memmem */
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_CAP	 (64 * 1024)  /* also the largest request head accepted */
#define OUT_HIGH (256 * 1024) /* stop parsing pipelined requests past this much unsent */

enum state { ST_HEAD, ST_BODY, ST_CHUNK_SIZE, ST_CHUNK_DATA, ST_CHUNK_CRLF, ST_TRAILER };

struct conn {
	int fd;
	enum state st;
	uint64_t remaining; /* body or chunk bytes still to discard */
	int keep_alive;	    /* of the request being read */
	int healthz;
	int head_only;
	int closing; /* close once everything queued has been written */
	size_t in_len;
	char *out;
	size_t out_off, out_len, out_cap;
	char in[IN_CAP];
};

static int ep;

static const char HELLO[] = "hello from C\n";
static const char OK[] = "ok";

static void out_append(struct conn *c, const char *p, size_t n)
{
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_len + n)
			cap *= 2;
		char *nb = realloc(c->out, cap);
		if (!nb) {
			/* Out of memory: this connection cannot be served; drop it. */
			c->closing = 1;
			return;
		}
		c->out = nb;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

static void respond(struct conn *c, int status, const char *reason, const char *body, int close)
{
	char head[256];
	size_t blen = strlen(body);
	int n =
	    snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n",
		     status, reason, blen, close ? "Connection: close\r\n" : "");
	out_append(c, head, (size_t)n);
	if (!c->head_only)
		out_append(c, body, blen);
	if (close)
		c->closing = 1;
}

static void consume(struct conn *c, size_t n)
{
	memmove(c->in, c->in + n, c->in_len - n);
	c->in_len -= n;
}

static void finish_request(struct conn *c)
{
	if (c->healthz)
		respond(c, 200, "OK", OK, !c->keep_alive);
	else
		respond(c, 200, "OK", HELLO, !c->keep_alive);
	c->st = ST_HEAD;
}

/* Case-insensitive search for token in a comma-separated header value. */
static int has_token(const char *v, size_t vlen, const char *token)
{
	size_t tl = strlen(token);
	for (size_t i = 0; i + tl <= vlen; i++) {
		if (strncasecmp(v + i, token, tl) != 0)
			continue;
		int start_ok = i == 0 || v[i - 1] == ',' || v[i - 1] == ' ' || v[i - 1] == '\t';
		size_t e = i + tl;
		int end_ok = e == vlen || v[e] == ',' || v[e] == ' ' || v[e] == '\t' || v[e] == ';';
		if (start_ok && end_ok)
			return 1;
	}
	return 0;
}

/* Parses the request head in c->in[0..len) (len includes the blank line) and sets
 * up the body state. Returns 0, or -1 for a malformed head (already answered). */
static int parse_head(struct conn *c, size_t len)
{
	char *p = c->in, *end = c->in + len;
	char *eol = memchr(p, '\r', (size_t)(end - p));
	char *sp1 = memchr(p, ' ', (size_t)(eol - p));
	char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
	if (!sp1 || !sp2 || eol - sp2 - 1 != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0)
		goto bad;
	int minor = sp2[8] - '0';
	c->head_only = sp1 - p == 4 && memcmp(p, "HEAD", 4) == 0;
	size_t plen = (size_t)(sp2 - sp1 - 1);
	char *q = memchr(sp1 + 1, '?', plen);
	if (q)
		plen = (size_t)(q - sp1 - 1);
	c->healthz = plen == 8 && memcmp(sp1 + 1, "/healthz", 8) == 0;
	c->keep_alive = minor >= 1;

	int chunked = 0, have_cl = 0, expect_continue = 0;
	uint64_t cl = 0;
	for (p = eol + 2; p < end - 2; p = eol + 2) {
		eol = memchr(p, '\r', (size_t)(end - p));
		char *colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || colon == p)
			goto bad;
		size_t nlen = (size_t)(colon - p);
		char *v = colon + 1;
		while (v < eol && (*v == ' ' || *v == '\t'))
			v++;
		size_t vlen = (size_t)(eol - v);
		while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
			vlen--;
		if (nlen == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
			if (vlen == 0 || vlen > 19)
				goto bad;
			cl = 0;
			for (size_t i = 0; i < vlen; i++) {
				if (!isdigit((unsigned char)v[i]))
					goto bad;
				cl = cl * 10 + (uint64_t)(v[i] - '0');
			}
			have_cl = 1;
		} else if (nlen == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
			chunked = has_token(v, vlen, "chunked");
			if (!chunked)
				goto bad; /* an encoding we cannot frame */
		} else if (nlen == 10 && strncasecmp(p, "Connection", 10) == 0) {
			if (has_token(v, vlen, "close"))
				c->keep_alive = 0;
			else if (has_token(v, vlen, "keep-alive"))
				c->keep_alive = 1;
		} else if (nlen == 6 && strncasecmp(p, "Expect", 6) == 0) {
			expect_continue = has_token(v, vlen, "100-continue");
		}
	}
	consume(c, len);
	if (chunked && have_cl)
		goto bad_consumed; /* request smuggling shape: refuse it */
	if (chunked) {
		c->st = ST_CHUNK_SIZE;
	} else if (have_cl && cl > 0) {
		c->st = ST_BODY;
		c->remaining = cl;
	} else {
		finish_request(c);
		return 0;
	}
	if (expect_continue && minor >= 1)
		out_append(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	return 0;
bad:
	c->in_len = 0;
bad_consumed:
	c->head_only = 0;
	respond(c, 400, "Bad Request", "bad request\n", 1);
	return -1;
}

/* Parses a chunk-size line "1a;ext=1\r\n" of length len (with its CRLF). */
static int parse_chunk_size(const char *p, size_t len, uint64_t *size)
{
	uint64_t v = 0;
	size_t i = 0;
	for (; i < len - 2 && isxdigit((unsigned char)p[i]); i++) {
		if (v >> 60)
			return -1;
		int d = isdigit((unsigned char)p[i]) ? p[i] - '0'
						     : (tolower((unsigned char)p[i]) - 'a' + 10);
		v = v * 16 + (uint64_t)d;
	}
	if (i == 0)
		return -1;
	while (i < len - 2 && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (i < len - 2 && p[i] != ';')
		return -1;
	*size = v;
	return 0;
}

/* Runs the parser over buffered input. Returns -1 when the connection must close
 * after flushing what is queued. */
static int process(struct conn *c)
{
	while (!c->closing && c->out_len - c->out_off < OUT_HIGH) {
		switch (c->st) {
		case ST_HEAD: {
			char *e = memmem(c->in, c->in_len, "\r\n\r\n", 4);
			if (!e) {
				if (c->in_len == IN_CAP) {
					c->in_len = 0;
					respond(c, 431, "Request Header Fields Too Large",
						"request head too large\n", 1);
					return -1;
				}
				return 0;
			}
			if (parse_head(c, (size_t)(e + 4 - c->in)) < 0)
				return -1;
			break;
		}
		case ST_BODY:
		case ST_CHUNK_DATA: {
			size_t n = c->in_len < c->remaining ? c->in_len : (size_t)c->remaining;
			if (n == 0)
				return 0;
			consume(c, n);
			c->remaining -= n;
			if (c->remaining == 0) {
				if (c->st == ST_BODY)
					finish_request(c);
				else
					c->st = ST_CHUNK_CRLF;
			}
			break;
		}
		case ST_CHUNK_CRLF:
			if (c->in_len < 2)
				return 0;
			if (c->in[0] != '\r' || c->in[1] != '\n')
				goto bad;
			consume(c, 2);
			c->st = ST_CHUNK_SIZE;
			break;
		case ST_CHUNK_SIZE:
		case ST_TRAILER: {
			char *e = memmem(c->in, c->in_len, "\r\n", 2);
			if (!e) {
				if (c->in_len == IN_CAP)
					goto bad;
				return 0;
			}
			size_t len = (size_t)(e + 2 - c->in);
			if (c->st == ST_TRAILER) {
				consume(c, len);
				if (len == 2)
					finish_request(c);
				break;
			}
			uint64_t size;
			if (parse_chunk_size(c->in, len, &size) < 0)
				goto bad;
			consume(c, len);
			c->remaining = size;
			c->st = size ? ST_CHUNK_DATA : ST_TRAILER;
			break;
		}
		}
	}
	return c->closing ? -1 : 0;
bad:
	c->in_len = 0;
	c->head_only = 0;
	respond(c, 400, "Bad Request", "bad chunked body\n", 1);
	return -1;
}

static void conn_free(struct conn *c)
{
	close(c->fd); /* also removes it from the epoll set */
	free(c->out);
	free(c);
}

/* Writes queued output. Returns 1 when all is written, 0 when the socket is
 * full, -1 on error. */
static int flush_out(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -1;
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	return 1;
}

static void set_events(struct conn *c, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void on_event(struct conn *c, uint32_t events)
{
	if (events & EPOLLIN) {
		ssize_t n = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			conn_free(c);
			return;
		}
		if (n > 0) {
			c->in_len += (size_t)n;
			process(c);
		}
	} else if (events & (EPOLLERR | EPOLLHUP)) {
		conn_free(c);
		return;
	}
	/* Write what we can, and keep parsing pipelined input that was held back
	 * while the output was over its high mark. */
	for (;;) {
		int r = flush_out(c);
		if (r < 0 || (r == 1 && c->closing)) {
			conn_free(c);
			return;
		}
		if (r == 0) {
			/* Stop reading until the peer takes our output: backpressure. */
			set_events(c, EPOLLOUT);
			return;
		}
		size_t before = c->in_len;
		enum state st = c->st;
		process(c);
		if (c->out_len == 0 && c->in_len == before && c->st == st)
			break;
	}
	set_events(c, EPOLLIN);
}

static void on_accept(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or a transient error: epoll will tell us again */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct conn *c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			conn_free(c);
	}
}

int main(void)
{
	const char *port_s = getenv("PORT");
	int port = port_s ? atoi(port_s) : 8080;
	if (port <= 0 || port > 65535) {
		fprintf(stderr, "hello: PORT must be a TCP port number, got \"%s\"\n", port_s);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1024) < 0) {
		fprintf(stderr, "hello: cannot listen on 127.0.0.1:%d: %s\n", port,
			strerror(errno));
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0) {
		fprintf(stderr, "hello: epoll: %s\n", strerror(errno));
		return 1;
	}
	printf("hello: listening on 127.0.0.1:%d\n", port);
	fflush(stdout);

	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "hello: epoll_wait: %s\n", strerror(errno));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL)
				on_accept(lfd);
			else
				on_event(evs[i].data.ptr, evs[i].events);
		}
	}
}
