/* async_gw.c -- the async queue's side facing the gateway and the admin API:
 * requests and results read back, the gateway's offload hook (enqueueing
 * /async-function/NAME, answering /requests/ID), and the queue's metrics. */
#include "events/async.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "events/async_int.h"

/* ---- reading requests ---- */

static const char row_cols[] =
    "SELECT id, fn, source, method, target, status, attempts, created_ms, next_ms,"
    " started_ms, finished_ms, code, resp_headers, length(resp_body), truncated, error,"
    " callback, cb_state, cb_attempts FROM requests";

static json_t *headers_json(const char *p, size_t n)
{
	json_t *h = json_object();

	while (p && n) {
		const char *eol = memchr(p, '\n', n), *colon;
		size_t l = eol ? (size_t)(eol - p) + 1 : n, t = l;
		while (t && (p[t - 1] == '\n' || p[t - 1] == '\r'))
			t--;
		colon = memchr(p, ':', t);
		if (colon) {
			char *k = fl_xstrndup(p, (size_t)(colon - p));
			const char *v = colon + 1;
			while (v < p + t && (*v == ' ' || *v == '\t'))
				v++;
			for (char *c = k; *c; c++)
				if (*c >= 'A' && *c <= 'Z')
					*c = (char)(*c - 'A' + 'a');
			json_object_set_new(h, k, json_stringn(v, (size_t)(p + t - v)));
			free(k);
		}
		p += l;
		n -= l;
	}
	return h;
}

static void set_opt_int(json_t *j, const char *k, sqlite3_stmt *s, int col)
{
	if (sqlite3_column_type(s, col) != SQLITE_NULL)
		json_object_set_new(j, k, json_integer(sqlite3_column_int64(s, col)));
}

static void set_opt_text(json_t *j, const char *k, sqlite3_stmt *s, int col)
{
	if (sqlite3_column_type(s, col) != SQLITE_NULL)
		json_object_set_new(j, k, json_string((const char *)sqlite3_column_text(s, col)));
}

static json_t *row_json(sqlite3_stmt *s)
{
	json_t *j = json_object();
	const char *status = (const char *)sqlite3_column_text(s, 5);

	set_opt_text(j, "id", s, 0);
	set_opt_text(j, "function", s, 1);
	set_opt_text(j, "source", s, 2);
	set_opt_text(j, "method", s, 3);
	set_opt_text(j, "path", s, 4);
	set_opt_text(j, "status", s, 5);
	set_opt_int(j, "attempts", s, 6);
	set_opt_int(j, "created_ms", s, 7);
	if (status && strcmp(status, "queued") == 0)
		set_opt_int(j, "next_attempt_ms", s, 8);
	set_opt_int(j, "started_ms", s, 9);
	set_opt_int(j, "finished_ms", s, 10);
	set_opt_int(j, "code", s, 11);
	if (sqlite3_column_type(s, 12) != SQLITE_NULL)
		json_object_set_new(
		    j, "headers",
		    headers_json(sqlite3_column_blob(s, 12), (size_t)sqlite3_column_bytes(s, 12)));
	set_opt_int(j, "result_size", s, 13);
	if (sqlite3_column_int(s, 14))
		json_object_set_new(j, "truncated", json_true());
	set_opt_text(j, "error", s, 15);
	set_opt_text(j, "callback", s, 16);
	set_opt_text(j, "callback_state", s, 17);
	if (sqlite3_column_type(s, 17) != SQLITE_NULL)
		set_opt_int(j, "callback_attempts", s, 18);
	return j;
}

static int get_row(sqlite3 *db, const char *id, json_t **out)
{
	sqlite3_stmt *s = NULL;
	char sql[512];
	int r;

	snprintf(sql, sizeof(sql), "%s WHERE id=?1", row_cols);
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	fl_async__bind_text(s, 1, id);
	r = sqlite3_step(s);
	if (r == SQLITE_ROW)
		*out = row_json(s);
	sqlite3_finalize(s);
	return r == SQLITE_ROW ? 0 : r == SQLITE_DONE ? -ENOENT : -EIO;
}

int fl_async_get(fl_async *a, const char *id, json_t **out)
{
	int r;

	pthread_mutex_lock(&a->amu);
	r = get_row(a->adb, id, out);
	pthread_mutex_unlock(&a->amu);
	return r;
}

int fl_async_list(fl_async *a, const char *fn, const char *status, unsigned limit, json_t **out)
{
	sqlite3_stmt *s = NULL;
	char sql[768];
	json_t *arr;
	int r;

	snprintf(sql, sizeof(sql),
		 "%s WHERE (?1 IS NULL OR fn=?1) AND (?2 IS NULL OR status=?2)"
		 " ORDER BY created_ms DESC, rowid DESC LIMIT ?3",
		 row_cols);
	pthread_mutex_lock(&a->amu);
	if (sqlite3_prepare_v2(a->adb, sql, -1, &s, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&a->amu);
		return -EIO;
	}
	fl_async__bind_text(s, 1, fn);
	fl_async__bind_text(s, 2, status);
	sqlite3_bind_int64(s, 3, limit);
	arr = json_array();
	while ((r = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(arr, row_json(s));
	sqlite3_finalize(s);
	pthread_mutex_unlock(&a->amu);
	if (r != SQLITE_DONE) {
		json_decref(arr);
		return -EIO;
	}
	*out = arr;
	return 0;
}

/* ---- the gateway's offload hook ---- */

struct offload_ctx {
	int thread;
	void *cookie;
};

static void enqueued(void *ctx, int ok, const char *id)
{
	struct offload_ctx *c = ctx;
	char body[160], hdrs[160];

	if (ok < 0) {
		static const char msg[] =
		    "{\"error\":\"the async queue cannot store the request (is the data "
		    "directory's disk full? see the daemon log)\",\"status\":503}\n";
		fl_gateway_offload_done(c->thread, c->cookie, 503, "application/json", msg,
					sizeof(msg) - 1, NULL);
	} else {
		int n = snprintf(body, sizeof(body), "{\"id\":\"%s\",\"status\":\"queued\"}\n", id);
		snprintf(hdrs, sizeof(hdrs), "Location: /requests/%s\r\n", id);
		fl_gateway_offload_done(c->thread, c->cookie, 202, "application/json", body,
					(size_t)n, hdrs);
	}
	free(c);
}

static void answer_error(int thread, void *cookie, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void answer_error(int thread, void *cookie, int status, const char *fmt, ...)
{
	char msg[512];
	json_t *j;
	char *s;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	j = json_pack("{s:s, s:i}", "error", msg, "status", status);
	s = json_dumps(j, JSON_COMPACT);
	fl_gateway_offload_done(thread, cookie, status, "application/json", s, strlen(s), NULL);
	free(s);
	json_decref(j);
}

/* A header's value from "Name: value\r\n" lines, copied; NULL if absent. */
static char *find_header(const char *h, size_t n, const char *name)
{
	size_t nl = strlen(name);

	while (h && n) {
		const char *eol = memchr(h, '\n', n);
		size_t l = eol ? (size_t)(eol - h) + 1 : n, t = l;
		while (t && (h[t - 1] == '\n' || h[t - 1] == '\r'))
			t--;
		if (t > nl && h[nl] == ':' && fl_strncaseeq(h, nl, name)) {
			const char *v = h + nl + 1;
			while (v < h + t && (*v == ' ' || *v == '\t'))
				v++;
			return fl_xstrndup(v, (size_t)(h + t - v));
		}
		h += l;
		n -= l;
	}
	return NULL;
}

struct query_msg {
	int thread;
	void *cookie;
	char id[ID_MAX];
	int result;
};

static void do_query(fl_async *a, void *arg)
{
	struct query_msg *m = arg;
	sqlite3_stmt *s = NULL;
	json_t *row = NULL;
	char *text;
	int r;

	if (!m->result) {
		r = get_row(a->rdb, m->id, &row);
		if (r < 0) {
			answer_error(
			    m->thread, m->cookie, r == -ENOENT ? 404 : 500,
			    r == -ENOENT ? "no async request %s" : "cannot read request %s", m->id);
		} else {
			text = json_dumps(row, JSON_COMPACT);
			fl_gateway_offload_done(m->thread, m->cookie, 200, "application/json", text,
						strlen(text), NULL);
			free(text);
			json_decref(row);
		}
		free(m);
		return;
	}
	sqlite3_prepare_v2(a->rdb,
			   "SELECT status, code, resp_headers, resp_body FROM requests WHERE id=?1",
			   -1, &s, NULL);
	fl_async__bind_text(s, 1, m->id);
	r = sqlite3_step(s);
	if (r != SQLITE_ROW) {
		answer_error(m->thread, m->cookie, 404, "no async request %s", m->id);
	} else if (sqlite3_column_type(s, 3) == SQLITE_NULL) {
		answer_error(m->thread, m->cookie, 404, "request %s has no result yet (it is %s)",
			     m->id, (const char *)sqlite3_column_text(s, 0));
	} else {
		const char *rh = sqlite3_column_blob(s, 2);
		char *ct = find_header(rh, (size_t)sqlite3_column_bytes(s, 2), "content-type");
		char hdrs[256];
		snprintf(hdrs, sizeof(hdrs), "X-Flint-Status: %s\r\nX-Flint-Status-Code: %d\r\n",
			 (const char *)sqlite3_column_text(s, 0), sqlite3_column_int(s, 1));
		fl_gateway_offload_done(
		    m->thread, m->cookie, 200, ct ? ct : "application/octet-stream",
		    sqlite3_column_blob(s, 3), (size_t)sqlite3_column_bytes(s, 3), hdrs);
		free(ct);
	}
	sqlite3_finalize(s);
	free(m);
}

static int valid_id(const char *p, size_t n)
{
	if (n == 0 || n >= ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'z') ||
		      (p[i] >= 'A' && p[i] <= 'Z') || p[i] == '-' || p[i] == '_' || p[i] == '.'))
			return 0;
	return 1;
}

void fl_async_offload(void *ctx, const struct fl_offload_req *req)
{
	fl_async *a = ctx;

	if (req->kind == FL_OFFLOAD_ASYNC) {
		struct fl_async_item it;
		struct offload_ctx *c;
		char *cb = find_header(req->headers, req->headers_len, "x-callback-url");

		if (cb && strncmp(cb, "http://", 7) != 0 && strncmp(cb, "https://", 8) != 0) {
			answer_error(req->thread, req->cookie, 400,
				     "X-Callback-Url must be an http:// or https:// URL");
			free(cb);
			return;
		}
		memset(&it, 0, sizeof(it));
		it.fn = req->fn;
		it.method = req->method;
		it.target = req->target;
		it.headers = req->headers;
		it.headers_len = req->headers_len;
		it.body = req->body;
		it.body_len = req->body_len;
		it.request_id = req->request_id;
		it.callback_url = cb;
		it.source = "http";
		c = fl_xmalloc(sizeof(*c));
		c->thread = req->thread;
		c->cookie = req->cookie;
		if (fl_async_enqueue(a, &it, enqueued, c) < 0) {
			answer_error(req->thread, req->cookie, 503, "flint is stopping");
			free(c);
		}
		free(cb);
		return;
	} else {
		const char *p = req->target + 9; /* after "/requests" */
		size_t n = strcspn(p, "?");
		struct query_msg *m;

		if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
			answer_error(req->thread, req->cookie, 405,
				     "only GET reads async requests; the admin API retries them");
			return;
		}
		if (n < 2 || p[0] != '/') {
			answer_error(req->thread, req->cookie, 404,
				     "use /requests/ID or /requests/ID/result");
			return;
		}
		p++;
		n--;
		m = fl_xcalloc(1, sizeof(*m));
		m->thread = req->thread;
		m->cookie = req->cookie;
		if (n > 7 && memcmp(p + n - 7, "/result", 7) == 0) {
			m->result = 1;
			n -= 7;
		}
		if (!valid_id(p, n)) {
			answer_error(req->thread, req->cookie, 404, "no async request %.*s",
				     (int)(n > 64 ? 64 : n), p);
			free(m);
			return;
		}
		memcpy(m->id, p, n);
		fl_async__post(a, do_query, m);
	}
}

/* ---- metrics ---- */

void fl_async_metrics(fl_async *a, void *out)
{
	fl_buf *o = out;
	struct async_fnq *q;

	if (a == NULL)
		return;
	fl_buf_puts(o, "# HELP flint_async_queue_depth Async requests waiting (queued or "
		       "backing off), by function.\n# TYPE flint_async_queue_depth gauge\n");
	pthread_mutex_lock(&a->fmu);
	for (q = a->fns; q; q = q->next)
		fl_buf_printf(o, "flint_async_queue_depth{function=\"%s\"} %llu\n", q->name,
			      (unsigned long long)atomic_load(&q->waiting));
	fl_buf_puts(o, "# HELP flint_async_attempts_total Attempts started, by function.\n"
		       "# TYPE flint_async_attempts_total counter\n");
	for (q = a->fns; q; q = q->next)
		fl_buf_printf(o, "flint_async_attempts_total{function=\"%s\"} %llu\n", q->name,
			      (unsigned long long)atomic_load(&q->attempts));
	fl_buf_puts(o, "# HELP flint_async_retries_total Attempts that failed and were "
		       "scheduled again.\n# TYPE flint_async_retries_total counter\n");
	for (q = a->fns; q; q = q->next)
		fl_buf_printf(o, "flint_async_retries_total{function=\"%s\"} %llu\n", q->name,
			      (unsigned long long)atomic_load(&q->retried));
	fl_buf_puts(o, "# HELP flint_async_outcomes_total Requests that reached a final state.\n"
		       "# TYPE flint_async_outcomes_total counter\n");
	for (q = a->fns; q; q = q->next) {
		fl_buf_printf(
		    o, "flint_async_outcomes_total{function=\"%s\",status=\"succeeded\"} %llu\n",
		    q->name, (unsigned long long)atomic_load(&q->succeeded));
		fl_buf_printf(
		    o, "flint_async_outcomes_total{function=\"%s\",status=\"failed\"} %llu\n",
		    q->name, (unsigned long long)atomic_load(&q->failed));
		fl_buf_printf(o,
			      "flint_async_outcomes_total{function=\"%s\",status=\"dead\"} %llu\n",
			      q->name, (unsigned long long)atomic_load(&q->dead));
	}
	pthread_mutex_unlock(&a->fmu);
	fl_trig__metrics(a, o);
}

void fl_async_metrics_hook(void *ctx, void *out)
{
	fl_async_metrics(ctx, out);
}
