/* http2_int.h -- what the HTTP/2 codec's files share (http2.c, http2_up.c,
 * http2_h1.c); not for use outside src/proto. */
#ifndef FL_HTTP2_INT_H
#define FL_HTTP2_INT_H

#include <llhttp.h>
#include <nghttp2/nghttp2.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "gateway/gw.h"
#include "gateway/router.h"

#define H2_MAX_HEADERS 128
#define H2_CONN_WINDOW (4 * 1024 * 1024)

struct hspan {
	uint32_t no, nl, vo, vl;
};

typedef struct h2_up h2_up;

/* A session with frames to send, on the thread's list (gw->h2dirty). */
struct h2_mark {
	fl_list link;
	int kind; /* 1: client session, 2: upstream connection */
	int on;
};

/* One client stream, and its twin on an upstream connection. */
typedef struct h2s {
	gw_waiter wait;
	fl_h2 *h;
	int32_t id;
	fl_list link; /* h->streams */
	fl_buf hb;    /* request header names and values */
	struct hspan hd[H2_MAX_HEADERS];
	int nh;
	int i_method, i_path, i_auth, i_ctype, i_timeout;
	int grpc, waiting, queued, held, cold, closed, started, redispatched;
	char id_hex[72];
	gw_snapref *sref;
	fl_route_fn *fn;
	fl_inst *inst;
	struct fl_route route;
	char *path; /* the :path sent upstream */
	h2_up *up;
	int32_t up_id;
	fl_list up_link; /* up->streams or up->pending */
	fl_buf req;	 /* client -> instance bytes not yet framed */
	size_t req_off;
	int req_eof;
	fl_buf resp; /* instance -> client bytes not yet framed */
	size_t resp_off;
	int resp_eof;
	fl_buf rh; /* response header names and values */
	struct hspan rhd[H2_MAX_HEADERS];
	int nrh;
	fl_buf th; /* trailers */
	struct hspan thd[H2_MAX_HEADERS];
	int nth;
	int resp_submitted, trailers, status, grpc_status;
	uv_timer_t timer;
	uint64_t t_start, t_held, cold_ns, deadline_ms;
	/* Translation to HTTP/1.1, for functions that speak it. */
	gw_up *h1;
	llhttp_t h1p;
	int h1_chunked, h1_head_sent, h1_end_sent, h1_hval, h1_keep;
	size_t h1_unacked; /* client bytes written to the instance, not yet acknowledged */
} h2s;

struct fl_h2 {
	fl_gw *gw;
	gw_conn *conn;
	uv_stream_t *tcp;
	nghttp2_session *ns;
	fl_list streams;
	struct h2_mark mark;
	int closing, goaway;
	const char *peer;
};

struct h2_up {
	void (*drain)(uv_stream_t *); /* first: fl_gw__write's drain hook */
	uv_tcp_t tcp;
	uv_connect_t creq;
	fl_gw *gw;
	fl_inst *inst;
	nghttp2_session *ns;
	int connected, closing, greeted; /* greeted: the instance's SETTINGS arrived */
	struct h2_mark mark;
	uint32_t max_streams, nstreams;
	fl_list link;	 /* inst->h2[gw->idx] */
	fl_list all;	 /* gw->h2ups */
	fl_list streams; /* h2s.up_link: submitted */
	fl_list pending; /* h2s.up_link: waiting for the connection */
};

/* The options of every session, client and upstream (no automatic
 * WINDOW_UPDATE); set once by the codec's initialisation. */
extern nghttp2_option *fl_h2__opts;

/* A string at offset off of a stream's buffer (offsets survive growth). */
/* Moves up to length bytes of the pending data in b (from *off) into dst, for
 * a data provider; the buffer is emptied once all of it has been taken.
 * Returns the bytes moved. */
static inline size_t fl_h2__take(fl_buf *b, size_t *off, uint8_t *dst, size_t length)
{
	size_t avail = b->len - *off, n = avail < length ? avail : length;

	if (n == 0)
		return 0;
	memcpy(dst, b->p + *off, n);
	*off += n;
	if (*off == b->len) {
		fl_buf_reset(b);
		*off = 0;
	}
	return n;
}

static inline const char *fl_h2__hs(const fl_buf *b, uint32_t off)
{
	return b->p + off;
}

/* ---- http2.c: client sessions and streams ---- */

/* Marks a client session, or an upstream connection, as having frames to send;
 * fl_h2_flush_all sends them once the current callback chain is over. */
void fl_h2__mark_h(fl_h2 *h);
void fl_h2__mark_up(h2_up *u);
/* Takes a session off the list of those with frames to send. */
void fl_h2__unmark(struct h2_mark *m);
/* Appends a field (copied into b) to the n spans of sp; -1 when there are
 * H2_MAX_HEADERS already or memory runs out. */
int fl_h2__add_span(fl_buf *b, struct hspan *sp, int *n, const uint8_t *name, size_t nl,
		    const uint8_t *value, size_t vl);
/* Whether a field name (l bytes) is connection-specific (never forwarded). */
int fl_h2__conn_specific(const char *n, size_t l);
/* A header for nghttp2; the strings are not copied and must outlive the submit. */
nghttp2_nv fl_h2__mknv(const char *n, size_t nl, const char *v, size_t vl);
/* nghttp2 data source of a client stream's response body (st->resp, then
 * trailers when st->resp_eof). */
ssize_t fl_h2__resp_read(nghttp2_session *ns, int32_t id, uint8_t *buf, size_t length,
			 uint32_t *flags, nghttp2_data_source *src, void *user);
/* Answers the client from flint: a trailers-only gRPC status for gRPC
 * requests, a JSON error otherwise; releases the stream's instance. If the
 * response has started, the stream ends with trailers (gRPC) or is reset. */
void fl_h2__st_fail(h2s *st, int http_status, int grpc_status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Finds an instance for the stream and sends it there, or holds the stream
 * until one has room, or fails it. */
void fl_h2__st_dispatch(h2s *st);

/* ---- http2_up.c: HTTP/2 connections to instances ---- */

/* Sets up the upstream session callbacks; once, before fl_h2__up_get. */
void fl_h2__up_init(void);
/* An HTTP/2 connection to inst with a free stream (a new one if need be), or
 * NULL. Owned by the thread's pool; streams are submitted with fl_h2__st_submit
 * once u->connected, else queued on u->pending. */
h2_up *fl_h2__up_get(fl_gw *gw, fl_inst *inst);
/* Closes u; every stream on it fails (or, if the instance never greeted us,
 * goes to another instance). u is freed once its handle is closed. */
void fl_h2__up_close(h2_up *u, const char *why);
/* Sends the stream's request head on u (connected); fails the stream if it cannot. */
void fl_h2__st_submit(h2s *st, h2_up *u);
/* The instance said it is full (RESOURCE_EXHAUSTED, UNAVAILABLE, 429, 503):
 * steer away from it and ask for more instances. */
void fl_h2__st_overloaded(h2s *st);

/* ---- http2_h1.c: streams translated to HTTP/1.1 ---- */

/* Sets up the HTTP/1.1 response parser's callbacks; once, before fl_h2__h1_start. */
void fl_h2__h1_init(void);
/* Starts the exchange of st with its instance st->inst over HTTP/1.1. */
void fl_h2__h1_start(h2s *st);
/* Writes what the client sent so far; acknowledges it to the client only while
 * the instance keeps up. Nothing before the head went out. */
void fl_h2__h1_pump(h2s *st);

#endif
