/* http2_up.c -- HTTP/2 connections from the gateway to instances (gRPC and
 * HTTP/2 functions): a pool per instance and gateway thread, streams submitted
 * on them, and the responses relayed to the client streams. */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "gateway/dispatcher.h"
#include "gateway/gw.h"
#include "proto/http2_int.h"
#include "runtime/netns.h"

static nghttp2_session_callbacks *cli_cbs;

/* ---- upstream connections ---- */

static void up_handle_closed(uv_handle_t *hd)
{
	h2_up *u = hd->data;

	fl_inst_unref(u->inst);
	free(u);
}

void fl_h2__up_close(h2_up *u, const char *why)
{
	fl_list *l, *next;

	if (u->closing)
		return;
	if (!u->greeted && !fl_list_empty(&u->streams)) {
		/* The connection ended before the instance's SETTINGS: nothing reached
		 * the server, so its calls can go to another instance. The instance is
		 * dying (it accepted, then closed): no new calls go to it. */
		atomic_store(&u->inst->gone, 1);
		atomic_store(&u->inst->failed, 1);
		u->closing = 1;
		fl_h2__unmark(&u->mark);
		fl_list_remove(&u->link);
		fl_list_remove(&u->all);
		for (l = u->streams.next; l != &u->streams; l = next) {
			h2s *st = fl_container_of(l, h2s, up_link);
			next = l->next;
			fl_list_remove(&st->up_link);
			nghttp2_session_set_stream_user_data(u->ns, st->up_id, NULL);
			st->up = NULL;
			st->up_id = 0;
			if (st->inst) {
				fl_dispatch_release(st->fn, st->inst);
				st->inst = NULL;
			}
			if (st->redispatched++ < 3)
				fl_h2__st_dispatch(st);
			else
				fl_h2__st_fail(st, 502, 14,
					       "instances of %s keep closing connections",
					       st->fn->name);
		}
		nghttp2_session_del(u->ns);
		u->ns = NULL;
		uv_close((uv_handle_t *)&u->tcp, up_handle_closed);
		return;
	}
	if (!fl_list_empty(&u->streams)) {
		/* Calls were under way: an instance resetting them is going away. */
		atomic_store(&u->inst->gone, 1);
		atomic_store(&u->inst->failed, 1);
	}
	u->closing = 1;
	fl_h2__unmark(&u->mark);
	fl_list_remove(&u->link);
	fl_list_remove(&u->all);
	/* Every stream on it fails now, not at its deadline. */
	for (l = u->pending.next; l != &u->pending; l = next) {
		h2s *st = fl_container_of(l, h2s, up_link);
		next = l->next;
		fl_h2__st_fail(st, 502, 14, "instance i-%llu of %s: %s",
			       (unsigned long long)u->inst->id, st->fn->name, why);
	}
	for (l = u->streams.next; l != &u->streams; l = next) {
		h2s *st = fl_container_of(l, h2s, up_link);
		next = l->next;
		fl_h2__st_fail(st, 502, 14, "instance i-%llu of %s: %s",
			       (unsigned long long)u->inst->id, st->fn->name, why);
	}
	nghttp2_session_del(u->ns);
	u->ns = NULL;
	uv_close((uv_handle_t *)&u->tcp, up_handle_closed);
}

static void up_drain(uv_stream_t *s)
{
	h2_up *u = s->data;

	fl_h2__mark_up(u);
	fl_h2_flush_all(u->gw);
}

static void up_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	h2_up *u = s->data;
	fl_gw *gw = u->gw;

	if (n > 0 && !u->closing) {
		ssize_t r = nghttp2_session_mem_recv(u->ns, (const uint8_t *)buf->base, (size_t)n);
		if (r < 0)
			fl_h2__up_close(u, nghttp2_strerror((int)r));
		else
			fl_h2__mark_up(u);
	} else if (n < 0 && !u->closing) {
		fl_h2__up_close(u, n == UV_EOF ? "the instance closed the connection"
					       : uv_strerror((int)n));
	}
	if (buf->base == gw->rbuf)
		gw->rbuf_busy = 0;
	else
		free(buf->base);
	fl_h2_flush_all(gw);
}

static ssize_t req_read(nghttp2_session *ns, int32_t id, uint8_t *buf, size_t length,
			uint32_t *flags, nghttp2_data_source *src, void *user)
{
	h2s *st = src->ptr;
	size_t n;

	(void)ns;
	(void)id;
	(void)user;
	if (st == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	n = fl_h2__take(&st->req, &st->req_off, buf, length);
	if (n) {
		nghttp2_session_consume(st->h->ns, st->id, n);
		fl_h2__mark_h(st->h);
	}
	if (st->req.len - st->req_off == 0) {
		if (!st->req_eof)
			return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	}
	return (ssize_t)n;
}

/* Sends the stream's request head on u. */
void fl_h2__st_submit(h2s *st, h2_up *u)
{
	nghttp2_nv nva[H2_MAX_HEADERS + 4];
	nghttp2_data_provider prd;
	size_t n = 0;
	int i;
	char xff[96];

	for (i = 0; i < st->nh && n < H2_MAX_HEADERS; i++) {
		const char *nm = fl_h2__hs(&st->hb, st->hd[i].no);
		size_t nl = st->hd[i].nl;
		if (fl_h2__conn_specific(nm, nl) || fl_strncaseeq(nm, nl, "x-flint-request-id") ||
		    fl_strncaseeq(nm, nl, "x-forwarded-for"))
			continue;
		if (i == st->i_path) {
			nva[n++] = fl_h2__mknv(":path", 5, st->path, strlen(st->path));
			continue;
		}
		if (fl_strncaseeq(nm, nl, "te") &&
		    !fl_strncaseeq(fl_h2__hs(&st->hb, st->hd[i].vo), st->hd[i].vl, "trailers"))
			continue;
		nva[n++] = fl_h2__mknv(nm, nl, fl_h2__hs(&st->hb, st->hd[i].vo), st->hd[i].vl);
	}
	snprintf(xff, sizeof(xff), "%s", st->h->peer);
	nva[n++] = fl_h2__mknv("x-forwarded-for", 15, xff, strlen(xff));
	nva[n++] = fl_h2__mknv("x-forwarded-proto", 17, "http", 4);
	nva[n++] = fl_h2__mknv("x-flint-request-id", 18, st->id_hex, strlen(st->id_hex));
	prd.source.ptr = st;
	prd.read_callback = req_read;
	st->up_id = nghttp2_submit_request(
	    u->ns, NULL, nva, n, (st->req_eof && st->req.len == st->req_off) ? NULL : &prd, st);
	if (st->up_id < 0) {
		int err = st->up_id;
		st->up_id = 0;
		fl_h2__st_fail(st, 502, 14, "cannot open a stream to the instance: %s",
			       nghttp2_strerror(err));
		return;
	}
	u->nstreams++;
	fl_list_insert_tail(&u->streams, &st->up_link);
	fl_h2__mark_up(u);
}

static void up_connected(uv_connect_t *req, int status)
{
	h2_up *u = req->data;
	nghttp2_settings_entry iv[2] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, GW_H2_WINDOW},
					{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
	fl_list *l, *next;

	if (u->closing)
		return;
	if (status < 0) {
		/* Connection refused: the instance is gone. Its streams try again. */
		atomic_store(&u->inst->failed, 1);
		atomic_store(&u->inst->gone, 1);
		for (l = u->pending.next; l != &u->pending; l = next) {
			h2s *st = fl_container_of(l, h2s, up_link);
			next = l->next;
			fl_list_remove(&st->up_link);
			st->up = NULL;
			if (st->inst) {
				fl_dispatch_release(st->fn, st->inst);
				st->inst = NULL;
			}
			fl_h2__st_dispatch(st);
		}
		fl_h2__up_close(u, uv_strerror(status));
		fl_h2_flush_all(u->gw);
		return;
	}
	u->connected = 1;
	uv_tcp_nodelay(&u->tcp, 1);
	nghttp2_submit_settings(u->ns, NGHTTP2_FLAG_NONE, iv, 2);
	nghttp2_session_set_local_window_size(u->ns, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW);
	uv_read_start((uv_stream_t *)&u->tcp, fl_gw__alloc, up_read);
	for (l = u->pending.next; l != &u->pending; l = next) {
		h2s *st = fl_container_of(l, h2s, up_link);
		next = l->next;
		fl_list_remove(&st->up_link);
		fl_h2__st_submit(st, u);
	}
	fl_h2__mark_up(u);
	fl_h2_flush_all(u->gw);
}

/* An HTTP/2 connection to inst with a free stream, or a new one. */
h2_up *fl_h2__up_get(fl_gw *gw, fl_inst *inst)
{
	fl_list *head = &inst->h2[gw->idx], *l;
	h2_up *u;

	for (l = head->next; l != head; l = l->next) {
		u = fl_container_of(l, h2_up, link);
		if (!u->closing && u->nstreams + 0u < u->max_streams)
			return u;
	}
	u = calloc(1, sizeof(*u));
	if (u == NULL)
		return NULL;
	u->drain = up_drain;
	u->gw = gw;
	u->inst = inst;
	fl_inst_ref(inst);
	u->max_streams = 100;
	fl_list_init(&u->streams);
	fl_list_init(&u->pending);
	u->mark.kind = 2;
	if (nghttp2_session_client_new2(&u->ns, cli_cbs, u, fl_h2__opts) != 0) {
		fl_inst_unref(inst);
		free(u);
		return NULL;
	}
	fl_list_insert_tail(head, &u->link);
	fl_list_insert_tail(&gw->h2ups, &u->all);
	u->tcp.data = u;
	u->creq.data = u;
	if (fl_netns_tcp_init(&gw->loop, &u->tcp, inst->netns) < 0 ||
	    uv_tcp_connect(&u->creq, &u->tcp, (const struct sockaddr *)&inst->addr, up_connected) <
		0) {
		fl_h2__up_close(u, "cannot connect");
		return NULL;
	}
	return u;
}

void fl_h2up_sweep(fl_gw *gw, int all)
{
	fl_list *l, *next;

	for (l = gw->h2ups.next; l != &gw->h2ups; l = next) {
		h2_up *u = fl_container_of(l, h2_up, all);
		next = l->next;
		if (all ||
		    (atomic_load(&u->inst->gone) && u->nstreams == 0 && fl_list_empty(&u->pending)))
			fl_h2__up_close(u, "flint is closing the connection");
	}
}

/* Upstream callbacks. */

static int up_on_header(nghttp2_session *ns, const nghttp2_frame *f, const uint8_t *name, size_t nl,
			const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
	h2s *st = nghttp2_session_get_stream_user_data(ns, f->hd.stream_id);

	(void)flags;
	(void)user;
	if (st == NULL || f->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
		if (nl == 7 && memcmp(name, ":status", 7) == 0)
			st->status = atoi((const char *)value);
		if (nl == 11 && memcmp(name, "grpc-status", 11) == 0)
			st->grpc_status = atoi((const char *)value);
		if (fl_h2__add_span(&st->rh, st->rhd, &st->nrh, name, nl, value, vl) < 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	} else {
		if (nl == 11 && memcmp(name, "grpc-status", 11) == 0)
			st->grpc_status = atoi((const char *)value);
		if (fl_h2__add_span(&st->th, st->thd, &st->nth, name, nl, value, vl) < 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	return 0;
}

/* RESOURCE_EXHAUSTED, UNAVAILABLE, 429, 503: the instance is full. */
void fl_h2__st_overloaded(h2s *st)
{
	fl_gw *gw = st->h->gw;

	if (st->inst == NULL || st->fn == NULL)
		return;
	fl_dispatch_overloaded(st->fn, st->inst);
	fl_gw__need(gw, st->fn, 0);
}

static void submit_client_response(h2s *st, int end)
{
	fl_h2 *h = st->h;
	nghttp2_nv nva[H2_MAX_HEADERS + 3];
	nghttp2_data_provider prd;
	char timing[64];
	size_t n = 0;
	int i;

	for (i = 0; i < st->nrh && n < H2_MAX_HEADERS; i++) {
		const char *nm = fl_h2__hs(&st->rh, st->rhd[i].no);
		if (fl_h2__conn_specific(nm, st->rhd[i].nl) ||
		    fl_strncaseeq(nm, st->rhd[i].nl, "x-flint-request-id"))
			continue;
		nva[n++] = fl_h2__mknv(nm, st->rhd[i].nl, fl_h2__hs(&st->rh, st->rhd[i].vo),
				       st->rhd[i].vl);
	}
	nva[n++] = fl_h2__mknv("x-flint-request-id", 18, st->id_hex, strlen(st->id_hex));
	if (st->held) {
		snprintf(timing, sizeof(timing), "%s;dur=%.3f", st->cold ? "cold" : "queue",
			 (double)st->cold_ns / 1e6);
		nva[n++] = fl_h2__mknv("server-timing", 13, timing, strlen(timing));
	}
	prd.source.ptr = st;
	prd.read_callback = fl_h2__resp_read;
	st->resp_submitted = 1;
	nghttp2_submit_response(h->ns, st->id, nva, n, end ? NULL : &prd);
	fl_h2__mark_h(h);
}

static int up_on_frame_recv(nghttp2_session *ns, const nghttp2_frame *f, void *user)
{
	h2_up *u = user;
	h2s *st;

	if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
		uint32_t m = nghttp2_session_get_remote_settings(
		    ns, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
		u->max_streams = m ? m : 1;
		u->greeted = 1;
		return 0;
	}
	st = f->hd.stream_id ? nghttp2_session_get_stream_user_data(ns, f->hd.stream_id) : NULL;
	if (st == NULL || st->closed)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS) {
		int end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
		if (f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
			if (st->status >= 100 && st->status < 200) {
				fl_buf_reset(&st->rh); /* interim: the final answer follows */
				st->nrh = 0;
				return 0;
			}
			if (end)
				st->resp_eof = 1;
			if (st->status == 429 || st->status == 503 || st->grpc_status == 8 ||
			    st->grpc_status == 14)
				fl_h2__st_overloaded(st);
			submit_client_response(st, end);
		} else if (end) {
			st->resp_eof = 1; /* trailers */
			if (st->grpc_status == 8 || st->grpc_status == 14)
				fl_h2__st_overloaded(st);
			nghttp2_session_resume_data(st->h->ns, st->id);
			fl_h2__mark_h(st->h);
		}
	} else if (f->hd.type == NGHTTP2_DATA && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
		st->resp_eof = 1;
		nghttp2_session_resume_data(st->h->ns, st->id);
		fl_h2__mark_h(st->h);
	}
	return 0;
}

static int up_on_data(nghttp2_session *ns, uint8_t flags, int32_t id, const uint8_t *data,
		      size_t len, void *user)
{
	h2s *st = nghttp2_session_get_stream_user_data(ns, id);

	(void)flags;
	(void)user;
	if (st == NULL || st->closed) {
		nghttp2_session_consume(ns, id, len);
		return 0;
	}
	if (fl_buf_append(&st->resp, data, len) < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	nghttp2_session_resume_data(st->h->ns, st->id);
	fl_h2__mark_h(st->h);
	return 0;
}

static int up_on_close(nghttp2_session *ns, int32_t id, uint32_t err, void *user)
{
	h2s *st = nghttp2_session_get_stream_user_data(ns, id);
	h2_up *u = user;

	if (st == NULL)
		return 0;
	if (err != NGHTTP2_NO_ERROR || !st->resp_submitted) {
		fl_h2__st_fail(st, 502, 14, "instance i-%llu reset the stream (%s)",
			       (unsigned long long)u->inst->id, nghttp2_http2_strerror(err));
		return 0;
	}
	/* Done upstream; what is buffered still goes to the client. */
	st->resp_eof = 1;
	nghttp2_session_resume_data(st->h->ns, st->id);
	fl_h2__mark_h(st->h);
	fl_list_remove(&st->up_link);
	nghttp2_session_set_stream_user_data(ns, id, NULL);
	u->nstreams--;
	st->up = NULL;
	st->up_id = 0;
	if (st->inst) {
		fl_dispatch_release(st->fn, st->inst);
		st->inst = NULL;
	}
	return 0;
}

/* The upstream session callbacks (called once, from the codec's initialisation). */
void fl_h2__up_init(void)
{
	nghttp2_session_callbacks_new(&cli_cbs);
	nghttp2_session_callbacks_set_on_header_callback(cli_cbs, up_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cli_cbs, up_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cli_cbs, up_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cli_cbs, up_on_close);
}
