/* triggers.c -- a function's triggers as the spec declares them: kept across
 * deploys when unchanged, started and stopped otherwise; the cron trigger runs
 * here on the async loop and fires through the durable queue; Redis Streams and
 * NATS consumers run on threads of their own (trigger_redis.c, trigger_nats.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/sha256.h"
#include "core/util.h"
#include "events/async_int.h"
#include "events/cron.h"
#include "events/trigger_nats.h"
#include "events/trigger_redis.h"

/* Fire delay (actual - scheduled) buckets in milliseconds. */
static const double delay_bounds[] = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000};
#define NDELAY (sizeof(delay_bounds) / sizeof(delay_bounds[0]))

struct fl_trig {
	struct fl_trig *next;
	fl_async *a;
	char *fn;
	char *key;  /* function + the trigger's JSON: names its stored state */
	char *desc; /* the schedule and its zone, for listings */
	json_t *spec;
	char state[160];
	fl_trigger_redis *redis;
	fl_trigger_nats *nats;
	/* cron */
	struct fl_cron cron;
	fl_tz *tz;
	int run_once;
	char *payload;
	size_t payload_len;
	uv_timer_t timer;
	int64_t next_ms, last_ms;
	int stopped;
	/* counters, read by /metrics from other threads */
	atomic_uint_fast64_t fired;
	atomic_uint_fast64_t delay[NDELAY + 1];
	atomic_uint_fast64_t delay_sum_us;
};

static void cron_arm(struct fl_trig *t);

static void cron_fire(struct fl_trig *t, int64_t scheduled_ms, int64_t now_ms)
{
	struct fl_async_item it;
	char id[64], hdrs[256], src[160], when[40];
	char hex[65];
	time_t secs = (time_t)(scheduled_ms / 1000);
	struct tm tm;
	double d = (double)(now_ms - scheduled_ms);
	size_t i;

	if (d < 0)
		d = 0;
	for (i = 0; i < NDELAY && d > delay_bounds[i]; i++)
		;
	atomic_fetch_add(&t->delay[i], 1);
	atomic_fetch_add(&t->delay_sum_us, (uint64_t)(d * 1000));
	atomic_fetch_add(&t->fired, 1);
	/* The id is derived from the trigger and the scheduled time, so a fire
	 * repeated after a crash is stored once (the queue's enqueue is idempotent). */
	fl_sha256_hex(t->key, strlen(t->key), hex);
	snprintf(id, sizeof(id), "cron-%.12s-%lld", hex, (long long)(scheduled_ms / 1000));
	gmtime_r(&secs, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(hdrs, sizeof(hdrs),
		 "Content-Type: application/json\r\nX-Flint-Trigger: cron\r\n"
		 "X-Flint-Scheduled-Time: %s\r\n",
		 when);
	snprintf(src, sizeof(src), "cron:%s", json_string_value(json_object_get(t->spec, "cron")));
	memset(&it, 0, sizeof(it));
	it.fn = t->fn;
	it.method = "POST";
	it.target = "/";
	it.headers = hdrs;
	it.headers_len = strlen(hdrs);
	it.body = t->payload ? t->payload : "";
	it.body_len = t->payload_len;
	it.request_id = id;
	it.source = src;
	if (fl_async_enqueue(t->a, &it, NULL, NULL) < 0)
		return;
	t->last_ms = scheduled_ms;
	fl_async__save_state(t->a, t->key, scheduled_ms);
}

static void on_cron(uv_timer_t *h)
{
	struct fl_trig *t = h->data;
	int64_t now = (int64_t)fl_wall_ms();

	if (now < t->next_ms) {
		cron_arm(t); /* woke early (the loop's clock was stale) */
		return;
	}
	cron_fire(t, t->next_ms, now);
	t->next_ms = fl_cron_next(&t->cron, t->tz, t->cron.every_ms ? t->next_ms : now);
	/* @every that fell far behind (a stalled loop) restarts from now. */
	if (t->cron.every_ms && t->next_ms <= now)
		t->next_ms = fl_cron_next(&t->cron, t->tz, now);
	cron_arm(t);
}

static void cron_arm(struct fl_trig *t)
{
	int64_t now;

	if (t->stopped)
		return;
	if (t->next_ms < 0) {
		snprintf(t->state, sizeof(t->state),
			 "never fires (no matching time within 5 years)");
		return;
	}
	uv_update_time(&t->a->loop);
	now = (int64_t)fl_wall_ms();
	uv_timer_start(&t->timer, on_cron, t->next_ms > now ? (uint64_t)(t->next_ms - now) : 0, 0);
}

static int cron_start(fl_async *a, struct fl_trig *t)
{
	json_t *tz = json_object_get(t->spec, "tz"), *payload = json_object_get(t->spec, "payload"),
	       *missed = json_object_get(t->spec, "missed");
	char err[256];
	int64_t now = (int64_t)fl_wall_ms(), last;

	if (fl_cron_parse(json_string_value(json_object_get(t->spec, "cron")), &t->cron, err,
			  sizeof(err)) < 0 ||
	    fl_tz_load(json_string_value(tz), &t->tz, err, sizeof(err)) < 0) {
		snprintf(t->state, sizeof(t->state), "error: %s", err);
		fl_error("triggers", "function %s: %s", t->fn, err);
		return -EINVAL;
	}
	if (json_is_string(payload)) {
		t->payload = fl_xstrdup(json_string_value(payload));
		t->payload_len = json_string_length(payload);
	} else if (payload && !json_is_null(payload)) {
		t->payload = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
		t->payload_len = strlen(t->payload);
	}
	t->run_once = json_is_string(missed) && strcmp(json_string_value(missed), "run-once") == 0;
	t->desc = fl_xmalloc(256);
	snprintf(t->desc, 256, "%s (%s)", json_string_value(json_object_get(t->spec, "cron")),
		 json_is_string(tz) ? json_string_value(tz) : "local time");
	uv_timer_init(&a->loop, &t->timer);
	t->timer.data = t;
	last = fl_async__load_state(a, t->key);
	t->last_ms = last;
	if (last >= 0) {
		int64_t missed_at = fl_cron_next(&t->cron, t->tz, last);
		if (missed_at >= 0 && missed_at <= now && t->run_once) {
			fl_info("triggers",
				"function %s: cron %s missed a fire while flint was down; "
				"running it once now",
				t->fn, t->desc);
			cron_fire(t, missed_at, now);
		}
		if (t->cron.every_ms && missed_at > now)
			t->next_ms = missed_at;
		else
			t->next_ms = fl_cron_next(&t->cron, t->tz, now);
	} else {
		t->next_ms = fl_cron_next(&t->cron, t->tz, now);
	}
	snprintf(t->state, sizeof(t->state), "running");
	cron_arm(t);
	return 0;
}

static void free_trig(uv_handle_t *h)
{
	struct fl_trig *t = h->data;

	fl_tz_free(t->tz);
	free(t->payload);
	free(t->desc);
	free(t->fn);
	free(t->key);
	json_decref(t->spec);
	free(t);
}

static void trig_stop(struct fl_trig *t)
{
	t->stopped = 1;
	fl_trigger_redis_stop(t->redis);
	fl_trigger_nats_stop(t->nats);
	if (t->desc) {
		uv_timer_stop(&t->timer);
		uv_close((uv_handle_t *)&t->timer, free_trig);
	} else {
		t->timer.data = t;
		free_trig((uv_handle_t *)&t->timer);
	}
}

void fl_trig__apply(fl_async *a, const char *fn, json_t *arr)
{
	struct fl_trig **pp, *t, *keep = NULL, *fresh = NULL;
	size_t i;
	json_t *v;

	/* Unchanged triggers keep running: a deploy does not disturb consumption. */
	pthread_mutex_lock(&a->tmu);
	for (pp = &a->trigs; (t = *pp) != NULL;) {
		int same = 0;
		if (strcmp(t->fn, fn) == 0) {
			json_array_foreach(arr, i, v) if (json_equal(v, t->spec)) same = 1;
			*pp = t->next;
			if (same) {
				t->next = keep;
				keep = t;
			} else {
				trig_stop(t);
			}
			continue;
		}
		pp = &t->next;
	}
	pthread_mutex_unlock(&a->tmu);
	json_array_foreach(arr, i, v)
	{
		char *js;
		int have = 0;
		for (t = keep; t; t = t->next)
			if (json_equal(v, t->spec))
				have = 1;
		if (have)
			continue;
		t = fl_xcalloc(1, sizeof(*t));
		t->a = a;
		t->fn = fl_xstrdup(fn);
		t->spec = json_incref(v);
		js = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
		t->key = fl_xmalloc(strlen(fn) + strlen(js) + 2);
		sprintf(t->key, "%s %s", fn, js);
		free(js);
		t->last_ms = -1;
		if (json_object_get(v, "cron"))
			cron_start(a, t);
		else if (json_object_get(v, "redis"))
			t->redis = fl_trigger_redis_start(a, fn, json_object_get(v, "redis"));
		else if (json_object_get(v, "nats"))
			t->nats =
			    fl_trigger_nats_start(a, fn, json_object_get(v, "nats"), a->gw_base);
		else
			snprintf(t->state, sizeof(t->state), "error: unsupported trigger");
		t->next = fresh;
		fresh = t;
	}
	json_decref(arr);
	pthread_mutex_lock(&a->tmu);
	while (keep) {
		t = keep;
		keep = t->next;
		t->next = a->trigs;
		a->trigs = t;
	}
	while (fresh) {
		t = fresh;
		fresh = t->next;
		t->next = a->trigs;
		a->trigs = t;
	}
	pthread_mutex_unlock(&a->tmu);
}

void fl_trig__stop_all(fl_async *a)
{
	struct fl_trig *t;

	pthread_mutex_lock(&a->tmu);
	while ((t = a->trigs) != NULL) {
		a->trigs = t->next;
		trig_stop(t);
	}
	pthread_mutex_unlock(&a->tmu);
}

json_t *fl_trig__list(fl_async *a)
{
	json_t *arr = json_array();
	struct fl_trig *t;

	pthread_mutex_lock(&a->tmu);
	for (t = a->trigs; t; t = t->next) {
		json_t *j = json_object();
		json_object_set_new(j, "function", json_string(t->fn));
		json_object_set_new(j, "type",
				    json_string(json_object_get(t->spec, "cron")    ? "cron"
						: json_object_get(t->spec, "redis") ? "redis"
										    : "nats"));
		json_object_set(j, "spec", t->spec);
		json_object_set_new(j, "state", json_string(t->state));
		json_object_set_new(j, "fired", json_integer((json_int_t)atomic_load(&t->fired)));
		if (t->desc)
			json_object_set_new(j, "schedule", json_string(t->desc));
		if (t->next_ms > 0 && !t->stopped)
			json_object_set_new(j, "next_ms", json_integer(t->next_ms));
		if (t->last_ms >= 0)
			json_object_set_new(j, "last_ms", json_integer(t->last_ms));
		if (t->redis)
			fl_trigger_redis_info(t->redis, j);
		if (t->nats)
			fl_trigger_nats_info(t->nats, j);
		json_array_append_new(arr, j);
	}
	pthread_mutex_unlock(&a->tmu);
	return arr;
}

json_t *fl_async_triggers(fl_async *a)
{
	return fl_trig__list(a);
}

void fl_trig__metrics(fl_async *a, fl_buf *o)
{
	struct fl_trig *t;
	size_t i;

	fl_buf_puts(o, "# HELP flint_trigger_events_total Events a trigger produced (cron fires).\n"
		       "# TYPE flint_trigger_events_total counter\n");
	pthread_mutex_lock(&a->tmu);
	for (t = a->trigs; t; t = t->next)
		if (t->desc)
			fl_buf_printf(o,
				      "flint_trigger_events_total{function=\"%s\",type=\"cron\","
				      "schedule=\"%s\"} %llu\n",
				      t->fn, t->desc, (unsigned long long)atomic_load(&t->fired));
	fl_buf_puts(o, "# HELP flint_cron_fire_delay_seconds Time from a cron trigger's scheduled "
		       "time to its fire.\n# TYPE flint_cron_fire_delay_seconds histogram\n");
	for (t = a->trigs; t; t = t->next) {
		uint64_t cum = 0;
		if (!t->desc)
			continue;
		for (i = 0; i < NDELAY; i++) {
			cum += atomic_load(&t->delay[i]);
			fl_buf_printf(o,
				      "flint_cron_fire_delay_seconds_bucket{function=\"%s\","
				      "schedule=\"%s\",le=\"%g\"} %llu\n",
				      t->fn, t->desc, delay_bounds[i] / 1000,
				      (unsigned long long)cum);
		}
		cum += atomic_load(&t->delay[NDELAY]);
		fl_buf_printf(
		    o,
		    "flint_cron_fire_delay_seconds_bucket{function=\"%s\",schedule=\"%s\","
		    "le=\"+Inf\"} %llu\n",
		    t->fn, t->desc, (unsigned long long)cum);
		fl_buf_printf(o,
			      "flint_cron_fire_delay_seconds_sum{function=\"%s\",schedule=\"%s\"} "
			      "%.6f\nflint_cron_fire_delay_seconds_count{function=\"%s\","
			      "schedule=\"%s\"} %llu\n",
			      t->fn, t->desc, (double)atomic_load(&t->delay_sum_us) / 1e6, t->fn,
			      t->desc, (unsigned long long)cum);
	}
	fl_trigger_redis_metrics_head(o);
	for (t = a->trigs; t; t = t->next)
		if (t->redis)
			fl_trigger_redis_metrics(t->redis, o);
	fl_trigger_nats_metrics_head(o);
	for (t = a->trigs; t; t = t->next)
		if (t->nats)
			fl_trigger_nats_metrics(t->nats, o);
	pthread_mutex_unlock(&a->tmu);
}
