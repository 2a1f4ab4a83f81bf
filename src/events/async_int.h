/* async_int.h -- what the async queue's files share (async.c, async_worker.c, async_gw.c,
 * triggers.c and the trigger consumers); not for use outside src/events. */
#ifndef FL_ASYNC_INT_H
#define FL_ASYNC_INT_H

#include <curl/curl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <uv.h>

#include "core/buf.h"
#include "events/async.h"

#define ID_MAX 48 /* bytes of a request id, with its NUL */

struct async_msg;
struct fl_trig;
struct xfer;

enum op_kind { OP_INSERT, OP_RUNNING, OP_FINAL, OP_RETRY, OP_CB, OP_REDRIVE, OP_STATE };

/* A change for the writer thread. Strings are owned by the op. */
struct async_op {
	struct async_op *next;
	enum op_kind kind;
	char id[ID_MAX];
	char *fn, *method, *target, *headers, *callback, *source, *body;
	size_t headers_len, body_len;
	fl_async_enqueued_cb cb;
	void *ctx;
	uint64_t t_ms;
	uint32_t attempts;
	const char *status; /* OP_FINAL: succeeded, failed, dead; OP_CB: pending, done, failed */
	int code, truncated;
	char *rh, *rb, *error;
	size_t rhl, rbl;
	/* OP_REDRIVE waits for its commit. */
	pthread_mutex_t *dmu;
	pthread_cond_t *dcond;
	int *dflag, *dresult;
};

/* A request (or a callback to deliver) waiting on the loop thread. */
struct async_ent {
	struct async_ent *next;
	struct async_fnq *q;
	uint64_t due_ms, created_ms;
	uint32_t attempts;
	int is_cb;
	char id[ID_MAX];
};

/* One function's queue on the loop thread. */
struct async_fnq {
	struct async_fnq *next;
	char *name;
	struct fl_async_conf conf;
	int known;		       /* conf came from a spec; unknown functions wait */
	struct async_ent *head, *tail; /* due now, FIFO */
	uint32_t running;	       /* attempts in flight */
	uint64_t waiting;	       /* due + delayed (for /metrics) */
	atomic_uint_fast64_t attempts, succeeded, failed, dead, retried, expired;
};

struct fl_async {
	char *data_dir;
	char gw_base[128]; /* "http://127.0.0.1:8080" */

	/* Writer thread: the only connection that writes, group commit. */
	sqlite3 *wdb;
	pthread_t wthr;
	pthread_mutex_t wmu;
	pthread_cond_t wcond;
	struct async_op *ops, **ops_tail;
	int wstop;

	/* Loop thread: scheduling, workers (libcurl multi), queries, cron. */
	sqlite3 *rdb;
	pthread_t lthr;
	uv_loop_t loop;
	uv_async_t wake;
	uv_timer_t due_timer, curl_timer, stop_timer;
	CURLM *multi;
	pthread_mutex_t imu; /* inbox */
	struct async_msg *inbox, **inbox_tail;
	int loop_gone;	    /* under imu: nothing more is posted */
	struct xfer *xfers; /* HTTP exchanges under way */
	int resumed, stopping;
	uint64_t stop_deadline_ms;
	struct async_ent **heap; /* delayed entries, min-heap on due_ms */
	size_t nheap, capheap;
	unsigned inflight; /* attempts and callbacks */
	unsigned cb_inflight;

	/* Function table: changed on the loop thread under fmu, read by /metrics. */
	pthread_mutex_t fmu;
	struct async_fnq *fns;

	/* Reads for the admin API. */
	pthread_mutex_t amu;
	sqlite3 *adb;

	/* Triggers (triggers.c): list under tmu. */
	pthread_mutex_t tmu;
	struct fl_trig *trigs;
	atomic_int stopping_flag;
};

/* Runs fn(a, arg) on the loop thread soon (thread-safe). arg is the callee's. */
void fl_async__post(fl_async *a, void (*fn)(fl_async *a, void *arg), void *arg);

/* Hands o (owned by the writer from now on) to the writer thread, which applies it with the
 * next group commit. Thread-safe. */
void fl_async__push_op(fl_async *a, struct async_op *o);
/* Places e (now owned by the loop): due now goes to its function's FIFO, later (or a callback)
 * to the delayed heap, re-arming the due timer. On the loop thread; does not start attempts. */
void fl_async__schedule(fl_async *a, struct async_ent *e);

/* async_worker.c, on the loop thread unless said otherwise. */
/* Creates a->multi and drives it from a->loop (sockets polled, a->curl_timer). Before the loop
 * thread starts. */
void fl_async__workers_init(fl_async *a);
/* Starts due attempts while their function's concurrency allows; nothing before resume or
 * once stopping. */
void fl_async__pump(fl_async *a);
/* Delivers e's result to its callback URL; takes e (freed or rescheduled when done, freed
 * at once if nothing is left to deliver). */
void fl_async__start_callback(fl_async *a, struct async_ent *e);
/* Drops every exchange under way without recording an outcome: they stay "running" in
 * the database and are re-queued on the next start. At shutdown. */
void fl_async__abort_xfers(fl_async *a);
/* uv_close callback for the pollers of libcurl's sockets: frees their context. */
void fl_async__free_handle(uv_handle_t *h);

/* Binds v (copied) to parameter i of s; NULL binds SQL NULL. */
void fl_async__bind_text(sqlite3_stmt *s, int i, const char *v);

/* Stores a trigger's last fire time (durably, with the next group commit). */
void fl_async__save_state(fl_async *a, const char *name, int64_t ms);
/* The stored last fire time, or -1. On the loop thread. */
int64_t fl_async__load_state(fl_async *a, const char *name);

/* triggers.c, on the loop thread unless said otherwise. */
/* Replaces fn's triggers by those in arr (a validated spec array, stolen; NULL: none). */
void fl_trig__apply(fl_async *a, const char *fn, json_t *arr);
/* Stops every trigger (at shutdown). */
void fl_trig__stop_all(fl_async *a);
/* Thread-safe. */
json_t *fl_trig__list(fl_async *a);
void fl_trig__metrics(fl_async *a, fl_buf *o);

#endif
