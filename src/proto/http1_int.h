/* http1_int.h -- what the HTTP/1.1 codec's files share (http1.c,
 * http1_exchange.c, http1_local.c); not for use outside src/proto. */
#ifndef FL_HTTP1_INT_H
#define FL_HTTP1_INT_H

#include <llhttp.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "gateway/gw.h"
#include "gateway/router.h"

enum conn_state {
	C_HEAD,	   /* reading a request head, or idle between requests */
	C_WAIT,	   /* head read; held until an instance has room */
	C_FORWARD, /* at an instance */
	C_LOCAL,   /* answered by the gateway itself; the answer is being written */
	C_BODY,	   /* reading a whole body for an offloaded request */
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
	const char *bad;   /* why the request head was refused, when llhttp would not say */
	int rh_idx[8];	   /* see classify() */
	char vname[80];	   /* the function serving the chosen version, when split or pinned */
} exch;

struct gw_conn {
	void (*drain)(uv_stream_t *); /* first: fl_gw__write's drain hook */
	uv_tcp_t tcp;
	uv_timer_t timer;
	fl_gw *gw;
	fl_list link;
	gw_waiter wait;
	const struct fl_codec *codec; /* set once another protocol took the connection */
	void *cs;		      /* that codec's state */
	char *fixed_fn;		      /* the function of the dedicated port, or NULL */
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

/* A string at offset off of a buffer of an exchange (offsets survive growth). */
static inline const char *fl_http1__xs(const fl_buf *b, uint32_t off)
{
	return b->p + off;
}

/* The request fields flint itself looks at, found in one pass (by length
 * first) when the head is complete; -1 when absent. */
enum { RH_HOST, RH_EXPECT, RH_REQID, RH_XFF, RH_XFPROTO, RH_XFPREFIX, RH_VERSION, RH_N };

/* ---- http1.c: the client connection ---- */

/* The one driver of a connection: acts on a finished head and parses what was
 * held back. Safe to call from within itself (it then goes round again). */
void fl_http1__drive(gw_conn *c);
/* Closes c now, releasing its exchange, instance and snapshot. c is freed once
 * its handles are closed and no offloaded answer is outstanding. */
void fl_http1__conn_close(gw_conn *c);
/* (Re)starts one of c's timers; on expiry the connection's state decides. */
void fl_http1__timer_start(uv_timer_t *t, uint64_t ms);
/* Ends the exchange once both the request and the response are done: releases
 * what it holds, then reads the next request or closes. c->x is freed. */
void fl_http1__finish(gw_conn *c);
/* Takes the client's X-Flint-Request-Id if it is sane, else makes a new id. */
void fl_http1__set_request_id(exch *x);
/* Appends a piece of a header name (value 0) or value (1) to b, extending h. 0 or -1. */
int fl_http1__append_span(fl_buf *b, struct hdr *h, int value, const char *at, size_t len);

/* ---- http1_exchange.c: the exchange with an instance ---- */

/* Sets up the response parser's callbacks; once, before any connection. */
void fl_http1__resp_settings_init(void);
/* Whether a header name (l bytes) belongs to one hop or is set by flint. */
int fl_http1__hop_by_hop(const char *n, size_t l);
/* Builds the head sent to the instance into c->x->out. 0 or -1 (no memory). */
int fl_http1__build_req_head(gw_conn *c);
/* Finds an instance for c's request and starts the exchange, or holds the
 * request (state C_WAIT) until one has room, or answers an error. */
void fl_http1__dispatch(gw_conn *c);
/* Takes c's request off the waiters list and out of the queued count. */
void fl_http1__unhold(gw_conn *c);
/* Gives up on the instance: answers status with message what, or cuts the
 * connection if part of the response went out already. */
void fl_http1__fail_upstream(gw_conn *c, int status, const char *what);
/* gw_waiter.retry of a held request: dispatches it again. */
void fl_http1__retry_waiter(gw_waiter *w);
/* Writes n request body bytes at p to the instance (the head first, if it is
 * still queued); fails the exchange if the body is over the limit. */
void fl_http1__forward_body(gw_conn *c, const char *p, size_t n);

/* ---- http1_local.c: answers made by flint ---- */

/* The reason phrase of a status flint may send, or "Unknown". Static string. */
const char *fl_http1__reason_phrase(int status);
/* Closes after what was written has been sent (lingering if the request body
 * was not read whole). */
void fl_http1__close_after_write(gw_conn *c);
/* Counts an answered request in its function's metrics (nothing without one), in
 * gateway thread gw's shard. */
void fl_http1__account(const fl_gw *gw, exch *x, int status);
/* Sends a response made by the gateway; body is copied. close_conn: close after
 * it; else the connection continues when the request has been read whole. The
 * exchange may be over afterwards: callers do not touch c->x again. */
void fl_http1__respond_local(gw_conn *c, int status, const char *ctype, const char *body,
			     size_t blen, int close_conn);
/* A JSON error: {"error": ..., "status": ..., "request_id": ...}; see
 * fl_http1__respond_local for close_conn. */
void fl_http1__respond_error(gw_conn *c, int status, int close_conn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Answers GET /metrics. */
void fl_http1__serve_metrics(gw_conn *c);
/* /async-function/NAME, /requests and /system: reads the body whole (state
 * C_BODY), then offloads it; or answers an error. */
void fl_http1__start_offload(gw_conn *c);
/* Hands the whole request to whoever answers offloaded paths; the answer comes
 * back through fl_http1_offload_answer (state C_OFFLOAD). */
void fl_http1__offload_now(gw_conn *c);

/* Sends the instance's request head if it is still waiting to go out with body
 * bytes (none came): at the end of the driver, or after the instance connected. */
void fl_http1__flush_qhead(gw_conn *c);

#endif
