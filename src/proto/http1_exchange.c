/* http1_exchange.c -- the HTTP/1.1 codec's exchange with an instance: the
 * request head sent to it, dispatch to an instance (or holding the request
 * until one has room), the response parsed and relayed to the client, request
 * bodies streamed to the instance, and retries when an instance is gone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "gateway/dispatcher.h"
#include "gateway/gw.h"
#include "gateway/router.h"
#include "proto/http1_int.h"

static llhttp_settings_t resp_settings;

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
	return fl_http1__append_span(&x->rin, &x->rh[x->nrh - 1], 0, at, len);
}

static int on_resp_value(llhttp_t *p, const char *at, size_t len)
{
	gw_conn *c = p->data;
	exch *x = c->x;

	x->rhval = 1;
	return fl_http1__append_span(&x->rin, &x->rh[x->nrh - 1], 1, at, len);
}

static int ieq(const char *n, const char *lit, size_t l)
{
	return strncasecmp(n, lit, l) == 0;
}

/* Fields that belong to one hop (or that flint sets itself), by length first:
 * this runs for every header of every request and response. */
int fl_http1__hop_by_hop(const char *n, size_t l)
{
	switch (l) {
	case 2:
		return ieq(n, "te", 2);
	case 7:
		return ieq(n, "upgrade", 7) || ieq(n, "trailer", 7);
	case 10:
		return ieq(n, "connection", 10) || ieq(n, "keep-alive", 10);
	case 16:
		return ieq(n, "proxy-connection", 16);
	case 18:
		return ieq(n, "x-flint-request-id", 18);
	default:
		return 0;
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
		fl_buf_append(o, fl_http1__xs(&x->rin, x->reason_o), x->reason_l);
	else
		fl_buf_puts(o, fl_http1__reason_phrase(p->status_code));
	fl_buf_puts(o, "\r\n");
	for (i = 0; i < x->nrh; i++) {
		const char *n = fl_http1__xs(&x->rin, x->rh[i].no);
		size_t nl = x->rh[i].nl;
		if (fl_http1__hop_by_hop(n, nl))
			continue;
		if (x->mode == B_PLAIN && fl_strncaseeq(n, nl, "transfer-encoding"))
			continue;
		buf_field(o, n, nl, fl_http1__xs(&x->rin, x->rh[i].vo), x->rh[i].vl);
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
		if (fl_strncaseeq(fl_http1__xs(&x->rin, x->rh[i].no), x->rh[i].nl,
				  "x-flint-overloaded"))
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
		fl_gw__need(c->gw, x->fn, 0);
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

void fl_http1__fail_upstream(gw_conn *c, int status, const char *what)
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
		fl_http1__account(c->gw, x, x->status);
		fl_http1__conn_close(c);
		return;
	}
	fl_http1__respond_error(c, status, 1, "%s", what);
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
			fl_http1__fail_upstream(c, 502, msg);
			return;
		}
		if (in_body && x->mode == B_RAW && k)
			out_push(c, start, k);
		if (x->client_gone) {
			fl_http1__conn_close(c);
			return;
		}
		if (x->rhead_sent)
			x->rbody = 1;
		off += k;
	}
	if (c->closing)
		return;
	if (x->resp_done && x->inst) {
		/* The instance is free before its answer reaches the client: a client
		 * that sends its next request at once must find the room there. */
		fl_http1__account(c->gw, x, x->status);
		fl_dispatch_release(x->fn, x->inst);
		x->inst = NULL;
	}
	out_flush(c);
	if (x->client_gone) {
		fl_http1__conn_close(c);
		return;
	}
	if (x->resp_done) {
		/* Anything after the response is a protocol error: do not reuse. */
		if (off < n)
			x->up_nokeep = 1;
		fl_http1__finish(c);
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
	/* Inside drive (a pooled connection, ready at once), the driver flushes the
	 * head when it is done: the body bytes it is about to feed go with it. */
	if (c->in_drive)
		return;
	fl_http1__drive(c);
	fl_http1__flush_qhead(c);
}

void fl_http1__flush_qhead(gw_conn *c)
{
	exch *x = c->x;
	uv_buf_t b;

	if (c->closing || x == NULL || !x->qhead_pending || x->up == NULL)
		return;
	b = uv_buf_init(x->out.p, (unsigned)x->out.len);
	x->qhead_pending = 0;
	if (fl_gw__write(fl_up_stream(x->up), &b, 1) < 0)
		fl_http1__fail_upstream(c, 502, "cannot write to the instance");
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
		fl_http1__finish(c);
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
			fl_gw__need(c->gw, x->fn, 0);
			fl_http1__dispatch(c);
			return;
		}
	}
	snprintf(msg, sizeof(msg), "instance i-%llu of %s %s before it answered (%s)",
		 (unsigned long long)x->inst->id, x->fn->name,
		 err == UV_EOF ? "closed the connection" : "failed", uv_strerror(err));
	if (!x->rhead_sent) {
		/* It cut a request it had taken: it is dying (or broken), so no new
		 * request goes to it while the control thread replaces it. */
		atomic_store(&x->inst->gone, 1);
		atomic_store(&x->inst->failed, 1);
	}
	fl_http1__fail_upstream(c, 502, msg);
}

static void up_on_drain(void *o)
{
	gw_conn *c = o;
	fl_http1__drive(c);
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
		fl_http1__fail_upstream(c, 502, "cannot connect to the instance");
}

/* Builds the head sent to the instance. */
int fl_http1__build_req_head(gw_conn *c)
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
		const char *n = fl_http1__xs(&x->in, x->h[i].no);
		size_t nl = x->h[i].nl;
		if (fl_http1__hop_by_hop(n, nl) || i == x->rh_idx[RH_EXPECT] ||
		    i == x->rh_idx[RH_XFPROTO] || i == x->rh_idx[RH_XFPREFIX])
			continue;
		if (i == x->rh_idx[RH_XFF]) {
			xff = fl_http1__xs(&x->in, x->h[i].vo);
			xffl = x->h[i].vl;
			continue;
		}
		buf_field(o, n, nl, fl_http1__xs(&x->in, x->h[i].vo), x->h[i].vl);
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
		fl_http1__timer_start(&c->timer, left);
	}
	llhttp_init(&c->resp, HTTP_RESPONSE, &resp_settings);
	c->resp.data = c;
	x->up = fl_up_get(c->gw, inst, c, &up_ops, 0);
	if (x->up == NULL)
		fl_http1__fail_upstream(c, 502, "cannot connect to the instance");
	else if (fl_up_ready(x->up))
		up_on_ready(c);
}

void fl_http1__unhold(gw_conn *c)
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
void fl_http1__dispatch(gw_conn *c)
{
	exch *x = c->x;
	fl_gw *gw = c->gw;
	fl_route_fn *fn;
	fl_inst *inst;

	/* Always route against the newest snapshot this thread has. */
	if (fl_gw__snap_move(gw, &x->sref, &x->fn, x->vname[0] ? x->vname : x->route.name,
			     x->vname[0] ? strlen(x->vname) : x->route.name_len, &x->queued) < 0) {
		fl_http1__unhold(c);
		fl_http1__respond_error(c, 404, 0, "no function named %.*s", (int)x->route.name_len,
					x->route.name);
		return;
	}
	fn = x->fn;
	if (fn->state == FL_FN_FAILING) {
		fl_http1__unhold(c);
		fl_http1__respond_error(c, 503, 0, "function %s is not available: %s", fn->name,
					fn->reason ? fn->reason : "its instances fail to start");
		return;
	}
	inst = fl_dispatch_pick(fn);
	if (inst) {
		if (x->held)
			x->cold_ns = fl_now_ns() - x->t_held;
		fl_http1__unhold(c);
		attach(c, inst);
		return;
	}
	if (x->held) {
		fl_gw__need(gw, fn, 1);
		return; /* still waiting */
	}
	if (atomic_fetch_add_explicit(&fn->stats->queued, 1, memory_order_relaxed) >=
	    (long)fn->queue_max) {
		atomic_fetch_sub_explicit(&fn->stats->queued, 1, memory_order_relaxed);
		fl_http1__respond_error(
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
		fl_http1__timer_start(&c->timer, t ? t : 1);
	}
	fl_gw__need(gw, fn, 0);
}

void fl_http1__retry_waiter(gw_waiter *w)
{
	gw_conn *c = fl_container_of(w, gw_conn, wait);

	if (c->state == C_WAIT && !c->closing)
		fl_http1__dispatch(c);
}

/* ---- request bodies ---- */

void fl_http1__forward_body(gw_conn *c, const char *p, size_t n)
{
	exch *x = c->x;
	uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);

	if (n == 0)
		return;
	if (x->fn->max_body && x->body_bytes > x->fn->max_body) {
		fl_http1__fail_upstream(c, 413, "request body is over the limit (limits.max_body)");
		return;
	}
	x->body_sent += n;
	if (x->qhead_pending) {
		uv_buf_t hb[2] = {uv_buf_init(x->out.p, (unsigned)x->out.len), b};
		x->qhead_pending = 0;
		if (fl_gw__write(fl_up_stream(x->up), hb, 2) < 0)
			fl_http1__fail_upstream(c, 502, "cannot write the request to the instance");
		return;
	}
	if (fl_gw__write(fl_up_stream(x->up), &b, 1) < 0)
		fl_http1__fail_upstream(c, 502, "cannot write the request body to the instance");
}

/* The response parser's callbacks (called once, from fl_http1_accept). */
void fl_http1__resp_settings_init(void)
{
	llhttp_settings_init(&resp_settings);
	resp_settings.on_message_begin = on_resp_begin;
	resp_settings.on_status = on_resp_status;
	resp_settings.on_header_field = on_resp_field;
	resp_settings.on_header_value = on_resp_value;
	resp_settings.on_headers_complete = on_resp_headers_complete;
	resp_settings.on_body = on_resp_body;
	resp_settings.on_message_complete = on_resp_complete;
}
