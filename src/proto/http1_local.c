/* http1_local.c -- answers the HTTP/1.1 codec makes itself rather than an
 * instance: errors, health and metrics, closing after an answer, and requests
 * offloaded to other parts of flint (async calls, /requests, /system). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "gateway/gw.h"
#include "gateway/router.h"
#include "obs/metrics.h"
#include "proto/http1_int.h"

/* ---- answers from the gateway itself ---- */

const char *fl_http1__reason_phrase(int status)
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
		fl_http1__conn_close(c);
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
		fl_http1__conn_close(c);
		return;
	}
	/* Lingering close: the client may still be sending a body we refused.
	 * Closing with unread data would reset the connection and could destroy
	 * our answer in flight, so read and drop for a moment first. */
	c->reading = 1;
	uv_read_start((uv_stream_t *)&c->tcp, fl_gw__alloc, linger_read);
	fl_http1__timer_start(&c->timer, 2000);
}

/* Closes after what was written has been sent. */
void fl_http1__close_after_write(gw_conn *c)
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
		fl_http1__conn_close(c);
		return;
	}
	req->data = c;
	c->state = C_LOCAL;
	uv_timer_stop(&c->timer);
	fl_http1__timer_start(&c->timer, 10000); /* a client that never reads cannot hold us */
}

void fl_http1__account(const fl_gw *gw, exch *x, int status)
{
	fl_fnstats *st;
	fl_fnshard *sh;

	if (x->fn == NULL)
		return;
	st = x->fn->stats;
	sh = fl_fnstats_shard(st, gw->idx);
	atomic_fetch_add_explicit(&st->requests, 1, memory_order_relaxed);
	fl_fnstats_status(st, sh, status);
	fl_hist_observe_own(&sh->latency, (fl_now_ns() - x->t_start) / 1000);
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
		     status, fl_http1__reason_phrase(status), ctype, blen, x ? x->id : "-",
		     extra ? extra : "", close_conn ? "Connection: close\r\n" : "");
	if (n >= (int)sizeof(head))
		n = (int)sizeof(head) - 1;
	b[0] = uv_buf_init(head, (unsigned)n);
	b[1] = uv_buf_init((char *)body, (unsigned)blen);
	/* Counted before it is written: a client that reads it and asks /metrics at once
	 * (on another thread) must find it there. */
	if (x) {
		x->status = status;
		fl_http1__account(c->gw, x, status);
	}
	if (fl_gw__write((uv_stream_t *)&c->tcp, b, (x && x->is_head) ? 1 : 2) < 0) {
		fl_http1__conn_close(c);
		return;
	}
	if (close_conn) {
		fl_http1__close_after_write(c);
		return;
	}
	x->resp_done = 1;
	fl_http1__finish(c);
}

void fl_http1__respond_local(gw_conn *c, int status, const char *ctype, const char *body,
			     size_t blen, int close_conn)
{
	respond_local_h(c, status, ctype, body, blen, close_conn, NULL);
}

/* A JSON error: {"error": ..., "function": ..., "request_id": ...}. */
void fl_http1__respond_error(gw_conn *c, int status, int close_conn, const char *fmt, ...)
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
	fl_http1__respond_local(c, status, "application/json", body, j + (size_t)n, close_conn);
}

void fl_http1__serve_metrics(gw_conn *c)
{
	fl_buf b = FL_BUF_INIT;

	if (fl_metrics_render(&b, c->gw->cur ? c->gw->cur->snap : NULL) < 0) {
		fl_buf_free(&b);
		fl_http1__respond_error(c, 503, 1, "out of memory rendering metrics");
		return;
	}
	fl_http1__respond_local(c, 200, "text/plain; version=0.0.4", b.p, b.len, 0);
	fl_buf_free(&b);
}

/* Hands the whole request to whoever answers offloaded paths. */
void fl_http1__offload_now(gw_conn *c)
{
	exch *x = c->x;
	fl_gw *gw = c->gw;
	struct fl_offload_req r;
	char name[64], *target;
	int i;

	fl_buf_reset(&x->rin);
	for (i = 0; i < x->nh; i++) {
		const char *nm = fl_http1__xs(&x->in, x->h[i].no);
		if (fl_http1__hop_by_hop(nm, x->h[i].nl) || fl_strncaseeq(nm, x->h[i].nl, "expect"))
			continue;
		fl_buf_append(&x->rin, nm, x->h[i].nl);
		fl_buf_puts(&x->rin, ": ");
		fl_buf_append(&x->rin, fl_http1__xs(&x->in, x->h[i].vo), x->h[i].vl);
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
		target = fl_xstrndup(fl_http1__xs(&x->in, x->url_o), x->url_l);
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
	fl_http1__timer_start(&c->timer, 30000);
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
void fl_http1__start_offload(gw_conn *c)
{
	exch *x = c->x;
	fl_route_fn *fn;

	if (c->gw->opts->offload == NULL) {
		fl_http1__respond_error(c, 404, 0,
					"asynchronous calls are not enabled on this gateway");
		return;
	}
	c->off_max = 1 << 20;
	if (x->route.kind == FL_ROUTE_ASYNC) {
		fn = fl_snapshot_find(c->gw->cur->snap, x->route.name, x->route.name_len);
		if (fn == NULL) {
			fl_http1__respond_error(c, 404, 0, "no function named %.*s",
						(int)x->route.name_len, x->route.name);
			return;
		}
		c->off_max = fn->max_body;
	}
	if (c->off_max && (c->req.flags & F_CONTENT_LENGTH) && c->req.content_length > c->off_max) {
		fl_http1__respond_error(
		    c, 413, 1, "request body of %llu bytes is over the limit of %llu",
		    (unsigned long long)c->req.content_length, (unsigned long long)c->off_max);
		return;
	}
	fl_buf_reset(&x->out);
	fl_http1__set_request_id(x);
	c->state = C_BODY;
	uv_timer_stop(&c->timer);
	fl_http1__timer_start(&c->timer, c->gw->opts->header_timeout_ms * 6);
	if (x->req_done)
		fl_http1__offload_now(c);
	else if (x->expect) {
		uv_buf_t cont = uv_buf_init("HTTP/1.1 100 Continue\r\n\r\n", 25);
		fl_gw__write((uv_stream_t *)&c->tcp, &cont, 1);
	}
}
