/* async_worker.c -- the async queue's workers: libcurl exchanges through the gateway, on libuv. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "events/async_int.h"

#define RESULT_MAX	(1u << 20) /* bytes of a function's response body kept */
#define CB_MAX_ATTEMPTS 10
#define CB_TIMEOUT_MS	30000

/* One HTTP exchange under way: an attempt or a callback delivery. */
struct xfer {
	struct xfer *prev, *next; /* a->xfers */
	fl_async *a;
	struct async_ent *e;
	CURL *h;
	struct curl_slist *hdrs;
	fl_buf rh, rb;
	int truncated;
	char *body;
	char *callback;
};

struct csock {
	uv_poll_t poll;
	curl_socket_t fd;
	fl_async *a;
};

/* ---- workers: libcurl multi on the loop ---- */

static void check_done(fl_async *a);

static void on_poll(uv_poll_t *p, int status, int events)
{
	struct csock *cs = p->data;
	int flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(cs->a->multi, cs->fd, flags, &running);
	check_done(cs->a);
}

void fl_async__free_handle(uv_handle_t *h)
{
	free(h->data);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	fl_async *a = userp;
	struct csock *cs = socketp;
	int ev = 0;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (cs) {
			uv_poll_stop(&cs->poll);
			uv_close((uv_handle_t *)&cs->poll, fl_async__free_handle);
			curl_multi_assign(a->multi, s, NULL);
		}
		return 0;
	}
	if (cs == NULL) {
		cs = fl_xcalloc(1, sizeof(*cs));
		cs->fd = s;
		cs->a = a;
		if (uv_poll_init_socket(&a->loop, &cs->poll, s) < 0) {
			free(cs);
			return -1;
		}
		cs->poll.data = cs;
		curl_multi_assign(a->multi, s, cs);
	}
	if (what & CURL_POLL_IN)
		ev |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		ev |= UV_WRITABLE;
	uv_poll_start(&cs->poll, ev, on_poll);
	return 0;
}

static void on_curl_timer(uv_timer_t *t)
{
	fl_async *a = t->data;
	int running;

	curl_multi_socket_action(a->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(a);
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	fl_async *a = userp;

	(void)m;
	if (timeout_ms < 0)
		uv_timer_stop(&a->curl_timer);
	else
		uv_timer_start(&a->curl_timer, on_curl_timer, (uint64_t)timeout_ms, 0);
	return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n, room = RESULT_MAX - x->rb.len;

	if (len > room) {
		x->truncated = 1;
		len = room;
	}
	if (len)
		fl_buf_append(&x->rb, p, len);
	return size * n;
}

static int dropped_response_header(const char *p, size_t n)
{
	static const char *const drop[] = {"connection", "keep-alive", "transfer-encoding",
					   "content-length", NULL};
	const char *colon = memchr(p, ':', n);

	if (colon == NULL)
		return 1;
	for (int i = 0; drop[i]; i++)
		if (fl_strncaseeq(p, (size_t)(colon - p), drop[i]))
			return 1;
	return 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;

	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0)
		fl_buf_reset(&x->rh); /* a new response (after 100 Continue) */
	else if (!dropped_response_header(p, len) && x->rh.len + len < 64 * 1024)
		fl_buf_append(&x->rh, p, len);
	return len;
}

/* Request headers not passed on: framing, and what flint sets itself. */
static int dropped_request_header(const char *p, size_t n)
{
	static const char *const drop[] = {
	    "host",	      "content-length",	    "transfer-encoding", "connection", "expect",
	    "x-callback-url", "x-flint-request-id", "x-flint-attempt",	 NULL};
	const char *colon = memchr(p, ':', n);

	if (colon == NULL)
		return 1;
	for (int i = 0; drop[i]; i++)
		if (fl_strncaseeq(p, (size_t)(colon - p), drop[i]))
			return 1;
	return 0;
}

static struct xfer *xfer_new(fl_async *a, struct async_ent *e, const char *url, uint64_t timeout_ms)
{
	struct xfer *x = fl_xcalloc(1, sizeof(*x));

	x->a = a;
	x->e = e;
	x->h = curl_easy_init();
	if (x->h == NULL)
		abort();
	curl_easy_setopt(x->h, CURLOPT_URL, url);
	curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(x->h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	x->next = a->xfers;
	if (a->xfers)
		a->xfers->prev = x;
	a->xfers = x;
	return x;
}

static void xfer_free(struct xfer *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		x->a->xfers = x->next;
	if (x->next)
		x->next->prev = x->prev;
	curl_slist_free_all(x->hdrs);
	fl_buf_free(&x->rh);
	fl_buf_free(&x->rb);
	free(x->body);
	free(x->callback);
	free(x);
}

static void final_op(fl_async *a, struct async_ent *e, const char *status, int code, struct xfer *x,
		     const char *error, const char *callback)
{
	struct async_op *o = fl_xcalloc(1, sizeof(*o));
	struct async_fnq *q = e->q;

	o->kind = OP_FINAL;
	snprintf(o->id, sizeof(o->id), "%s", e->id);
	o->fn = fl_xstrdup(q->name);
	o->status = status;
	o->attempts = e->attempts;
	o->t_ms = fl_wall_ms();
	o->code = code;
	if (x) {
		o->rhl = x->rh.len;
		o->rh = fl_buf_steal(&x->rh);
		o->rbl = x->rb.len;
		o->rb = fl_buf_steal(&x->rb);
		o->truncated = x->truncated;
	}
	o->error = error ? fl_xstrdup(error) : NULL;
	o->callback = callback ? fl_xstrdup(callback) : NULL;
	if (strcmp(status, "succeeded") == 0)
		atomic_fetch_add(&q->succeeded, 1);
	else if (strcmp(status, "failed") == 0)
		atomic_fetch_add(&q->failed, 1);
	else
		atomic_fetch_add(&q->dead, 1);
	atomic_fetch_sub(&q->waiting, 1);
	fl_async__push_op(a, o);
	free(e);
}

static uint64_t backoff_ms(uint64_t lo, uint64_t hi, uint32_t attempt)
{
	uint64_t d = lo ? lo : 1;
	unsigned char r[4];
	uint32_t rnd;

	for (uint32_t i = 1; i < attempt && d < hi; i++)
		d *= 2;
	if (d > hi)
		d = hi;
	/* Equal jitter: half fixed, half random, so retries spread but still back off. */
	fl_random_bytes(r, sizeof(r));
	memcpy(&rnd, r, sizeof(rnd));
	return d / 2 + (d / 2 ? rnd % (d / 2 + 1) : 0);
}

static void attempt_done(fl_async *a, struct xfer *x, CURLcode res)
{
	struct async_ent *e = x->e;
	struct async_fnq *q = e->q;
	long code = 0;
	char error[256];
	uint64_t now = fl_wall_ms(), delay;
	struct async_op *o;

	q->running--;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
	if (res == CURLE_OK && code < 400) {
		final_op(a, e, "succeeded", (int)code, x, NULL, x->callback);
		return;
	}
	if (res == CURLE_OK && code < 500 && code != 408 && code != 429) {
		final_op(a, e, "failed", (int)code, x, NULL, x->callback);
		return;
	}
	if (res != CURLE_OK)
		snprintf(error, sizeof(error), "attempt %u: %s", e->attempts,
			 res == CURLE_OPERATION_TIMEDOUT ? "timed out" : curl_easy_strerror(res));
	else
		snprintf(error, sizeof(error), "attempt %u: the function answered %ld", e->attempts,
			 code);
	if (e->attempts > q->conf.retries) {
		char why[320];
		snprintf(why, sizeof(why), "gave up after %u attempts; last %s", e->attempts,
			 error);
		final_op(a, e, "dead", (int)code, x, why, x->callback);
		return;
	}
	delay = backoff_ms(q->conf.backoff_min_ms, q->conf.backoff_max_ms, e->attempts);
	if (now + delay > e->created_ms + q->conf.max_age_ms) {
		char why[320];
		snprintf(why, sizeof(why), "past async.max_age before the next attempt; last %s",
			 error);
		final_op(a, e, "dead", (int)code, x, why, x->callback);
		return;
	}
	atomic_fetch_add(&q->retried, 1);
	o = fl_xcalloc(1, sizeof(*o));
	o->kind = OP_RETRY;
	snprintf(o->id, sizeof(o->id), "%s", e->id);
	o->attempts = e->attempts;
	o->t_ms = now + delay;
	o->code = (int)code;
	o->error = fl_xstrdup(error);
	fl_async__push_op(a, o);
	e->due_ms = now + delay;
	fl_async__schedule(a, e);
}

static void callback_done(fl_async *a, struct xfer *x, CURLcode res)
{
	struct async_ent *e = x->e;
	struct async_op *o = fl_xcalloc(1, sizeof(*o));
	long code = 0;

	a->cb_inflight--;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
	e->attempts++;
	o->kind = OP_CB;
	snprintf(o->id, sizeof(o->id), "%s", e->id);
	o->attempts = e->attempts;
	if (res == CURLE_OK && code >= 200 && code < 300) {
		o->status = "done";
	} else if (e->attempts >= CB_MAX_ATTEMPTS) {
		o->status = "failed";
		fl_warn("async", "callback of request %s failed %u times; giving up", e->id,
			e->attempts);
	} else {
		o->status = "pending";
		e->due_ms = fl_wall_ms() + backoff_ms(1000, 300000, e->attempts);
		fl_async__schedule(a, e);
		e = NULL;
	}
	fl_async__push_op(a, o);
	free(e);
}

static void check_done(fl_async *a)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(a->multi, &left))) {
		struct xfer *x = NULL;
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		curl_multi_remove_handle(a->multi, x->h);
		a->inflight--;
		if (x->e->is_cb)
			callback_done(a, x, m->data.result);
		else
			attempt_done(a, x, m->data.result);
		curl_easy_cleanup(x->h);
		xfer_free(x);
	}
	fl_async__pump(a);
}

static void start_attempt(fl_async *a, struct async_ent *e)
{
	struct async_fnq *q = e->q;
	sqlite3_stmt *s = NULL;
	const char *method, *target, *hp;
	char url[2048], line[128];
	struct async_op *o;
	struct xfer *x;
	size_t hl, blen;
	int has_body;

	sqlite3_prepare_v2(
	    a->rdb,
	    "SELECT method, target, headers, body, callback, created_ms FROM requests"
	    " WHERE id=?1",
	    -1, &s, NULL);
	fl_async__bind_text(s, 1, e->id);
	if (sqlite3_step(s) != SQLITE_ROW) {
		fl_warn("async", "request %s vanished from the queue", e->id);
		atomic_fetch_sub(&q->waiting, 1);
		sqlite3_finalize(s);
		free(e);
		return;
	}
	e->created_ms = (uint64_t)sqlite3_column_int64(s, 5);
	if (fl_wall_ms() > e->created_ms + q->conf.max_age_ms) {
		const char *cb = (const char *)sqlite3_column_text(s, 4);
		atomic_fetch_add(&q->expired, 1);
		final_op(a, e, "dead", 0, NULL, "past async.max_age before an attempt could start",
			 cb);
		sqlite3_finalize(s);
		return;
	}
	method = (const char *)sqlite3_column_text(s, 0);
	target = (const char *)sqlite3_column_text(s, 1);
	snprintf(url, sizeof(url), "%s/function/%s%s", a->gw_base, q->name,
		 target[0] == '/' || target[0] == '?' || !target[0] ? target : "/");
	e->attempts++;
	x = xfer_new(a, e, url, q->conf.timeout_ms);
	if (sqlite3_column_type(s, 4) != SQLITE_NULL)
		x->callback = fl_xstrdup((const char *)sqlite3_column_text(s, 4));
	hp = sqlite3_column_blob(s, 2);
	hl = (size_t)sqlite3_column_bytes(s, 2);
	while (hp && hl) {
		const char *eol = memchr(hp, '\n', hl);
		size_t n = eol ? (size_t)(eol - hp) + 1 : hl, t = n;
		while (t && (hp[t - 1] == '\n' || hp[t - 1] == '\r'))
			t--;
		if (t && !dropped_request_header(hp, t)) {
			char *h = fl_xstrndup(hp, t);
			x->hdrs = curl_slist_append(x->hdrs, h);
			free(h);
		}
		hp += n;
		hl -= n;
	}
	snprintf(line, sizeof(line), "X-Flint-Request-Id: %s", e->id);
	x->hdrs = curl_slist_append(x->hdrs, line);
	snprintf(line, sizeof(line), "X-Flint-Attempt: %u", e->attempts);
	x->hdrs = curl_slist_append(x->hdrs, line);
	x->hdrs = curl_slist_append(x->hdrs, "Expect:");
	blen = (size_t)sqlite3_column_bytes(s, 3);
	has_body = blen > 0 || !(strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
				 strcmp(method, "DELETE") == 0 || strcmp(method, "OPTIONS") == 0);
	if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(x->h, CURLOPT_NOBODY, 1L);
	} else if (has_body) {
		x->body = fl_xmalloc(blen + 1);
		memcpy(x->body, blen ? sqlite3_column_blob(s, 3) : "", blen);
		curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
		curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, x->body);
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, method);
	}
	curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
	sqlite3_finalize(s);

	o = fl_xcalloc(1, sizeof(*o));
	o->kind = OP_RUNNING;
	snprintf(o->id, sizeof(o->id), "%s", e->id);
	o->attempts = e->attempts;
	o->t_ms = fl_wall_ms();
	fl_async__push_op(a, o);
	atomic_fetch_add(&q->attempts, 1);
	q->running++;
	a->inflight++;
	curl_multi_add_handle(a->multi, x->h);
}

void fl_async__start_callback(fl_async *a, struct async_ent *e)
{
	sqlite3_stmt *s = NULL;
	struct xfer *x;
	char line[256];
	const char *rh;
	size_t rhl, blen;

	sqlite3_prepare_v2(a->rdb,
			   "SELECT callback, status, code, resp_headers, resp_body FROM requests"
			   " WHERE id=?1 AND cb_state='pending'",
			   -1, &s, NULL);
	fl_async__bind_text(s, 1, e->id);
	if (sqlite3_step(s) != SQLITE_ROW || sqlite3_column_type(s, 0) == SQLITE_NULL) {
		sqlite3_finalize(s);
		free(e);
		return;
	}
	x = xfer_new(a, e, (const char *)sqlite3_column_text(s, 0), CB_TIMEOUT_MS);
	snprintf(line, sizeof(line), "X-Flint-Request-Id: %s", e->id);
	x->hdrs = curl_slist_append(x->hdrs, line);
	snprintf(line, sizeof(line), "X-Flint-Status: %s", (const char *)sqlite3_column_text(s, 1));
	x->hdrs = curl_slist_append(x->hdrs, line);
	snprintf(line, sizeof(line), "X-Flint-Status-Code: %d", sqlite3_column_int(s, 2));
	x->hdrs = curl_slist_append(x->hdrs, line);
	x->hdrs = curl_slist_append(x->hdrs, "Expect:");
	/* The function's content type goes along with its body. */
	rh = sqlite3_column_blob(s, 3);
	rhl = (size_t)sqlite3_column_bytes(s, 3);
	while (rh && rhl) {
		const char *eol = memchr(rh, '\n', rhl);
		size_t n = eol ? (size_t)(eol - rh) + 1 : rhl, t = n;
		while (t && (rh[t - 1] == '\n' || rh[t - 1] == '\r'))
			t--;
		if (t > 13 && fl_strncaseeq(rh, 13, "content-type:")) {
			char *h = fl_xstrndup(rh, t);
			x->hdrs = curl_slist_append(x->hdrs, h);
			free(h);
		}
		rh += n;
		rhl -= n;
	}
	blen = (size_t)sqlite3_column_bytes(s, 4);
	x->body = fl_xmalloc(blen + 1);
	memcpy(x->body, blen ? sqlite3_column_blob(s, 4) : "", blen);
	curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
	curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, x->body);
	curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
	sqlite3_finalize(s);
	a->cb_inflight++;
	a->inflight++;
	curl_multi_add_handle(a->multi, x->h);
}

void fl_async__pump(fl_async *a)
{
	struct async_fnq *q;

	if (!a->resumed || a->stopping)
		return;
	for (q = a->fns; q; q = q->next) {
		while (q->known && q->head && q->running < q->conf.concurrency) {
			struct async_ent *e = q->head;
			q->head = e->next;
			if (q->head == NULL)
				q->tail = NULL;
			start_attempt(a, e);
		}
	}
}

void fl_async__workers_init(fl_async *a)
{
	a->multi = curl_multi_init();
	curl_multi_setopt(a->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(a->multi, CURLMOPT_SOCKETDATA, a);
	curl_multi_setopt(a->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(a->multi, CURLMOPT_TIMERDATA, a);
}

void fl_async__abort_xfers(fl_async *a)
{
	struct xfer *x;

	while ((x = a->xfers) != NULL) {
		curl_multi_remove_handle(a->multi, x->h);
		curl_easy_cleanup(x->h);
		free(x->e);
		xfer_free(x);
	}
}
