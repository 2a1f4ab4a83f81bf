/* async.c -- the durable async queue: SQLite with group commit on a writer
 * thread, scheduling on a loop thread, retries with back-off, results,
 * callbacks and a dead letter. The workers (libcurl multi on the loop thread's
 * libuv loop) are in async_worker.c; what the gateway and the admin API read
 * (requests, results, metrics) and the gateway's offload hook are in
 * async_gw.c. */
#include "events/async.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/spec.h"
#include "core/log.h"
#include "core/util.h"
#include "events/async_int.h"

#define CB_MAX_INFLIGHT 64

static const struct fl_async_conf default_conf = {3, 1000, 300000, 86400000ULL, 60000, 10};

struct async_msg {
	struct async_msg *next;
	void (*fn)(fl_async *a, void *arg);
	void *arg;
};

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS requests("
    " id TEXT PRIMARY KEY, fn TEXT NOT NULL, source TEXT, method TEXT NOT NULL,"
    " target TEXT NOT NULL, headers BLOB, body BLOB, callback TEXT,"
    " status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL, next_ms INTEGER, started_ms INTEGER, finished_ms INTEGER,"
    " code INTEGER, resp_headers BLOB, resp_body BLOB, truncated INTEGER, error TEXT,"
    " cb_state TEXT, cb_attempts INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS requests_status ON requests(status, fn);"
    "CREATE INDEX IF NOT EXISTS requests_created ON requests(created_ms);"
    "CREATE TABLE IF NOT EXISTS trigger_state(name TEXT PRIMARY KEY, last_ms INTEGER);";

/* ---- small helpers ---- */

static void op_free(struct async_op *o)
{
	free(o->fn);
	free(o->method);
	free(o->target);
	free(o->headers);
	free(o->callback);
	free(o->source);
	free(o->body);
	free(o->rh);
	free(o->rb);
	free(o->error);
	free(o);
}

void fl_async__push_op(fl_async *a, struct async_op *o)
{
	pthread_mutex_lock(&a->wmu);
	*a->ops_tail = o;
	a->ops_tail = &o->next;
	pthread_cond_signal(&a->wcond);
	pthread_mutex_unlock(&a->wmu);
}

void fl_async__post(fl_async *a, void (*fn)(fl_async *a, void *arg), void *arg)
{
	struct async_msg *m = fl_xcalloc(1, sizeof(*m));

	m->fn = fn;
	m->arg = arg;
	pthread_mutex_lock(&a->imu);
	if (a->loop_gone) {
		/* Shutting down: what is dropped is durable and runs on the next start. */
		pthread_mutex_unlock(&a->imu);
		free(m);
		return;
	}
	*a->inbox_tail = m;
	a->inbox_tail = &m->next;
	uv_async_send(&a->wake);
	pthread_mutex_unlock(&a->imu);
}

void fl_async__bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

static void bind_blob(sqlite3_stmt *s, int i, const void *p, size_t n)
{
	if (p)
		sqlite3_bind_blob64(s, i, n ? p : "", n, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

static int open_db(const char *path, int readonly, sqlite3 **out)
{
	sqlite3 *db = NULL;
	int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;

	if (sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return -EIO;
	}
	sqlite3_busy_timeout(db, 5000);
	*out = db;
	return 0;
}

/* ---- the writer thread: group commit ---- */

struct wstmts {
	sqlite3_stmt *ins, *run, *fin, *retry, *cb, *redrive, *state;
};

static void exec_op(fl_async *a, struct wstmts *st, struct async_op *o)
{
	sqlite3_stmt *s = NULL;

	switch (o->kind) {
	case OP_INSERT:
		s = st->ins;
		fl_async__bind_text(s, 1, o->id);
		fl_async__bind_text(s, 2, o->fn);
		fl_async__bind_text(s, 3, o->source);
		fl_async__bind_text(s, 4, o->method);
		fl_async__bind_text(s, 5, o->target);
		bind_blob(s, 6, o->headers, o->headers_len);
		bind_blob(s, 7, o->body, o->body_len);
		fl_async__bind_text(s, 8, o->callback);
		sqlite3_bind_int64(s, 9, (sqlite3_int64)o->t_ms);
		break;
	case OP_RUNNING:
		s = st->run;
		sqlite3_bind_int64(s, 1, o->attempts);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)o->t_ms);
		fl_async__bind_text(s, 3, o->id);
		break;
	case OP_FINAL:
		s = st->fin;
		fl_async__bind_text(s, 1, o->status);
		sqlite3_bind_int64(s, 2, o->attempts);
		sqlite3_bind_int64(s, 3, (sqlite3_int64)o->t_ms);
		if (o->code)
			sqlite3_bind_int(s, 4, o->code);
		else
			sqlite3_bind_null(s, 4);
		bind_blob(s, 5, o->rh, o->rhl);
		bind_blob(s, 6, o->rb, o->rbl);
		sqlite3_bind_int(s, 7, o->truncated);
		fl_async__bind_text(s, 8, o->error);
		fl_async__bind_text(s, 9, o->id);
		break;
	case OP_RETRY:
		s = st->retry;
		sqlite3_bind_int64(s, 1, o->attempts);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)o->t_ms);
		if (o->code)
			sqlite3_bind_int(s, 3, o->code);
		else
			sqlite3_bind_null(s, 3);
		fl_async__bind_text(s, 4, o->error);
		fl_async__bind_text(s, 5, o->id);
		break;
	case OP_CB:
		s = st->cb;
		fl_async__bind_text(s, 1, o->status);
		sqlite3_bind_int64(s, 2, o->attempts);
		fl_async__bind_text(s, 3, o->id);
		break;
	case OP_STATE:
		s = st->state;
		fl_async__bind_text(s, 1, o->fn);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)o->t_ms);
		break;
	case OP_REDRIVE:
		s = st->redrive;
		sqlite3_bind_int64(s, 1, (sqlite3_int64)o->t_ms);
		fl_async__bind_text(s, 2, o->id);
		break;
	}
	if (sqlite3_step(s) != SQLITE_DONE) {
		fl_error("async", "cannot store request %s: %s", o->id, sqlite3_errmsg(a->wdb));
		o->code = -EIO;
	} else if (o->kind == OP_INSERT || o->kind == OP_REDRIVE) {
		o->attempts = (uint32_t)sqlite3_changes(a->wdb); /* 1: stored/changed, 0: not */
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

static void loop_add_new(fl_async *a, void *arg);
static void loop_add_cb(fl_async *a, void *arg);

/* What happens once a batch is durable: answers and work for the loop thread. */
static void after_commit(fl_async *a, struct async_op *o, int ok)
{
	struct async_ent *e;

	if (o->kind == OP_INSERT) {
		if (o->cb)
			o->cb(o->ctx, ok ? 0 : -EIO, ok ? o->id : NULL);
		if (!ok || o->attempts == 0)
			return;
	} else if (o->kind == OP_REDRIVE) {
		pthread_mutex_lock(o->dmu);
		*o->dresult = ok ? (o->attempts ? 0 : -EINVAL) : -EIO;
		*o->dflag = 1;
		pthread_cond_signal(o->dcond);
		pthread_mutex_unlock(o->dmu);
		if (!ok || o->attempts == 0)
			return;
	} else if (!(o->kind == OP_FINAL && o->callback && ok)) {
		return;
	}
	e = fl_xcalloc(1, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%s", o->id);
	e->created_ms = o->t_ms;
	e->due_ms = o->t_ms;
	/* The loop thread owns the name lookup; the name rides in a copy. */
	e->q = (struct async_fnq *)fl_xstrdup(o->fn ? o->fn : "");
	if (o->kind == OP_FINAL) {
		e->is_cb = 1;
		fl_async__post(a, loop_add_cb, e);
	} else {
		fl_async__post(a, loop_add_new, e);
	}
}

static void *writer_main(void *arg)
{
	fl_async *a = arg;
	struct wstmts st;
	struct async_op *batch, *o, *next;
	int ok;

	memset(&st, 0, sizeof(st));
	sqlite3_prepare_v2(a->wdb,
			   "INSERT OR IGNORE INTO requests(id, fn, source, method, target, headers,"
			   " body, callback, status, created_ms, next_ms)"
			   " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,'queued',?9,?9)",
			   -1, &st.ins, NULL);
	sqlite3_prepare_v2(a->wdb,
			   "UPDATE requests SET status='running', attempts=?1, started_ms=?2,"
			   " next_ms=NULL WHERE id=?3",
			   -1, &st.run, NULL);
	sqlite3_prepare_v2(a->wdb,
			   "UPDATE requests SET status=?1, attempts=?2, finished_ms=?3, code=?4,"
			   " resp_headers=?5, resp_body=?6, truncated=?7, error=?8, next_ms=NULL,"
			   " cb_state=CASE WHEN callback IS NULL THEN NULL ELSE 'pending' END,"
			   " cb_attempts=0 WHERE id=?9",
			   -1, &st.fin, NULL);
	sqlite3_prepare_v2(a->wdb,
			   "UPDATE requests SET status='queued', attempts=?1, next_ms=?2, code=?3,"
			   " error=?4 WHERE id=?5",
			   -1, &st.retry, NULL);
	sqlite3_prepare_v2(a->wdb, "UPDATE requests SET cb_state=?1, cb_attempts=?2 WHERE id=?3",
			   -1, &st.cb, NULL);
	sqlite3_prepare_v2(a->wdb,
			   "INSERT OR REPLACE INTO trigger_state(name, last_ms) VALUES(?1,?2)", -1,
			   &st.state, NULL);
	sqlite3_prepare_v2(a->wdb,
			   "UPDATE requests SET status='queued', attempts=0, next_ms=?1,"
			   " finished_ms=NULL, error=NULL, cb_state=NULL, cb_attempts=0"
			   " WHERE id=?2 AND status IN ('dead','failed')",
			   -1, &st.redrive, NULL);
	for (;;) {
		pthread_mutex_lock(&a->wmu);
		while (a->ops == NULL && !a->wstop)
			pthread_cond_wait(&a->wcond, &a->wmu);
		batch = a->ops;
		a->ops = NULL;
		a->ops_tail = &a->ops;
		pthread_mutex_unlock(&a->wmu);
		if (batch == NULL)
			break;
		/* Everything that arrived while the last commit ran shares this one:
		 * one fsync for the whole batch (group commit). */
		ok = sqlite3_exec(a->wdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
		for (o = batch; ok && o; o = o->next)
			exec_op(a, &st, o);
		if (ok && sqlite3_exec(a->wdb, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			fl_error("async", "commit failed: %s", sqlite3_errmsg(a->wdb));
			sqlite3_exec(a->wdb, "ROLLBACK", NULL, NULL, NULL);
			ok = 0;
		}
		for (o = batch; o; o = next) {
			next = o->next;
			after_commit(a, o, ok && o->code != -EIO);
			op_free(o);
		}
	}
	sqlite3_finalize(st.ins);
	sqlite3_finalize(st.run);
	sqlite3_finalize(st.fin);
	sqlite3_finalize(st.retry);
	sqlite3_finalize(st.cb);
	sqlite3_finalize(st.redrive);
	sqlite3_finalize(st.state);
	return NULL;
}

/* ---- the loop thread: scheduling ---- */

static struct async_fnq *fnq_get(fl_async *a, const char *name)
{
	struct async_fnq *q;

	for (q = a->fns; q; q = q->next)
		if (strcmp(q->name, name) == 0)
			return q;
	q = fl_xcalloc(1, sizeof(*q));
	q->name = fl_xstrdup(name);
	q->conf = default_conf;
	pthread_mutex_lock(&a->fmu);
	q->next = a->fns;
	a->fns = q;
	pthread_mutex_unlock(&a->fmu);
	return q;
}

static void heap_swap(fl_async *a, size_t i, size_t j)
{
	struct async_ent *t = a->heap[i];
	a->heap[i] = a->heap[j];
	a->heap[j] = t;
}

static void heap_push(fl_async *a, struct async_ent *e)
{
	size_t i;

	if (a->nheap == a->capheap) {
		a->capheap = a->capheap ? a->capheap * 2 : 64;
		a->heap = realloc(a->heap, a->capheap * sizeof(*a->heap));
		if (a->heap == NULL)
			abort();
	}
	i = a->nheap++;
	a->heap[i] = e;
	while (i > 0 && a->heap[(i - 1) / 2]->due_ms > a->heap[i]->due_ms) {
		heap_swap(a, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static struct async_ent *heap_pop(fl_async *a)
{
	struct async_ent *top = a->heap[0];
	size_t i = 0;

	a->heap[0] = a->heap[--a->nheap];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < a->nheap && a->heap[l]->due_ms < a->heap[m]->due_ms)
			m = l;
		if (r < a->nheap && a->heap[r]->due_ms < a->heap[m]->due_ms)
			m = r;
		if (m == i)
			break;
		heap_swap(a, i, m);
		i = m;
	}
	return top;
}

static void fifo_push(struct async_ent *e)
{
	struct async_fnq *q = e->q;

	e->next = NULL;
	if (q->tail)
		q->tail->next = e;
	else
		q->head = e;
	q->tail = e;
}

static void on_due(uv_timer_t *t);

static void arm_due(fl_async *a)
{
	uint64_t now = fl_wall_ms();

	if (a->nheap == 0) {
		uv_timer_stop(&a->due_timer);
		return;
	}
	uv_timer_start(&a->due_timer, on_due,
		       a->heap[0]->due_ms > now ? a->heap[0]->due_ms - now : 0, 0);
}

/* Places an entry: due now → its function's FIFO (callbacks start), else the heap. */
void fl_async__schedule(fl_async *a, struct async_ent *e)
{
	if (e->due_ms > fl_wall_ms()) {
		heap_push(a, e);
		if (a->heap[0] == e)
			arm_due(a);
	} else if (e->is_cb) {
		heap_push(a, e);
		arm_due(a);
	} else {
		fifo_push(e);
	}
}

static void on_due(uv_timer_t *t)
{
	fl_async *a = t->data;
	uint64_t now = fl_wall_ms();

	while (a->nheap && a->heap[0]->due_ms <= now) {
		struct async_ent *e = heap_pop(a);
		if (!e->is_cb) {
			fifo_push(e);
		} else if (a->cb_inflight < CB_MAX_INFLIGHT && a->resumed && !a->stopping) {
			fl_async__start_callback(a, e);
		} else {
			e->due_ms = now + 100;
			heap_push(a, e);
			break;
		}
	}
	arm_due(a);
	fl_async__pump(a);
}

/* From the writer: a stored request (or a re-driven one). e->q holds the name. */
static void loop_add_new(fl_async *a, void *arg)
{
	struct async_ent *e = arg;
	char *name = (char *)e->q;

	e->q = fnq_get(a, name);
	free(name);
	atomic_fetch_add(&e->q->waiting, 1);
	e->due_ms = 0;
	fl_async__schedule(a, e);
	fl_async__pump(a);
}

static void loop_add_cb(fl_async *a, void *arg)
{
	struct async_ent *e = arg;
	char *name = (char *)e->q;

	e->q = fnq_get(a, name);
	free(name);
	e->due_ms = 0;
	fl_async__schedule(a, e);
}

/* ---- the loop thread's inbox and life cycle ---- */

static void on_wake(uv_async_t *w)
{
	fl_async *a = w->data;
	struct async_msg *m, *next;

	pthread_mutex_lock(&a->imu);
	m = a->inbox;
	a->inbox = NULL;
	a->inbox_tail = &a->inbox;
	pthread_mutex_unlock(&a->imu);
	for (; m; m = next) {
		next = m->next;
		m->fn(a, m->arg);
		free(m);
	}
}

static void *loop_main(void *arg)
{
	fl_async *a = arg;

	uv_run(&a->loop, UV_RUN_DEFAULT);
	return NULL;
}

/* Loads what is unfinished: queued requests and callbacks still to deliver. */
static int load_pending(fl_async *a, char *err, size_t errlen)
{
	sqlite3_stmt *s = NULL;
	int n = 0, r;

	r = sqlite3_exec(a->wdb, "UPDATE requests SET status='queued' WHERE status='running'", NULL,
			 NULL, NULL);
	if (r != SQLITE_OK)
		goto fail;
	if (sqlite3_changes(a->wdb) > 0)
		fl_warn(
		    "async",
		    "%d requests were running when flint stopped; they run again (at least once)",
		    sqlite3_changes(a->wdb));
	if (sqlite3_prepare_v2(a->rdb,
			       "SELECT id, fn, created_ms, next_ms, attempts, 0 FROM requests"
			       " WHERE status='queued' UNION ALL"
			       " SELECT id, fn, created_ms, 0, cb_attempts, 1 FROM requests"
			       " WHERE cb_state='pending'",
			       -1, &s, NULL) != SQLITE_OK)
		goto fail;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		struct async_ent *e = fl_xcalloc(1, sizeof(*e));
		snprintf(e->id, sizeof(e->id), "%s", (const char *)sqlite3_column_text(s, 0));
		e->q = fnq_get(a, (const char *)sqlite3_column_text(s, 1));
		e->created_ms = (uint64_t)sqlite3_column_int64(s, 2);
		e->due_ms = (uint64_t)sqlite3_column_int64(s, 3);
		e->attempts = (uint32_t)sqlite3_column_int(s, 4);
		e->is_cb = sqlite3_column_int(s, 5);
		if (e->is_cb) {
			heap_push(a, e);
		} else {
			atomic_fetch_add(&e->q->waiting, 1);
			if (e->due_ms > fl_wall_ms())
				heap_push(a, e);
			else
				fifo_push(e);
			n++;
		}
	}
	sqlite3_finalize(s);
	if (r != SQLITE_DONE)
		goto fail;
	if (n)
		fl_info("async", "%d queued requests loaded", n);
	return 0;
fail:
	snprintf(err, errlen, "cannot read the async queue: %s", sqlite3_errmsg(a->wdb));
	return -EIO;
}

int fl_async_start(const char *data_dir, const char *gateway_addr, fl_async **out, char *err,
		   size_t errlen)
{
	fl_async *a = fl_xcalloc(1, sizeof(*a));
	char path[4096];
	char *msg = NULL;

	a->data_dir = fl_xstrdup(data_dir);
	snprintf(a->gw_base, sizeof(a->gw_base), "http://%s", gateway_addr);
	pthread_mutex_init(&a->wmu, NULL);
	pthread_cond_init(&a->wcond, NULL);
	pthread_mutex_init(&a->imu, NULL);
	pthread_mutex_init(&a->fmu, NULL);
	pthread_mutex_init(&a->amu, NULL);
	pthread_mutex_init(&a->tmu, NULL);
	a->ops_tail = &a->ops;
	a->inbox_tail = &a->inbox;
	snprintf(path, sizeof(path), "%s/async.db", data_dir);
	if (open_db(path, 0, &a->wdb) < 0 ||
	    sqlite3_exec(a->wdb, schema, NULL, NULL, &msg) != SQLITE_OK ||
	    /* FULL: a 202 promises the request survives a power cut, not only a crash. */
	    sqlite3_exec(a->wdb, "PRAGMA synchronous=FULL", NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open the async queue %s: %s", path,
			 msg ? msg : (a->wdb ? sqlite3_errmsg(a->wdb) : "out of memory"));
		sqlite3_free(msg);
		goto fail;
	}
	if (open_db(path, 1, &a->rdb) < 0 || open_db(path, 1, &a->adb) < 0) {
		snprintf(err, errlen, "cannot open the async queue %s for reading", path);
		goto fail;
	}
	if (load_pending(a, err, errlen) < 0)
		goto fail;
	if (uv_loop_init(&a->loop) < 0) {
		snprintf(err, errlen, "cannot create the async queue's event loop");
		goto fail;
	}
	a->loop.data = a;
	uv_async_init(&a->loop, &a->wake, on_wake);
	a->wake.data = a;
	uv_timer_init(&a->loop, &a->due_timer);
	a->due_timer.data = a;
	uv_timer_init(&a->loop, &a->curl_timer);
	a->curl_timer.data = a;
	uv_timer_init(&a->loop, &a->stop_timer);
	a->stop_timer.data = a;
	fl_async__workers_init(a);
	if (pthread_create(&a->wthr, NULL, writer_main, a) != 0) {
		snprintf(err, errlen, "cannot start the async queue's writer thread");
		goto fail;
	}
	if (pthread_create(&a->lthr, NULL, loop_main, a) != 0) {
		snprintf(err, errlen, "cannot start the async queue's thread");
		pthread_mutex_lock(&a->wmu);
		a->wstop = 1;
		pthread_cond_signal(&a->wcond);
		pthread_mutex_unlock(&a->wmu);
		pthread_join(a->wthr, NULL);
		goto fail;
	}
	*out = a;
	return 0;
fail:
	sqlite3_close(a->adb);
	sqlite3_close(a->rdb);
	sqlite3_close(a->wdb);
	free(a->data_dir);
	free(a);
	return -EIO;
}

static void do_resume(fl_async *a, void *arg)
{
	(void)arg;
	a->resumed = 1;
	arm_due(a);
	fl_async__pump(a);
}

void fl_async_resume(fl_async *a)
{
	if (a)
		fl_async__post(a, do_resume, NULL);
}

/* ---- trigger state ---- */

void fl_async__save_state(fl_async *a, const char *name, int64_t ms)
{
	struct async_op *o = fl_xcalloc(1, sizeof(*o));

	o->kind = OP_STATE;
	o->fn = fl_xstrdup(name);
	o->t_ms = (uint64_t)ms;
	fl_async__push_op(a, o);
}

int64_t fl_async__load_state(fl_async *a, const char *name)
{
	sqlite3_stmt *s = NULL;
	int64_t v = -1;

	if (sqlite3_prepare_v2(a->rdb, "SELECT last_ms FROM trigger_state WHERE name=?1", -1, &s,
			       NULL) != SQLITE_OK)
		return -1;
	fl_async__bind_text(s, 1, name);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

static void do_drain(fl_async *a, void *arg)
{
	(void)arg;
	a->resumed = 0;
}

void fl_async_drain(fl_async *a)
{
	if (a)
		fl_async__post(a, do_drain, NULL);
}

/* ---- enqueue ---- */

int fl_async_enqueue(fl_async *a, const struct fl_async_item *it, fl_async_enqueued_cb cb,
		     void *ctx)
{
	struct async_op *o;

	if (atomic_load(&a->stopping_flag))
		return -ESHUTDOWN;
	o = fl_xcalloc(1, sizeof(*o));
	o->kind = OP_INSERT;
	if (it->request_id && *it->request_id)
		snprintf(o->id, sizeof(o->id), "%s", it->request_id);
	else
		fl_random_hex(o->id, 8);
	o->fn = fl_xstrdup(it->fn);
	o->method = fl_xstrdup(it->method ? it->method : "POST");
	o->target = fl_xstrdup(it->target ? it->target : "/");
	o->headers = it->headers ? fl_xstrndup(it->headers, it->headers_len) : NULL;
	o->headers_len = it->headers ? it->headers_len : 0;
	o->body = fl_xmalloc(it->body_len + 1);
	if (it->body_len)
		memcpy(o->body, it->body, it->body_len);
	o->body_len = it->body_len;
	o->callback = it->callback_url ? fl_xstrdup(it->callback_url) : NULL;
	o->source = fl_xstrdup(it->source ? it->source : "http");
	o->cb = cb;
	o->ctx = ctx;
	o->t_ms = fl_wall_ms();
	fl_async__push_op(a, o);
	return 0;
}

/* ---- settings ---- */

struct conf_msg {
	char *fn;
	int has;
	struct fl_async_conf conf;
	json_t *triggers;
	int set_triggers;
};

static void do_conf(fl_async *a, void *arg)
{
	struct conf_msg *m = arg;
	struct async_fnq *q = fnq_get(a, m->fn);

	q->known = m->has;
	if (m->has)
		q->conf = m->conf;
	if (m->set_triggers || !m->has)
		fl_trig__apply(a, m->fn, m->has ? m->triggers : NULL);
	else
		json_decref(m->triggers);
	free(m->fn);
	free(m);
	fl_async__pump(a);
}

void fl_async_set_function(fl_async *a, const char *fn, const struct fl_async_conf *conf)
{
	struct conf_msg *m;

	if (a == NULL)
		return;
	m = fl_xcalloc(1, sizeof(*m));
	m->fn = fl_xstrdup(fn);
	if (conf) {
		m->has = 1;
		m->conf = *conf;
		if (m->conf.concurrency == 0)
			m->conf.concurrency = 1;
	}
	fl_async__post(a, do_conf, m);
}

void fl_async_apply_spec(fl_async *a, const struct fl_spec *s)
{
	struct conf_msg *m;

	if (a == NULL)
		return;
	m = fl_xcalloc(1, sizeof(*m));
	m->fn = fl_xstrdup(s->name);
	m->has = 1;
	m->conf.retries = s->async_retries;
	m->conf.backoff_min_ms = s->async_backoff_min_ms;
	m->conf.backoff_max_ms = s->async_backoff_max_ms;
	m->conf.max_age_ms = s->async_max_age_ms;
	m->conf.timeout_ms = s->async_timeout_ms ? s->async_timeout_ms : s->timeout_ms;
	m->conf.concurrency = s->async_concurrency ? s->async_concurrency : 1;
	m->triggers = s->triggers ? json_deep_copy(s->triggers) : NULL;
	m->set_triggers = 1;
	fl_async__post(a, do_conf, m);
}

/* ---- retrying by hand ---- */

int fl_async_redrive(fl_async *a, const char *id, char *err, size_t errlen)
{
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
	struct async_op *o;
	json_t *row = NULL;
	int done = 0, result = 0, r;

	r = fl_async_get(a, id, &row);
	if (r < 0) {
		snprintf(err, errlen,
			 r == -ENOENT ? "no async request %s" : "cannot read request %s", id);
		return r;
	}
	o = fl_xcalloc(1, sizeof(*o));
	o->kind = OP_REDRIVE;
	snprintf(o->id, sizeof(o->id), "%s", id);
	o->fn = fl_xstrdup(json_string_value(json_object_get(row, "function")));
	o->t_ms = fl_wall_ms();
	o->dmu = &mu;
	o->dcond = &cond;
	o->dflag = &done;
	o->dresult = &result;
	fl_async__push_op(a, o);
	pthread_mutex_lock(&mu);
	while (!done)
		pthread_cond_wait(&cond, &mu);
	pthread_mutex_unlock(&mu);
	if (result == -EINVAL)
		snprintf(err, errlen,
			 "request %s is %s; only dead or failed requests can be retried", id,
			 json_string_value(json_object_get(row, "status")));
	else if (result < 0)
		snprintf(err, errlen, "cannot store the retry of request %s", id);
	json_decref(row);
	return result;
}

/* ---- stopping ---- */

static void close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, h->type == UV_POLL ? fl_async__free_handle : NULL);
}

static void on_stop_timer(uv_timer_t *t)
{
	fl_async *a = t->data;

	if (a->inflight && fl_wall_ms() < a->stop_deadline_ms)
		return;
	if (a->inflight)
		fl_warn("async",
			"%u attempts still under way at shutdown; they run again on the "
			"next start",
			a->inflight);
	/* What is still under way stays "running" in the database: re-queued on start. */
	fl_async__abort_xfers(a);
	fl_trig__stop_all(a);
	pthread_mutex_lock(&a->imu);
	a->loop_gone = 1;
	pthread_mutex_unlock(&a->imu);
	uv_walk(&a->loop, close_walk, NULL);
}

static void do_stop(fl_async *a, void *arg)
{
	a->stopping = 1;
	a->stop_deadline_ms = fl_wall_ms() + (uint64_t)(uintptr_t)arg;
	uv_timer_start(&a->stop_timer, on_stop_timer, 0, 20);
}

void fl_async_stop(fl_async *a, unsigned grace_ms)
{
	struct async_fnq *q, *qn;

	if (a == NULL)
		return;
	atomic_store(&a->stopping_flag, 1);
	fl_async__post(a, do_stop, (void *)(uintptr_t)grace_ms);
	pthread_join(a->lthr, NULL);
	pthread_mutex_lock(&a->wmu);
	a->wstop = 1;
	pthread_cond_signal(&a->wcond);
	pthread_mutex_unlock(&a->wmu);
	pthread_join(a->wthr, NULL);
	curl_multi_cleanup(a->multi);
	uv_loop_close(&a->loop);
	sqlite3_close(a->adb);
	sqlite3_close(a->rdb);
	sqlite3_close(a->wdb);
	while (a->nheap)
		free(heap_pop(a));
	free(a->heap);
	for (q = a->fns; q; q = qn) {
		qn = q->next;
		while (q->head) {
			struct async_ent *e = q->head;
			q->head = e->next;
			free(e);
		}
		free(q->name);
		free(q);
	}
	free(a->data_dir);
	free(a);
}
