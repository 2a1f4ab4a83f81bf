/* gw.h -- types shared by the gateway's files (gateway.c, dispatcher.c,
 * upstream.c, proto/http1.c); not for use outside the gateway. */
#ifndef FL_GW_H
#define FL_GW_H

#include <llhttp.h>
#include <stdatomic.h>
#include <uv.h>

#include "core/buf.h"
#include "gateway/gateway.h"
#include "gateway/snapshot.h"

#define GW_READ_BUF    (64 * 1024)
#define GW_WQ_HIGH     (256 * 1024) /* stop reading the other side above this */
#define GW_MAX_HEADERS 100
#define GW_H2_WINDOW   (256 * 1024) /* per-stream receive window */

enum {
	GW_WAKE_SNAP = 1,
	GW_WAKE_KICK = 2,
	GW_WAKE_DRAIN = 4,
	GW_WAKE_STOP = 8,
	GW_WAKE_OFFLOAD = 16
};

/* An answer to an offloaded request, on its way to the gateway thread. */
struct gw_offload_done {
	struct gw_offload_done *next;
	void *cookie;
	int status;
	char *ctype, *headers;
	size_t len;
	char body[];
};

/* A snapshot held by one thread, with the number of requests using it. */
typedef struct gw_snapref {
	fl_snapshot *snap;
	int users;
	fl_list link;
} gw_snapref;

typedef struct fl_gw {
	int idx;
	uv_loop_t loop;
	uv_thread_t thread;
	int listen_fd;
	uv_tcp_t listener;
	int listening;
	uv_async_t wake;
	atomic_int pending;
	gw_snapref *cur;
	fl_list old_snaps;
	fl_list waiters; /* gw_conn.wait_link, in arrival order */
	fl_list conns;	 /* every client connection */
	fl_list ups;	 /* every upstream connection */
	fl_list h2ups;	 /* every HTTP/2 upstream connection */
	fl_list h2dirty; /* HTTP/2 sessions with frames to send (see fl_h2_flush_all) */
	struct gw_dedicated *dedicated; /* listeners of functions' dedicated ports */
	int draining;
	pthread_mutex_t off_mu; /* guards off_head/off_tail: answers from other threads */
	struct gw_offload_done *off_head, *off_tail;
	char *rbuf; /* the thread's read buffer; idle connections hold none */
	int rbuf_busy;
	const struct fl_gw_opts *opts;
	atomic_long active;
} fl_gw;

typedef struct gw_up gw_up;
typedef struct gw_conn gw_conn;

/* Something held until an instance has room: a client connection's request or
 * an HTTP/2 stream. retry() runs when a snapshot arrives or room is freed; it
 * may take the waiter off the list. */
typedef struct gw_waiter {
	fl_list link;
	void (*retry)(struct gw_waiter *w);
} gw_waiter;

/* Tells the control thread that fn wants an instance. again: the request was already
 * held before this call (it is retried after a new snapshot); it then says so only when
 * no instance of fn is starting: the start under way ends in a new snapshot anyway, and
 * asking again would only have the control thread re-evaluate the function while the
 * start competes for the CPUs. */
void fl_gw__need(fl_gw *gw, const fl_route_fn *fn, int again);

/* gateway.c */
gw_snapref *fl_gw__snap_use(fl_gw *gw);
void fl_gw__snap_done(fl_gw *gw, gw_snapref *r);
/* Moves a request that is to be dispatched (again) to the thread's newest
 * snapshot, if *sref is not already it: pins the newest one, looks the request's
 * function up there again by name (name/len may point into the old snapshot: it
 * is read before that one is released), moves the request's place in the
 * `queued` count (*queued != 0) to the new function's counters if they are other
 * ones, and releases the old snapshot (*sref NULL: none to release). Returns 0
 * with *fn the function to dispatch to, or -ENOENT if the newest snapshot has no
 * function of that name: then *fn is NULL and the request no longer counts as
 * queued (*queued = 0); the caller takes it off the wait list and answers it. */
int fl_gw__snap_move(fl_gw *gw, gw_snapref **sref, fl_route_fn **fn, const char *name, size_t len,
		     int *queued);
void fl_gw__alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
/* Writes bufs to s, first with uv_try_write, copying only what is left into one
 * block owned by a uv_write. Returns 0 or a libuv error. */
int fl_gw__write(uv_stream_t *s, const uv_buf_t *bufs, unsigned n);

/* dispatcher.c */
/* Picks the least loaded ready instance with room and counts one request on
 * it; NULL if none has room. */
fl_inst *fl_dispatch_pick(fl_route_fn *fn);
/* Ends one request on inst; kicks the gateways if someone may be waiting. */
void fl_dispatch_release(fl_route_fn *fn, fl_inst *inst);

/* upstream.c: HTTP/1.1 connections to instances, pooled per thread. */
struct gw_up_ops {
	/* owner is what fl_up_get was given: an HTTP/1 client connection, or an
	 * HTTP/2 stream being translated. */
	void (*on_ready)(void *owner);			       /* connected: send the head */
	void (*on_data)(void *owner, const char *p, size_t n); /* response bytes */
	void (*on_eof)(void *owner, int err);		       /* closed or failed (libuv code) */
	void (*on_drain)(void *owner);			       /* write queue went low */
};
/* Gets an idle connection to inst (unless fresh is set) or starts a new one.
 * An idle one can be written at once (fl_up_ready); for a new one on_ready runs
 * once it is connected. NULL if no connection could be started. */
gw_up *fl_up_get(fl_gw *gw, fl_inst *inst, void *owner, const struct gw_up_ops *ops, int fresh);
int fl_up_ready(const gw_up *u);
/* Was the connection taken from the pool (so a failure may be a stale socket)? */
int fl_up_reused(const gw_up *u);
uv_stream_t *fl_up_stream(gw_up *u);
void fl_up_read_start(gw_up *u);
void fl_up_read_stop(gw_up *u);
/* Ends the owner's use: keep != 0 returns it to the pool, else closes it. */
void fl_up_release(gw_up *u, int keep);
/* Closes idle connections of instances that are gone (or all with all != 0). */
void fl_up_sweep(fl_gw *gw, int all);

/* proto/http1.c: client connections. fixed_fn: the function whose dedicated
 * port the connection came in on, or NULL for the gateway port. */
void fl_http1_accept(fl_gw *gw, uv_stream_t *server, const char *fixed_fn);
/* Closes the connection if it has no request under way (drain), or now (force). */
void fl_http1_drain(gw_conn *c, int force);
gw_conn *fl_http1_from_link(fl_list *l);
/* An answer to an offloaded request (on the connection's thread). */
void fl_http1_offload_answer(void *cookie, int status, const char *ctype, const char *body,
			     size_t len, const char *headers);
/* Frees what the calling gateway thread keeps for reuse (its free list of
 * exchanges); called when the thread's loop has ended. */
void fl_http1_thread_end(void);
/* Closes a client connection now (used by the HTTP/2 codec that took it over). */
void fl_http1_close(gw_conn *c);

/* A protocol that takes a client connection over from HTTP/1.1 (the host
 * codec) once its first bytes tell: HTTP/2, Thrift. Adding one adds a file and
 * an entry in the table in proto/http1.c, not ifs. */
struct fl_codec {
	const char *name;
	/* Are these first bytes ours? 1 yes, 0 no. */
	int (*sniff)(const char *p, size_t n);
	/* Takes over c, writing through tcp; fixed_fn is the function of the
	 * dedicated port the client came in on, or NULL. NULL on failure. */
	void *(*start)(fl_gw *gw, gw_conn *c, uv_stream_t *tcp, const char *peer,
		       const char *fixed_fn);
	/* Client bytes; returns 0, or -1 when the connection must close. */
	int (*on_read)(void *s, const char *p, size_t n);
	/* The client's write queue went low. */
	void (*on_drain)(void *s);
	/* Stop taking new work; 1 if nothing is under way (close now). */
	int (*drain)(void *s);
	/* The connection is closing: end everything and free s. */
	void (*free)(void *s);
	/* Runs after every I/O callback of a connection of this codec (or NULL). */
	void (*flush)(fl_gw *gw);
};
extern const struct fl_codec fl_codec_h2, fl_codec_thrift;

/* proto/http2.c: HTTP/2 on client connections that start with the preface. */
typedef struct fl_h2 fl_h2;
/* Does p start like the HTTP/2 client preface? */
int fl_h2_is_preface(const char *p, size_t n);
/* Takes over client connection c (writing through tcp); the preface and what
 * followed it are in p. NULL if the session could not be made. */
fl_h2 *fl_h2_start(fl_gw *gw, gw_conn *c, uv_stream_t *tcp, const char *peer);
/* One request field for fl_h2_upgrade (names lower case, pseudo-fields first). */
struct fl_h2_field {
	const char *name, *value;
	size_t nl, vl;
};
/* Takes over c after an HTTP/1.1 request with `Upgrade: h2c` (and no body),
 * whose fields become stream 1; settings is the HTTP2-Settings value. The 101
 * answer must already be written. NULL if the settings are malformed. */
fl_h2 *fl_h2_upgrade(fl_gw *gw, gw_conn *c, uv_stream_t *tcp, const char *peer,
		     const char *settings, size_t slen, const struct fl_h2_field *f, int nf);
/* Feeds client bytes; returns 0, or -1 when the connection must close. */
int fl_h2_on_read(fl_h2 *h, const char *p, size_t n);
/* The client's write queue went low. */
void fl_h2_on_drain(fl_h2 *h);
/* The client connection is closing: ends every stream and frees h. */
void fl_h2_free(fl_h2 *h);
/* Drain: send GOAWAY; returns 1 if no stream is under way (close now). */
int fl_h2_drain(fl_h2 *h);
/* Sends what every session marked dirty on this thread has to send. */
void fl_h2_flush_all(fl_gw *gw);
/* Closes idle HTTP/2 upstream connections of gone instances (or all). */
void fl_h2up_sweep(fl_gw *gw, int all);

#endif
