/* trigger_redis.c -- Redis Streams trigger: a consumer group read on a thread of
 * its own with a blocking hiredis connection; each entry becomes a durable async
 * request and is acknowledged (XACK) only once that request succeeded. Failed
 * entries go to a dead-letter stream; entries a crashed consumer left pending
 * are reclaimed after claim_after. */
#include "events/trigger_redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/sha256.h"
#include "core/util.h"

#define BLOCK_MS	  1000 /* XREADGROUP wait when nothing is outstanding */
#define POLL_MS		  100  /* outcome polling (and read wait) while entries run */
#define BACKOFF_MIN_MS	  100  /* reconnect back-off */
#define BACKOFF_MAX_MS	  5000
#define ENQUEUE_LOST_MS	  10000 /* an enqueue not durable by then is made again */
#define CONNECT_TIMEOUT_S 2
#define IO_TIMEOUT_S	  10 /* a Redis that stops answering counts as gone */
#define ID_LEN		  48 /* the async queue's request id limit */

/* A stream entry handed to the async queue and not yet acknowledged. */
struct entry {
	char sid[ID_LEN]; /* the stream entry id */
	char rid[ID_LEN]; /* the async request id */
	char **argv;	  /* field, value, field, value... (binary-safe copies) */
	size_t *argl;
	size_t argc;
	uint64_t enq_ms;
};

struct fl_trigger_redis {
	fl_async *a;
	char *fn;
	json_t *spec;
	char *url, *stream, *group, *dead;
	char host[256], *user, *password;
	int port, db;
	unsigned batch, concurrency, max_deliveries;
	uint64_t claim_after_ms;
	char consumer[128];
	char idprefix[11]; /* names this function + stream + group in request ids */

	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int stop;	   /* under mu */
	redisContext *ctx; /* set and cleared under mu: stop interrupts a blocking read */
	char state[256];   /* under mu */

	/* Consumer thread only. */
	struct entry *ents;
	size_t nents;
	int broken;  /* the connection failed: reconnect */
	int history; /* own pending entries still to read after (re)connecting */
	char hist_from[ID_LEN];
	char claim_cursor[ID_LEN];
	uint64_t last_poll_ms, last_claim_ms;
	char last_error[256]; /* logged once until it changes */

	atomic_uint_fast64_t received, acked, dead_lettered, reclaimed, outstanding;
	atomic_int_fast64_t lag; /* entries of the stream the group has not read; -1 unknown */
	uint64_t last_lag_ms;
};

static void set_state(fl_trigger_redis *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_state(fl_trigger_redis *r, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&r->mu);
	va_start(ap, fmt);
	vsnprintf(r->state, sizeof(r->state), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&r->mu);
}

static int stopping(fl_trigger_redis *r)
{
	int s;

	pthread_mutex_lock(&r->mu);
	s = r->stop;
	pthread_mutex_unlock(&r->mu);
	return s;
}

/* Sleeps ms or until stopped. */
static void nap(fl_trigger_redis *r, uint64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&r->mu);
	while (!r->stop && pthread_cond_timedwait(&r->cond, &r->mu, &ts) == 0)
		;
	pthread_mutex_unlock(&r->mu);
}

/* redis://[[user]:password@]host[:port][/db] */
static int parse_url(fl_trigger_redis *r, const char *url)
{
	const char *p = url + strlen("redis://"), *at, *end, *hs, *he;
	char *rest;

	r->port = 6379;
	end = p + strcspn(p, "/");
	at = memrchr(p, '@', (size_t)(end - p));
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (colon) {
			if (colon > p)
				r->user = fl_xstrndup(p, (size_t)(colon - p));
			r->password = fl_xstrndup(colon + 1, (size_t)(at - colon - 1));
		} else {
			r->password = fl_xstrndup(p, (size_t)(at - p));
		}
		p = at + 1;
	}
	if (*p == '[') {
		hs = p + 1;
		he = memchr(hs, ']', (size_t)(end - hs));
		if (he == NULL)
			return -EINVAL;
		p = he + 1;
	} else {
		hs = p;
		he = p + strcspn(p, ":/");
		p = he;
	}
	if (he == hs || (size_t)(he - hs) >= sizeof(r->host))
		return -EINVAL;
	memcpy(r->host, hs, (size_t)(he - hs));
	r->host[he - hs] = 0;
	if (*p == ':') {
		long port = strtol(p + 1, &rest, 10);
		if (rest == p + 1 || port < 1 || port > 65535 || (*rest && *rest != '/'))
			return -EINVAL;
		r->port = (int)port;
		p = rest;
	}
	if (*p == '/' && p[1]) {
		long db = strtol(p + 1, &rest, 10);
		if (*rest || db < 0 || db > 1000000)
			return -EINVAL;
		r->db = (int)db;
	}
	return 0;
}

/* ---- commands ---- */

/* Runs a command. NULL when the connection failed (r->broken is then set);
 * error replies are returned for the caller to look at. */
static redisReply *cmdv(fl_trigger_redis *r, int argc, const char **argv, const size_t *argl)
{
	redisReply *rep;

	if (r->broken || r->ctx == NULL)
		return NULL;
	rep = redisCommandArgv(r->ctx, argc, argv, argl);
	if (rep == NULL) {
		r->broken = 1;
		snprintf(r->last_error, sizeof(r->last_error), "%s",
			 r->ctx->errstr[0] ? r->ctx->errstr : "connection lost");
	}
	return rep;
}

static redisReply *cmd(fl_trigger_redis *r, const char *fmt, ...)
{
	redisReply *rep;
	va_list ap;

	if (r->broken || r->ctx == NULL)
		return NULL;
	va_start(ap, fmt);
	rep = redisvCommand(r->ctx, fmt, ap);
	va_end(ap);
	if (rep == NULL) {
		r->broken = 1;
		snprintf(r->last_error, sizeof(r->last_error), "%s",
			 r->ctx->errstr[0] ? r->ctx->errstr : "connection lost");
	}
	return rep;
}

/* An error reply other than a lost connection: logged once until it changes. */
static void reply_error(fl_trigger_redis *r, const char *what, const redisReply *rep)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "%s: %.*s", what, (int)rep->len, rep->str);
	if (strcmp(msg, r->last_error) != 0) {
		fl_error("triggers", "function %s: Redis stream %s: %s", r->fn, r->stream, msg);
		snprintf(r->last_error, sizeof(r->last_error), "%s", msg);
	}
	set_state(r, "error: %s", msg);
}

static int ack(fl_trigger_redis *r, const char *sid)
{
	redisReply *rep = cmd(r, "XACK %s %s %s", r->stream, r->group, sid);
	int ok = rep && rep->type == REDIS_REPLY_INTEGER;

	if (rep && !ok && rep->type == REDIS_REPLY_ERROR)
		reply_error(r, "XACK", rep);
	freeReplyObject(rep);
	return ok ? 0 : -EIO;
}

/* Copies the entry's fields and the reason to the dead-letter stream, then
 * acknowledges the entry. 0 or -EIO (the entry then stays pending). */
static int dead_letter(fl_trigger_redis *r, const char *sid, char **fv, const size_t *fl, size_t n,
		       const char *reason)
{
	size_t argc = n + 9, i = 0;
	const char **argv = fl_xcalloc(argc, sizeof(*argv));
	size_t *argl = fl_xcalloc(argc, sizeof(*argl));
	redisReply *rep;
	int ok;

#define ARG(s, l)                                                                                  \
	do {                                                                                       \
		argv[i] = (s);                                                                     \
		argl[i++] = (l);                                                                   \
	} while (0)
	ARG("XADD", 4);
	ARG(r->dead, strlen(r->dead));
	ARG("*", 1);
	for (size_t k = 0; k < n; k++)
		ARG(fv[k], fl[k]);
	ARG("flint.stream", 12);
	ARG(r->stream, strlen(r->stream));
	ARG("flint.id", 8);
	ARG(sid, strlen(sid));
	ARG("flint.reason", 12);
	ARG(reason, strlen(reason));
#undef ARG
	rep = cmdv(r, (int)i, argv, argl);
	ok = rep && rep->type == REDIS_REPLY_STRING;
	if (rep && !ok && rep->type == REDIS_REPLY_ERROR)
		reply_error(r, "XADD to the dead-letter stream", rep);
	freeReplyObject(rep);
	free(argv);
	free(argl);
	if (!ok || ack(r, sid) < 0)
		return -EIO;
	atomic_fetch_add(&r->dead_lettered, 1);
	fl_warn("triggers", "function %s: Redis stream %s entry %s moved to %s: %s", r->fn,
		r->stream, sid, r->dead, reason);
	return 0;
}

/* How many times the group delivered sid (XPENDING), or -1. */
static long deliveries(fl_trigger_redis *r, const char *sid)
{
	redisReply *rep = cmd(r, "XPENDING %s %s %s %s 1", r->stream, r->group, sid, sid);
	long n = -1;

	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
	    rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements == 4 &&
	    rep->element[0]->element[3]->type == REDIS_REPLY_INTEGER)
		n = (long)rep->element[0]->element[3]->integer;
	freeReplyObject(rep);
	return n;
}

/* ---- entries ---- */

static void entry_free(struct entry *e)
{
	for (size_t i = 0; i < e->argc; i++)
		free(e->argv[i]);
	free(e->argv);
	free(e->argl);
}

static struct entry *find(fl_trigger_redis *r, const char *sid)
{
	for (size_t i = 0; i < r->nents; i++)
		if (strcmp(r->ents[i].sid, sid) == 0)
			return &r->ents[i];
	return NULL;
}

static void drop(fl_trigger_redis *r, struct entry *e)
{
	entry_free(e);
	*e = r->ents[--r->nents];
	atomic_store(&r->outstanding, r->nents);
}

static int enqueue(fl_trigger_redis *r, struct entry *e)
{
	struct fl_async_item it;
	json_t *o = json_object();
	char hdrs[512], src[300], *body = NULL;
	int rc = -EINVAL;

	for (size_t i = 0; i + 1 < e->argc; i += 2) {
		json_t *k = json_stringn(e->argv[i], e->argl[i]);
		json_t *v = json_stringn(e->argv[i + 1], e->argl[i + 1]);
		if (k == NULL || v == NULL) {
			json_decref(k);
			json_decref(v);
			goto out;
		}
		json_object_set_new(o, json_string_value(k), v);
		json_decref(k);
	}
	body = json_dumps(o, JSON_COMPACT);
	if (body == NULL)
		goto out;
	snprintf(hdrs, sizeof(hdrs),
		 "Content-Type: application/json\r\nX-Flint-Trigger: redis\r\n"
		 "X-Flint-Redis-Stream: %s\r\nX-Flint-Redis-Id: %s\r\n",
		 r->stream, e->sid);
	snprintf(src, sizeof(src), "redis:%s", r->stream);
	memset(&it, 0, sizeof(it));
	it.fn = r->fn;
	it.method = "POST";
	it.target = "/";
	it.headers = hdrs;
	it.headers_len = strlen(hdrs);
	it.body = body;
	it.body_len = strlen(body);
	it.request_id = e->rid;
	it.source = src;
	rc = fl_async_enqueue(r->a, &it, NULL, NULL);
	e->enq_ms = fl_now_ms();
out:
	free(body);
	json_decref(o);
	return rc;
}

/* One entry of a read or claim reply: [id, [field, value, ...]]. check says
 * whether it was delivered before (its delivery count decides). */
static void take(fl_trigger_redis *r, const redisReply *ent, int check)
{
	const redisReply *id, *fields;
	struct entry e;
	char hex[65], key[600];
	int rc;

	if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
	    ent->element[0]->type != REDIS_REPLY_STRING || ent->element[0]->len >= ID_LEN)
		return;
	id = ent->element[0];
	fields = ent->element[1];
	if (find(r, id->str))
		return; /* already running here (our own reclaimed or re-read entry) */
	atomic_fetch_add(&r->received, 1);
	if (fields->type != REDIS_REPLY_ARRAY) {
		ack(r, id->str); /* deleted from the stream meanwhile: nothing to run */
		return;
	}
	memset(&e, 0, sizeof(e));
	snprintf(e.sid, sizeof(e.sid), "%s", id->str);
	e.argc = fields->elements;
	e.argv = fl_xcalloc(e.argc ? e.argc : 1, sizeof(*e.argv));
	e.argl = fl_xcalloc(e.argc ? e.argc : 1, sizeof(*e.argl));
	for (size_t i = 0; i < e.argc; i++) {
		const redisReply *f = fields->element[i];
		e.argv[i] = fl_xmalloc(f->len + 1);
		memcpy(e.argv[i], f->str ? f->str : "", f->len);
		e.argv[i][f->len] = 0;
		e.argl[i] = f->len;
	}
	if (check) {
		long n = deliveries(r, e.sid);
		if (n > (long)r->max_deliveries) {
			char why[160];
			snprintf(why, sizeof(why), "delivered %ld times (max_deliveries %u)", n,
				 r->max_deliveries);
			dead_letter(r, e.sid, e.argv, e.argl, e.argc, why);
			entry_free(&e);
			return;
		}
	}
	/* The request id is derived from the stream entry, so an entry delivered
	 * again (after a crash or a reclaim) is stored once and not run twice. */
	snprintf(e.rid, sizeof(e.rid), "redis-%s-%s", r->idprefix, e.sid);
	if (strlen(e.rid) + 1 >= sizeof(e.rid)) {
		snprintf(key, sizeof(key), "%s %s", r->idprefix, e.sid);
		fl_sha256_hex(key, strlen(key), hex);
		snprintf(e.rid, sizeof(e.rid), "redis-%.32s", hex);
	}
	rc = enqueue(r, &e);
	if (rc == -EINVAL) {
		dead_letter(r, e.sid, e.argv, e.argl, e.argc,
			    "a field name or value is not UTF-8 text, so the entry cannot be "
			    "passed on as JSON");
		entry_free(&e);
		return;
	}
	if (rc < 0) {
		entry_free(&e); /* shutting down: it stays pending in Redis */
		return;
	}
	r->ents = realloc(r->ents, (r->nents + 1) * sizeof(*r->ents));
	if (r->ents == NULL) {
		fl_error("triggers", "out of memory");
		abort();
	}
	r->ents[r->nents++] = e;
	atomic_store(&r->outstanding, r->nents);
}

/* A read reply: [[stream, [entry...]]] or nil. Returns how many entries came. */
static size_t take_read(fl_trigger_redis *r, const redisReply *rep, int check, char *last)
{
	const redisReply *ents;
	size_t i;

	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
	    rep->element[0]->type != REDIS_REPLY_ARRAY || rep->element[0]->elements != 2)
		return 0;
	ents = rep->element[0]->element[1];
	if (ents->type != REDIS_REPLY_ARRAY)
		return 0;
	for (i = 0; i < ents->elements; i++) {
		const redisReply *ent = ents->element[i];
		take(r, ent, check);
		if (last && ent->type == REDIS_REPLY_ARRAY && ent->elements == 2 &&
		    ent->element[0]->type == REDIS_REPLY_STRING)
			snprintf(last, ID_LEN, "%s", ent->element[0]->str);
	}
	return i;
}

/* ---- the loop ---- */

/* Acknowledges entries whose request succeeded; dead-letters those that
 * failed or died. */
static void poll_outcomes(fl_trigger_redis *r)
{
	size_t i = 0;

	while (i < r->nents && !r->broken) {
		struct entry *e = &r->ents[i];
		json_t *row = NULL;
		const char *st;
		int rc = fl_async_get(r->a, e->rid, &row);

		if (rc == -ENOENT && fl_now_ms() - e->enq_ms > ENQUEUE_LOST_MS) {
			enqueue(r, e); /* the queue could not store it: try again */
			i++;
			continue;
		}
		if (rc < 0) {
			i++;
			continue;
		}
		st = json_string_value(json_object_get(row, "status"));
		if (st && strcmp(st, "succeeded") == 0) {
			if (ack(r, e->sid) == 0) {
				atomic_fetch_add(&r->acked, 1);
				drop(r, e);
				json_decref(row);
				continue;
			}
		} else if (st && (strcmp(st, "failed") == 0 || strcmp(st, "dead") == 0)) {
			char why[400];
			const char *err = json_string_value(json_object_get(row, "error"));
			if (err)
				snprintf(why, sizeof(why), "request %s is %s: %s", e->rid, st, err);
			else
				snprintf(
				    why, sizeof(why),
				    "request %s is %s: the function answered %lld", e->rid, st,
				    (long long)json_integer_value(json_object_get(row, "code")));
			if (dead_letter(r, e->sid, e->argv, e->argl, e->argc, why) == 0) {
				drop(r, e);
				json_decref(row);
				continue;
			}
		}
		json_decref(row);
		i++;
	}
}

/* Keeps our running entries from looking abandoned, then takes over entries
 * other consumers (or an earlier run of this one) left pending too long. */
static void reclaim(fl_trigger_redis *r)
{
	redisReply *rep;
	size_t free_slots = r->concurrency > r->nents ? r->concurrency - r->nents : 0;
	char idle[24], count[24];

	if (r->nents) {
		size_t argc = 6 + r->nents, k = 0;
		const char **argv = fl_xcalloc(argc, sizeof(*argv));
		argv[k++] = "XCLAIM";
		argv[k++] = r->stream;
		argv[k++] = r->group;
		argv[k++] = r->consumer;
		argv[k++] = "0";
		for (size_t i = 0; i < r->nents; i++)
			argv[k++] = r->ents[i].sid;
		argv[k++] = "JUSTID"; /* resets the idle time without counting a delivery */
		freeReplyObject(cmdv(r, (int)k, argv, NULL));
		free(argv);
	}
	if (free_slots == 0 || r->broken)
		return;
	/* hiredis formats only plain conversions: numbers go in as strings. */
	snprintf(idle, sizeof(idle), "%llu", (unsigned long long)r->claim_after_ms);
	snprintf(count, sizeof(count), "%zu", free_slots);
	rep = cmd(r, "XAUTOCLAIM %s %s %s %s %s COUNT %s", r->stream, r->group, r->consumer, idle,
		  r->claim_cursor, count);
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2 &&
	    rep->element[0]->type == REDIS_REPLY_STRING &&
	    rep->element[1]->type == REDIS_REPLY_ARRAY) {
		size_t before = atomic_load(&r->received);
		snprintf(r->claim_cursor, sizeof(r->claim_cursor), "%s", rep->element[0]->str);
		for (size_t i = 0; i < rep->element[1]->elements; i++)
			take(r, rep->element[1]->element[i], 1);
		atomic_fetch_add(&r->reclaimed, atomic_load(&r->received) - before);
	} else if (rep && rep->type == REDIS_REPLY_ERROR) {
		reply_error(r, "XAUTOCLAIM", rep);
	}
	freeReplyObject(rep);
}

/* How far the group is behind the stream: XINFO GROUPS' "lag" (Redis 7). */
static void read_lag(fl_trigger_redis *r)
{
	redisReply *rep = cmd(r, "XINFO GROUPS %s", r->stream);
	size_t i, k;

	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(rep);
		return;
	}
	for (i = 0; i < rep->elements; i++) {
		redisReply *g = rep->element[i];
		const char *name = NULL;
		long long lag = -1;
		if (g->type != REDIS_REPLY_ARRAY)
			continue;
		for (k = 0; k + 1 < g->elements; k += 2) {
			redisReply *key = g->element[k], *val = g->element[k + 1];
			if (key->type != REDIS_REPLY_STRING && key->type != REDIS_REPLY_STATUS)
				continue;
			if (strcmp(key->str, "name") == 0 && val->type == REDIS_REPLY_STRING)
				name = val->str;
			else if (strcmp(key->str, "lag") == 0 && val->type == REDIS_REPLY_INTEGER)
				lag = val->integer;
		}
		if (name && strcmp(name, r->group) == 0)
			atomic_store(&r->lag, lag);
	}
	freeReplyObject(rep);
}

static void step(fl_trigger_redis *r)
{
	uint64_t now = fl_now_ms(), every = r->claim_after_ms / 2;
	size_t free_slots;
	redisReply *rep;
	char count[24], block[24];

	if (r->nents && now - r->last_poll_ms >= POLL_MS) {
		r->last_poll_ms = now;
		poll_outcomes(r);
	}
	if (now - r->last_claim_ms >= every) {
		r->last_claim_ms = now;
		reclaim(r);
	}
	if (now - r->last_lag_ms >= 1000 && !r->broken) {
		r->last_lag_ms = now;
		read_lag(r);
	}
	free_slots = r->concurrency > r->nents ? r->concurrency - r->nents : 0;
	if (r->history && free_slots && !r->broken) {
		/* Our own pending entries (from before a restart): delivered again. */
		snprintf(count, sizeof(count), "%zu", free_slots);
		rep = cmd(r, "XREADGROUP GROUP %s %s COUNT %s STREAMS %s %s", r->group, r->consumer,
			  count, r->stream, r->hist_from);
		if (rep && rep->type != REDIS_REPLY_ERROR) {
			if (take_read(r, rep, 1, r->hist_from) < free_slots)
				r->history = 0;
		} else if (rep) {
			reply_error(r, "XREADGROUP", rep);
			r->broken = 1;
		}
		freeReplyObject(rep);
		return;
	}
	if (r->broken)
		return;
	if (free_slots == 0) {
		nap(r, POLL_MS);
		return;
	}
	snprintf(count, sizeof(count), "%zu",
		 free_slots < r->batch ? free_slots : (size_t)r->batch);
	snprintf(block, sizeof(block), "%d", r->nents ? POLL_MS : BLOCK_MS);
	rep = cmd(r, "XREADGROUP GROUP %s %s COUNT %s BLOCK %s STREAMS %s >", r->group, r->consumer,
		  count, block, r->stream);
	if (rep && rep->type == REDIS_REPLY_ERROR) {
		/* NOGROUP (the group was destroyed) and the like: connect again, which
		 * creates the group again, after a pause. */
		reply_error(r, "XREADGROUP", rep);
		r->broken = 1;
	} else if (rep) {
		take_read(r, rep, 0, NULL);
	}
	freeReplyObject(rep);
}

static int connect_redis(fl_trigger_redis *r, char *why, size_t whylen)
{
	struct timeval tv = {CONNECT_TIMEOUT_S, 0}, io = {IO_TIMEOUT_S, 0};
	redisContext *c = redisConnectWithTimeout(r->host, r->port, tv);
	redisReply *rep = NULL;

	if (c == NULL || c->err) {
		snprintf(why, whylen, "%s", c ? c->errstr : "out of memory");
		redisFree(c);
		return -EIO;
	}
	redisSetTimeout(c, io);
	pthread_mutex_lock(&r->mu);
	if (r->stop) {
		pthread_mutex_unlock(&r->mu);
		redisFree(c);
		return -ESHUTDOWN;
	}
	r->ctx = c;
	pthread_mutex_unlock(&r->mu);
	r->broken = 0;
	if (r->password) {
		rep = r->user ? cmd(r, "AUTH %s %s", r->user, r->password)
			      : cmd(r, "AUTH %s", r->password);
		if (rep == NULL || rep->type == REDIS_REPLY_ERROR)
			goto fail;
		freeReplyObject(rep);
	}
	if (r->db) {
		char db[16];
		snprintf(db, sizeof(db), "%d", r->db);
		rep = cmd(r, "SELECT %s", db);
		if (rep == NULL || rep->type == REDIS_REPLY_ERROR)
			goto fail;
		freeReplyObject(rep);
	}
	/* New entries only ($): a new trigger does not replay the stream's past. */
	rep = cmd(r, "XGROUP CREATE %s %s $ MKSTREAM", r->stream, r->group);
	if (rep == NULL ||
	    (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "BUSYGROUP", 9) != 0))
		goto fail;
	freeReplyObject(rep);
	return 0;
fail:
	snprintf(why, whylen, "%s", rep ? rep->str : r->last_error);
	freeReplyObject(rep);
	pthread_mutex_lock(&r->mu);
	r->ctx = NULL;
	pthread_mutex_unlock(&r->mu);
	redisFree(c);
	return -EIO;
}

static void disconnect(fl_trigger_redis *r)
{
	redisContext *c;

	pthread_mutex_lock(&r->mu);
	c = r->ctx;
	r->ctx = NULL;
	pthread_mutex_unlock(&r->mu);
	redisFree(c);
}

static void *run(void *arg)
{
	fl_trigger_redis *r = arg;
	uint64_t backoff = BACKOFF_MIN_MS;
	int outage = 0;
	char why[256];

	while (!stopping(r)) {
		if (r->ctx == NULL) {
			if (connect_redis(r, why, sizeof(why)) < 0) {
				if (stopping(r))
					break;
				if (!outage)
					fl_warn(
					    "triggers",
					    "function %s: cannot use Redis at %s (%s); retrying "
					    "until it answers",
					    r->fn, r->url, why);
				outage = 1;
				set_state(r, "connecting: %s", why);
				nap(r, backoff);
				backoff =
				    backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
				continue;
			}
			r->last_error[0] = 0;
			r->history = 1;
			snprintf(r->hist_from, sizeof(r->hist_from), "0");
			snprintf(r->claim_cursor, sizeof(r->claim_cursor), "0-0");
			set_state(r, "running");
		}
		step(r);
		if (!r->broken) {
			/* Only a command that worked ends an outage: a server that accepts
			 * connections and then fails them still backs off. */
			if (outage)
				fl_info("triggers", "function %s: Redis at %s answers again", r->fn,
					r->url);
			outage = 0;
			backoff = BACKOFF_MIN_MS;
		} else {
			disconnect(r);
			if (stopping(r))
				break;
			if (!outage)
				fl_warn("triggers",
					"function %s: lost Redis at %s (%s); entries not yet "
					"acknowledged stay pending there; reconnecting",
					r->fn, r->url, r->last_error);
			outage = 1;
			set_state(r, "connecting: %s", r->last_error);
			nap(r, backoff);
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
		}
	}
	disconnect(r);
	return NULL;
}

/* ---- public ---- */

fl_trigger_redis *fl_trigger_redis_start(fl_async *a, const char *fn, json_t *spec)
{
	fl_trigger_redis *r = fl_xcalloc(1, sizeof(*r));
	json_t *g = json_object_get(spec, "group"), *d = json_object_get(spec, "dead_letter");
	const char *ca = json_string_value(json_object_get(spec, "claim_after"));
	pthread_condattr_t ca_attr;
	char host[64], key[600], hex[65];

	r->a = a;
	atomic_init(&r->lag, -1);
	r->fn = fl_xstrdup(fn);
	r->spec = json_incref(spec);
	r->url = fl_xstrdup(json_string_value(json_object_get(spec, "url")));
	r->stream = fl_xstrdup(json_string_value(json_object_get(spec, "stream")));
	if (json_is_string(g)) {
		r->group = fl_xstrdup(json_string_value(g));
	} else {
		/* Each function gets every entry: a group of its own. */
		r->group = fl_xmalloc(strlen(fn) + 7);
		sprintf(r->group, "flint-%s", fn);
	}
	if (json_is_string(d)) {
		r->dead = fl_xstrdup(json_string_value(d));
	} else {
		r->dead = fl_xmalloc(strlen(r->stream) + 6);
		sprintf(r->dead, "%s:dead", r->stream);
	}
	r->batch = (unsigned)json_integer_value(json_object_get(spec, "batch"));
	r->concurrency = (unsigned)json_integer_value(json_object_get(spec, "concurrency"));
	r->max_deliveries = (unsigned)json_integer_value(json_object_get(spec, "max_deliveries"));
	if (r->batch == 0)
		r->batch = 10;
	if (r->concurrency == 0)
		r->concurrency = 10;
	if (r->max_deliveries == 0)
		r->max_deliveries = 5;
	if (ca == NULL || fl_parse_duration(ca, &r->claim_after_ms) < 0 || r->claim_after_ms < 1000)
		r->claim_after_ms = 60000;
	/* A stable name: after a restart this host finds its own pending entries. */
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = 0;
	snprintf(r->consumer, sizeof(r->consumer), "flint-%s", host);
	snprintf(key, sizeof(key), "%s %s %s %s", fn, r->url, r->stream, r->group);
	fl_sha256_hex(key, strlen(key), hex);
	snprintf(r->idprefix, sizeof(r->idprefix), "%.10s", hex);
	snprintf(r->state, sizeof(r->state), "connecting");
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_init(&ca_attr);
	pthread_condattr_setclock(&ca_attr, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca_attr);
	pthread_condattr_destroy(&ca_attr);
	if (parse_url(r, r->url) < 0) {
		snprintf(r->state, sizeof(r->state),
			 "error: url %s is not redis://[[user]:password@]host[:port][/db]", r->url);
		fl_error("triggers", "function %s: Redis trigger: %s", fn, r->state + 7);
		r->stop = 1;
		return r;
	}
	if (pthread_create(&r->thr, NULL, run, r) != 0) {
		snprintf(r->state, sizeof(r->state), "error: cannot start a thread");
		fl_error("triggers", "function %s: Redis trigger: cannot start a thread", fn);
		r->stop = 1;
		return r;
	}
	fl_info("triggers", "function %s: consuming Redis stream %s (group %s) at %s", fn,
		r->stream, r->group, r->url);
	return r;
}

void fl_trigger_redis_stop(fl_trigger_redis *r)
{
	int had_thread;

	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	had_thread = !r->stop;
	r->stop = 1;
	/* Wakes a blocking XREADGROUP at once instead of after its BLOCK time. */
	if (r->ctx)
		shutdown(r->ctx->fd, SHUT_RDWR);
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
	if (had_thread)
		pthread_join(r->thr, NULL);
	for (size_t i = 0; i < r->nents; i++)
		entry_free(&r->ents[i]);
	free(r->ents);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->mu);
	free(r->user);
	free(r->password);
	free(r->url);
	free(r->stream);
	free(r->group);
	free(r->dead);
	free(r->fn);
	json_decref(r->spec);
	free(r);
}

void fl_trigger_redis_info(fl_trigger_redis *r, json_t *j)
{
	pthread_mutex_lock(&r->mu);
	json_object_set_new(j, "state", json_string(r->state));
	pthread_mutex_unlock(&r->mu);
	json_object_set_new(j, "group", json_string(r->group));
	json_object_set_new(j, "dead_letter", json_string(r->dead));
	json_object_set_new(j, "fired", json_integer((json_int_t)atomic_load(&r->received)));
	json_object_set_new(j, "acked", json_integer((json_int_t)atomic_load(&r->acked)));
	json_object_set_new(j, "dead_lettered",
			    json_integer((json_int_t)atomic_load(&r->dead_lettered)));
	json_object_set_new(j, "reclaimed", json_integer((json_int_t)atomic_load(&r->reclaimed)));
	json_object_set_new(j, "outstanding",
			    json_integer((json_int_t)atomic_load(&r->outstanding)));
}

void fl_trigger_redis_metrics_head(fl_buf *out)
{
	fl_buf_puts(out, "# HELP flint_trigger_redis_entries_total Redis stream entries a trigger "
			 "received, acknowledged after success, dead-lettered or reclaimed.\n"
			 "# TYPE flint_trigger_redis_entries_total counter\n"
			 "# HELP flint_trigger_redis_outstanding Entries handed to the async queue "
			 "and not acknowledged yet.\n"
			 "# TYPE flint_trigger_redis_outstanding gauge\n"
			 "# HELP flint_trigger_redis_lag Stream entries the consumer group has not "
			 "read yet (-1: unknown), refreshed every second.\n"
			 "# TYPE flint_trigger_redis_lag gauge\n");
}

void fl_trigger_redis_metrics(fl_trigger_redis *r, fl_buf *out)
{
	static const char *const names[] = {"received", "acked", "dead_lettered", "reclaimed"};
	atomic_uint_fast64_t *vals[] = {&r->received, &r->acked, &r->dead_lettered, &r->reclaimed};

	for (size_t i = 0; i < 4; i++)
		fl_buf_printf(out,
			      "flint_trigger_redis_entries_total{function=\"%s\",stream=\"%s\","
			      "outcome=\"%s\"} %llu\n",
			      r->fn, r->stream, names[i], (unsigned long long)atomic_load(vals[i]));
	fl_buf_printf(out, "flint_trigger_redis_outstanding{function=\"%s\",stream=\"%s\"} %llu\n",
		      r->fn, r->stream, (unsigned long long)atomic_load(&r->outstanding));
	fl_buf_printf(out, "flint_trigger_redis_lag{function=\"%s\",stream=\"%s\"} %lld\n", r->fn,
		      r->stream, (long long)atomic_load(&r->lag));
}
