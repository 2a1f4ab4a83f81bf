/* flint_runtime.c -- the function framework of flint's C template: an HTTP/1.1 server
 * (keep-alive, one thread per connection, libc and pthreads only) listening on
 * 127.0.0.1:$PORT that answers GET /healthz itself and hands every other request to
 * handle() in handler.c. Access lines go to stdout, handler failures to stderr. */
#define _GNU_SOURCE /* memmem, strcasestr, accept4 */
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "flint.h"

#define MAX_HEAD    (64 * 1024)
#define MAX_HEADERS 128
#define IDLE_SECS   300 /* a keep-alive connection silent this long is closed */

static size_t max_body = (size_t)64 << 20;

/* ---- growable buffers ---- */

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_reserve(struct buf *b, size_t more)
{
	if (b->len + more + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 1024;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (p == NULL) {
		fputs("error: out of memory\n", stderr);
		abort();
	}
	b->p = p;
	b->cap = cap;
}

static void buf_add(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n <= 0)
		return;
	buf_reserve(b, (size_t)n);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

/* ---- what handlers call ---- */

const char *fl_req_header(const struct fl_req *req, const char *name)
{
	for (size_t i = 0; i < req->nheaders; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return NULL;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int fl_req_query(const struct fl_req *req, const char *key, char *out, size_t n)
{
	size_t kl = strlen(key);
	const char *s = req->query;

	while (*s) {
		const char *end = strchr(s, '&');
		if (end == NULL)
			end = s + strlen(s);
		const char *eq = memchr(s, '=', (size_t)(end - s));
		const char *kend = eq ? eq : end;
		if ((size_t)(kend - s) == kl && memcmp(s, key, kl) == 0) {
			size_t o = 0;
			for (const char *v = eq ? eq + 1 : end; v < end; v++) {
				int c = *v;
				if (c == '+')
					c = ' ';
				else if (c == '%' && end - v > 2 && hexval(v[1]) >= 0 &&
					 hexval(v[2]) >= 0) {
					c = hexval(v[1]) * 16 + hexval(v[2]);
					v += 2;
				}
				if (o + 1 < n)
					out[o++] = (char)c;
			}
			if (n)
				out[o] = '\0';
			return (int)o;
		}
		s = *end ? end + 1 : end;
	}
	return -1;
}

void fl_resp_header(struct fl_resp *resp, const char *name, const char *value)
{
	struct buf b = {resp->headers, resp->headers_len, resp->headers_cap};
	buf_add(&b, name, strlen(name));
	buf_add(&b, ": ", 2);
	/* A CR or LF in a value would let it forge headers: cut it there. */
	buf_add(&b, value, strcspn(value, "\r\n"));
	buf_add(&b, "\r\n", 2);
	resp->headers = b.p, resp->headers_len = b.len, resp->headers_cap = b.cap;
}

void fl_resp_write(struct fl_resp *resp, const void *p, size_t n)
{
	struct buf b = {resp->body, resp->body_len, resp->body_cap};
	buf_add(&b, p, n);
	resp->body = b.p, resp->body_len = b.len, resp->body_cap = b.cap;
}

void fl_resp_printf(struct fl_resp *resp, const char *fmt, ...)
{
	struct buf b = {resp->body, resp->body_len, resp->body_cap};
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	resp->body = b.p, resp->body_len = b.len, resp->body_cap = b.cap;
}

static void json_escape(struct buf *b, const char *s)
{
	buf_add(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char e[8];
		if (c == '"' || c == '\\') {
			e[0] = '\\', e[1] = (char)c;
			buf_add(b, e, 2);
		} else if (c == '\n') {
			buf_add(b, "\\n", 2);
		} else if (c == '\r') {
			buf_add(b, "\\r", 2);
		} else if (c == '\t') {
			buf_add(b, "\\t", 2);
		} else if (c < 0x20) {
			snprintf(e, sizeof(e), "\\u%04x", c);
			buf_add(b, e, 6);
		} else {
			buf_add(b, s, 1);
		}
	}
	buf_add(b, "\"", 1);
}

void fl_resp_json_str(struct fl_resp *resp, const char *s)
{
	struct buf b = {resp->body, resp->body_len, resp->body_cap};
	json_escape(&b, s);
	resp->body = b.p, resp->body_len = b.len, resp->body_cap = b.cap;
}

int fl_fail(struct fl_resp *resp, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(resp->error, sizeof(resp->error), fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- a small JSON reader: just enough to find top-level members ---- */

struct jr {
	const char *p, *end;
};

static void jr_ws(struct jr *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

static void put_utf8(char *out, size_t n, size_t *o, unsigned cp)
{
	char u[4];
	size_t k;
	if (cp < 0x80)
		u[0] = (char)cp, k = 1;
	else if (cp < 0x800)
		u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f)), k = 2;
	else
		u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
		u[2] = (char)(0x80 | (cp & 0x3f)), k = 3;
	for (size_t i = 0; i < k; i++)
		if (out && *o + 1 < n)
			out[(*o)++] = u[i];
}

/* Reads a string at r->p (which is at '"'), copying it unescaped into out when out is
 * not NULL. Returns its length or -1. */
static int jr_string(struct jr *r, char *out, size_t n)
{
	size_t o = 0;
	if (r->p >= r->end || *r->p != '"')
		return -1;
	for (r->p++; r->p < r->end; r->p++) {
		char c = *r->p;
		if (c == '"') {
			r->p++;
			if (out && n)
				out[o] = '\0';
			return (int)o;
		}
		if (c == '\\') {
			if (++r->p >= r->end)
				return -1;
			switch (*r->p) {
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'r':
				c = '\r';
				break;
			case 'b':
				c = '\b';
				break;
			case 'f':
				c = '\f';
				break;
			case 'u': {
				unsigned cp = 0;
				if (r->end - r->p < 5)
					return -1;
				for (int i = 1; i <= 4; i++) {
					int h = hexval(r->p[i]);
					if (h < 0)
						return -1;
					cp = cp * 16 + (unsigned)h;
				}
				r->p += 4;
				put_utf8(out, n, &o, cp);
				continue;
			}
			default:
				c = *r->p;
				break;
			}
		}
		if (out && o + 1 < n)
			out[o++] = c;
	}
	return -1;
}

/* Skips any value at r->p. Returns 0 or -1. */
static int jr_skip(struct jr *r)
{
	int depth = 0;
	jr_ws(r);
	do {
		if (r->p >= r->end)
			return -1;
		char c = *r->p;
		if (c == '"') {
			if (jr_string(r, NULL, 0) < 0)
				return -1;
		} else if (c == '{' || c == '[') {
			depth++, r->p++;
		} else if (c == '}' || c == ']') {
			depth--, r->p++;
		} else if (depth > 0 && (c == ',' || c == ':' || isspace((unsigned char)c))) {
			r->p++;
		} else {
			while (r->p < r->end && !strchr(",}] \t\r\n", *r->p))
				r->p++;
		}
	} while (depth > 0);
	return 0;
}

/* Moves r->p to the value of top-level member key. Returns 0 or -1. */
static int jr_find(struct jr *r, const char *key)
{
	char name[256];
	jr_ws(r);
	if (r->p >= r->end || *r->p != '{')
		return -1;
	r->p++;
	for (;;) {
		jr_ws(r);
		int kl = jr_string(r, name, sizeof(name));
		if (kl < 0)
			return -1;
		jr_ws(r);
		if (r->p >= r->end || *r->p != ':')
			return -1;
		r->p++;
		jr_ws(r);
		if (strcmp(name, key) == 0)
			return 0;
		if (jr_skip(r) < 0)
			return -1;
		jr_ws(r);
		if (r->p >= r->end || *r->p != ',')
			return -1;
		r->p++;
	}
}

int fl_json_string(const char *json, size_t len, const char *key, char *out, size_t n)
{
	struct jr r = {json, json + len};
	if (json == NULL || jr_find(&r, key) < 0)
		return -1;
	return jr_string(&r, out, n);
}

int fl_json_number(const char *json, size_t len, const char *key, double *out)
{
	struct jr r = {json, json + len};
	char tmp[64], *e;
	size_t k = 0;
	if (json == NULL || jr_find(&r, key) < 0)
		return -1;
	while (r.p < r.end && k + 1 < sizeof(tmp) && strchr("+-0123456789.eE", *r.p))
		tmp[k++] = *r.p++;
	tmp[k] = '\0';
	if (k == 0)
		return -1;
	*out = strtod(tmp, &e);
	return *e == '\0' ? 0 : -1;
}

/* ---- the server ---- */

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 304:
		return "Not Modified";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 413:
		return "Content Too Large";
	case 422:
		return "Unprocessable Content";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	default:
		return "Status";
	}
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w, n -= (size_t)w;
	}
	return 0;
}

/* Reads more bytes into b. Returns the count, 0 at end of stream, -1 on error. */
static ssize_t fill(int fd, struct buf *b)
{
	buf_reserve(b, 16384);
	for (;;) {
		ssize_t r = recv(fd, b->p + b->len, b->cap - b->len - 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r > 0) {
			b->len += (size_t)r;
			b->p[b->len] = '\0';
		}
		return r;
	}
}

/* Makes sure b holds at least need bytes. Returns 0 or -1 (closed, error). */
static int fill_to(int fd, struct buf *b, size_t need)
{
	while (b->len < need)
		if (fill(fd, b) <= 0)
			return -1;
	return 0;
}

/* Decodes a chunked body starting at b->p[*pos] into body; *pos ends past it. */
static int read_chunked(int fd, struct buf *b, size_t *pos, struct buf *body)
{
	for (;;) {
		char *eol;
		while ((eol = memmem(b->p + *pos, b->len - *pos, "\r\n", 2)) == NULL)
			if (b->len - *pos > 1024 || fill(fd, b) <= 0)
				return -1;
		char *e;
		unsigned long long n = strtoull(b->p + *pos, &e, 16);
		if (e == b->p + *pos)
			return -1;
		*pos = (size_t)(eol - b->p) + 2;
		if (n == 0) {
			/* Trailers, up to an empty line. */
			for (;;) {
				while ((eol = memmem(b->p + *pos, b->len - *pos, "\r\n", 2)) ==
				       NULL)
					if (b->len - *pos > MAX_HEAD || fill(fd, b) <= 0)
						return -1;
				size_t l = (size_t)(eol - (b->p + *pos));
				*pos += l + 2;
				if (l == 0)
					return 0;
			}
		}
		if (n > max_body || body->len + n > max_body)
			return -2;
		if (fill_to(fd, b, *pos + n + 2) < 0)
			return -1;
		buf_add(body, b->p + *pos, n);
		*pos += n + 2;
	}
}

static void send_simple(int fd, int status, const char *ctype, const char *body, int close)
{
	char head[256];
	int n =
	    snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", status,
		     reason(status), ctype, strlen(body), close ? "Connection: close\r\n" : "");
	if (write_all(fd, head, (size_t)n) == 0)
		write_all(fd, body, strlen(body));
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Serves one request from the head in b (which ends at head_len). Returns 1 to keep
 * the connection, 0 to close it. *consumed is set to the bytes of b used. */
static int serve_one(int fd, struct buf *b, size_t head_len, size_t *consumed)
{
	struct fl_header hdrs[MAX_HEADERS];
	struct fl_req req = {0};
	struct fl_resp resp = {.status = 200};
	struct buf body = {0}, out = {0};
	double t0 = now_ms();
	int keep = 1, rc;
	size_t pos = head_len;
	/* The head is copied: reading the body may move b's memory. */
	char *head = malloc(head_len + 1);

	if (head == NULL)
		return 0;
	memcpy(head, b->p, head_len);
	head[head_len] = '\0';

	char *line_end = strstr(head, "\r\n");
	*line_end = '\0';
	char *method = head, *target = strchr(head, ' '), *version;
	if (target == NULL || (version = strchr(target + 1, ' ')) == NULL) {
		send_simple(fd, 400, "text/plain", "bad request line\n", 1);
		keep = 0;
		goto done;
	}
	*target++ = '\0';
	*version++ = '\0';
	if (strncmp(version, "HTTP/1.", 7) != 0) {
		send_simple(fd, 400, "text/plain", "only HTTP/1.x is spoken here\n", 1);
		keep = 0;
		goto done;
	}
	keep = strcmp(version, "HTTP/1.0") != 0;

	size_t nh = 0;
	for (char *l = line_end + 2; *l && strncmp(l, "\r\n", 2) != 0;) {
		char *e = strstr(l, "\r\n");
		*e = '\0';
		char *colon = strchr(l, ':');
		if (colon == NULL || nh == MAX_HEADERS) {
			send_simple(fd, 400, "text/plain", "bad or too many headers\n", 1);
			keep = 0;
			goto done;
		}
		*colon = '\0';
		char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		for (char *t = v + strlen(v); t > v && (t[-1] == ' ' || t[-1] == '\t');)
			*--t = '\0';
		hdrs[nh++] = (struct fl_header){l, v};
		l = e + 2;
	}
	req = (struct fl_req){.method = method, .path = target, .headers = hdrs, .nheaders = nh};

	const char *conn = fl_req_header(&req, "Connection");
	if (conn && strcasestr(conn, "close"))
		keep = 0;
	else if (conn && strcasestr(conn, "keep-alive"))
		keep = 1;
	const char *expect = fl_req_header(&req, "Expect");
	if (expect && strcasecmp(expect, "100-continue") == 0)
		write_all(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);

	const char *te = fl_req_header(&req, "Transfer-Encoding");
	const char *cl = fl_req_header(&req, "Content-Length");
	if (te && strcasestr(te, "chunked")) {
		rc = read_chunked(fd, b, &pos, &body);
		if (rc < 0) {
			if (rc == -2)
				send_simple(fd, 413, "text/plain", "body too large\n", 1);
			keep = 0;
			goto done;
		}
	} else if (cl) {
		char *e;
		unsigned long long n = strtoull(cl, &e, 10);
		if (*e != '\0' || e == cl || n > max_body) {
			send_simple(fd, n > max_body ? 413 : 400, "text/plain",
				    "bad or too large Content-Length\n", 1);
			keep = 0;
			goto done;
		}
		if (fill_to(fd, b, pos + n) < 0) {
			keep = 0;
			goto done;
		}
		buf_add(&body, b->p + pos, n);
		pos += n;
	}
	buf_reserve(&body, 0); /* a NUL after the body, even when it is empty */
	body.p[body.len] = '\0';
	req.body = body.p;
	req.body_len = body.len;

	char *q = strchr(target, '?');
	if (q)
		*q++ = '\0';
	req.query = q ? q : "";

	if (strcmp(method, "GET") == 0 && strcmp(target, "/healthz") == 0) {
		send_simple(fd, 200, "text/plain", "ok\n", !keep);
		goto done;
	}

	rc = handle(&req, &resp);
	if (rc != 0) {
		if (resp.error[0] == '\0')
			snprintf(resp.error, sizeof(resp.error), "handle() returned %d", rc);
		fprintf(stderr, "error: %s %s: %s\n", method, target, resp.error);
		resp.status = 500;
		resp.body_len = 0;
		resp.headers_len = 0;
		fl_resp_write(&resp, "{\"error\": ", 10);
		fl_resp_json_str(&resp, resp.error);
		fl_resp_write(&resp, "}\n", 2);
		fl_resp_header(&resp, "Content-Type", "application/json");
	}
	if (resp.status < 200 || resp.status > 999)
		resp.status = 500;
	if (resp.status == 204 || resp.status == 304)
		resp.body_len = 0; /* these carry no body, nor a Content-Length saying so */
	{
		char line[64];
		int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", resp.status,
				 reason(resp.status));
		buf_add(&out, line, (size_t)n);
	}
	if (resp.headers_len)
		buf_add(&out, resp.headers, resp.headers_len);
	int bodyless = resp.status == 204 || resp.status == 304;
	if (!bodyless && (resp.headers == NULL || !strcasestr(resp.headers, "content-type:")))
		buf_add(&out, "Content-Type: text/plain\r\n", 26);
	{
		char line[96];
		int n = snprintf(line, sizeof(line), "Content-Length: %zu\r\n", resp.body_len);
		if (!bodyless)
			buf_add(&out, line, (size_t)n);
		if (!keep)
			buf_add(&out, "Connection: close\r\n", 19);
		buf_add(&out, "\r\n", 2);
	}
	if (strcmp(method, "HEAD") != 0 && resp.body_len)
		buf_add(&out, resp.body, resp.body_len);
	if (write_all(fd, out.p, out.len) < 0)
		keep = 0;
	printf("%s %s%s%s %d %zuB %.1fms\n", method, target, q ? "?" : "", q ? q : "", resp.status,
	       resp.body_len, now_ms() - t0);

done:
	*consumed = pos;
	free(out.p);
	free(resp.body);
	free(resp.headers);
	free(body.p);
	free(head);
	return keep;
}

static void *conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct buf b = {0};

	for (;;) {
		char *end;
		while ((end = b.len ? memmem(b.p, b.len, "\r\n\r\n", 4) : NULL) == NULL) {
			if (b.len > MAX_HEAD) {
				send_simple(fd, 431, "text/plain", "request head too large\n", 1);
				goto out;
			}
			if (fill(fd, &b) <= 0)
				goto out;
		}
		size_t used = 0;
		int keep = serve_one(fd, &b, (size_t)(end - b.p) + 4, &used);
		if (!keep)
			break;
		/* Keep what follows (a pipelined request) for the next round. */
		memmove(b.p, b.p + used, b.len - used);
		b.len -= used;
	}
out:
	free(b.p);
	close(fd);
	return NULL;
}

int main(void)
{
	const char *ps = getenv("PORT"), *host = getenv("HOST"), *mb = getenv("FLINT_MAX_BODY");
	int port = ps ? atoi(ps) : 8080, one = 1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	pthread_attr_t attr;

	if (mb)
		max_body = (size_t)strtoull(mb, NULL, 10);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (inet_pton(AF_INET, host ? host : "127.0.0.1", &sa.sin_addr) != 1) {
		fprintf(stderr, "error: HOST %s is not an IPv4 address\n", host);
		return 1;
	}
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1024) < 0) {
		fprintf(stderr, "error: cannot listen on port %d: %s\n", port, strerror(errno));
		return 1;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	printf("{{NAME}}: listening on %s:%d (pid %d)\n", host ? host : "127.0.0.1", port,
	       (int)getpid());
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				fprintf(stderr, "error: accept: %s\n", strerror(errno));
			if (errno == EMFILE || errno == ENFILE)
				usleep(10000);
			continue;
		}
		struct timeval tv = {.tv_sec = IDLE_SECS};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pthread_t t;
		if (pthread_create(&t, &attr, conn_main, (void *)(intptr_t)fd) != 0) {
			fprintf(stderr, "error: cannot start a thread: %s\n", strerror(errno));
			close(fd);
		}
	}
}
