/* trigger_spec.c -- validates and normalizes the triggers a spec declares. */
#include "events/trigger_spec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "events/cron.h"

#define MAX_TRIGGERS 64

static int bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Every key of o must be in allowed. */
static int only(const json_t *o, const char *const *allowed, size_t i, const char *what, char *err,
		size_t errlen)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)o, k, v)
	{
		size_t n;
		for (n = 0; allowed[n] && strcmp(allowed[n], k) != 0; n++)
			;
		if (allowed[n] == NULL)
			return bad(err, errlen, "triggers[%zu]%s: unknown field \"%s\"", i, what,
				   k);
	}
	return 0;
}

static int str(json_t *o, const char *key, int required, size_t i, const char *what, char *err,
	       size_t errlen)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL || json_is_null(v)) {
		if (required)
			return bad(err, errlen, "triggers[%zu]%s.%s: is required", i, what, key);
		json_object_del(o, key);
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return bad(err, errlen, "triggers[%zu]%s.%s: must be a non-empty string", i, what,
			   key);
	return 0;
}

static int uint_field(json_t *o, const char *key, long lo, long hi, long dflt, size_t i,
		      const char *what, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL || json_is_null(v)) {
		json_object_set_new(o, key, json_integer(dflt));
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return bad(err, errlen,
			   "triggers[%zu]%s.%s: must be an integer between %ld and %ld", i, what,
			   key, lo, hi);
	return 0;
}

static int url_field(json_t *o, const char *scheme, const char *dflt, size_t i, const char *what,
		     char *err, size_t errlen)
{
	json_t *v = json_object_get(o, "url");

	if (v == NULL || json_is_null(v)) {
		json_object_set_new(o, "url", json_string(dflt));
		return 0;
	}
	if (!json_is_string(v) || strncmp(json_string_value(v), scheme, strlen(scheme)) != 0)
		return bad(err, errlen, "triggers[%zu]%s.url: must be a URL starting with %s", i,
			   what, scheme);
	return 0;
}

/* A duration of at least lo_ms: "30s", "2m", or an integer number of seconds;
 * written back as a string. */
static int duration_field(json_t *o, const char *key, uint64_t lo_ms, const char *dflt, size_t i,
			  const char *what, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, key);
	uint64_t ms = 0;
	char s[32];

	if (v == NULL || json_is_null(v)) {
		json_object_set_new(o, key, json_string(dflt));
		return 0;
	}
	if (json_is_integer(v) && json_integer_value(v) >= 0)
		ms = (uint64_t)json_integer_value(v) * 1000;
	else if (!json_is_string(v) || fl_parse_duration(json_string_value(v), &ms) < 0)
		return bad(err, errlen,
			   "triggers[%zu]%s.%s: must be a duration such as \"30s\" or \"2m\"", i,
			   what, key);
	if (ms < lo_ms)
		return bad(err, errlen, "triggers[%zu]%s.%s: must be at least %llus", i, what, key,
			   (unsigned long long)(lo_ms / 1000));
	fl_format_duration(ms, s, sizeof(s));
	json_object_set_new(o, key, json_string(s));
	return 0;
}

static int cron_item(json_t *o, size_t i, char *err, size_t errlen)
{
	static const char *const fields[] = {"cron", "tz", "payload", "missed", NULL};
	struct fl_cron c;
	fl_tz *z = NULL;
	char why[256];
	json_t *v;
	int r;

	if ((r = only(o, fields, i, "", err, errlen)) < 0 ||
	    (r = str(o, "cron", 1, i, "", err, errlen)) < 0 ||
	    (r = str(o, "tz", 0, i, "", err, errlen)) < 0)
		return r;
	if (fl_cron_parse(json_string_value(json_object_get(o, "cron")), &c, why, sizeof(why)) < 0)
		return bad(err, errlen, "triggers[%zu].cron: %s", i, why);
	v = json_object_get(o, "tz");
	if (v) {
		if (fl_tz_load(json_string_value(v), &z, why, sizeof(why)) < 0)
			return bad(err, errlen, "triggers[%zu].tz: %s", i, why);
		fl_tz_free(z);
	}
	v = json_object_get(o, "missed");
	if (v == NULL || json_is_null(v))
		json_object_set_new(o, "missed", json_string("skip"));
	else if (!json_is_string(v) || (strcmp(json_string_value(v), "skip") != 0 &&
					strcmp(json_string_value(v), "run-once") != 0))
		return bad(err, errlen, "triggers[%zu].missed: must be \"skip\" or \"run-once\"",
			   i);
	return 0;
}

static int redis_item(json_t *o, size_t i, char *err, size_t errlen)
{
	static const char *const fields[] = {
	    "url",	   "stream",	     "group",	    "batch", "concurrency",
	    "dead_letter", "max_deliveries", "claim_after", NULL};
	const char *w = ".redis";
	int r;

	if (!json_is_object(o))
		return bad(err, errlen, "triggers[%zu].redis: must be an object", i);
	if ((r = only(o, fields, i, w, err, errlen)) < 0 ||
	    (r = url_field(o, "redis://", "redis://127.0.0.1:6379", i, w, err, errlen)) < 0 ||
	    (r = str(o, "stream", 1, i, w, err, errlen)) < 0 ||
	    (r = str(o, "group", 0, i, w, err, errlen)) < 0 ||
	    (r = str(o, "dead_letter", 0, i, w, err, errlen)) < 0 ||
	    (r = uint_field(o, "batch", 1, 1000, 10, i, w, err, errlen)) < 0 ||
	    (r = uint_field(o, "concurrency", 1, 1000, 10, i, w, err, errlen)) < 0 ||
	    (r = uint_field(o, "max_deliveries", 1, 1000, 5, i, w, err, errlen)) < 0 ||
	    (r = duration_field(o, "claim_after", 1000, "1m", i, w, err, errlen)) < 0)
		return r;
	return 0;
}

static int nats_item(json_t *o, size_t i, char *err, size_t errlen)
{
	static const char *const fields[] = {"url",	  "subject",	 "queue",
					     "jetstream", "max_deliver", NULL};
	static const char *const js_fields[] = {"stream", "durable", NULL};
	const char *w = ".nats";
	json_t *js;
	int r;

	if (!json_is_object(o))
		return bad(err, errlen, "triggers[%zu].nats: must be an object", i);
	if ((r = only(o, fields, i, w, err, errlen)) < 0 ||
	    (r = url_field(o, "nats://", "nats://127.0.0.1:4222", i, w, err, errlen)) < 0 ||
	    (r = str(o, "subject", 1, i, w, err, errlen)) < 0 ||
	    (r = str(o, "queue", 0, i, w, err, errlen)) < 0 ||
	    (r = uint_field(o, "max_deliver", 1, 1000, 5, i, w, err, errlen)) < 0)
		return r;
	js = json_object_get(o, "jetstream");
	if (js && !json_is_null(js)) {
		if (!json_is_object(js))
			return bad(err, errlen, "triggers[%zu].nats.jetstream: must be an object",
				   i);
		if ((r = only(js, js_fields, i, ".nats.jetstream", err, errlen)) < 0 ||
		    (r = str(js, "stream", 1, i, ".nats.jetstream", err, errlen)) < 0 ||
		    (r = str(js, "durable", 1, i, ".nats.jetstream", err, errlen)) < 0)
			return r;
	}
	return 0;
}

int fl_trigger_spec_parse(const json_t *v, json_t **out, char *err, size_t errlen)
{
	json_t *arr, *item;
	size_t i;
	int r = 0;

	*out = NULL;
	if (!json_is_array(v))
		return bad(err, errlen, "triggers: must be a list");
	if (json_array_size(v) > MAX_TRIGGERS)
		return bad(err, errlen, "triggers: at most %d triggers per function", MAX_TRIGGERS);
	arr = json_deep_copy(v);
	json_array_foreach(arr, i, item)
	{
		int kinds;
		if (!json_is_object(item)) {
			r = bad(err, errlen,
				"triggers[%zu]: must be an object such as {cron: \"...\"}", i);
			break;
		}
		kinds = !!json_object_get(item, "cron") + !!json_object_get(item, "redis") +
			!!json_object_get(item, "nats");
		if (kinds != 1) {
			r = bad(err, errlen,
				"triggers[%zu]: must have exactly one of \"cron\", \"redis\" or "
				"\"nats\"",
				i);
			break;
		}
		if (json_object_get(item, "cron"))
			r = cron_item(item, i, err, errlen);
		else if (json_object_size(item) != 1)
			r = bad(err, errlen, "triggers[%zu]: put the settings inside \"%s\"", i,
				json_object_get(item, "redis") ? "redis" : "nats");
		else if (json_object_get(item, "redis"))
			r = redis_item(json_object_get(item, "redis"), i, err, errlen);
		else
			r = nats_item(json_object_get(item, "nats"), i, err, errlen);
		if (r < 0)
			break;
	}
	if (r < 0) {
		json_decref(arr);
		return r;
	}
	*out = arr;
	return 0;
}
