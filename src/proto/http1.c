/* http1.c -- the gateway's HTTP/1.1 codec: client connections, request heads,
 * and the exchange with an instance, bodies streamed both ways.
 *
 * Bodies are forwarded as raw bytes, framing and all (Content-Length or
 * chunked), while llhttp tracks where each message ends; only the heads are
 * rewritten. The parser is paused at the end of every request head and every
 * message, so pipelined requests are taken one at a time and nothing is read
 * from a client while its request waits for an instance. Memory per
 * connection is bounded: a read stops while the other side's write queue is
 * above GW_WQ_HIGH. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/util.h"
#include "gateway/dispatcher.h"
#include "gateway/gw.h"
#include "gateway/router.h"
#include "obs/metrics.h"

enum conn_state {
	C_HEAD,	   /* reading a request head, or idle between requests */
	C_WAIT,	   /* head read; held until an instance has room */
	C_FORWARD, /* at an instance */
	C_LOCAL,   /* answered by the gateway itself; the answer is being written */
	C_BODY,    /* reading a whole body for an offloaded request */
	C_OFFLOAD, /* waiting for another part of flint to answer it */
};

enum body_mode {
	B_RAW,	 /* response body bytes pass through as they are */
	B_CHUNK, /* close-delimited upstream body, chunk-encoded for the client */
	B_PLAIN, /* decoded body for an HTTP/1.0 client; the connection closes after */
};

struct hdr {
	uint32_t no, nl, vo, vl; /* offsets into a buffer */
};

/* Everything about one request; taken from a per-thread free list. */
typedef struct exch {
	fl_list free_link;
	fl_buf in; /* request url, header names and values */
	struct hdr h[GW_MAX_HEADERS];
	int nh, hval;
	int vsplit; /* the last piece of a header value ended where the read did */
	uint32_t url_o, url_l;
	fl_buf out; /* the head sent to the instance; kept for a retry */
	fl_buf rin; /* response reason, header names and values */
	struct hdr rh[GW_MAX_HEADERS];
	int nrh, rhval;
	uint32_t reason_o, reason_l;
	fl_buf rout; /* the response head for the client */
	char id[72];
	struct fl_route route;
	gw_snapref *sref;
	fl_route_fn *fn;
	fl_inst *inst;
	gw_up *up;
	uint64_t t_start, t_held, cold_ns;
	uint64_t body_bytes, body_sent;
	int held, cold, queued, retried, redispatched, expect, has_body, is_head, keepalive, http10;
	int req_done, early_done, head_sent, rpaused, rbody, rhead_sent, client_gone, up_nokeep;
	int resp_done, status;
	enum body_mode mode;
	uv_buf_t wv[16]; /* response bytes gathered during one upstream read: one writev */
	int nwv;
	int qhead_pending; /* the instance's request head waits to go out with body bytes */
	const char *bad; /* why the request head was refused, when llhttp would not say */
	int rh_idx[8];   /* see classify() */
	char vname[80];  /* the function serving the chosen version, when split or pinned */
} exch;

struct gw_conn {
	void (*drain)(uv_stream_t *); /* first: fl_gw__write's drain hook */
	uv_tcp_t tcp;
	uv_timer_t timer;
	fl_gw *gw;
	fl_list link;
	gw_waiter wait;
	const struct fl_codec *codec; /* set once another protocol took the connection */
	void *cs;                     /* that codec's state */
	char *fixed_fn;               /* the function of the dedicated port, or NULL */
	llhttp_t req;
	llhttp_t resp;
	enum conn_state state;
	exch *x;
	char *pend; /* client bytes not yet parsed (the parser paused before them) */
	size_t pend_len, pend_off;
	int closing, handles, paused, reading, head_ready, in_drive, again, waiting, linger;
	int offloads; /* answers still to come back; the struct lives until then */
	uint64_t off_max;
	char peer[48];
};

static llhttp_settings_t req_settings, resp_settings;
static __thread fl_list *free_exch; /* per-thread free list head (lazy) */

static void drive(gw_conn *c);
static void conn_close(gw_conn *c);
static void timer_start(uv_timer_t *t, uint64_t ms);
static void finish(gw_conn *c);
static void dispatch(gw_conn *c);


gw_conn *fl_http1_from_link(fl_list *l)
{
	return fl_container_of(l, gw_conn, link);
}

/* End of the bytes the request parser is running over (for on_req_value). */
static __thread const char *req_end;

/* ---- exchanges ---- */

static exch *exch_get(void)
{
	static __thread fl_list head;
	exch *x;

	if (free_exch == NULL) {
		fl_list_init(&head);
		free_exch = &head;
	}
	if (!fl_list_empty(free_exch)) {
		x = fl_container_of(free_exch->next, exch, free_link);
		fl_list_remove(&x->free_link);
	} else {
		x = calloc(1, sizeof(*x));
		if (x == NULL)
			return NULL;
		fl_list_init(&x->free_link);
	}
	/* Reset all but the buffers, whose memory is reused. */
	{
		fl_buf in = x->in, out = x->out, rin = x->rin, rout = x->rout;
		fl_list fl = x->free_link;
		memset(x, 0, sizeof(*x));
		x->in = in, x->out = out, x->rin = rin, x->rout = rout, x->free_link = fl;
		fl_buf_reset(&x->in);
		fl_buf_reset(&x->out);
		fl_buf_reset(&x->rin);
		fl_buf_reset(&x->rout);
	}
	x->mode = B_RAW;
	return x;
}

static void exch_put(exch *x)
{
	/* Big heads leave big buffers behind; do not keep those around. */
	if (x->in.cap > 16384)
		fl_buf_free(&x->in);
	if (x->out.cap > 16384)
		fl_buf_free(&x->out);
	if (x->rin.cap > 16384)
		fl_buf_free(&x->rin);
	if (x->rout.cap > 16384)
		fl_buf_free(&x->rout);
	fl_list_insert_tail(free_exch, &x->free_link);
}

static const char *xs(const fl_buf *b, uint32_t off)
{
	return b->p + off;
}

/* The request fields flint itself looks at, found in one pass (by length
 * first) when the head is complete; -1 when absent. */
enum { RH_HOST, RH_EXPECT, RH_REQID, RH_XFF, RH_XFPROTO, RH_XFPREFIX, RH_VERSION, RH_N };

static void classify(exch *x)
{
	int i;

	for (i = 0; i < RH_N; i++)
		x->rh_idx[i] = -1;
	for (i = 0; i < x->nh; i++) {
		const char *n = x->in.p + x->h[i].no;
		switch (x->h[i].nl) {
		case 4:
			if (strncasecmp(n, "host", 4) == 0)
				x->rh_idx[RH_HOST] = i;
			break;
		case 6:
			if (strncasecmp(n, "expect", 6) == 0)
				x->rh_idx[RH_EXPECT] = i;
			break;
		case 15:
			if (strncasecmp(n, "x-forwarded-for", 15) == 0)
				x->rh_idx[RH_XFF] = i;
			else if (strncasecmp(n, "x-flint-version", 15) == 0)
				x->rh_idx[RH_VERSION] = i;
			break;
		case 17:
			if (strncasecmp(n, "x-forwarded-proto", 17) == 0)
				x->rh_idx[RH_XFPROTO] = i;
			break;
		case 18:
			if (strncasecmp(n, "x-flint-request-id", 18) == 0)
				x->rh_idx[RH_REQID] = i;
			else if (strncasecmp(n, "x-forwarded-prefix", 18) == 0)
				x->rh_idx[RH_XFPREFIX] = i;
			break;
		}
	}
}

static const char *rh(exch *x, int which, size_t *vl)
{
	int i = x->rh_idx[which];

	if (i < 0)
		return NULL;
	*vl = x->h[i].vl;
	return x->in.p + x->h[i].vo;
}

/* A request header's value by name, or NULL (len in *vl). */
static const char *req_header(exch *x, const char *name, size_t *vl)
{
	int i;

	for (i = 0; i < x->nh; i++)
		if (fl_strncaseeq(xs(&x->in, x->h[i].no), x->h[i].nl, name)) {
			*vl = x->h[i].vl;
			return xs(&x->in, x->h[i].vo);
		}
	return NULL;
}

/* ---- answers from the gateway itself ---- */

static const char *reason_phrase(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 431:
		return "Request Header Fields Too Large";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default:
		return "Unknown";
	}
}

static void linger_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	gw_conn *c = s->data;
	fl_gw *gw = c->gw;

	if (n < 0)
		conn_close(c);
	if (buf->base == gw->rbuf)
		gw->rbuf_busy = 0;
	else
		free(buf->base);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	gw_conn *c = req->data;

	free(req);
	if (status < 0 || c->closing || !c->linger) {
		conn_close(c);
		return;
	}
	/* Lingering close: the client may still be sending a body we refused.
	 * Closing with unread data would reset the connection and could destroy
	 * our answer in flight, so read and drop for a moment first. */
	c->reading = 1;
	uv_read_start((uv_stream_t *)&c->tcp, fl_gw__alloc, linger_read);
	timer_start(&c->timer, 2000);
}

/* Closes after what was written has been sent. */
static void close_after_write(gw_conn *c)
{
	uv_shutdown_t *req;

	if (c->closing)
		return;
	c->linger = c->x && !c->x->req_done;
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = 0;
	}
	req = malloc(sizeof(*req));
	if (req == NULL || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
		free(req);
		conn_close(c);
		return;
	}
	req->data = c;
	c->state = C_LOCAL;
	uv_timer_stop(&c->timer);
	timer_start(&c->timer, 10000); /* a client that never reads cannot hold us */
}

static void account(exch *x, int status)
{
	fl_fnstats *st;
	uint64_t us;

	if (x->fn == NULL)
		return;
	st = x->fn->stats;
	us = (fl_now_ns() - x->t_start) / 1000;
	if (status < 100 || status > 599)
		status = 0;
	atomic_fetch_add_explicit(&st->requests, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&st->status[status / 100], 1, memory_order_relaxed);
	if (status)
		atomic_fetch_add_explicit(&st->codes[status], 1, memory_order_relaxed);
	fl_hist_observe(&st->latency, us);
}

/* Sends a response made by the gateway. close_conn: close after it; else the
 * connection continues when the request has been read whole. */
static void respond_local_h(gw_conn *c, int status, const char *ctype, const char *body,
			    size_t blen, int close_conn, const char *extra)
{
	exch *x = c->x;
	char head[2048];
	uv_buf_t b[2];
	int n;

	if (x && !x->req_done)
		close_conn = 1; /* the rest of the request body is not worth reading */
	if (x && !x->keepalive)
		close_conn = 1;
	if (c->gw->draining)
		close_conn = 1;
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		     "X-Flint-Request-Id: %s\r\n%s%s\r\n",
		     status, reason_phrase(status), ctype, blen, x ? x->id : "-", extra ? extra : "",
		     close_conn ? "Connection: close\r\n" : "");
	if (n >= (int)sizeof(head))
		n = (int)sizeof(head) - 1;
	b[0] = uv_buf_init(head, (unsigned)n);
	b[1] = uv_buf_init((char *)body, (unsigned)blen);
	if (x)
		x->status = status;
	if (fl_gw__write((uv_stream_t *)&c->tcp, b, (x && x->is_head) ? 1 : 2) < 0) {
		conn_close(c);
		return;
	}
	if (x)
		account(x, status);
	if (close_conn) {
		close_after_write(c);
		return;
	}
	x->resp_done = 1;
	finish(c);
}

static void respond_local(gw_conn *c, int status, const char *ctype, const char *body, size_t blen,
			  int close_conn)
{
	respond_local_h(c, status, ctype, body, blen, close_conn, NULL);
}

/* A JSON error: {"error": ..., "function": ..., "request_id": ...}. */
static void respond_error(gw_conn *c, int status, int close_conn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void respond_error(gw_conn *c, int status, int close_conn, const char *fmt, ...)
{
	char msg[512], body[1024];
	va_list ap;
	size_t i, j = 0;
	int n;

	if (c->x && c->x->id[0] == '\0')
		fl_random_hex(c->x->id, 8);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Messages are ours, but names in them come from the client: escape. */
	n = snprintf(body, sizeof(body), "{\"error\": \"");
	j = (size_t)n;
	for (i = 0; msg[i] && j < sizeof(body) - 200; i++) {
		unsigned char ch = (unsigned char)msg[i];
		if (ch == '"' || ch == '\\') {
			body[j++] = '\\';
			body[j++] = (char)ch;
		} else if (ch < 0x20) {
			j += (size_t)snprintf(body + j, 7, "\\u%04x", ch);
		} else {
			body[j++] = (char)ch;
		}
	}
	n = snprintf(body + j, sizeof(body) - j, "\", \"status\": %d, \"request_id\": \"%s\"}\n",
		     status, c->x ? c->x->id : "-");
	respond_local(c, status, "application/json", body, j + (size_t)n, close_conn);
}

/* ---- the request parser ---- */

static int append_span(fl_buf *b, struct hdr *h, int value, const char *at, size_t len)
{
	if (!value && h->nl == 0)
		h->no = (uint32_t)b->len;
	if (value && h->vl == 0)
		h->vo = (uint32_t)b->len;
	if (fl_buf_append(b, at, len) < 0)
		return -1;
	if (value)
		h->vl += (uint32_t)len;
	else
		h->nl += (uint32_t)len;
	return 0;
}

static int too_big(gw_conn *c)
{
	return c->x->in.len > c->gw->opts->max_header;
}

static int on_req_begin(llhttp_t *p)
{
	gw_conn *c = p->data;

	if (c->x == NULL) {
		c->x = exch_get();
		if (c->x == NULL)
			return -1;
	}
	c->x->t_start = fl_now_ns();
	return 0;
}

static int on_req_url(llhttp_t *p, const char *at, size_t len)
{
	gw_conn *c = p->data;
	exch *x = c->x;

	if (x->url_l == 0)
		x->url_o = (uint32_t)x->in.len;
	if (fl_buf_append(&x->in, at, len) < 0)
		return -1;
	x->url_l += (uint32_t)len;
	return too_big(c) ? -1 : 0;
}

/* RFC 9110 tchar: what a header name may hold. llhttp lets a space through,
 * and "Ho st" must not reach an instance that might read it differently. */
static int tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static int on_req_field(llhttp_t *p, const char *at, size_t len)
{
	gw_conn *c = p->data;
	exch *x = c->x;
	size_t i;

	for (i = 0; i < len; i++)
		if (!tchar((unsigned char)at[i])) {
			x->bad = "invalid character in a header name";
			return -1;
		}

	if (x->hval || x->nh == 0) {
		if (x->nh == GW_MAX_HEADERS) {
			x->nh = GW_MAX_HEADERS + 1;
			return -1;
		}
		memset(&x->h[x->nh++], 0, sizeof(struct hdr));
		x->hval = 0;
	}
	if (append_span(&x->in, &x->h[x->nh - 1], 0, at, len) < 0)
		return -1;
	return too_big(c) ? -1 : 0;
}

static int on_req_value(llhttp_t *p, const char *at, size_t len)
{
	gw_conn *c = p->data;
	exch *x = c->x;

	/* llhttp accepts obs-fold (a line starting with a space continues the value)
	 * and reports the continuation as a second piece of the same value. A piece
	 * that follows one which did not end at the end of the bytes being parsed is
	 * such a continuation; RFC 9112 lets a server refuse it, and we do, rather
	 * than guess how an instance would join the lines. */
	if (x->hval && !x->vsplit) {
		x->bad = "obsolete line folding in a header";
		return -1;
	}
	x->vsplit = at + len == req_end;
	x->hval = 1;
	if (append_span(&x->in, &x->h[x->nh - 1], 1, at, len) < 0)
		return -1;
	return too_big(c) ? -1 : 0;
}

static int on_req_headers_complete(llhttp_t *p)
{
	gw_conn *c = p->data;
	exch *x = c->x;

	x->keepalive = llhttp_should_keep_alive(p);
	x->http10 = p->http_major == 1 && p->http_minor == 0;
	x->is_head = p->method == HTTP_HEAD;
	x->has_body =
	    (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length);
	if (!x->has_body)
		x->early_done = x->req_done = 1;
	c->head_ready = 1;
	return HPE_PAUSED;
}

static int on_req_body(llhttp_t *p, const char *at, size_t len)
{
	gw_conn *c = p->data;

	c->x->body_bytes += len;
	if (c->state == C_BODY) {
		/* An offloaded request is kept whole (x->out is free for it). */
		if (c->off_max && c->x->body_bytes > c->off_max) {
			c->x->bad = "body over the limit";
			return -1;
		}
		if (fl_buf_append(&c->x->out, at, len) < 0)
			return -1;
	}
	return 0;
}

static int on_req_complete(llhttp_t *p)
{
	gw_conn *c = p->data;
	exch *x = c->x;

	if (x == NULL || x->early_done) {
		/* A body-less message whose end llhttp reports only now. */
		if (x)
			x->early_done = 0;
		return 0;
	}
	x->req_done = 1;
	return HPE_PAUSED;
}

/* Runs the request parser over p; returns the bytes consumed. On a parse error
 * answers 400/431 and closes. */
static size_t parse_req(gw_conn *c, const char *p, size_t n)
{
	llhttp_errno_t err;

	if (c->paused) {
		llhttp_resume(&c->req);
		c->paused = 0;
	}
	req_end = p + n;
	err = llhttp_execute(&c->req, p, n);
	if (err == HPE_OK)
		return n;
	if (err == HPE_PAUSED) {
		c->paused = 1;
		return (size_t)(llhttp_get_error_pos(&c->req) - p);
	}
	if (err == HPE_PAUSED_UPGRADE) {
		respond_error(c, 501, 1, "protocol upgrades are not supported on this port");
		return n;
	}
	if (c->state == C_BODY && c->x && c->x->bad) {
		respond_error(c, 413, 1, "request body is over the limit of %llu bytes",
			      (unsigned long long)c->off_max);
		return n;
	}
	if (c->x && (too_big(c) || c->x->nh > GW_MAX_HEADERS)) {
		respond_error(c, 431, 1,
			      "request head is larger than %zu bytes or has more than %d headers",
			      c->gw->opts->max_header, GW_MAX_HEADERS);
		return n;
	}
	if (c->x == NULL && (c->x = exch_get()) == NULL) {
		conn_close(c);
		return n;
	}
	c->x->req_done = 1;
	c->x->keepalive = 0;
	respond_error(c, 400, 1, "malformed HTTP request: %s",
		      c->x->bad ? c->x->bad : llhttp_get_error_reason(&c->req));
	return n;
}

/* ---- the response parser ---- */

static int on_resp_begin(llhttp_t *p)
{
	gw_conn *c = p->data;
	exch *x = c->x;

	fl_buf_reset(&x->rin);
	x->nrh = 0;
	x->rhval = 0;
	x->reason_l = 0;
	return 0;
}

static int on_resp_status(llhttp_t *p, const char *at, size_t len)
{
	gw_conn *c = p->data;
	exch *x = c->x;

	if (x->reason_l == 0)
		x->reason_o = (uint32_t)x->rin.len;
	x->reason_l += (uint32_t)len;
	return fl_buf_append(&x->rin, at, len);
}

static int on_resp_field(llhttp_t *p, const char *at, size_t len)
{
	gw_conn *c = p->data;
	exch *x = c->x;

	if (x->rhval || x->nrh == 0) {
		if (x->nrh == GW_MAX_HEADERS)
			return -1;
		memset(&x->rh[x->nrh++], 0, sizeof(struct hdr));
		x->rhval = 0;
	}
	return append_span(&x->rin, &x->rh[x->nrh - 1], 0, at, len);
}

static int on_resp_value(llhttp_t *p, const char *at, size_t len)
{
	gw_conn *c = p->data;
	exch *x = c->x;

	x->rhval = 1;
	return append_span(&x->rin, &x->rh[x->nrh - 1], 1, at, len);
}

static int ieq(const char *n, const char *lit, size_t l)
{
	return strncasecmp(n, lit, l) == 0;
}

/* Fields that belong to one hop (or that flint sets itself), by length first:
 * this runs for every header of every request and response. */
static int hop_by_hop(const char *n, size_t l)
{
	switch (l) {
	case 2: return ieq(n, "te", 2);
	case 7: return ieq(n, "upgrade", 7) || ieq(n, "trailer", 7);
	case 10: return ieq(n, "connection", 10) || ieq(n, "keep-alive", 10);
	case 16: return ieq(n, "proxy-connection", 16);
	case 18: return ieq(n, "x-flint-request-id", 18);
	default: return 0;
	}
}

/* Appends a decimal number without printf (request heads are built per request). */
static void buf_num(fl_buf *o, unsigned long v)
{
	char d[24];
	int i = sizeof(d);

	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	fl_buf_append(o, d + i, sizeof(d) - (size_t)i);
}

static void buf_field(fl_buf *o, const char *name, size_t nl, const char *v, size_t vl)
{
	fl_buf_append(o, name, nl);
	fl_buf_append(o, ": ", 2);
	fl_buf_append(o, v, vl);
	fl_buf_append(o, "\r\n", 2);
}

/* Builds the client's response head into x->rout. */
static int build_resp_head(gw_conn *c)
{
	exch *x = c->x;
	llhttp_t *p = &c->resp;
	fl_buf *o = &x->rout;
	int i, chunked = (p->flags & F_CHUNKED) != 0;
	int no_body = x->is_head || p->status_code == 204 || p->status_code == 304;

	x->status = p->status_code;
	if (!no_body && llhttp_message_needs_eof(p))
		x->mode = x->http10 ? B_PLAIN : B_CHUNK;
	else if (!no_body && chunked && x->http10)
		x->mode = B_PLAIN;
	if (x->mode == B_PLAIN)
		x->keepalive = 0;
	fl_buf_reset(o);
	fl_buf_append(o, "HTTP/1.1 ", 9);
	buf_num(o, p->status_code);
	fl_buf_append(o, " ", 1);
	if (x->reason_l)
		fl_buf_append(o, xs(&x->rin, x->reason_o), x->reason_l);
	else
		fl_buf_puts(o, reason_phrase(p->status_code));
	fl_buf_puts(o, "\r\n");
	for (i = 0; i < x->nrh; i++) {
		const char *n = xs(&x->rin, x->rh[i].no);
		size_t nl = x->rh[i].nl;
		if (hop_by_hop(n, nl))
			continue;
		if (x->mode == B_PLAIN && fl_strncaseeq(n, nl, "transfer-encoding"))
			continue;
		buf_field(o, n, nl, xs(&x->rin, x->rh[i].vo), x->rh[i].vl);
	}
	if (x->mode == B_CHUNK)
		fl_buf_puts(o, "Transfer-Encoding: chunked\r\n");
	buf_field(o, "X-Flint-Request-Id", 18, x->id, strlen(x->id));
	if (x->held)
		fl_buf_printf(o, "Server-Timing: %s;dur=%.3f\r\n", x->cold ? "cold" : "queue",
			      (double)x->cold_ns / 1e6);
	if (!x->req_done || c->gw->draining)
		x->keepalive = 0;
	if (!x->keepalive)
		fl_buf_puts(o, "Connection: close\r\n");
	else if (x->http10)
		fl_buf_puts(o, "Connection: keep-alive\r\n");
	return fl_buf_puts(o, "\r\n");
}

/* Client-bound bytes are gathered while an upstream read is parsed and sent
 * with one writev at its end (out_flush); the pointers stay valid until then
 * (the read buffer, x->rout, or static strings). */
static void out_flush(gw_conn *c)
{
	exch *x = c->x;

	if (x == NULL || x->nwv == 0)
		return;
	if (fl_gw__write((uv_stream_t *)&c->tcp, x->wv, (unsigned)x->nwv) < 0)
		x->client_gone = 1; /* closed by the caller */
	x->nwv = 0;
}

static void out_push(gw_conn *c, const char *p, size_t n)
{
	exch *x = c->x;

	if (n == 0)
		return;
	if (x->nwv == (int)(sizeof(x->wv) / sizeof(x->wv[0])))
		out_flush(c);
	x->wv[x->nwv++] = uv_buf_init((char *)p, (unsigned)n);
}

static void write_resp_head(gw_conn *c)
{
	exch *x = c->x;

	x->rhead_sent = 1;
	out_push(c, x->rout.p, x->rout.len);
}

static int resp_overloaded(exch *x)
{
	int i;

	for (i = 0; i < x->nrh; i++)
		if (fl_strncaseeq(xs(&x->rin, x->rh[i].no), x->rh[i].nl, "x-flint-overloaded"))
			return 1;
	return 0;
}

static int on_resp_headers_complete(llhttp_t *p)
{
	gw_conn *c = p->data;
	exch *x = c->x;

	if (p->status_code < 200 && p->status_code != 101)
		return 0; /* interim (100, 103): not forwarded; the final answer follows */
	if (p->status_code == 101)
		return -1; /* we never asked for an upgrade */
	if (build_resp_head(c) < 0)
		return -1;
	if (x->inst && (p->status_code == 429 || p->status_code == 503 || resp_overloaded(x))) {
		/* The instance says it is full: steer away and scale up now. */
		fl_dispatch_overloaded(x->fn, x->inst);
		c->gw->opts->need(c->gw->opts->ctx, x->fn->name, strlen(x->fn->name));
	}
	write_resp_head(c);
	if (x->is_head)
		return 1; /* no body follows, whatever the headers say */
	if (p->status_code == 204 || p->status_code == 304 ||
	    ((p->flags & F_CONTENT_LENGTH) && p->content_length == 0 && !(p->flags & F_CHUNKED)))
		return 0; /* the message ends here, in this same call */
	/* Pause where the body starts: from there on bytes are forwarded raw. */
	return HPE_PAUSED;
}

static int on_resp_body(llhttp_t *p, const char *at, size_t len)
{
	gw_conn *c = p->data;
	exch *x = c->x;
	uv_buf_t b[3];
	char sz[24];

	if (x->mode == B_RAW)
		return 0;
	if (x->mode == B_CHUNK) {
		/* The chunk-size line lives on the stack: send what is gathered now. */
		int n = snprintf(sz, sizeof(sz), "%zx\r\n", len);
		out_flush(c);
		b[0] = uv_buf_init(sz, (unsigned)n);
		b[1] = uv_buf_init((char *)at, (unsigned)len);
		b[2] = uv_buf_init("\r\n", 2);
		return fl_gw__write((uv_stream_t *)&c->tcp, b, 3) < 0 ? -1 : 0;
	}
	out_push(c, at, len);
	return 0;
}

static int on_resp_complete(llhttp_t *p)
{
	gw_conn *c = p->data;
	exch *x = c->x;

	if (p->status_code < 200 && p->status_code != 101)
		return 0;
	if (x->mode == B_CHUNK)
		out_push(c, "0\r\n\r\n", 5);
	x->resp_done = 1;
	return HPE_PAUSED;
}

/* ---- the exchange with an instance ---- */

static void fail_upstream(gw_conn *c, int status, const char *what)
{
	exch *x = c->x;

	if (x->up) {
		fl_up_release(x->up, 0);
		x->up = NULL;
	}
	if (x->inst) {
		fl_dispatch_release(x->fn, x->inst);
		x->inst = NULL;
	}
	if (x->rhead_sent) {
		/* Part of the response is out: all we can do is cut it. */
		account(x, x->status);
		conn_close(c);
		return;
	}
	respond_error(c, status, 1, "%s", what);
}

static void up_on_data(void *o, const char *p, size_t n)
{
	gw_conn *c = o;
	exch *x = c->x;
	size_t off = 0;

	while (off < n && !c->closing && !x->resp_done) {
		const char *start = p + off;
		llhttp_errno_t err;
		size_t k;
		int in_body = x->rbody;

		if (x->rpaused) {
			llhttp_resume(&c->resp);
			x->rpaused = 0;
		}
		err = llhttp_execute(&c->resp, start, n - off);
		k = n - off;
		if (err == HPE_PAUSED) {
			x->rpaused = 1;
			k = (size_t)(llhttp_get_error_pos(&c->resp) - start);
		} else if (err != HPE_OK) {
			char msg[200];
			snprintf(msg, sizeof(msg), "instance i-%llu sent a malformed response: %s",
				 (unsigned long long)x->inst->id,
				 llhttp_get_error_reason(&c->resp));
			out_flush(c);
			fail_upstream(c, 502, msg);
			return;
		}
		if (in_body && x->mode == B_RAW && k)
			out_push(c, start, k);
		if (x->client_gone) {
			conn_close(c);
			return;
		}
		if (x->rhead_sent)
			x->rbody = 1;
		off += k;
	}
	if (c->closing)
		return;
	out_flush(c);
	if (x->client_gone) {
		conn_close(c);
		return;
	}
	if (x->resp_done) {
		/* Anything after the response is a protocol error: do not reuse. */
		if (off < n)
			x->up_nokeep = 1;
		finish(c);
		return;
	}
	if (c->tcp.write_queue_size > GW_WQ_HIGH)
		fl_up_read_stop(x->up); /* a slow client holds its instance, not our memory */
}

static void up_on_ready(void *o)
{
	gw_conn *c = o;
	exch *x = c->x;

	/* The head goes out with the first body bytes if they are already here
	 * (one write instead of two), else alone right below. */
	x->head_sent = 1;
	x->qhead_pending = 1;
	if (x->expect && !x->req_done) {
		uv_buf_t cont = uv_buf_init("HTTP/1.1 100 Continue\r\n\r\n", 25);
		fl_gw__write((uv_stream_t *)&c->tcp, &cont, 1);
	}
	drive(c);
	if (!c->closing && c->x == x && x->qhead_pending && x->up) {
		uv_buf_t b = uv_buf_init(x->out.p, (unsigned)x->out.len);
		x->qhead_pending = 0;
		if (fl_gw__write(fl_up_stream(x->up), &b, 1) < 0)
			fail_upstream(c, 502, "cannot write to the instance");
	}
}

static void retry_fresh(gw_conn *c);

static void up_on_eof(void *o, int err)
{
	gw_conn *c = o;
	exch *x = c->x;
	char msg[200];

	if (x->rbody && !x->resp_done && err == UV_EOF && llhttp_message_needs_eof(&c->resp)) {
		/* A close-delimited body ends here. */
		if (x->mode == B_CHUNK)
			out_push(c, "0\r\n\r\n", 5);
		out_flush(c);
		x->resp_done = 1;
		x->up_nokeep = 1;
		finish(c);
		return;
	}
	if (!x->rhead_sent && x->body_sent == 0 && !x->rbody) {
		if (x->up && fl_up_reused(x->up) && !x->retried && !x->head_sent) {
			/* A pooled connection that failed before the request went out: try a
			 * fresh one. Once the head is written the request may have run, and a
			 * request is never sent twice (it may not be idempotent, and a
			 * request that kills its instance would kill the next one too). */
			retry_fresh(c);
			return;
		}
		if ((err == UV_ECONNREFUSED || err == UV_ECONNRESET || !x->head_sent) &&
		    x->redispatched < 3) {
			/* The instance is gone (it died before control heard of it): nothing
			 * reached it, so the request can go to another one, or wait. */
			fl_up_release(x->up, 0);
			x->up = NULL;
			atomic_store(&x->inst->failed, 1);
			atomic_store(&x->inst->gone, 1);
			fl_dispatch_release(x->fn, x->inst);
			x->inst = NULL;
			x->redispatched++;
			x->head_sent = 0;
			x->retried = 0;
			c->state = C_WAIT;
			c->gw->opts->need(c->gw->opts->ctx, x->fn->name, strlen(x->fn->name));
			dispatch(c);
			return;
		}
	}
	snprintf(msg, sizeof(msg), "instance i-%llu of %s %s before it answered (%s)",
		 (unsigned long long)x->inst->id, x->fn->name,
		 err == UV_EOF ? "closed the connection" : "failed", uv_strerror(err));
	fail_upstream(c, 502, msg);
}

static void up_on_drain(void *o)
{
	gw_conn *c = o;
	drive(c);
}

static const struct gw_up_ops up_ops = {up_on_ready, up_on_data, up_on_eof, up_on_drain};

static void retry_fresh(gw_conn *c)
{
	exch *x = c->x;

	fl_up_release(x->up, 0);
	x->retried = 1;
	x->head_sent = 0;
	x->up = NULL;
	llhttp_init(&c->resp, HTTP_RESPONSE, &resp_settings);
	c->resp.data = c;
	/* Other pooled sockets of this instance may be stale too: connect anew. */
	x->up = fl_up_get(c->gw, x->inst, c, &up_ops, 1);
	if (x->up == NULL)
		fail_upstream(c, 502, "cannot connect to the instance");
}

/* Builds the head sent to the instance. */
static int build_req_head(gw_conn *c)
{
	exch *x = c->x;
	fl_buf *o = &x->out;
	const char *xff = NULL;
	size_t xffl = 0;
	int i;

	fl_buf_reset(o);
	fl_buf_puts(o, llhttp_method_name((llhttp_method_t)c->req.method));
	fl_buf_append(o, " ", 1);
	if (x->route.target_slash)
		fl_buf_puts(o, "/");
	fl_buf_append(o, x->route.target, x->route.target_len);
	fl_buf_puts(o, " HTTP/1.1\r\n");
	for (i = 0; i < x->nh; i++) {
		const char *n = xs(&x->in, x->h[i].no);
		size_t nl = x->h[i].nl;
		if (hop_by_hop(n, nl) || i == x->rh_idx[RH_EXPECT] || i == x->rh_idx[RH_XFPROTO] ||
		    i == x->rh_idx[RH_XFPREFIX])
			continue;
		if (i == x->rh_idx[RH_XFF]) {
			xff = xs(&x->in, x->h[i].vo);
			xffl = x->h[i].vl;
			continue;
		}
		buf_field(o, n, nl, xs(&x->in, x->h[i].vo), x->h[i].vl);
	}
	fl_buf_puts(o, "X-Forwarded-For: ");
	if (xff) {
		fl_buf_append(o, xff, xffl);
		fl_buf_append(o, ", ", 2);
	}
	fl_buf_puts(o, c->peer);
	fl_buf_puts(o, "\r\nX-Forwarded-Proto: http\r\n");
	if (x->route.prefix_len)
		buf_field(o, "X-Forwarded-Prefix", 18, x->route.prefix, x->route.prefix_len);
	buf_field(o, "X-Flint-Request-Id", 18, x->id, strlen(x->id));
	return fl_buf_puts(o, "\r\n");
}

static void attach(gw_conn *c, fl_inst *inst)
{
	exch *x = c->x;

	x->inst = inst;
	c->state = C_FORWARD;
	uv_timer_stop(&c->timer);
	{
		uint64_t spent = (fl_now_ns() - x->t_start) / 1000000;
		uint64_t left = x->fn->timeout_ms > spent ? x->fn->timeout_ms - spent : 1;
		timer_start(&c->timer, left);
	}
	llhttp_init(&c->resp, HTTP_RESPONSE, &resp_settings);
	c->resp.data = c;
	x->up = fl_up_get(c->gw, inst, c, &up_ops, 0);
	if (x->up == NULL)
		fail_upstream(c, 502, "cannot connect to the instance");
	else if (fl_up_ready(x->up))
		up_on_ready(c);
}

static void unhold(gw_conn *c)
{
	exch *x = c->x;

	if (c->waiting) {
		fl_list_remove(&c->wait.link);
		c->waiting = 0;
	}
	if (x && x->queued) {
		atomic_fetch_sub_explicit(&x->fn->stats->queued, 1, memory_order_relaxed);
		x->queued = 0;
	}
}

/* Finds an instance for the request, or holds it. */
static void dispatch(gw_conn *c)
{
	exch *x = c->x;
	fl_gw *gw = c->gw;
	fl_route_fn *fn;
	fl_inst *inst;

	/* Always route against the newest snapshot this thread has. */
	if (x->sref != gw->cur) {
		/* Move to the newest snapshot; the old one (and x->fn in it) stays
		 * valid until released below. */
		gw_snapref *old = x->sref;
		x->sref = fl_gw__snap_use(gw);
		fn = x->vname[0] ? fl_snapshot_find(x->sref->snap, x->vname, strlen(x->vname))
				 : fl_snapshot_find(x->sref->snap, x->route.name, x->route.name_len);
		if (fn && x->queued && fn->stats != x->fn->stats) {
			atomic_fetch_sub(&x->fn->stats->queued, 1);
			atomic_fetch_add(&fn->stats->queued, 1);
		}
		if (fn == NULL)
			unhold(c);
		x->fn = fn;
		if (old)
			fl_gw__snap_done(gw, old);
		if (fn == NULL) {
			respond_error(c, 404, 0, "no function named %.*s", (int)x->route.name_len,
				      x->route.name);
			return;
		}
	}
	fn = x->fn;
	if (fn->state == FL_FN_FAILING) {
		unhold(c);
		respond_error(c, 503, 0, "function %s is not available: %s", fn->name,
			      fn->reason ? fn->reason : "its instances fail to start");
		return;
	}
	inst = fl_dispatch_pick(fn);
	if (inst) {
		if (x->held)
			x->cold_ns = fl_now_ns() - x->t_held;
		unhold(c);
		attach(c, inst);
		return;
	}
	if (x->held) {
		gw->opts->need(gw->opts->ctx, fn->name, strlen(fn->name));
		return; /* still waiting */
	}
	if (atomic_fetch_add_explicit(&fn->stats->queued, 1, memory_order_relaxed) >=
	    (long)fn->queue_max) {
		atomic_fetch_sub_explicit(&fn->stats->queued, 1, memory_order_relaxed);
		respond_error(
		    c, 503, 0,
		    "function %s is at capacity: %u requests are already waiting (queue.max)",
		    fn->name, fn->queue_max);
		return;
	}
	atomic_fetch_add_explicit(&fn->stats->held, 1, memory_order_relaxed);
	x->queued = 1;
	x->held = 1;
	x->cold = fn->ninst == 0;
	x->t_held = fl_now_ns();
	c->state = C_WAIT;
	c->waiting = 1;
	fl_list_insert_tail(&gw->waiters, &c->wait.link);
	uv_timer_stop(&c->timer);
	{
		uint64_t t =
		    fn->queue_timeout_ms < fn->timeout_ms ? fn->queue_timeout_ms : fn->timeout_ms;
		timer_start(&c->timer, t ? t : 1);
	}
	gw->opts->need(gw->opts->ctx, fn->name, strlen(fn->name));
}

static void retry_waiter(gw_waiter *w)
{
	gw_conn *c = fl_container_of(w, gw_conn, wait);

	if (c->state == C_WAIT && !c->closing)
		dispatch(c);
}

static void set_request_id(exch *x)
{
	size_t vl, i;
	const char *v = rh(x, RH_REQID, &vl);

	if (v && vl > 0 && vl < sizeof(x->id)) {
		for (i = 0; i < vl; i++) {
			char ch = v[i];
			if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' ||
			      ch == ':'))
				break;
		}
		if (i == vl) {
			memcpy(x->id, v, vl);
			x->id[vl] = '\0';
			return;
		}
	}
	fl_random_hex(x->id, 8);
}

static void serve_metrics(gw_conn *c)
{
	fl_buf b = FL_BUF_INIT;

	if (fl_metrics_render(&b, c->gw->cur ? c->gw->cur->snap : NULL) < 0) {
		fl_buf_free(&b);
		respond_error(c, 503, 1, "out of memory rendering metrics");
		return;
	}
	respond_local(c, 200, "text/plain; version=0.0.4", b.p, b.len, 0);
	fl_buf_free(&b);
}

/* Hands the whole request to whoever answers offloaded paths. */
static void offload_now(gw_conn *c)
{
	exch *x = c->x;
	fl_gw *gw = c->gw;
	struct fl_offload_req r;
	char name[64], *target;
	int i;

	fl_buf_reset(&x->rin);
	for (i = 0; i < x->nh; i++) {
		const char *nm = xs(&x->in, x->h[i].no);
		if (hop_by_hop(nm, x->h[i].nl) || fl_strncaseeq(nm, x->h[i].nl, "expect"))
			continue;
		fl_buf_append(&x->rin, nm, x->h[i].nl);
		fl_buf_puts(&x->rin, ": ");
		fl_buf_append(&x->rin, xs(&x->in, x->h[i].vo), x->h[i].vl);
		fl_buf_puts(&x->rin, "\r\n");
	}
	memset(&r, 0, sizeof(r));
	if (x->route.kind == FL_ROUTE_ASYNC) {
		fl_buf t = FL_BUF_INIT;
		r.kind = FL_OFFLOAD_ASYNC;
		snprintf(name, sizeof(name), "%.*s", (int)x->route.name_len, x->route.name);
		r.fn = name;
		if (x->route.target_slash)
			fl_buf_puts(&t, "/");
		fl_buf_append(&t, x->route.target, x->route.target_len);
		target = fl_buf_steal(&t);
	} else {
		r.kind = x->route.kind == FL_ROUTE_SYSTEM ? FL_OFFLOAD_SYSTEM : FL_OFFLOAD_QUERY;
		target = fl_xstrndup(xs(&x->in, x->url_o), x->url_l);
	}
	r.method = llhttp_method_name((llhttp_method_t)c->req.method);
	r.target = target;
	r.headers = x->rin.p ? x->rin.p : "";
	r.headers_len = x->rin.len;
	r.body = x->out.p ? x->out.p : "";
	r.body_len = x->out.len;
	r.request_id = x->id;
	r.cookie = c;
	r.thread = gw->idx;
	c->state = C_OFFLOAD;
	c->offloads++;
	uv_timer_stop(&c->timer);
	timer_start(&c->timer, 30000);
	gw->opts->offload(gw->opts->offload_ctx, &r);
	free(target);
}

void fl_http1_offload_answer(void *cookie, int status, const char *ctype, const char *body,
			     size_t len, const char *headers)
{
	gw_conn *c = cookie;

	c->offloads--;
	if (c->closing) {
		if (c->offloads == 0 && c->handles == 0) {
			free(c->pend);
			free(c->fixed_fn);
			free(c);
		}
		return;
	}
	if (c->state != C_OFFLOAD)
		return;
	uv_timer_stop(&c->timer);
	respond_local_h(c, status, ctype, body, len, 0, headers);
}

/* /async-function/NAME and /requests: read the body whole, then offload. */
static void start_offload(gw_conn *c)
{
	exch *x = c->x;
	fl_route_fn *fn;

	if (c->gw->opts->offload == NULL) {
		respond_error(c, 404, 0, "asynchronous calls are not enabled on this gateway");
		return;
	}
	c->off_max = 1 << 20;
	if (x->route.kind == FL_ROUTE_ASYNC) {
		fn = fl_snapshot_find(c->gw->cur->snap, x->route.name, x->route.name_len);
		if (fn == NULL) {
			respond_error(c, 404, 0, "no function named %.*s", (int)x->route.name_len,
				      x->route.name);
			return;
		}
		c->off_max = fn->max_body;
	}
	if (c->off_max && (c->req.flags & F_CONTENT_LENGTH) && c->req.content_length > c->off_max) {
		respond_error(c, 413, 1, "request body of %llu bytes is over the limit of %llu",
			      (unsigned long long)c->req.content_length,
			      (unsigned long long)c->off_max);
		return;
	}
	fl_buf_reset(&x->out);
	set_request_id(x);
	c->state = C_BODY;
	uv_timer_stop(&c->timer);
	timer_start(&c->timer, c->gw->opts->header_timeout_ms * 6);
	if (x->req_done)
		offload_now(c);
	else if (x->expect) {
		uv_buf_t cont = uv_buf_init("HTTP/1.1 100 Continue\r\n\r\n", 25);
		fl_gw__write((uv_stream_t *)&c->tcp, &cont, 1);
	}
}

/* `Upgrade: h2c` on a request without a body: answer 101 and hand the
 * connection to the HTTP/2 codec, the request becoming stream 1. Returns 1 if
 * it did. Requests with a body are served as HTTP/1.1 (the upgrade is
 * optional for the server). */
static int try_h2c_upgrade(gw_conn *c)
{
	exch *x = c->x;
	struct fl_h2_field f[GW_MAX_HEADERS + 4];
	const char *up, *settings, *host;
	size_t ul, sl, hl = 0;
	char lower[GW_MAX_HEADERS][64];
	int n = 0, i;
	uv_buf_t b = uv_buf_init("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
				 "Upgrade: h2c\r\n\r\n",
				 71);

	up = req_header(x, "upgrade", &ul);
	settings = req_header(x, "http2-settings", &sl);
	if (up == NULL || !fl_strncaseeq(up, ul, "h2c") || settings == NULL || x->has_body)
		return 0;
	host = req_header(x, "host", &hl);
	f[n++] = (struct fl_h2_field){":method", llhttp_method_name((llhttp_method_t)c->req.method),
				      7, strlen(llhttp_method_name((llhttp_method_t)c->req.method))};
	f[n++] = (struct fl_h2_field){":path", xs(&x->in, x->url_o), 5, x->url_l};
	f[n++] = (struct fl_h2_field){":scheme", "http", 7, 4};
	if (host)
		f[n++] = (struct fl_h2_field){":authority", host, 10, hl};
	for (i = 0; i < x->nh && i < GW_MAX_HEADERS; i++) {
		const char *nm = xs(&x->in, x->h[i].no);
		size_t nl = x->h[i].nl, k;
		if (nl >= sizeof(lower[0]) || hop_by_hop(nm, nl) || fl_strncaseeq(nm, nl, "host") ||
		    fl_strncaseeq(nm, nl, "http2-settings"))
			continue;
		for (k = 0; k < nl; k++)
			lower[i][k] = (char)(nm[k] >= 'A' && nm[k] <= 'Z' ? nm[k] - 'A' + 'a' : nm[k]);
		f[n++] = (struct fl_h2_field){lower[i], xs(&x->in, x->h[i].vo), nl, x->h[i].vl};
	}
	if (fl_gw__write((uv_stream_t *)&c->tcp, &b, 1) < 0)
		return 0;
	uv_timer_stop(&c->timer);
	c->cs = fl_h2_upgrade(c->gw, c, (uv_stream_t *)&c->tcp, c->peer, settings, sl, f, n);
	c->codec = c->cs ? &fl_codec_h2 : NULL;
	c->x = NULL;
	exch_put(x);
	if (c->cs == NULL)
		conn_close(c); /* after a 101 there is no going back to HTTP/1.1 */
	return 1;
}

/* A request head is complete: route it. */
static void start_request(gw_conn *c)
{
	exch *x = c->x;
	const char *host;
	size_t hl = 0, el;
	const char *ex;

	classify(x);
	if (c->req.upgrade && try_h2c_upgrade(c))
		return;
	set_request_id(x);
	host = rh(x, RH_HOST, &hl);
	ex = rh(x, RH_EXPECT, &el);
	x->expect = ex && fl_strncaseeq(ex, el, "100-continue");
	fl_route_request(xs(&x->in, x->url_o), x->url_l, host, hl, c->gw->opts->domain, &x->route);
	switch (x->route.kind) {
	case FL_ROUTE_METRICS:
		serve_metrics(c);
		return;
	case FL_ROUTE_HEALTH:
		respond_local(c, 200, "application/json", "{\"ok\": true}\n", 13, 0);
		return;
	case FL_ROUTE_BADNAME:
		respond_error(c, 404, 0, "function names are 1-63 characters of a-z, 0-9 and '-'");
		return;
	case FL_ROUTE_NOTFOUND:
		respond_error(c, 404, 0, "no route for this path: use /function/NAME/...");
		return;
	case FL_ROUTE_ASYNC:
	case FL_ROUTE_REQUESTS:
	case FL_ROUTE_SYSTEM:
		start_offload(c);
		return;
	case FL_ROUTE_FUNCTION:
		break;
	}
	{
		/* Host names are case-insensitive; the name lies in our own buffer. */
		char *nm = (char *)x->route.name;
		size_t i;
		for (i = 0; i < x->route.name_len; i++)
			if (nm[i] >= 'A' && nm[i] <= 'Z')
				nm[i] = (char)(nm[i] - 'A' + 'a');
	}
	x->sref = fl_gw__snap_use(c->gw);
	atomic_fetch_add(&c->gw->active, 1);
	x->fn = fl_snapshot_find(x->sref->snap, x->route.name, x->route.name_len);
	if (x->fn == NULL) {
		respond_error(c, 404, 0, "no function named %.*s", (int)x->route.name_len,
			      x->route.name);
		return;
	}
	{
		/* Versions: a pinned one (X-Flint-Version) or the traffic split's draw. */
		size_t pl = 0;
		const char *pin = rh(x, RH_VERSION, &pl);
		if (pin || x->fn->nsplit) {
			fl_route_fn *v =
			    fl_snapshot_pick_version(x->sref->snap, x->fn, pin, pl, fl_random_u64());
			if (v == NULL) {
				respond_error(c, 404, 0,
					      "version %.*s of %s receives no traffic (flint traffic "
					      "%s shows which do)",
					      (int)pl, pin, x->fn->name, x->fn->name);
				return;
			}
			if (v != x->fn)
				snprintf(x->vname, sizeof(x->vname), "%s", v->name);
			x->fn = v;
		}
	}
	if (x->fn->max_body && (c->req.flags & F_CONTENT_LENGTH) &&
	    c->req.content_length > x->fn->max_body) {
		respond_error(c, 413, 1,
			      "request body of %llu bytes is over the limit of %llu for %s",
			      (unsigned long long)c->req.content_length,
			      (unsigned long long)x->fn->max_body, x->fn->name);
		return;
	}
	if (build_req_head(c) < 0) {
		respond_error(c, 503, 1, "out of memory");
		return;
	}
	dispatch(c);
}

/* ---- the client connection ---- */

static void forward_body(gw_conn *c, const char *p, size_t n)
{
	exch *x = c->x;
	uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);

	if (n == 0)
		return;
	if (x->fn->max_body && x->body_bytes > x->fn->max_body) {
		fail_upstream(c, 413, "request body is over the limit (limits.max_body)");
		return;
	}
	x->body_sent += n;
	if (x->qhead_pending) {
		uv_buf_t hb[2] = {uv_buf_init(x->out.p, (unsigned)x->out.len), b};
		x->qhead_pending = 0;
		if (fl_gw__write(fl_up_stream(x->up), hb, 2) < 0)
			fail_upstream(c, 502, "cannot write the request to the instance");
		return;
	}
	if (fl_gw__write(fl_up_stream(x->up), &b, 1) < 0)
		fail_upstream(c, 502, "cannot write the request body to the instance");
}

/* Feeds client bytes as far as the state allows; returns bytes consumed. */
static size_t feed(gw_conn *c, const char *p, size_t n)
{
	size_t off = 0;

	while (off < n && !c->closing && !c->head_ready) {
		if (c->state == C_BODY && c->x && !c->x->req_done) {
			off += parse_req(c, p + off, n - off);
			if (!c->closing && c->state == C_BODY && c->x->req_done)
				offload_now(c);
		} else if (c->state == C_HEAD) {
			off += parse_req(c, p + off, n - off);
		} else if (c->state == C_FORWARD && c->x && c->x->head_sent && !c->x->req_done &&
			   c->x->up && fl_up_stream(c->x->up)->write_queue_size <= GW_WQ_HIGH) {
			size_t k = parse_req(c, p + off, n - off);
			if (!c->closing && c->x)
				forward_body(c, p + off, k);
			off += k;
		} else {
			break;
		}
	}
	return off;
}

static void stash(gw_conn *c, const char *p, size_t n)
{
	size_t left = c->pend_len - c->pend_off;
	char *np;

	if (n == 0)
		return;
	np = malloc(left + n);
	if (np == NULL) {
		conn_close(c);
		return;
	}
	if (left)
		memcpy(np, c->pend + c->pend_off, left);
	memcpy(np + left, p, n);
	free(c->pend);
	c->pend = np;
	c->pend_len = left + n;
	c->pend_off = 0;
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* Reading goes on during an exchange (stopping and starting it would cost two
 * epoll_ctl calls per request); what arrives before it can be used is held in
 * pend, up to one read buffer, and reading stops only then -- or while a
 * request body is waiting for its instance to take more. */
static int wants_read(gw_conn *c)
{
	if (c->closing || c->state == C_LOCAL)
		return 0;
	if (c->pend_len - c->pend_off >= GW_READ_BUF)
		return 0;
	if (c->state == C_FORWARD && c->x && !c->x->req_done && c->x->head_sent && c->x->up)
		return fl_up_stream(c->x->up)->write_queue_size <= GW_WQ_HIGH;
	return 1;
}

static void update_reading(gw_conn *c)
{
	int want = wants_read(c);

	if (want && !c->reading) {
		c->reading = 1;
		uv_read_start((uv_stream_t *)&c->tcp, fl_gw__alloc, on_client_read);
	} else if (!want && c->reading) {
		c->reading = 0;
		uv_read_stop((uv_stream_t *)&c->tcp);
	}
	if (c->x && c->x->up && c->x->rhead_sent && !c->x->resp_done &&
	    c->tcp.write_queue_size <= GW_WQ_HIGH / 2)
		fl_up_read_start(c->x->up);
}

/* The one driver of a connection: acts on a finished head and parses what was
 * held back, until nothing more can be done now. Re-entrant calls just ask it
 * to go round again. */
static void drive(gw_conn *c)
{
	if (c->in_drive) {
		c->again = 1;
		return;
	}
	c->in_drive = 1;
	do {
		c->again = 0;
		if (c->head_ready) {
			c->head_ready = 0;
			start_request(c);
		}
		if (c->codec) {
			/* Upgraded: what followed the request is HTTP/2. */
			if (!c->closing && c->pend_off < c->pend_len &&
			    c->codec->on_read(c->cs, c->pend + c->pend_off, c->pend_len - c->pend_off) <
				0)
				conn_close(c);
			free(c->pend);
			c->pend = NULL;
			c->pend_len = c->pend_off = 0;
			c->in_drive = 0;
			if (!c->closing && !c->reading) {
				c->reading = 1;
				uv_read_start((uv_stream_t *)&c->tcp, fl_gw__alloc, on_client_read);
			}
			if (c->codec && c->codec->flush)
				c->codec->flush(c->gw);
			return;
		}
		if (!c->closing && !c->head_ready && c->pend_off < c->pend_len) {
			size_t k = feed(c, c->pend + c->pend_off, c->pend_len - c->pend_off);
			c->pend_off += k;
			if (c->pend_off == c->pend_len) {
				free(c->pend);
				c->pend = NULL;
				c->pend_len = c->pend_off = 0;
			}
			if (k)
				c->again = 1;
		}
		if (c->head_ready)
			c->again = 1;
	} while (c->again && !c->closing);
	c->in_drive = 0;
	if (!c->closing)
		update_reading(c);
}

static void client_drain(uv_stream_t *s)
{
	gw_conn *c = s->data;

	if (c->closing)
		return;
	if (c->codec) {
		const struct fl_codec *k = c->codec;
		k->on_drain(c->cs);
		if (k->flush)
			k->flush(c->gw);
		return;
	}
	update_reading(c);
}

/* The exchange is over when both the request and the response are. */
static void finish(gw_conn *c)
{
	exch *x = c->x;
	fl_gw *gw = c->gw;
	int keep;

	if (!x->resp_done || !x->req_done) {
		if (x->resp_done && !x->req_done)
			x->keepalive = 0;
		else
			return;
	}
	keep = x->keepalive && !gw->draining;
	if (x->up) {
		fl_up_release(x->up,
			      x->req_done && !x->up_nokeep && llhttp_should_keep_alive(&c->resp));
		x->up = NULL;
	}
	if (x->inst) {
		account(x, x->status);
		fl_dispatch_release(x->fn, x->inst);
		x->inst = NULL;
	}
	unhold(c);
	if (x->sref) {
		atomic_fetch_sub(&gw->active, 1);
		fl_gw__snap_done(gw, x->sref);
		x->sref = NULL;
	}
	c->x = NULL;
	exch_put(x);
	uv_timer_stop(&c->timer);
	if (!keep) {
		close_after_write(c);
		return;
	}
	c->state = C_HEAD;
	timer_start(&c->timer, gw->opts->idle_timeout_ms);
	drive(c);
}

static void on_timer(uv_timer_t *t)
{
	gw_conn *c = t->data;
	exch *x = c->x;

	switch (c->state) {
	case C_HEAD:
		if (x && x->t_start)
			respond_error(c, 408, 1, "the request head did not arrive within %llu ms",
				      (unsigned long long)c->gw->opts->header_timeout_ms);
		else
			conn_close(c); /* idle keep-alive connection */
		return;
	case C_WAIT:
		unhold(c);
		respond_error(c, 503, 0, "no instance of %s became ready within %llu ms",
			      x->fn->name,
			      (unsigned long long)(x->fn->queue_timeout_ms < x->fn->timeout_ms
						       ? x->fn->queue_timeout_ms
						       : x->fn->timeout_ms));
		return;
	case C_FORWARD: {
		char msg[200];
		snprintf(msg, sizeof(msg),
			 "function %s did not answer within %llu ms (limits.timeout)", x->fn->name,
			 (unsigned long long)x->fn->timeout_ms);
		fail_upstream(c, 504, msg);
		return;
	}
	case C_LOCAL:
		conn_close(c);
		return;
	case C_BODY:
		respond_error(c, 408, 1, "the request body did not arrive in time");
		return;
	case C_OFFLOAD:
		respond_error(c, 503, 1, "the async queue did not answer within 30 s");
		return;
	}
}

static void timer_start(uv_timer_t *t, uint64_t ms)
{
	uv_timer_start(t, on_timer, ms, 0);
}

static void conn_closed(uv_handle_t *h)
{
	gw_conn *c = h->data;

	if (--c->handles == 0 && c->offloads == 0) {
		free(c->pend);
		free(c->fixed_fn);
		free(c);
	}
}

static void conn_close(gw_conn *c)
{
	exch *x = c->x;

	if (c->closing)
		return;
	c->closing = 1;
	if (c->codec) {
		c->codec->free(c->cs);
		c->codec = NULL;
		c->cs = NULL;
	}
	if (x) {
		if (x->up) {
			fl_up_release(x->up, 0);
			x->up = NULL;
		}
		if (x->inst) {
			fl_dispatch_release(x->fn, x->inst);
			x->inst = NULL;
		}
		unhold(c);
		if (x->sref) {
			atomic_fetch_sub(&c->gw->active, 1);
			fl_gw__snap_done(c->gw, x->sref);
		}
		c->x = NULL;
		exch_put(x);
	}
	fl_list_remove(&c->link);
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, conn_closed);
	uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

/* The protocols that can take a connection over, tried in order on its first
 * bytes; HTTP/1.1 keeps whatever none of them claims. */
static const struct fl_codec *const codecs[] = {&fl_codec_h2, &fl_codec_thrift};

static void sniff(gw_conn *c, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++) {
		if (!codecs[i]->sniff(p, n))
			continue;
		uv_timer_stop(&c->timer);
		c->cs = codecs[i]->start(c->gw, c, (uv_stream_t *)&c->tcp, c->peer, c->fixed_fn);
		c->codec = c->cs ? codecs[i] : NULL;
		if (c->cs == NULL)
			conn_close(c);
		return;
	}
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	gw_conn *c = s->data;
	fl_gw *gw = c->gw;

	if (n > 0 && !c->closing && c->codec == NULL && c->x == NULL && c->pend == NULL)
		sniff(c, buf->base, (size_t)n);
	if (c->codec && !c->closing) {
		const struct fl_codec *k = c->codec;
		if (n < 0 || k->on_read(c->cs, buf->base, (size_t)n) < 0)
			conn_close(c);
		if (k->flush)
			k->flush(gw);
	} else if (n > 0 && !c->closing) {
		size_t k;
		if (c->state == C_HEAD && (c->x == NULL || c->x->t_start == 0))
			timer_start(&c->timer, gw->opts->header_timeout_ms);
		/* Bytes held back come first. */
		k = c->pend_off < c->pend_len ? 0 : feed(c, buf->base, (size_t)n);
		if (!c->closing && k < (size_t)n)
			stash(c, buf->base + k, (size_t)n - k);
		if (!c->closing)
			drive(c);
	} else if (n < 0 && !c->closing) {
		if (c->state == C_FORWARD && c->x && !c->x->req_done) {
			/* The client went away mid-body: the instance must not wait for it. */
			conn_close(c);
		} else if (c->state == C_FORWARD || c->state == C_WAIT) {
			/* Half-close after a whole request: finish answering, then close. */
			if (c->x)
				c->x->keepalive = 0;
			c->reading = 0;
			uv_read_stop(s);
		} else {
			conn_close(c);
		}
	}
	if (buf->base == gw->rbuf)
		gw->rbuf_busy = 0;
	else
		free(buf->base);
}

static void init_settings(void)
{
	llhttp_settings_init(&req_settings);
	req_settings.on_message_begin = on_req_begin;
	req_settings.on_url = on_req_url;
	req_settings.on_header_field = on_req_field;
	req_settings.on_header_value = on_req_value;
	req_settings.on_headers_complete = on_req_headers_complete;
	req_settings.on_body = on_req_body;
	req_settings.on_message_complete = on_req_complete;
	llhttp_settings_init(&resp_settings);
	resp_settings.on_message_begin = on_resp_begin;
	resp_settings.on_status = on_resp_status;
	resp_settings.on_header_field = on_resp_field;
	resp_settings.on_header_value = on_resp_value;
	resp_settings.on_headers_complete = on_resp_headers_complete;
	resp_settings.on_body = on_resp_body;
	resp_settings.on_message_complete = on_resp_complete;
}

void fl_http1_accept(fl_gw *gw, uv_stream_t *server, const char *fixed_fn)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct sockaddr_storage ss;
	int sl = sizeof(ss);
	gw_conn *c;

	pthread_once(&once, init_settings);
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	c->drain = client_drain;
	c->gw = gw;
	c->fixed_fn = fixed_fn ? strdup(fixed_fn) : NULL;
	uv_tcp_init(&gw->loop, &c->tcp);
	c->tcp.data = c;
	c->handles = 1;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		c->closing = 1;
		uv_close((uv_handle_t *)&c->tcp, conn_closed);
		return;
	}
	uv_timer_init(&gw->loop, &c->timer);
	c->timer.data = c;
	c->handles = 2;
	fl_list_init(&c->wait.link);
	c->wait.retry = retry_waiter;
	fl_list_insert_tail(&gw->conns, &c->link);
	uv_tcp_nodelay(&c->tcp, 1);
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof(c->peer));
		else
			uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof(c->peer));
	}
	llhttp_init(&c->req, HTTP_REQUEST, &req_settings);
	c->req.data = c;
	c->state = C_HEAD;
	timer_start(&c->timer, gw->opts->idle_timeout_ms);
	if (gw->draining) {
		conn_close(c);
		return;
	}
	update_reading(c);
}

void fl_http1_close(gw_conn *c)
{
	conn_close(c);
}

void fl_http1_drain(gw_conn *c, int force)
{
	if (c->closing)
		return;
	if (c->codec) {
		if (c->codec->drain(c->cs) || force)
			conn_close(c);
		return;
	}
	if (force || (c->state == C_HEAD && (c->x == NULL || c->x->t_start == 0)))
		conn_close(c);
	/* Otherwise the exchange finishes and finish() closes (gw->draining). */
}
