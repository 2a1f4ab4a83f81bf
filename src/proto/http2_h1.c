/* http2_h1.c -- HTTP/2 client streams translated to HTTP/1.1 for functions
 * that speak it: the request head and body written to the instance, its
 * response parsed by llhttp and framed back to the client. */
#include <llhttp.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "gateway/dispatcher.h"
#include "gateway/gw.h"
#include "proto/http2_int.h"

/* ---- translation to HTTP/1.1 ---- */

static llhttp_settings_t h1_settings;

static int h1_on_field(llhttp_t *p, const char *at, size_t len)
{
	h2s *st = p->data;
	struct hspan *h;
	size_t i;

	if (st->h1_hval || st->nrh == 0) {
		if (st->nrh >= H2_MAX_HEADERS)
			return -1;
		h = &st->rhd[st->nrh++];
		memset(h, 0, sizeof(*h));
		h->no = (uint32_t)st->rh.len;
		st->h1_hval = 0;
	}
	h = &st->rhd[st->nrh - 1];
	/* HTTP/2 field names are lower case. */
	for (i = 0; i < len; i++) {
		char ch = at[i] >= 'A' && at[i] <= 'Z' ? (char)(at[i] - 'A' + 'a') : at[i];
		if (fl_buf_append(&st->rh, &ch, 1) < 0)
			return -1;
	}
	h->nl += (uint32_t)len;
	return 0;
}

static int h1_on_value(llhttp_t *p, const char *at, size_t len)
{
	h2s *st = p->data;
	struct hspan *h = &st->rhd[st->nrh - 1];

	if (!st->h1_hval) {
		st->h1_hval = 1;
		h->vo = (uint32_t)st->rh.len;
	}
	h->vl += (uint32_t)len;
	return fl_buf_append(&st->rh, at, len);
}

static int h1_on_headers_complete(llhttp_t *p)
{
	h2s *st = p->data;
	fl_h2 *h = st->h;
	nghttp2_nv nva[H2_MAX_HEADERS + 3];
	nghttp2_data_provider prd;
	char code[8], timing[64];
	size_t n = 0;
	int i, head = 0;

	if (p->status_code < 200)
		return 0; /* interim */
	st->status = p->status_code;
	if (st->status == 429 || st->status == 503)
		fl_h2__st_overloaded(st);
	snprintf(code, sizeof(code), "%d", p->status_code);
	nva[n++] = fl_h2__mknv(":status", 7, code, strlen(code));
	for (i = 0; i < st->nrh && n < H2_MAX_HEADERS; i++) {
		const char *nm = fl_h2__hs(&st->rh, st->rhd[i].no);
		size_t nl = st->rhd[i].nl;
		if (fl_h2__conn_specific(nm, nl) || fl_strncaseeq(nm, nl, "te") ||
		    fl_strncaseeq(nm, nl, "trailer") || fl_strncaseeq(nm, nl, "x-flint-request-id"))
			continue;
		nva[n++] = fl_h2__mknv(nm, nl, fl_h2__hs(&st->rh, st->rhd[i].vo), st->rhd[i].vl);
	}
	nva[n++] = fl_h2__mknv("x-flint-request-id", 18, st->id_hex, strlen(st->id_hex));
	if (st->held) {
		snprintf(timing, sizeof(timing), "%s;dur=%.3f", st->cold ? "cold" : "queue",
			 (double)st->cold_ns / 1e6);
		nva[n++] = fl_h2__mknv("server-timing", 13, timing, strlen(timing));
	}
	head = st->i_method >= 0 && fl_strncaseeq(fl_h2__hs(&st->hb, st->hd[st->i_method].vo),
						  st->hd[st->i_method].vl, "HEAD");
	prd.source.ptr = st;
	prd.read_callback = fl_h2__resp_read;
	st->resp_submitted = 1;
	nghttp2_submit_response(h->ns, st->id, nva, n, &prd);
	fl_h2__mark_h(h);
	return head ? 1 : 0;
}

static int h1_on_body(llhttp_t *p, const char *at, size_t len)
{
	h2s *st = p->data;

	if (fl_buf_append(&st->resp, at, len) < 0)
		return -1;
	nghttp2_session_resume_data(st->h->ns, st->id);
	fl_h2__mark_h(st->h);
	return 0;
}

static int h1_on_complete(llhttp_t *p)
{
	h2s *st = p->data;

	if (p->status_code < 200) {
		fl_buf_reset(&st->rh);
		st->nrh = 0;
		st->h1_hval = 0;
		return 0;
	}
	st->resp_eof = 1;
	st->h1_keep = llhttp_should_keep_alive(p) && st->req_eof && st->h1_end_sent;
	nghttp2_session_resume_data(st->h->ns, st->id);
	fl_h2__mark_h(st->h);
	return HPE_PAUSED;
}

static void h1_done(h2s *st)
{
	fl_up_release(st->h1, st->h1_keep);
	st->h1 = NULL;
	if (st->inst) {
		fl_dispatch_release(st->fn, st->inst);
		st->inst = NULL;
	}
}

static void h1_data(void *o, const char *p, size_t n)
{
	h2s *st = o;
	llhttp_errno_t err = llhttp_execute(&st->h1p, p, n);

	if (err == HPE_PAUSED) {
		h1_done(st);
	} else if (err != HPE_OK) {
		fl_h2__st_fail(st, 502, 14, "instance i-%llu sent a malformed response: %s",
			       (unsigned long long)st->inst->id, llhttp_get_error_reason(&st->h1p));
	} else if (st->resp.len - st->resp_off > GW_WQ_HIGH) {
		fl_up_read_stop(st->h1); /* the client reads slowly: hold the instance */
	}
	fl_h2_flush_all(st->h->gw);
}

static void h1_eof(void *o, int err)
{
	h2s *st = o;

	if (st->resp_submitted && err == UV_EOF && llhttp_message_needs_eof(&st->h1p)) {
		st->resp_eof = 1;
		st->h1_keep = 0;
		nghttp2_session_resume_data(st->h->ns, st->id);
		fl_h2__mark_h(st->h);
		h1_done(st);
	} else {
		fl_h2__st_fail(st, 502, 14, "instance i-%llu of %s %s before it answered (%s)",
			       (unsigned long long)st->inst->id, st->fn->name,
			       err == UV_EOF ? "closed the connection" : "failed",
			       uv_strerror(err));
	}
	fl_h2_flush_all(st->h->gw);
}

/* Writes what the client sent so far; acknowledges it to the client only while
 * the instance keeps up. */
void fl_h2__h1_pump(h2s *st)
{
	uv_stream_t *s;
	size_t n;

	if (st->h1 == NULL || !st->h1_head_sent)
		return;
	s = fl_up_stream(st->h1);
	n = st->req.len - st->req_off;
	if (n) {
		char sz[24];
		uv_buf_t b[3];
		int k = 0;
		if (st->h1_chunked) {
			int l = snprintf(sz, sizeof(sz), "%zx\r\n", n);
			b[k++] = uv_buf_init(sz, (unsigned)l);
		}
		b[k++] = uv_buf_init(st->req.p + st->req_off, (unsigned)n);
		if (st->h1_chunked)
			b[k++] = uv_buf_init("\r\n", 2);
		if (fl_gw__write(s, b, (unsigned)k) < 0) {
			fl_h2__st_fail(st, 502, 14,
				       "cannot write the request body to the instance");
			return;
		}
		fl_buf_reset(&st->req);
		st->req_off = 0;
		st->h1_unacked += n;
	}
	if (st->h1_unacked && s->write_queue_size <= GW_WQ_HIGH) {
		nghttp2_session_consume(st->h->ns, st->id, st->h1_unacked);
		st->h1_unacked = 0;
		fl_h2__mark_h(st->h);
	}
	if (st->req_eof && !st->h1_end_sent) {
		st->h1_end_sent = 1;
		if (st->h1_chunked) {
			uv_buf_t b = uv_buf_init("0\r\n\r\n", 5);
			fl_gw__write(s, &b, 1);
		}
	}
}

static void h1_ready(void *o)
{
	h2s *st = o;
	fl_buf b = FL_BUF_INIT;
	uv_buf_t ub;
	int i, has_len = 0;

	fl_buf_printf(&b, "%.*s %s HTTP/1.1\r\n", (int)st->hd[st->i_method].vl,
		      fl_h2__hs(&st->hb, st->hd[st->i_method].vo), st->path);
	if (st->i_auth >= 0)
		fl_buf_printf(&b, "Host: %.*s\r\n", (int)st->hd[st->i_auth].vl,
			      fl_h2__hs(&st->hb, st->hd[st->i_auth].vo));
	for (i = 0; i < st->nh; i++) {
		const char *nm = fl_h2__hs(&st->hb, st->hd[i].no);
		size_t nl = st->hd[i].nl;
		if (nl == 0 || nm[0] == ':' || fl_h2__conn_specific(nm, nl) ||
		    fl_strncaseeq(nm, nl, "te") || fl_strncaseeq(nm, nl, "x-flint-request-id") ||
		    fl_strncaseeq(nm, nl, "x-forwarded-for"))
			continue;
		if (fl_strncaseeq(nm, nl, "content-length"))
			has_len = 1;
		fl_buf_printf(&b, "%.*s: %.*s\r\n", (int)nl, nm, (int)st->hd[i].vl,
			      fl_h2__hs(&st->hb, st->hd[i].vo));
	}
	if (!has_len) {
		if (st->req_eof)
			fl_buf_printf(&b, "Content-Length: %zu\r\n", st->req.len - st->req_off);
		else
			st->h1_chunked = 1;
	}
	if (st->h1_chunked)
		fl_buf_puts(&b, "Transfer-Encoding: chunked\r\n");
	fl_buf_printf(
	    &b, "X-Forwarded-For: %s\r\nX-Forwarded-Proto: http\r\nX-Flint-Request-Id: %s\r\n",
	    st->h->peer, st->id_hex);
	if (st->route.prefix_len)
		fl_buf_printf(&b, "X-Forwarded-Prefix: %.*s\r\n", (int)st->route.prefix_len,
			      st->route.prefix);
	fl_buf_puts(&b, "\r\n");
	ub = uv_buf_init(b.p, (unsigned)b.len);
	if (fl_gw__write(fl_up_stream(st->h1), &ub, 1) < 0) {
		fl_buf_free(&b);
		fl_h2__st_fail(st, 502, 14, "cannot write to the instance");
		return;
	}
	fl_buf_free(&b);
	st->h1_head_sent = 1;
	fl_h2__h1_pump(st);
	fl_h2_flush_all(st->h->gw);
}

static void h1_drain(void *o)
{
	fl_h2__h1_pump(o);
	fl_h2_flush_all(((h2s *)o)->h->gw);
}

static const struct gw_up_ops h1_ops = {h1_ready, h1_data, h1_eof, h1_drain};

void fl_h2__h1_start(h2s *st)
{
	fl_buf_reset(&st->rh);
	st->nrh = 0;
	llhttp_init(&st->h1p, HTTP_RESPONSE, &h1_settings);
	st->h1p.data = st;
	st->h1 = fl_up_get(st->h->gw, st->inst, st, &h1_ops, 0);
	if (st->h1 == NULL)
		fl_h2__st_fail(st, 502, 14, "cannot connect to instance i-%llu",
			       (unsigned long long)st->inst->id);
	else if (fl_up_ready(st->h1))
		h1_ready(st);
}

/* The HTTP/1.1 response parser's callbacks (called once, from the codec's
 * initialisation). */
void fl_h2__h1_init(void)
{
	llhttp_settings_init(&h1_settings);
	h1_settings.on_header_field = h1_on_field;
	h1_settings.on_header_value = h1_on_value;
	h1_settings.on_headers_complete = h1_on_headers_complete;
	h1_settings.on_body = h1_on_body;
	h1_settings.on_message_complete = h1_on_complete;
}
