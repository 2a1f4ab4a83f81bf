/* http1.c -- the gateway's HTTP/1.1 codec: client connections (accept, read,
 * parse, drive, timers, close), request heads and their routing, and the
 * takeover by another codec (sniffed on the first bytes, or `Upgrade: h2c`).
 * The exchange with an instance is in http1_exchange.c, the answers flint
 * makes itself in http1_local.c.
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
#include "gateway/gw.h"
#include "gateway/router.h"
#include "proto/http1_int.h"

static llhttp_settings_t req_settings;
static __thread fl_list *free_exch; /* per-thread free list head (lazy) */

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

void fl_http1_thread_end(void)
{
	while (free_exch && !fl_list_empty(free_exch)) {
		exch *x = fl_container_of(free_exch->next, exch, free_link);
		fl_list_remove(&x->free_link);
		fl_buf_free(&x->in);
		fl_buf_free(&x->out);
		fl_buf_free(&x->rin);
		fl_buf_free(&x->rout);
		free(x);
	}
}

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
		if (fl_strncaseeq(fl_http1__xs(&x->in, x->h[i].no), x->h[i].nl, name)) {
			*vl = x->h[i].vl;
			return fl_http1__xs(&x->in, x->h[i].vo);
		}
	return NULL;
}

/* ---- the request parser ---- */

int fl_http1__append_span(fl_buf *b, struct hdr *h, int value, const char *at, size_t len)
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
	if (fl_http1__append_span(&x->in, &x->h[x->nh - 1], 0, at, len) < 0)
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
	if (fl_http1__append_span(&x->in, &x->h[x->nh - 1], 1, at, len) < 0)
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
		fl_http1__respond_error(c, 501, 1,
					"protocol upgrades are not supported on this port");
		return n;
	}
	if (c->state == C_BODY && c->x && c->x->bad) {
		fl_http1__respond_error(c, 413, 1, "request body is over the limit of %llu bytes",
					(unsigned long long)c->off_max);
		return n;
	}
	if (c->x && (too_big(c) || c->x->nh > GW_MAX_HEADERS)) {
		fl_http1__respond_error(
		    c, 431, 1, "request head is larger than %zu bytes or has more than %d headers",
		    c->gw->opts->max_header, GW_MAX_HEADERS);
		return n;
	}
	if (c->x == NULL && (c->x = exch_get()) == NULL) {
		fl_http1__conn_close(c);
		return n;
	}
	c->x->req_done = 1;
	c->x->keepalive = 0;
	fl_http1__respond_error(c, 400, 1, "malformed HTTP request: %s",
				c->x->bad ? c->x->bad : llhttp_get_error_reason(&c->req));
	return n;
}

/* ---- routing a request head ---- */

void fl_http1__set_request_id(exch *x)
{
	size_t vl = 0;
	const char *v = rh(x, RH_REQID, &vl);

	fl_request_id(v, vl, x->id, sizeof(x->id));
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
	f[n++] =
	    (struct fl_h2_field){":method", llhttp_method_name((llhttp_method_t)c->req.method), 7,
				 strlen(llhttp_method_name((llhttp_method_t)c->req.method))};
	f[n++] = (struct fl_h2_field){":path", fl_http1__xs(&x->in, x->url_o), 5, x->url_l};
	f[n++] = (struct fl_h2_field){":scheme", "http", 7, 4};
	if (host)
		f[n++] = (struct fl_h2_field){":authority", host, 10, hl};
	for (i = 0; i < x->nh && i < GW_MAX_HEADERS; i++) {
		const char *nm = fl_http1__xs(&x->in, x->h[i].no);
		size_t nl = x->h[i].nl;
		if (nl >= sizeof(lower[0]) || fl_http1__hop_by_hop(nm, nl) ||
		    fl_strncaseeq(nm, nl, "host") || fl_strncaseeq(nm, nl, "http2-settings"))
			continue;
		memcpy(lower[i], nm, nl);
		fl_ascii_lower(lower[i], nl);
		f[n++] = (struct fl_h2_field){lower[i], fl_http1__xs(&x->in, x->h[i].vo), nl,
					      x->h[i].vl};
	}
	if (fl_gw__write((uv_stream_t *)&c->tcp, &b, 1) < 0)
		return 0;
	uv_timer_stop(&c->timer);
	c->cs = fl_h2_upgrade(c->gw, c, (uv_stream_t *)&c->tcp, c->peer, settings, sl, f, n);
	c->codec = c->cs ? &fl_codec_h2 : NULL;
	c->x = NULL;
	exch_put(x);
	if (c->cs == NULL)
		fl_http1__conn_close(c); /* after a 101 there is no going back to HTTP/1.1 */
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
	fl_http1__set_request_id(x);
	host = rh(x, RH_HOST, &hl);
	ex = rh(x, RH_EXPECT, &el);
	x->expect = ex && fl_strncaseeq(ex, el, "100-continue");
	fl_route_request(fl_http1__xs(&x->in, x->url_o), x->url_l, host, hl, c->gw->opts->domain,
			 &x->route);
	switch (x->route.kind) {
	case FL_ROUTE_METRICS:
		fl_http1__serve_metrics(c);
		return;
	case FL_ROUTE_HEALTH:
		fl_http1__respond_local(c, 200, "application/json", "{\"ok\": true}\n", 13, 0);
		return;
	case FL_ROUTE_BADNAME:
		fl_http1__respond_error(c, 404, 0,
					"function names are 1-63 characters of a-z, 0-9 and '-'");
		return;
	case FL_ROUTE_NOTFOUND:
		fl_http1__respond_error(c, 404, 0,
					"no route for this path: use /function/NAME/...");
		return;
	case FL_ROUTE_ASYNC:
	case FL_ROUTE_REQUESTS:
	case FL_ROUTE_SYSTEM:
		fl_http1__start_offload(c);
		return;
	case FL_ROUTE_FUNCTION:
		break;
	}
	{
		/* Host names are case-insensitive; the name lies in our own buffer. */
		fl_ascii_lower((char *)x->route.name, x->route.name_len);
	}
	x->sref = fl_gw__snap_use(c->gw);
	atomic_fetch_add(&c->gw->active, 1);
	x->fn = fl_snapshot_find(x->sref->snap, x->route.name, x->route.name_len);
	if (x->fn == NULL) {
		fl_http1__respond_error(c, 404, 0, "no function named %.*s", (int)x->route.name_len,
					x->route.name);
		return;
	}
	{
		/* Versions: a pinned one (X-Flint-Version) or the traffic split's draw. */
		size_t pl = 0;
		const char *pin = rh(x, RH_VERSION, &pl);
		if (pin || x->fn->nsplit) {
			fl_route_fn *v = fl_snapshot_pick_version(x->sref->snap, x->fn, pin, pl,
								  fl_random_u64());
			if (v == NULL) {
				fl_http1__respond_error(
				    c, 404, 0,
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
		fl_http1__respond_error(
		    c, 413, 1, "request body of %llu bytes is over the limit of %llu for %s",
		    (unsigned long long)c->req.content_length, (unsigned long long)x->fn->max_body,
		    x->fn->name);
		return;
	}
	if (fl_http1__build_req_head(c) < 0) {
		fl_http1__respond_error(c, 503, 1, "out of memory");
		return;
	}
	fl_http1__dispatch(c);
}

/* ---- the client connection ---- */

/* Feeds client bytes as far as the state allows; returns bytes consumed. */
static size_t feed(gw_conn *c, const char *p, size_t n)
{
	size_t off = 0;

	while (off < n && !c->closing && !c->head_ready) {
		if (c->state == C_BODY && c->x && !c->x->req_done) {
			off += parse_req(c, p + off, n - off);
			if (!c->closing && c->state == C_BODY && c->x->req_done)
				fl_http1__offload_now(c);
		} else if (c->state == C_HEAD) {
			off += parse_req(c, p + off, n - off);
		} else if (c->state == C_FORWARD && c->x && c->x->head_sent && !c->x->req_done &&
			   c->x->up && fl_up_stream(c->x->up)->write_queue_size <= GW_WQ_HIGH) {
			size_t k = parse_req(c, p + off, n - off);
			if (!c->closing && c->x)
				fl_http1__forward_body(c, p + off, k);
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
		fl_http1__conn_close(c);
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
void fl_http1__drive(gw_conn *c)
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
			    c->codec->on_read(c->cs, c->pend + c->pend_off,
					      c->pend_len - c->pend_off) < 0)
				fl_http1__conn_close(c);
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
	if (!c->closing) {
		fl_http1__flush_qhead(c);
		update_reading(c);
	}
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
void fl_http1__finish(gw_conn *c)
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
		fl_http1__account(gw, x, x->status);
		fl_dispatch_release(x->fn, x->inst);
		x->inst = NULL;
	}
	fl_http1__unhold(c);
	if (x->sref) {
		atomic_fetch_sub(&gw->active, 1);
		fl_gw__snap_done(gw, x->sref);
		x->sref = NULL;
	}
	c->x = NULL;
	exch_put(x);
	uv_timer_stop(&c->timer);
	if (!keep) {
		fl_http1__close_after_write(c);
		return;
	}
	c->state = C_HEAD;
	fl_http1__timer_start(&c->timer, gw->opts->idle_timeout_ms);
	fl_http1__drive(c);
}

static void on_timer(uv_timer_t *t)
{
	gw_conn *c = t->data;
	exch *x = c->x;

	switch (c->state) {
	case C_HEAD:
		if (x && x->t_start)
			fl_http1__respond_error(c, 408, 1,
						"the request head did not arrive within %llu ms",
						(unsigned long long)c->gw->opts->header_timeout_ms);
		else
			fl_http1__conn_close(c); /* idle keep-alive connection */
		return;
	case C_WAIT:
		fl_http1__unhold(c);
		fl_http1__respond_error(
		    c, 503, 0, "no instance of %s became ready within %llu ms", x->fn->name,
		    (unsigned long long)(x->fn->queue_timeout_ms < x->fn->timeout_ms
					     ? x->fn->queue_timeout_ms
					     : x->fn->timeout_ms));
		return;
	case C_FORWARD: {
		char msg[200];
		snprintf(msg, sizeof(msg),
			 "function %s did not answer within %llu ms (limits.timeout)", x->fn->name,
			 (unsigned long long)x->fn->timeout_ms);
		fl_http1__fail_upstream(c, 504, msg);
		return;
	}
	case C_LOCAL:
		fl_http1__conn_close(c);
		return;
	case C_BODY:
		fl_http1__respond_error(c, 408, 1, "the request body did not arrive in time");
		return;
	case C_OFFLOAD:
		fl_http1__respond_error(c, 503, 1, "the async queue did not answer within 30 s");
		return;
	}
}

void fl_http1__timer_start(uv_timer_t *t, uint64_t ms)
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

void fl_http1__conn_close(gw_conn *c)
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
		fl_http1__unhold(c);
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
			fl_http1__conn_close(c);
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
			fl_http1__conn_close(c);
		if (k->flush)
			k->flush(gw);
	} else if (n > 0 && !c->closing) {
		size_t k;
		if (c->state == C_HEAD && (c->x == NULL || c->x->t_start == 0))
			fl_http1__timer_start(&c->timer, gw->opts->header_timeout_ms);
		/* Bytes held back come first. */
		k = c->pend_off < c->pend_len ? 0 : feed(c, buf->base, (size_t)n);
		if (!c->closing && k < (size_t)n)
			stash(c, buf->base + k, (size_t)n - k);
		if (!c->closing)
			fl_http1__drive(c);
	} else if (n < 0 && !c->closing) {
		if (c->state == C_FORWARD && c->x && !c->x->req_done) {
			/* The client went away mid-body: the instance must not wait for it. */
			fl_http1__conn_close(c);
		} else if (c->state == C_FORWARD || c->state == C_WAIT) {
			/* Half-close after a whole request: finish answering, then close. */
			if (c->x)
				c->x->keepalive = 0;
			c->reading = 0;
			uv_read_stop(s);
		} else {
			fl_http1__conn_close(c);
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
	fl_http1__resp_settings_init();
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
	c->wait.retry = fl_http1__retry_waiter;
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
	fl_http1__timer_start(&c->timer, gw->opts->idle_timeout_ms);
	if (gw->draining) {
		fl_http1__conn_close(c);
		return;
	}
	update_reading(c);
}

void fl_http1_close(gw_conn *c)
{
	fl_http1__conn_close(c);
}

void fl_http1_drain(gw_conn *c, int force)
{
	if (c->closing)
		return;
	if (c->codec) {
		if (c->codec->drain(c->cs) || force)
			fl_http1__conn_close(c);
		return;
	}
	if (force || (c->state == C_HEAD && (c->x == NULL || c->x->t_start == 0)))
		fl_http1__conn_close(c);
	/* Otherwise the exchange finishes and fl_http1__finish() closes (gw->draining). */
}
