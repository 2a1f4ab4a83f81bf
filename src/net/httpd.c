/* httpd.c -- a small HTTP/1.1 server for the admin API: libuv for I/O, llhttp for parsing.
 *
 * One connection serves one request at a time. on_message_complete pauses the
 * parser, so pipelined requests wait in the connection's input buffer and are
 * answered in order; when a response completes the parser resumes on the rest.
 *
 * Ownership of a response (struct fl_httpd_resp, which also holds the request):
 *  - The connection creates it when a request begins and points at it (c->cur);
 *    the response points back (r->c).
 *  - Completing it (fl_httpd_respond*, fl_httpd_stream_end) frees it and lets the
 *    connection go on.
 *  - If the connection goes away first (client closed, write error, timeout,
 *    fl_httpd_close), the response is orphaned: r->c becomes NULL. With an
 *    on_close callback, the callback runs and r is freed when it returns (calls
 *    on r from inside the callback do nothing). Without one, r stays allocated
 *    until the handler completes it; that call only frees it. A handler that
 *    neither registers on_close nor ever answers leaks r: that is its bug.
 *  - The connection is freed only after libuv has closed both of its handles;
 *    the server after its listener and every connection are closed.
 * So neither side ever holds a dangling pointer to the other. */
#include "net/httpd.h"

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "net/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <llhttp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define HEAD_MAX	(64 * 1024)	   /* request line + headers */
#define PIPELINE_MAX	(1024 * 1024)	   /* input held back while a response is pending */
#define WRITE_QUEUE_MAX (16 * 1024 * 1024) /* unsent output before the client counts as gone */
#define READ_CHUNK	(64 * 1024)

/* Timeouts in milliseconds. Variables rather than constants so the unit test can
 * shorten them. */
static uint64_t idle_timeout_ms = 60000; /* keep-alive connection with no request */
static uint64_t head_timeout_ms = 30000; /* from a request's first byte to its blank line */
static uint64_t linger_ms = 2000;	 /* draining input after our last response */

enum resp_state { R_PARSING, R_HANDLING, R_STREAMING };

struct conn;

struct fl_httpd_resp {
	fl_httpd_req req; /* first member: fl_httpd_header() casts req back to the resp */
	struct conn *c;	  /* NULL once orphaned */
	enum resp_state state;
	int orphaned;
	int in_close_cb;
	int headers_done;
	int is_head;
	int http10;
	size_t head_len;
	fl_buf url;
	fl_buf hdrs; /* "name\0value\0" pairs */
	size_t nhdrs;
	fl_buf body;
	char *path;
	fl_buf extra;  /* response header lines added with fl_httpd_add_header */
	fl_buf allocs; /* char * array: decoded query values handed to the handler */
	void (*on_close)(void *ctx);
	void *on_close_ctx;
};

struct conn {
	fl_httpd *h;
	struct conn *prev, *next;
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_shutdown_t sreq;
	llhttp_t parser;
	fl_buf in; /* received bytes the parser has not consumed yet */
	fl_httpd_resp *cur;
	char peer[64];
	int open_handles;
	int keep_alive;	  /* of the current request */
	int fail_status;  /* 413/431 decided inside a parser callback */
	int closing;	  /* handles are being closed */
	int shutting;	  /* last response sent: draining input, then close */
	int write_failed; /* a close is scheduled; further output is dropped */
	int reading;
	int processing; /* process_input() is on the stack */
};

struct fl_httpd {
	uv_loop_t *loop;
	uv_tcp_t server;
	size_t max_body;
	fl_httpd_handler handler;
	void *ctx;
	struct conn *conns;
	size_t nconns; /* allocated, including those still closing */
	int server_open;
	int closing;
};

struct wreq {
	uv_write_t req;
	struct conn *c;
	char data[];
};

static void process_input(struct conn *c);
static void conn_abort(struct conn *c);

/* The control plane aborts on exhaustion (see fl_xmalloc); buffers follow suit. */
static void xappend(fl_buf *b, const void *p, size_t n)
{
	if (fl_buf_append(b, p, n) < 0) {
		fl_error("httpd", "out of memory");
		abort();
	}
}

static void xputs(fl_buf *b, const char *s)
{
	xappend(b, s, strlen(s));
}

static void xprintf(fl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void xprintf(fl_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = fl_buf_vprintf(b, fmt, ap);
	va_end(ap);
	if (rc < 0) {
		fl_error("httpd", "out of memory");
		abort();
	}
}

static const struct {
	int status;
	const char *text;
} reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {422, "Unprocessable Content"},
    {425, "Too Early"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {507, "Insufficient Storage"},
};

static const char *reason_phrase(int status)
{
	size_t i;

	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].status == status)
			return reasons[i].text;
	return "Unknown";
}

/* ---- responses' memory ---- */

static fl_httpd_resp *resp_new(struct conn *c)
{
	fl_httpd_resp *r = fl_xcalloc(1, sizeof(*r));

	r->c = c;
	r->state = R_PARSING;
	return r;
}

static void resp_free(fl_httpd_resp *r)
{
	char **v = (char **)r->allocs.p;
	size_t i, n = r->allocs.len / sizeof(char *);

	for (i = 0; i < n; i++)
		free(v[i]);
	fl_buf_free(&r->allocs);
	fl_buf_free(&r->url);
	fl_buf_free(&r->hdrs);
	fl_buf_free(&r->body);
	fl_buf_free(&r->extra);
	free(r->path);
	free(r);
}

/* The connection is gone before r completed: see the ownership rule at the top. */
static void resp_orphan(fl_httpd_resp *r)
{
	r->c = NULL;
	r->orphaned = 1;
	if (r->on_close == NULL)
		return;
	r->in_close_cb = 1;
	r->on_close(r->on_close_ctx);
	resp_free(r);
}

/* ---- connection life ---- */

static void on_timeout(uv_timer_t *t)
{
	conn_abort(t->data);
}

static void arm_timer(struct conn *c, uint64_t ms)
{
	if (c->closing || c->write_failed)
		return;
	uv_timer_start(&c->timer, on_timeout, ms, 0);
}

/* Closes c from the next loop iteration: used where closing now would run
 * on_close callbacks inside a caller that still holds the response. */
static void close_later(struct conn *c)
{
	if (c->closing || c->write_failed)
		return;
	c->write_failed = 1;
	uv_timer_start(&c->timer, on_timeout, 0, 0);
}

static void maybe_free_server(fl_httpd *h)
{
	if (h->closing && !h->server_open && h->nconns == 0)
		free(h);
}

static void on_conn_handle_closed(uv_handle_t *handle)
{
	struct conn *c = handle->data;
	fl_httpd *h = c->h;

	if (--c->open_handles > 0)
		return;
	fl_buf_free(&c->in);
	free(c);
	h->nconns--;
	maybe_free_server(h);
}

/* Closes the connection now, orphaning a pending response. Safe to call twice. */
static void conn_abort(struct conn *c)
{
	fl_httpd_resp *r = c->cur;

	if (c->closing)
		return;
	c->closing = 1;
	c->cur = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		c->h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
	if (r == NULL)
		return;
	if (r->state == R_PARSING)
		resp_free(r);
	else
		resp_orphan(r);
}

static void on_written(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct conn *c = w->c;

	free(w);
	if (status < 0)
		conn_abort(c);
}

/* Queues a copy of p[0..n). Errors close the connection from the loop. */
static void conn_write(struct conn *c, const char *p, size_t n)
{
	struct wreq *w;
	uv_buf_t buf;

	if (c->closing || c->write_failed || n == 0)
		return;
	if (c->tcp.write_queue_size > WRITE_QUEUE_MAX) {
		fl_warn("httpd", "client %s is not reading its responses; closing", c->peer);
		close_later(c);
		return;
	}
	w = fl_xmalloc(sizeof(*w) + n);
	memcpy(w->data, p, n);
	w->c = c;
	buf = uv_buf_init(w->data, (unsigned int)n);
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written) < 0) {
		free(w);
		close_later(c);
	}
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct conn *c = req->data;

	if (status < 0) {
		conn_abort(c);
		return;
	}
	/* Keep reading a little: closing with unread input makes the kernel send
	 * RST, which can destroy the response before the client has read it. */
	arm_timer(c, linger_ms);
}

/* Ends the connection after the last response: flush, half-close, drain, close. */
static void conn_shutdown(struct conn *c)
{
	if (c->closing || c->shutting)
		return;
	c->shutting = 1;
	c->sreq.data = c;
	if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
		close_later(c);
		return;
	}
	/* Bounds the time a client that does not read may keep the flush waiting. */
	arm_timer(c, idle_timeout_ms);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = handle->data;

	(void)suggested;
	if (fl_buf_reserve(&c->in, READ_CHUNK) < 0) {
		*buf = uv_buf_init(NULL, 0);
		return;
	}
	*buf = uv_buf_init(c->in.p + c->in.len, READ_CHUNK);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = stream->data;

	(void)buf;
	if (nread < 0) {
		/* EOF counts as the client going away even with a response pending, as
		 * Node.js does: clients of this API never half-close and wait. */
		conn_abort(c);
		return;
	}
	if (nread == 0 || c->closing)
		return;
	if (c->shutting) {
		c->in.len = 0;
		return;
	}
	c->in.len += (size_t)nread;
	if (c->cur && c->cur->state == R_PARSING && c->cur->headers_done)
		arm_timer(c, idle_timeout_ms); /* a body that keeps arriving is not idle */
	process_input(c);
	if (!c->closing && c->in.len > PIPELINE_MAX && c->reading) {
		uv_read_stop(stream);
		c->reading = 0;
	}
}

static void start_reading(struct conn *c)
{
	if (c->reading || c->closing)
		return;
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
		close_later(c);
		return;
	}
	c->reading = 1;
}

/* The current response has been queued whole: free it and go on with the
 * connection (next pipelined request, idle wait, or close). */
static void finish_response(struct conn *c)
{
	fl_httpd_resp *r = c->cur;

	c->cur = NULL;
	if (r)
		resp_free(r);
	if (c->closing)
		return;
	if (!c->keep_alive) {
		conn_shutdown(c);
		return;
	}
	llhttp_resume(&c->parser);
	arm_timer(c, idle_timeout_ms);
	start_reading(c);
	process_input(c);
}

/* ---- the response head ---- */

static void put_head(fl_httpd_resp *r, fl_buf *out, int status, const char *content_type)
{
	struct conn *c = r->c;

	xprintf(out, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
	if (content_type && *content_type)
		xprintf(out, "Content-Type: %s\r\n", content_type);
	xprintf(out, "Connection: %s\r\n", c->keep_alive ? "keep-alive" : "close");
	if (r->extra.len)
		xappend(out, r->extra.p, r->extra.len);
}

/* ---- parser callbacks ---- */

static int on_message_begin(llhttp_t *p)
{
	struct conn *c = p->data;

	if (c->cur == NULL)
		c->cur = resp_new(c);
	arm_timer(c, head_timeout_ms);
	return 0;
}

static int count_head(struct conn *c, size_t len)
{
	c->cur->head_len += len;
	if (c->cur->head_len > HEAD_MAX) {
		c->fail_status = 431;
		return -1;
	}
	return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	if (count_head(c, len) < 0)
		return -1;
	xappend(&c->cur->url, at, len);
	return 0;
}

static int on_header_data(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	if (count_head(c, len) < 0)
		return -1;
	xappend(&c->cur->hdrs, at, len);
	return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
	struct conn *c = p->data;

	xappend(&c->cur->hdrs, "", 1);
	return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
	struct conn *c = p->data;

	xappend(&c->cur->hdrs, "", 1);
	c->cur->nhdrs++;
	return 0;
}

static int on_headers_complete(llhttp_t *p)
{
	struct conn *c = p->data;
	fl_httpd_resp *r = c->cur;
	const char *expect;

	r->headers_done = 1;
	r->is_head = p->method == HTTP_HEAD;
	r->http10 = p->http_major == 0 || (p->http_major == 1 && p->http_minor == 0);
	if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->h->max_body) {
		c->fail_status = 413;
		return -1;
	}
	expect = fl_httpd_header(&r->req, "Expect");
	if (expect && strcasecmp(expect, "100-continue") == 0 && !r->http10 &&
	    ((p->flags & F_CHUNKED) || p->content_length > 0))
		conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	arm_timer(c, idle_timeout_ms);
	return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
	struct conn *c = p->data;
	fl_httpd_resp *r = c->cur;

	if (len > c->h->max_body - r->body.len) {
		c->fail_status = 413;
		return -1;
	}
	xappend(&r->body, at, len);
	return 0;
}

static int on_message_complete(llhttp_t *p)
{
	struct conn *c = p->data;

	/* Read here: llhttp resets the flags this depends on right after. */
	c->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
	uv_timer_stop(&c->timer);
	return HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_data,
    .on_header_value = on_header_data,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- URLs ---- */

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..n) into a new string (and '+' to ' ' when plus is set).
 * Malformed escapes stay as they are. Returns NULL if the result would contain
 * a NUL byte, which C strings cannot carry. */
static char *percent_decode(const char *s, size_t n, int plus)
{
	char *out = fl_xmalloc(n + 1);
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		int hi, lo;

		if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
		    (lo = hexval(s[i + 2])) >= 0) {
			out[o] = (char)(hi * 16 + lo);
			if (out[o] == '\0') {
				free(out);
				return NULL;
			}
			o++;
			i += 2;
		} else if (plus && s[i] == '+') {
			out[o++] = ' ';
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

/* Splits the request target into r->path (decoded) and r->req.query (raw, NUL
 * written into the url buffer). Returns 0 or -EINVAL. */
static int split_url(fl_httpd_resp *r)
{
	char *u = r->url.p ? r->url.p : "";
	char *q, *hash;

	/* absolute-form ("http://host/path"), which HTTP/1.1 servers must accept */
	if (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0) {
		char *rest = strpbrk(strstr(u, "//") + 2, "/?");

		u = rest && *rest == '/' ? rest : "/";
	}
	hash = strchr(u, '#');
	if (hash)
		*hash = '\0';
	q = strchr(u, '?');
	r->req.query = "";
	if (q) {
		r->req.query = q + 1;
		*q = '\0';
	}
	r->path = percent_decode(u, strlen(u), 0);
	if (r->path == NULL)
		return -EINVAL;
	r->req.path = r->path;
	return 0;
}

/* ---- reading requests ---- */

static void dispatch(struct conn *c)
{
	fl_httpd_resp *r = c->cur;

	r->state = R_HANDLING;
	r->req.method = llhttp_method_name((llhttp_method_t)c->parser.method);
	r->req.body = r->body.p ? r->body.p : "";
	r->req.body_len = r->body.len;
	r->req.peer = c->peer;
	r->req.path = "";
	r->req.query = "";
	if (split_url(r) < 0) {
		fl_httpd_respond_error(r, 400, "the request path contains an encoded NUL byte");
		return;
	}
	c->h->handler(c->h->ctx, &r->req, r);
}

/* Answers a request the parser rejected, then closes the connection. */
static void reject(struct conn *c, llhttp_errno_t err)
{
	int status = c->fail_status ? c->fail_status : 400;

	if (c->cur == NULL)
		c->cur = resp_new(c);
	c->cur->state = R_HANDLING;
	c->keep_alive = 0;
	if (status == 413)
		fl_httpd_respond_error(c->cur, 413,
				       "request body is larger than the limit of %zu bytes",
				       c->h->max_body);
	else if (status == 431)
		fl_httpd_respond_error(c->cur, 431, "request head is larger than %d KiB",
				       HEAD_MAX / 1024);
	else
		fl_httpd_respond_error(c->cur, 400, "malformed HTTP request: %s",
				       llhttp_get_error_reason(&c->parser)
					   ? llhttp_get_error_reason(&c->parser)
					   : llhttp_errno_name(err));
}

/* Feeds buffered input to the parser while no request is being handled. A
 * response completed synchronously by the handler lands back in this loop
 * (through finish_response), which keeps the stack flat under pipelining. */
static void process_input(struct conn *c)
{
	if (c->processing)
		return;
	c->processing = 1;
	while (!c->closing && !c->shutting && c->in.len > 0 &&
	       (c->cur == NULL || c->cur->state == R_PARSING)) {
		llhttp_errno_t err = llhttp_execute(&c->parser, c->in.p, c->in.len);
		size_t used = c->in.len;

		if (err == HPE_PAUSED) {
			used = (size_t)(llhttp_get_error_pos(&c->parser) - c->in.p);
		} else if (err != HPE_OK) {
			reject(c, err);
			break;
		}
		fl_buf_consume(&c->in, used);
		if (err == HPE_PAUSED && c->cur)
			dispatch(c);
	}
	c->processing = 0;
}

static void on_connection(uv_stream_t *server, int status)
{
	fl_httpd *h = server->data;
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	struct conn *c;
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (status < 0) {
		fl_warn("httpd", "cannot accept a connection: %s", uv_strerror(status));
		return;
	}
	c = fl_xcalloc(1, sizeof(*c));
	c->h = h;
	h->nconns++;
	uv_tcp_init(h->loop, &c->tcp);
	uv_timer_init(h->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->open_handles = 2;
	c->next = h->conns;
	if (h->conns)
		h->conns->prev = c;
	h->conns = c;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		conn_abort(c);
		return;
	}
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) == 0) {
		if (ss.ss_family == AF_INET6) {
			uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
			snprintf(c->peer, sizeof(c->peer), "[%s]:%d", ip, port);
		} else {
			uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
			snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, port);
		}
	} else {
		snprintf(c->peer, sizeof(c->peer), "unknown");
	}
	llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
	c->parser.data = c;
	uv_tcp_nodelay(&c->tcp, 1);
	arm_timer(c, idle_timeout_ms);
	start_reading(c);
}

/* ---- public API ---- */

static void on_server_closed(uv_handle_t *handle)
{
	fl_httpd *h = handle->data;

	h->server_open = 0;
	maybe_free_server(h);
}

int fl_httpd_start(uv_loop_t *loop, const char *addr, size_t max_body, fl_httpd_handler handler,
		   void *ctx, fl_httpd **out, char *err, size_t errlen)
{
	fl_httpd *h = NULL;
	int fd, rc;

	*out = NULL;
	fd = fl_listen_tcp(addr, 0, 511, err, errlen);
	if (fd < 0)
		return fd;
	h = fl_xcalloc(1, sizeof(*h));
	h->loop = loop;
	h->max_body = max_body;
	h->handler = handler;
	h->ctx = ctx;
	rc = uv_tcp_init(loop, &h->server);
	if (rc < 0) {
		snprintf(err, errlen, "cannot serve HTTP on %s: %s", addr, uv_strerror(rc));
		close(fd);
		free(h);
		return rc;
	}
	h->server.data = h;
	h->server_open = 1;
	rc = uv_tcp_open(&h->server, fd);
	if (rc < 0) {
		close(fd);
		goto fail;
	}
	rc = uv_listen((uv_stream_t *)&h->server, 511, on_connection);
	if (rc < 0)
		goto fail;
	*out = h;
	return 0;
fail:
	snprintf(err, errlen, "cannot serve HTTP on %s: %s", addr, uv_strerror(rc));
	h->closing = 1;
	uv_close((uv_handle_t *)&h->server, on_server_closed);
	return rc;
}

void fl_httpd_close(fl_httpd *h)
{
	if (h == NULL || h->closing)
		return;
	h->closing = 1;
	uv_close((uv_handle_t *)&h->server, on_server_closed);
	while (h->conns)
		conn_abort(h->conns);
	/* With no connection at all, the listener's close callback frees h. */
}

const char *fl_httpd_header(const fl_httpd_req *req, const char *name)
{
	const fl_httpd_resp *r = (const fl_httpd_resp *)req;
	const char *p = r->hdrs.p, *end = r->hdrs.p + r->hdrs.len;
	size_t i;

	for (i = 0; i < r->nhdrs && p < end; i++) {
		const char *value = p + strlen(p) + 1;

		if (strcasecmp(p, name) == 0)
			return value;
		p = value + strlen(value) + 1;
	}
	return NULL;
}

const char *fl_httpd_query(const fl_httpd_req *req, const char *name)
{
	fl_httpd_resp *r = (fl_httpd_resp *)req;
	const char *p = req->query;

	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t seg = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', seg);
		size_t klen = eq ? (size_t)(eq - p) : seg;
		char *key = percent_decode(p, klen, 1);
		int match = key && strcmp(key, name) == 0;

		free(key);
		if (match) {
			char *v = eq ? percent_decode(eq + 1, seg - klen - 1, 1) : fl_xstrdup("");

			if (v == NULL)
				return NULL; /* an encoded NUL: not representable */
			xappend(&r->allocs, &v, sizeof(v));
			return v;
		}
		p = amp ? amp + 1 : NULL;
	}
	return NULL;
}

static int valid_header_text(const char *s)
{
	return strpbrk(s, "\r\n") == NULL;
}

void fl_httpd_add_header(fl_httpd_resp *r, const char *name, const char *value)
{
	if (r->orphaned)
		return;
	if (r->state == R_STREAMING) {
		fl_warn("httpd", "header %s added after the response started; ignored", name);
		return;
	}
	if (!valid_header_text(name) || !valid_header_text(value) || strchr(name, ':')) {
		fl_warn("httpd", "header %s has a line break or colon in it; not sent", name);
		return;
	}
	xprintf(&r->extra, "%s: %s\r\n", name, value);
}

void fl_httpd_respond(fl_httpd_resp *r, int status, const char *content_type, const char *body,
		      size_t len)
{
	struct conn *c = r->c;
	fl_buf out = FL_BUF_INIT;
	/* 1xx, 204 and 304 never carry a body, nor a length (RFC 9110 8.6). */
	int bodiless = status < 200 || status == 204 || status == 304;

	if (r->orphaned) {
		if (!r->in_close_cb)
			resp_free(r);
		return;
	}
	if (r->state == R_STREAMING) {
		fl_warn("httpd", "response already streaming; ending it instead");
		fl_httpd_stream_end(r);
		return;
	}
	put_head(r, &out, status, content_type);
	if (!bodiless)
		xprintf(&out, "Content-Length: %zu\r\n", len);
	xputs(&out, "\r\n");
	if (!bodiless && !r->is_head && len)
		xappend(&out, body, len);
	conn_write(c, out.p, out.len);
	fl_buf_free(&out);
	finish_response(c);
}

void fl_httpd_respond_json(fl_httpd_resp *r, int status, json_t *j)
{
	static const char fallback[] =
	    "{\"error\":\"the response could not be encoded as JSON\"}\n";
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	fl_buf out = FL_BUF_INIT;

	json_decref(j);
	if (s == NULL) {
		fl_httpd_respond(r, 500, "application/json", fallback, sizeof(fallback) - 1);
		return;
	}
	xputs(&out, s);
	xputs(&out, "\n");
	free(s);
	fl_httpd_respond(r, status, "application/json", out.p, out.len);
	fl_buf_free(&out);
}

void fl_httpd_respond_error(fl_httpd_resp *r, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	json_t *j;
	char *p;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	j = json_pack("{s:s}", "error", msg);
	if (j == NULL) {
		/* Not UTF-8 (a name taken from a request, say): keep the message
		 * readable rather than failing the whole answer. */
		for (p = msg; *p; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		j = json_pack("{s:s}", "error", msg);
	}
	fl_httpd_respond_json(r, status, j);
}

void fl_httpd_stream_begin(fl_httpd_resp *r, int status, const char *content_type)
{
	struct conn *c = r->c;
	fl_buf out = FL_BUF_INIT;

	if (r->orphaned || r->state == R_STREAMING)
		return;
	/* HTTP/1.0 has no chunked coding: the body ends where the connection does. */
	if (r->http10)
		c->keep_alive = 0;
	put_head(r, &out, status, content_type);
	if (!r->http10)
		xputs(&out, "Transfer-Encoding: chunked\r\n");
	xputs(&out, "\r\n");
	conn_write(c, out.p, out.len);
	fl_buf_free(&out);
	r->state = R_STREAMING;
}

int fl_httpd_stream_write(fl_httpd_resp *r, const char *data, size_t len)
{
	struct conn *c = r->c;
	fl_buf out = FL_BUF_INIT;

	if (r->orphaned || c->closing || c->write_failed)
		return -EPIPE;
	if (r->state != R_STREAMING)
		fl_httpd_stream_begin(r, 200, "application/octet-stream");
	/* A zero-length chunk would end the body. */
	if (len == 0 || r->is_head)
		return 0;
	if (r->http10) {
		conn_write(c, data, len);
		return 0;
	}
	xprintf(&out, "%zx\r\n", len);
	xappend(&out, data, len);
	xputs(&out, "\r\n");
	conn_write(c, out.p, out.len);
	fl_buf_free(&out);
	return 0;
}

void fl_httpd_stream_end(fl_httpd_resp *r)
{
	struct conn *c = r->c;

	if (r->orphaned) {
		if (!r->in_close_cb)
			resp_free(r);
		return;
	}
	if (r->state != R_STREAMING)
		fl_httpd_stream_begin(r, 200, "application/octet-stream");
	if (!r->http10 && !r->is_head)
		conn_write(c, "0\r\n\r\n", 5);
	finish_response(c);
}

void fl_httpd_on_close(fl_httpd_resp *r, void (*cb)(void *ctx), void *ctx)
{
	r->on_close = cb;
	r->on_close_ctx = ctx;
	/* Already gone (fl_httpd_close ran inside the handler): tell it now. */
	if (r->orphaned && !r->in_close_cb) {
		r->in_close_cb = 1;
		cb(ctx);
		resp_free(r);
	}
}
