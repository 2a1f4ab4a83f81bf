/* http2.c -- the gateway's HTTP/2 codec (h2c, prior knowledge) and gRPC
 * routing: client sessions, their streams, routing and dispatch, answers made
 * by flint, and flow control. Streams go to instances over HTTP/2 upstream
 * connections (http2_up.c) or, for functions that speak HTTP/1.1, translated
 * (http2_h1.c).
 *
 * nghttp2 runs both sides. Automatic WINDOW_UPDATE is off on both: bytes
 * received on one side are acknowledged (nghttp2_session_consume) only when
 * the other side has taken them into a frame, so a slow reader holds at most
 * a window's worth of data per stream in flint, and stalls its writer. */
#include <nghttp2/nghttp2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "gateway/dispatcher.h"
#include "gateway/gw.h"
#include "gateway/router.h"
#include "proto/http2_int.h"

static nghttp2_session_callbacks *srv_cbs;
nghttp2_option *fl_h2__opts;

int fl_h2_is_preface(const char *p, size_t n)
{
	static const char pre[] = "PRI * HTTP/2.0\r\n";

	return n >= 4 && memcmp(p, pre, n < sizeof(pre) - 1 ? n : sizeof(pre) - 1) == 0;
}

/* ---- flushing ---- */

/* Marks a session as having frames to send; fl_h2_flush_all sends them once the
 * current callback chain is over (a session is never flushed from inside its
 * own callbacks). */
void fl_h2__mark_h(fl_h2 *h)
{
	if (!h->mark.on && !h->closing) {
		h->mark.on = 1;
		fl_list_insert_tail(&h->gw->h2dirty, &h->mark.link);
	}
}

void fl_h2__mark_up(h2_up *u)
{
	if (!u->mark.on && !u->closing && u->connected) {
		u->mark.on = 1;
		fl_list_insert_tail(&u->gw->h2dirty, &u->mark.link);
	}
}

void fl_h2__unmark(struct h2_mark *m)
{
	if (m->on) {
		fl_list_remove(&m->link);
		m->on = 0;
	}
}

/* Sends what the session has, while the socket takes it; 0 or -1 (close). */
static int send_session(nghttp2_session *ns, uv_stream_t *tcp)
{
	while (tcp->write_queue_size < GW_WQ_HIGH) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(ns, &data);
		uv_buf_t b;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		b = uv_buf_init((char *)data, (unsigned)n);
		if (fl_gw__write(tcp, &b, 1) < 0)
			return -1;
	}
	return 0;
}

void fl_h2_flush_all(fl_gw *gw)
{
	while (!fl_list_empty(&gw->h2dirty)) {
		struct h2_mark *m = fl_container_of(gw->h2dirty.next, struct h2_mark, link);
		fl_h2__unmark(m);
		if (m->kind == 1) {
			fl_h2 *h = fl_container_of(m, fl_h2, mark);
			if (h->closing)
				continue;
			if (send_session(h->ns, h->tcp) < 0 ||
			    (!nghttp2_session_want_read(h->ns) &&
			     !nghttp2_session_want_write(h->ns) && h->tcp->write_queue_size == 0))
				fl_http1_close(h->conn);
		} else {
			h2_up *u = fl_container_of(m, h2_up, mark);
			if (!u->closing && send_session(u->ns, (uv_stream_t *)&u->tcp) < 0)
				fl_h2__up_close(u, "write failed");
		}
	}
}

/* ---- stream helpers ---- */

int fl_h2__add_span(fl_buf *b, struct hspan *sp, int *n, const uint8_t *name, size_t nl,
		    const uint8_t *value, size_t vl)
{
	struct hspan *h;

	if (*n >= H2_MAX_HEADERS)
		return -1;
	h = &sp[(*n)++];
	h->no = (uint32_t)b->len;
	h->nl = (uint32_t)nl;
	if (fl_buf_append(b, name, nl) < 0)
		return -1;
	h->vo = (uint32_t)b->len;
	h->vl = (uint32_t)vl;
	return fl_buf_append(b, value, vl);
}

int fl_h2__conn_specific(const char *n, size_t l)
{
	return fl_strncaseeq(n, l, "connection") || fl_strncaseeq(n, l, "keep-alive") ||
	       fl_strncaseeq(n, l, "proxy-connection") ||
	       fl_strncaseeq(n, l, "transfer-encoding") || fl_strncaseeq(n, l, "upgrade") ||
	       fl_strncaseeq(n, l, "host");
}

nghttp2_nv fl_h2__mknv(const char *n, size_t nl, const char *v, size_t vl)
{
	nghttp2_nv nv;

	nv.name = (uint8_t *)n;
	nv.namelen = nl;
	nv.value = (uint8_t *)v;
	nv.valuelen = vl;
	nv.flags = NGHTTP2_NV_FLAG_NONE;
	return nv;
}

static void st_unhold(h2s *st)
{
	if (st->waiting) {
		fl_list_remove(&st->wait.link);
		st->waiting = 0;
	}
	if (st->queued) {
		atomic_fetch_sub_explicit(&st->fn->stats->queued, 1, memory_order_relaxed);
		st->queued = 0;
	}
}

static void st_account(h2s *st)
{
	fl_fnstats *s;
	fl_fnshard *sh;
	uint64_t us;
	int code = st->status;

	if (st->fn == NULL || st->started == 2)
		return;
	st->started = 2;
	s = st->fn->stats;
	sh = fl_fnstats_shard(s, st->h->gw->idx);
	us = (fl_now_ns() - st->t_start) / 1000;
	atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
	fl_fnstats_status(s, sh, code);
	if (st->grpc && st->grpc_status >= 0 && st->grpc_status <= 16) {
		fl_ctr_add_own(&sh->grpc[st->grpc_status], 1);
		if (st->i_path >= 0 && st->hd[st->i_path].vl > 1) /* "/pkg.Service/Method" */
			fl_fnstats_method(s, fl_h2__hs(&st->hb, st->hd[st->i_path].vo) + 1,
					  st->hd[st->i_path].vl - 1, st->grpc_status);
	}
	fl_hist_observe_own(&sh->latency, us);
	fl_hist_observe_own(&sh->stream, us);
}

/* Leaves the upstream stream (cancelling it if it is still open). */
static void st_detach_up(h2s *st, int cancel)
{
	h2_up *u = st->up;

	if (st->h1) {
		fl_up_release(st->h1, !cancel && st->h1_keep);
		st->h1 = NULL;
	}
	if (u == NULL) {
		if (st->inst && cancel) {
			fl_dispatch_release(st->fn, st->inst);
			st->inst = NULL;
		}
		return;
	}
	fl_list_remove(&st->up_link);
	if (st->up_id > 0) {
		nghttp2_session_set_stream_user_data(u->ns, st->up_id, NULL);
		if (cancel) {
			nghttp2_submit_rst_stream(u->ns, NGHTTP2_FLAG_NONE, st->up_id,
						  NGHTTP2_CANCEL);
			fl_h2__mark_up(u);
		}
		u->nstreams--;
	}
	st->up = NULL;
	st->up_id = 0;
	if (st->inst) {
		fl_dispatch_release(st->fn, st->inst);
		st->inst = NULL;
	}
}

static void st_timer_closed(uv_handle_t *t)
{
	h2s *st = t->data;

	fl_buf_free(&st->hb);
	fl_buf_free(&st->req);
	fl_buf_free(&st->resp);
	fl_buf_free(&st->rh);
	fl_buf_free(&st->th);
	free(st->path);
	free(st);
}

/* The client stream is over: release everything it holds. */
static void st_free(h2s *st)
{
	fl_h2 *h = st->h;

	st_account(st);
	st_unhold(st);
	st_detach_up(st, 1);
	if (st->inst) {
		fl_dispatch_release(st->fn, st->inst);
		st->inst = NULL;
	}
	if (st->sref) {
		atomic_fetch_sub(&h->gw->active, 1);
		fl_gw__snap_done(h->gw, st->sref);
		st->sref = NULL;
	}
	fl_list_remove(&st->link);
	if (h->ns)
		nghttp2_session_set_stream_user_data(h->ns, st->id, NULL);
	uv_timer_stop(&st->timer);
	uv_close((uv_handle_t *)&st->timer, st_timer_closed);
}

/* ---- answers to the client ---- */

ssize_t fl_h2__resp_read(nghttp2_session *ns, int32_t id, uint8_t *buf, size_t length,
			 uint32_t *flags, nghttp2_data_source *src, void *user)
{
	h2s *st = src->ptr;
	size_t n;

	(void)user;
	if (st == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	n = fl_h2__take(&st->resp, &st->resp_off, buf, length);
	if (n) {
		/* Taken into a frame: the instance may send that much more. */
		if (st->up && st->up_id > 0) {
			nghttp2_session_consume(st->up->ns, st->up_id, n);
			fl_h2__mark_up(st->up);
		}
		if (st->h1 && st->resp.len - st->resp_off < GW_WQ_HIGH / 2)
			fl_up_read_start(st->h1);
	}
	if (st->resp.len - st->resp_off == 0) {
		if (!st->resp_eof)
			return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (st->nth) {
			nghttp2_nv nva[H2_MAX_HEADERS];
			int i;
			for (i = 0; i < st->nth; i++)
				nva[i] =
				    fl_h2__mknv(fl_h2__hs(&st->th, st->thd[i].no), st->thd[i].nl,
						fl_h2__hs(&st->th, st->thd[i].vo), st->thd[i].vl);
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			nghttp2_submit_trailer(ns, id, nva, (size_t)st->nth);
		}
	}
	return (ssize_t)n;
}

/* Percent-encodes a grpc-message (the gRPC spec's rule: outside 0x20-0x7e and '%'). */
static void grpc_encode(const char *in, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t j = 0;

	for (; *in && j + 4 < outlen; in++) {
		unsigned char ch = (unsigned char)*in;
		if (ch < 0x20 || ch > 0x7e || ch == '%') {
			out[j++] = '%';
			out[j++] = hex[ch >> 4];
			out[j++] = hex[ch & 15];
		} else {
			out[j++] = (char)ch;
		}
	}
	out[j] = '\0';
}

/* Answers the client from flint: a trailers-only gRPC status for gRPC
 * requests, a JSON error otherwise. If the response has started, the stream
 * ends with trailers (gRPC) or is reset. */
void fl_h2__st_fail(h2s *st, int http_status, int grpc_status, const char *fmt, ...)
{
	fl_h2 *h = st->h;
	char msg[512], enc[1024], code[8], hcode[8];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	st_unhold(st);
	st_detach_up(st, 1);
	if (st->closed)
		return;
	snprintf(code, sizeof(code), "%d", grpc_status);
	if (st->grpc) {
		grpc_encode(msg, enc, sizeof(enc));
		st->grpc_status = grpc_status;
		if (st->resp_submitted) {
			/* Data went out already: end it with trailers carrying the status. */
			fl_buf_reset(&st->th);
			st->nth = 0;
			fl_h2__add_span(&st->th, st->thd, &st->nth, (const uint8_t *)"grpc-status",
					11, (const uint8_t *)code, strlen(code));
			fl_h2__add_span(&st->th, st->thd, &st->nth, (const uint8_t *)"grpc-message",
					12, (const uint8_t *)enc, strlen(enc));
			st->resp_eof = 1;
			nghttp2_session_resume_data(h->ns, st->id);
		} else {
			nghttp2_nv nva[5];
			nva[0] = fl_h2__mknv(":status", 7, "200", 3);
			nva[1] = fl_h2__mknv("content-type", 12, "application/grpc", 16);
			nva[2] = fl_h2__mknv("grpc-status", 11, code, strlen(code));
			nva[3] = fl_h2__mknv("grpc-message", 12, enc, strlen(enc));
			nva[4] =
			    fl_h2__mknv("x-flint-request-id", 18, st->id_hex, strlen(st->id_hex));
			st->status = 200;
			st->resp_submitted = 1;
			nghttp2_submit_response(h->ns, st->id, nva, 5, NULL);
		}
	} else if (st->resp_submitted) {
		nghttp2_submit_rst_stream(h->ns, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
	} else {
		nghttp2_nv nva[4];
		nghttp2_data_provider prd;
		size_t i, j;
		snprintf(hcode, sizeof(hcode), "%d", http_status);
		fl_buf_reset(&st->resp);
		fl_buf_puts(&st->resp, "{\"error\": \"");
		for (i = 0, j = strlen(msg); i < j; i++) {
			if (msg[i] == '"' || msg[i] == '\\')
				fl_buf_append(&st->resp, "\\", 1);
			if ((unsigned char)msg[i] >= 0x20)
				fl_buf_append(&st->resp, &msg[i], 1);
		}
		fl_buf_printf(&st->resp, "\", \"status\": %d, \"request_id\": \"%s\"}\n",
			      http_status, st->id_hex);
		st->resp_off = 0;
		st->resp_eof = 1;
		st->status = http_status;
		nva[0] = fl_h2__mknv(":status", 7, hcode, strlen(hcode));
		nva[1] = fl_h2__mknv("content-type", 12, "application/json", 16);
		nva[2] = fl_h2__mknv("x-flint-request-id", 18, st->id_hex, strlen(st->id_hex));
		prd.source.ptr = st;
		prd.read_callback = fl_h2__resp_read;
		st->resp_submitted = 1;
		nghttp2_submit_response(h->ns, st->id, nva, 3, &prd);
	}
	fl_h2__mark_h(h);
}

/* ---- dispatch of a client stream ---- */

static void st_timer(uv_timer_t *t)
{
	h2s *st = t->data;

	if (st->waiting)
		fl_h2__st_fail(st, 503, 14, "no instance of %s became ready within %llu ms",
			       st->fn->name,
			       (unsigned long long)(fl_now_ms() - st->t_start / 1000000));
	else
		fl_h2__st_fail(st, 504, 4, "deadline exceeded: %s did not answer within %llu ms",
			       st->fn ? st->fn->name : "the function",
			       (unsigned long long)(st->deadline_ms));
	fl_h2_flush_all(st->h->gw);
}

static void st_retry(gw_waiter *w)
{
	h2s *st = fl_container_of(w, h2s, wait);

	if (st->waiting)
		fl_h2__st_dispatch(st);
}

void fl_h2__st_dispatch(h2s *st)
{
	fl_gw *gw = st->h->gw;
	fl_route_fn *fn;
	fl_inst *inst;
	h2_up *u;

	if (st->sref != gw->cur) {
		/* The name in the error: st->fn goes with the old snapshot. */
		char name[64];
		snprintf(name, sizeof(name), "%s", st->fn->name);
		if (fl_gw__snap_move(gw, &st->sref, &st->fn, st->fn->name, strlen(st->fn->name),
				     &st->queued) < 0) {
			st_unhold(st);
			fl_h2__st_fail(st, 404, 12, "function %s was removed", name);
			return;
		}
	}
	fn = st->fn;
	if (fn->state == FL_FN_FAILING) {
		fl_h2__st_fail(st, 503, 14, "function %s is not available: %s", fn->name,
			       fn->reason ? fn->reason : "its instances fail to start");
		return;
	}
	inst = fl_dispatch_pick(fn);
	if (inst == NULL) {
		int again = st->held;
		if (!st->held) {
			if (atomic_fetch_add(&fn->stats->queued, 1) >= (long)fn->queue_max) {
				atomic_fetch_sub(&fn->stats->queued, 1);
				fl_h2__st_fail(st, 503, 8,
					       "function %s is at capacity (queue.max %u)",
					       fn->name, fn->queue_max);
				return;
			}
			atomic_fetch_add(&fn->stats->held, 1);
			st->queued = st->held = 1;
			st->cold = fn->ninst == 0;
			st->t_held = fl_now_ns();
		}
		if (!st->waiting) {
			st->waiting = 1;
			fl_list_insert_tail(&gw->waiters, &st->wait.link);
		}
		fl_gw__need(gw, fn, again);
		return;
	}
	if (st->held)
		st->cold_ns = fl_now_ns() - st->t_held;
	st_unhold(st);
	st->inst = inst;
	if (fn->proto == FL_PROTO_HTTP) {
		fl_h2__h1_start(st);
		return;
	}
	u = fl_h2__up_get(gw, inst);
	if (u == NULL) {
		fl_h2__st_fail(st, 502, 14, "cannot connect to instance i-%llu",
			       (unsigned long long)inst->id);
		return;
	}
	st->up = u;
	if (u->connected)
		fl_h2__st_submit(st, u);
	else
		fl_list_insert_tail(&u->pending, &st->up_link);
}

/* grpc-timeout: an integer of at most 8 digits and a unit H M S m u n. */
static int parse_grpc_timeout(const char *v, size_t n, uint64_t *ms)
{
	uint64_t x = 0;
	size_t i;

	if (n < 2 || n > 9)
		return -1;
	for (i = 0; i + 1 < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	switch (v[n - 1]) {
	case 'H':
		*ms = x * 3600000;
		break;
	case 'M':
		*ms = x * 60000;
		break;
	case 'S':
		*ms = x * 1000;
		break;
	case 'm':
		*ms = x;
		break;
	case 'u':
		*ms = x / 1000;
		break;
	case 'n':
		*ms = x / 1000000;
		break;
	default:
		return -1;
	}
	if (*ms == 0)
		*ms = 1;
	return 0;
}

/* The client's x-flint-request-id if it is sane, else a new one (as for HTTP/1). */
static void st_request_id(h2s *st)
{
	int i;

	for (i = 0; i < st->nh; i++)
		if (fl_strncaseeq(fl_h2__hs(&st->hb, st->hd[i].no), st->hd[i].nl,
				  "x-flint-request-id")) {
			fl_request_id(fl_h2__hs(&st->hb, st->hd[i].vo), st->hd[i].vl, st->id_hex,
				      sizeof(st->id_hex));
			return;
		}
	fl_random_hex(st->id_hex, 8);
}

/* The request head is complete: route and dispatch. */
static void st_start(h2s *st)
{
	fl_h2 *h = st->h;
	fl_gw *gw = h->gw;
	const char *path, *auth = NULL;
	size_t pl, al = 0;
	fl_route_fn *fn = NULL;
	uint64_t deadline;

	st_request_id(st);
	st->t_start = fl_now_ns();
	if (st->i_path < 0 || st->i_method < 0) {
		nghttp2_submit_rst_stream(h->ns, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_PROTOCOL_ERROR);
		fl_h2__mark_h(h);
		return;
	}
	path = fl_h2__hs(&st->hb, st->hd[st->i_path].vo);
	pl = st->hd[st->i_path].vl;
	if (st->i_auth >= 0) {
		auth = fl_h2__hs(&st->hb, st->hd[st->i_auth].vo);
		al = st->hd[st->i_auth].vl;
	}
	st->grpc = st->i_ctype >= 0 && st->hd[st->i_ctype].vl >= 16 &&
		   memcmp(fl_h2__hs(&st->hb, st->hd[st->i_ctype].vo), "application/grpc", 16) == 0;
	st->sref = fl_gw__snap_use(gw);
	atomic_fetch_add(&gw->active, 1);
	st->started = 1;
	if (st->grpc && pl > 1 && path[0] == '/') {
		const char *slash = memchr(path + 1, '/', pl - 1);
		if (slash)
			fn = fl_snapshot_find_service(st->sref->snap, path + 1,
						      (size_t)(slash - path - 1));
	}
	if (fn) {
		st->path = fl_xstrndup(path, pl);
	} else {
		fl_route_request(path, pl, auth, al, gw->opts->domain, &st->route);
		if (st->route.kind == FL_ROUTE_FUNCTION) {
			/* Router names are at most 63 characters (a DNS label). */
			char nm[64];
			memcpy(nm, st->route.name, st->route.name_len);
			fl_ascii_lower(nm, st->route.name_len);
			fn = fl_snapshot_find(st->sref->snap, nm, st->route.name_len);
			if (fn) {
				fl_buf b = FL_BUF_INIT;
				if (st->route.target_slash)
					fl_buf_puts(&b, "/");
				fl_buf_append(&b, st->route.target, st->route.target_len);
				st->path = fl_buf_steal(&b);
			}
		}
	}
	if (fn == NULL) {
		if (st->grpc) {
			const char *slash = pl > 1 ? memchr(path + 1, '/', pl - 1) : NULL;
			int sl = slash ? (int)(slash - path - 1) : (int)pl;
			fl_h2__st_fail(st, 404, 12, "unknown service %.*s: no function declares it",
				       sl, path + (pl > 0));
		} else {
			fl_h2__st_fail(st, 404, 5, "no function for %.*s", (int)pl, path);
		}
		return;
	}
	{
		/* Versions: a pinned one (x-flint-version) or the traffic split's draw. */
		const char *pin = NULL;
		size_t pinl = 0;
		int i;
		for (i = 0; i < st->nh; i++)
			if (fl_strncaseeq(fl_h2__hs(&st->hb, st->hd[i].no), st->hd[i].nl,
					  "x-flint-version")) {
				pin = fl_h2__hs(&st->hb, st->hd[i].vo);
				pinl = st->hd[i].vl;
			}
		if (pin || fn->nsplit) {
			fl_route_fn *v = fl_snapshot_pick_version(st->sref->snap, fn, pin, pinl,
								  fl_random_u64());
			if (v == NULL) {
				st->fn = fn;
				fl_h2__st_fail(st, 404, 5, "version %.*s of %s receives no traffic",
					       (int)pinl, pin, fn->name);
				return;
			}
			fn = v;
		}
	}
	st->fn = fn;
	deadline = fn->timeout_ms;
	if (st->i_timeout >= 0) {
		uint64_t g;
		if (parse_grpc_timeout(fl_h2__hs(&st->hb, st->hd[st->i_timeout].vo),
				       st->hd[st->i_timeout].vl, &g) == 0 &&
		    g < deadline)
			deadline = g;
	}
	st->deadline_ms = deadline;
	uv_timer_start(&st->timer, st_timer, deadline, 0);
	fl_h2__st_dispatch(st);
}

/* ---- client session callbacks ---- */

static h2s *st_new(fl_h2 *h, int32_t id);

static int on_begin_headers(nghttp2_session *ns, const nghttp2_frame *f, void *user)
{
	fl_h2 *h = user;
	h2s *st;

	(void)ns;
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	st = st_new(h, f->hd.stream_id);
	return st ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static h2s *st_new(fl_h2 *h, int32_t id)
{
	h2s *st = calloc(1, sizeof(*st));

	if (st == NULL)
		return NULL;
	st->h = h;
	st->id = id;
	st->i_method = st->i_path = st->i_auth = st->i_ctype = st->i_timeout = -1;
	st->grpc_status = -1;
	st->wait.retry = st_retry;
	fl_list_init(&st->wait.link);
	fl_list_init(&st->up_link);
	uv_timer_init(&h->gw->loop, &st->timer);
	st->timer.data = st;
	fl_list_insert_tail(&h->streams, &st->link);
	nghttp2_session_set_stream_user_data(h->ns, st->id, st);
	return st;
}

static int st_add_header(h2s *st, const uint8_t *name, size_t nl, const uint8_t *value, size_t vl);

static int on_header(nghttp2_session *ns, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		     const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
	h2s *st = nghttp2_session_get_stream_user_data(ns, f->hd.stream_id);
	int i;

	(void)flags;
	(void)user;
	if (st == NULL || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	(void)i;
	return st_add_header(st, name, nl, value, vl) < 0 ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE
							  : 0;
}

/* Adds a request field, remembering where the ones routing needs are. */
static int st_add_header(h2s *st, const uint8_t *name, size_t nl, const uint8_t *value, size_t vl)
{
	int i = st->nh;

	if (fl_h2__add_span(&st->hb, st->hd, &st->nh, name, nl, value, vl) < 0)
		return -1;
	if (nl == 7 && memcmp(name, ":method", 7) == 0)
		st->i_method = i;
	else if (nl == 5 && memcmp(name, ":path", 5) == 0)
		st->i_path = i;
	else if (nl == 10 && memcmp(name, ":authority", 10) == 0)
		st->i_auth = i;
	else if (nl == 12 && memcmp(name, "content-type", 12) == 0)
		st->i_ctype = i;
	else if (nl == 12 && memcmp(name, "grpc-timeout", 12) == 0)
		st->i_timeout = i;
	return 0;
}

static int on_frame_recv(nghttp2_session *ns, const nghttp2_frame *f, void *user)
{
	h2s *st;

	(void)user;
	if (f->hd.stream_id == 0)
		return 0;
	st = nghttp2_session_get_stream_user_data(ns, f->hd.stream_id);
	if (st == NULL)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST &&
	    (f->hd.flags & NGHTTP2_FLAG_END_HEADERS)) {
		if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
			st->req_eof = 1;
		st_start(st);
		return 0;
	}
	if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
		st->req_eof = 1;
		fl_h2__h1_pump(st);
		if (st->up && st->up_id > 0) {
			nghttp2_session_resume_data(st->up->ns, st->up_id);
			fl_h2__mark_up(st->up);
		}
	}
	return 0;
}

static int on_data(nghttp2_session *ns, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
		   void *user)
{
	h2s *st = nghttp2_session_get_stream_user_data(ns, id);

	(void)flags;
	(void)user;
	if (st == NULL || st->closed) {
		nghttp2_session_consume(ns, id, len);
		return 0;
	}
	if (fl_buf_append(&st->req, data, len) < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	fl_h2__h1_pump(st);
	if (st->up && st->up_id > 0) {
		nghttp2_session_resume_data(st->up->ns, st->up_id);
		fl_h2__mark_up(st->up);
	}
	return 0;
}

static int on_stream_close(nghttp2_session *ns, int32_t id, uint32_t err, void *user)
{
	h2s *st = nghttp2_session_get_stream_user_data(ns, id);

	(void)err;
	(void)user;
	if (st == NULL)
		return 0;
	st->closed = 1;
	st_free(st);
	return 0;
}

/* ---- the client session ---- */

static void init_once(void)
{
	nghttp2_session_callbacks_new(&srv_cbs);
	nghttp2_session_callbacks_set_on_begin_headers_callback(srv_cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(srv_cbs, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(srv_cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(srv_cbs, on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(srv_cbs, on_stream_close);
	fl_h2__up_init();
	fl_h2__h1_init();
	nghttp2_option_new(&fl_h2__opts);
	/* Windows open only as the other side takes the bytes (see the top). */
	nghttp2_option_set_no_auto_window_update(fl_h2__opts, 1);
}

fl_h2 *fl_h2_start(fl_gw *gw, gw_conn *c, uv_stream_t *tcp, const char *peer)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	nghttp2_settings_entry iv[3] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 256},
					{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, GW_H2_WINDOW},
					{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
	fl_h2 *h;

	pthread_once(&once, init_once);
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return NULL;
	h->gw = gw;
	h->conn = c;
	h->tcp = tcp;
	h->peer = peer;
	fl_list_init(&h->streams);
	h->mark.kind = 1;
	if (nghttp2_session_server_new2(&h->ns, srv_cbs, h, fl_h2__opts) != 0) {
		free(h);
		return NULL;
	}
	nghttp2_submit_settings(h->ns, NGHTTP2_FLAG_NONE, iv, 3);
	nghttp2_session_set_local_window_size(h->ns, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW);
	fl_h2__mark_h(h);
	return h;
}

int fl_h2_on_read(fl_h2 *h, const char *p, size_t n)
{
	ssize_t r = nghttp2_session_mem_recv(h->ns, (const uint8_t *)p, n);

	if (r < 0) {
		fl_debug("h2", "closing a client connection from %s: %s", h->peer,
			 nghttp2_strerror((int)r));
		return -1;
	}
	fl_h2__mark_h(h);
	return 0;
}

void fl_h2_on_drain(fl_h2 *h)
{
	fl_h2__mark_h(h);
}

int fl_h2_drain(fl_h2 *h)
{
	if (!h->goaway) {
		h->goaway = 1;
		nghttp2_submit_goaway(h->ns, NGHTTP2_FLAG_NONE,
				      nghttp2_session_get_last_proc_stream_id(h->ns),
				      NGHTTP2_NO_ERROR, NULL, 0);
		fl_h2__mark_h(h);
	}
	return fl_list_empty(&h->streams);
}

void fl_h2_free(fl_h2 *h)
{
	h->closing = 1;
	fl_h2__unmark(&h->mark);
	while (!fl_list_empty(&h->streams)) {
		h2s *st = fl_container_of(h->streams.next, h2s, link);
		st->closed = 1;
		st_free(st);
	}
	nghttp2_session_del(h->ns);
	h->ns = NULL;
	free(h);
}

/* base64url (RFC 4648 §5, padding optional), for HTTP2-Settings. */
static int b64url_decode(const char *in, size_t n, uint8_t *out, size_t outlen, size_t *len)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		int v;
		char ch = in[i];
		if (ch >= 'A' && ch <= 'Z')
			v = ch - 'A';
		else if (ch >= 'a' && ch <= 'z')
			v = ch - 'a' + 26;
		else if (ch >= '0' && ch <= '9')
			v = ch - '0' + 52;
		else if (ch == '-' || ch == '+')
			v = 62;
		else if (ch == '_' || ch == '/')
			v = 63;
		else if (ch == '=')
			break;
		else
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == outlen)
				return -1;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	*len = o;
	return 0;
}

fl_h2 *fl_h2_upgrade(fl_gw *gw, gw_conn *c, uv_stream_t *tcp, const char *peer,
		     const char *settings, size_t slen, const struct fl_h2_field *f, int nf)
{
	uint8_t raw[512];
	size_t rawlen;
	fl_h2 *h;
	h2s *st;
	int i, head = 0;

	if (b64url_decode(settings, slen, raw, sizeof(raw), &rawlen) < 0)
		return NULL;
	h = fl_h2_start(gw, c, tcp, peer);
	if (h == NULL)
		return NULL;
	for (i = 0; i < nf; i++)
		if (f[i].nl == 7 && memcmp(f[i].name, ":method", 7) == 0 && f[i].vl == 4 &&
		    memcmp(f[i].value, "HEAD", 4) == 0)
			head = 1;
	if (nghttp2_session_upgrade2(h->ns, raw, rawlen, head, NULL) != 0) {
		fl_h2_free(h);
		return NULL;
	}
	/* Stream 1 is the HTTP/1.1 request that asked for the upgrade. */
	st = st_new(h, 1);
	if (st == NULL) {
		fl_h2_free(h);
		return NULL;
	}
	for (i = 0; i < nf; i++)
		st_add_header(st, (const uint8_t *)f[i].name, f[i].nl, (const uint8_t *)f[i].value,
			      f[i].vl);
	st->req_eof = 1;
	st_start(st);
	fl_h2__mark_h(h);
	return h;
}

/* ---- the codec table entry ---- */

static int h2_sniff(const char *p, size_t n)
{
	return fl_h2_is_preface(p, n);
}

static void *h2_start(fl_gw *gw, gw_conn *c, uv_stream_t *tcp, const char *peer,
		      const char *fixed_fn)
{
	(void)fixed_fn;
	return fl_h2_start(gw, c, tcp, peer);
}

static int h2_on_read(void *s, const char *p, size_t n)
{
	return fl_h2_on_read(s, p, n);
}

static void h2_on_drain(void *s)
{
	fl_h2_on_drain(s);
}

static int h2_drain(void *s)
{
	return fl_h2_drain(s);
}

static void h2_free(void *s)
{
	fl_h2_free(s);
}

const struct fl_codec fl_codec_h2 = {
    .name = "h2",
    .sniff = h2_sniff,
    .start = h2_start,
    .on_read = h2_on_read,
    .on_drain = h2_on_drain,
    .drain = h2_drain,
    .free = h2_free,
    .flush = fl_h2_flush_all,
};
