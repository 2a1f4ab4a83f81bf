/* admin_api.c -- the admin API's routes (docs/api.md), on the control thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/blobs.h"
#include "control/image.h"
#include "control/ctl.h"
#include "control/secrets.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "events/async_api.h"
#include "runtime/sandbox_linux.h"

#define FLINT_VERSION "0.1.0"

static json_t *inst_json(ctl_inst *in)
{
	json_t *j = json_object();

	json_object_set_new(j, "id", json_integer((json_int_t)in->id));
	json_object_set_new(j, "pid", json_integer(in->pid));
	json_object_set_new(j, "port", json_integer(in->port));
	json_object_set_new(j, "state", json_string(ctl_inst_state_name(in->state)));
	json_object_set_new(j, "inflight",
			    json_integer(in->pub ? atomic_load(&in->pub->inflight) : 0));
	json_object_set_new(j, "started_ms", json_integer((json_int_t)in->started_ms));
	if (in->ready_ms) {
		json_object_set_new(j, "ready_ms", json_integer((json_int_t)in->ready_ms));
		json_object_set_new(j, "cold_start_ms",
				    json_real((double)(in->ready_ns - in->spawn_ns) / 1e6));
		if (in->exec_ns)
			json_object_set_new(
			    j, "cold_start_phases_ms",
			    json_pack("{s:f,s:f,s:f}", "queue", in->queued_us / 1e3, "spawn",
				      (double)(in->exec_ns - in->spawn_ns) / 1e6 -
					  in->queued_us / 1e3,
				      "ready", (double)(in->ready_ns - in->exec_ns) / 1e6));
	}
	json_object_set_new(j, "stale", json_boolean(in->stale));
	json_object_set_new(j, "kind", json_string(in->reserved ? "reserved" : "elastic"));
	json_object_set_new(j, "warm", json_boolean(in->warm));
	json_object_set_new(j, "zygote", json_boolean(in->zygote));
	json_object_set_new(
	    j, "overloaded",
	    json_boolean(in->pub && atomic_load(&in->pub->overloaded_until_ms) > fl_now_ms()));
	return j;
}

static json_t *fn_summary(ctl_fn *fn)
{
	json_t *j = json_object(), *counts = json_object();
	int starting = 0, ready = 0, draining = 0;
	fl_fncounts sum; /* the gateway threads' counters, summed */
	fl_list *l;

	for (l = fn->insts.next; l != &fn->insts; l = l->next) {
		ctl_inst *in = fl_container_of(l, ctl_inst, link);
		if (in->job)
			continue;
		if (in->state == I_STARTING)
			starting++;
		else if (in->state == I_READY)
			ready++;
		else
			draining++;
	}
	json_object_set_new(counts, "starting", json_integer(starting));
	json_object_set_new(counts, "ready", json_integer(ready));
	json_object_set_new(counts, "draining", json_integer(draining));
	json_object_set_new(j, "name", json_string(fn->name));
	json_object_set_new(j, "version", json_integer((json_int_t)fn->version));
	json_object_set_new(j, "protocol", json_string(fn->spec->protocol));
	{
		const char *st = ctl_fn_state_name(fn->state);
		if (fn->state == F_READY && ready == 0)
			st = starting ? "starting" : "idle";
		else if (fn->state == F_IDLE && starting)
			st = "starting";
		else if (fn->state == F_IDLE && ready)
			st = "ready";
		json_object_set_new(j, "state", json_string(st));
	}
	json_object_set_new(j, "min", json_integer(fn->spec->min));
	json_object_set_new(j, "max", json_integer(fn->spec->max));
	json_object_set_new(j, "concurrency", json_integer(fn->spec->concurrency));
	json_object_set_new(j, "instances", counts);
	json_object_set_new(j, "requests",
			    json_integer((json_int_t)atomic_load(&fn->stats->requests)));
	json_object_set_new(j, "queued", json_integer(atomic_load(&fn->stats->queued)));
	json_object_set_new(j, "reserved", json_integer(fn->spec->reserved));
	json_object_set_new(j, "spills", json_integer((json_int_t)atomic_load(&fn->stats->spills)));
	json_object_set_new(j, "overloads",
			    json_integer((json_int_t)atomic_load(&fn->stats->overloads)));
	fl_fnstats_read(fn->stats, &sum);
	json_object_set_new(j, "errors", json_integer((json_int_t)sum.status[5]));
	json_object_set_new(j, "cold_starts",
			    json_integer((json_int_t)atomic_load(&fn->stats->cold_starts)));
	{
		/* Per-bucket request durations (not cumulative, the last one past every bound),
		 * so a client can compute percentiles over any interval from two readings. */
		json_t *le = json_array(), *per = json_array();
		for (int b = 0; b <= FL_HIST_BUCKETS; b++) {
			if (b < FL_HIST_BUCKETS)
				json_array_append_new(le, json_real(fl_hist_bounds[b]));
			json_array_append_new(per, json_integer((json_int_t)sum.latency.count[b]));
		}
		json_object_set_new(j, "latency", json_pack("{s:o, s:o}", "le", le, "counts", per));
	}
	return j;
}

struct lines {
	json_t *arr;
};

static void collect_line(void *ctx, const char *line, size_t len)
{
	struct lines *l = ctx;

	json_array_append_new(l->arr, json_stringn(line, len));
}

static json_t *fn_detail(fl_ctl *ctl, ctl_fn *fn)
{
	json_t *j = fn_summary(fn), *insts = json_array(), *events = json_array();
	json_error_t jerr;
	struct lines ll = {json_array()};
	fl_list *l;
	int i;

	json_object_set_new(j, "spec", json_loads(fn->spec_json, 0, &jerr));
	json_object_set_new(j, "created_ms", json_integer((json_int_t)fn->created_ms));
	json_object_set_new(j, "updated_ms", json_integer((json_int_t)fn->updated_ms));
	if (fn->reason[0])
		json_object_set_new(j, "reason", json_string(fn->reason));
	for (l = fn->insts.next; l != &fn->insts; l = l->next) {
		ctl_inst *in = fl_container_of(l, ctl_inst, link);
		if (!in->job)
			json_array_append_new(insts, inst_json(in));
	}
	json_object_set_new(j, "instances_detail", insts);
	for (i = 0; i < fn->nevents; i++) {
		int k = (fn->next_event - fn->nevents + i + CTL_EVENTS) % CTL_EVENTS;
		json_t *e = json_object();
		json_object_set_new(e, "time_ms", json_integer((json_int_t)fn->events[k].time_ms));
		json_object_set_new(e, "what", json_string(fn->events[k].what));
		json_array_append_new(events, e);
	}
	json_object_set_new(j, "events", events);
	fl_logstore_tail(ctl->logs, fn->name, 10, collect_line, &ll);
	json_object_set_new(j, "last_logs", ll.arr);
	return j;
}

/* ---- handlers ---- */

int ctl_put_spec(fl_ctl *ctl, const char *name, const json_t *j, uint64_t *version, int *created,
		 char *err, size_t errlen)
{
	json_t *norm;
	fl_spec *spec = NULL;
	char *text = NULL;
	int i;

	if (!fl_valid_name(name)) {
		snprintf(err, errlen,
			 "name: '%s' is not a valid function name (1-63 characters of "
			 "a-z, 0-9 and '-', not starting or ending with '-')",
			 name);
		return 400;
	}
	if (fl_spec_parse(j, &spec, err, errlen) < 0)
		return 400;
	{
		/* A gRPC service belongs to one function: two would make routing a coin toss. */
		fl_list *l;
		int k;
		for (l = ctl->fns.next; l != &ctl->fns; l = l->next) {
			ctl_fn *o = fl_container_of(l, ctl_fn, link);
			if (o->deleted || strcmp(o->name, name) == 0)
				continue;
			if (spec->thrift_port && spec->thrift_port == o->spec->thrift_port) {
				snprintf(err, errlen,
					 "thrift.port: %u is already the port of function %s",
					 spec->thrift_port, o->name);
				fl_spec_free(spec);
				return 409;
			}
			for (i = 0; i < spec->nservices; i++)
				for (k = 0; k < o->spec->nservices; k++)
					if (strcmp(spec->services[i], o->spec->services[k]) == 0) {
						snprintf(err, errlen,
							 "grpc.services: %s is already served by "
							 "function %s",
							 spec->services[i], o->name);
						fl_spec_free(spec);
						return 409;
					}
		}
	}
	if (spec->code && fl_blob_exists(ctl->data_dir, spec->code) != 1) {
		snprintf(err, errlen, "code: %s has not been uploaded (POST /v1/blobs first)",
			 spec->code);
		fl_spec_free(spec);
		return 400;
	}
	for (i = 0; i < spec->nsecrets; i++)
		if (fl_secret_exists(ctl->data_dir, spec->secrets[i]) != 1) {
			snprintf(
			    err, errlen,
			    "secrets: there is no secret named %s (create it with `flint secret "
			    "create %s ...`)",
			    spec->secrets[i], spec->secrets[i]);
			fl_spec_free(spec);
			return 400;
		}
	{
		/* Unpack the code and the image now: a version is stored only once it
		 * can run (a refused archive must not stay in the registry). */
		char *dir = NULL;
		struct fl_image *img = NULL;
		if (spec->code &&
		    fl_blob_unpack(ctl->data_dir, spec->code, &dir, err, errlen) < 0) {
			fl_spec_free(spec);
			return 400;
		}
		free(dir);
		if (spec->image &&
		    fl_image_open(ctl->data_dir, spec->image, &img, err, errlen) < 0) {
			fl_spec_free(spec);
			return 400;
		}
		fl_image_free(img);
	}
	norm = fl_spec_to_json(spec);
	text = json_dumps(norm, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(norm);
	*created = ctl_fn_find(ctl, name) == NULL;
	if (fl_registry_put(ctl->reg, name, text, version) < 0) {
		snprintf(err, errlen, "cannot store the function (see the daemon log)");
		fl_spec_free(spec);
		free(text);
		return 500;
	}
	{
		uint64_t now = fl_wall_ms();
		ctl_fn *old = ctl_fn_find(ctl, name);
		if (ctl_fn_apply(ctl, spec, text, *version, old ? old->created_ms : now, now, err,
				 errlen) < 0) {
			free(text);
			return 400;
		}
		if (old)
			ctl_traffic_reset(ctl, old); /* a new version takes all the traffic */
	}
	free(text);
	/* Routable before the answer goes out: a client's next request (through the
	 * gateway, which answers offloaded /system calls itself) must find it. */
	ctl_publish_now(ctl);
	return 0;
}

static void put_function(fl_ctl *ctl, const char *name, fl_httpd_req *req, fl_httpd_resp *resp)
{
	json_error_t jerr;
	json_t *j, *nm;
	char err[512];
	uint64_t version;
	int created, st;

	if (!fl_valid_name(name)) {
		fl_httpd_respond_error(
		    resp, 400,
		    "name: '%s' is not a valid function name (1-63 characters of "
		    "a-z, 0-9 and '-', not starting or ending with '-')",
		    name);
		return;
	}
	j = json_loadb(req->body, req->body_len, 0, &jerr);
	if (j == NULL || !json_is_object(j)) {
		fl_httpd_respond_error(resp, 400, "the body must be a JSON object: %s",
				       j ? "got another JSON value" : jerr.text);
		json_decref(j);
		return;
	}
	nm = json_object_get(j, "name");
	if (nm && (!json_is_string(nm) || strcmp(json_string_value(nm), name) != 0)) {
		fl_httpd_respond_error(
		    resp, 400, "name: the spec says '%s' but the path says '%s'",
		    json_is_string(nm) ? json_string_value(nm) : "(not a string)", name);
		json_decref(j);
		return;
	}
	if (nm == NULL)
		json_object_set_new(j, "name", json_string(name));
	st = ctl_put_spec(ctl, name, j, &version, &created, err, sizeof(err));
	json_decref(j);
	if (st != 0) {
		fl_httpd_respond_error(resp, st, "%s", err);
		return;
	}
	j = json_object();
	json_object_set_new(j, "name", json_string(name));
	json_object_set_new(j, "version", json_integer((json_int_t)version));
	json_object_set_new(j, "created", json_boolean(created));
	fl_httpd_respond_json(resp, created ? 201 : 200, j);
}

int ctl_set_scale(fl_ctl *ctl, ctl_fn *fn, long long mn, long long mx, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *spec, *scale;
	fl_spec *ns = NULL;
	char *text;

	if (mn > mx) {
		snprintf(err, errlen, "min (%lld) must not be above max (%lld)", mn, mx);
		return 400;
	}
	spec = json_loads(fn->spec_json, 0, &jerr);
	scale = json_object_get(spec, "scale");
	if (!json_is_object(scale)) {
		scale = json_object();
		json_object_set_new(spec, "scale", scale);
	}
	json_object_set_new(scale, "min", json_integer(mn));
	json_object_set_new(scale, "max", json_integer(mx));
	if (fl_spec_parse(spec, &ns, err, errlen) < 0) {
		json_decref(spec);
		return 400;
	}
	json_decref(spec);
	spec = fl_spec_to_json(ns);
	text = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(spec);
	if (fl_registry_update_current(ctl->reg, fn->name, text) < 0) {
		snprintf(err, errlen, "cannot store the new scale (see the daemon log)");
		fl_spec_free(ns);
		free(text);
		return 500;
	}
	/* Same version, new bounds: swap the spec in place. */
	fl_spec_free(fn->spec);
	free(fn->spec_json);
	ctl_route_drop(fn);
	fn->spec = ns;
	fn->spec_json = text;
	fn->as.desired = fn->as.desired < (uint32_t)mn ? (uint32_t)mn : fn->as.desired;
	ctl_event(fn, "scale bounds set to min %lld, max %lld", mn, mx);
	ctl_scale(ctl, fn);
	ctl_publish_later(ctl);
	return 0;
}

static void scale_function(fl_ctl *ctl, ctl_fn *fn, fl_httpd_req *req, fl_httpd_resp *resp)
{
	json_error_t jerr;
	json_t *j = json_loadb(req->body, req->body_len, 0, &jerr), *v;
	char err[512];
	json_int_t mn, mx;
	int st;

	if (j == NULL || !json_is_object(j)) {
		fl_httpd_respond_error(
		    resp, 400, "the body must be a JSON object like {\"min\": 1, \"max\": 5}");
		json_decref(j);
		return;
	}
	mn = fn->spec->min;
	mx = fn->spec->max;
	if ((v = json_object_get(j, "min")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			fl_httpd_respond_error(resp, 400, "min: must be an integer >= 0");
			json_decref(j);
			return;
		}
		mn = json_integer_value(v);
	}
	if ((v = json_object_get(j, "max")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 1) {
			fl_httpd_respond_error(resp, 400, "max: must be an integer >= 1");
			json_decref(j);
			return;
		}
		mx = json_integer_value(v);
	}
	json_decref(j);
	st = ctl_set_scale(ctl, fn, (long long)mn, (long long)mx, err, sizeof(err));
	if (st != 0) {
		fl_httpd_respond_error(resp, st, "%s", err);
		return;
	}
	j = json_object();
	json_object_set_new(j, "name", json_string(fn->name));
	json_object_set_new(j, "min", json_integer(mn));
	json_object_set_new(j, "max", json_integer(mx));
	fl_httpd_respond_json(resp, 200, j);
}

struct follow {
	fl_ctl *ctl;
	fl_log_follower *f;
	fl_httpd_resp *resp;
};

static void follow_line(void *ctx, const char *line, size_t len)
{
	struct follow *fw = ctx;
	char *b = malloc(len + 1);

	if (b == NULL)
		return;
	memcpy(b, line, len);
	b[len] = '\n';
	fl_httpd_stream_write(fw->resp, b, len + 1);
	free(b);
}

static void follow_closed(void *ctx)
{
	struct follow *fw = ctx;

	fl_logstore_unfollow(fw->ctl->logs, fw->f);
	free(fw);
}

struct tail_buf {
	fl_buf b;
};

static void tail_line(void *ctx, const char *line, size_t len)
{
	struct tail_buf *t = ctx;

	fl_buf_append(&t->b, line, len);
	fl_buf_append(&t->b, "\n", 1);
}

static void logs(fl_ctl *ctl, ctl_fn *fn, fl_httpd_req *req, fl_httpd_resp *resp)
{
	const char *t = fl_httpd_query(req, "tail");
	const char *f = fl_httpd_query(req, "follow");
	struct tail_buf tb = {FL_BUF_INIT};
	long n = 100;

	if (t) {
		char *end;
		n = strtol(t, &end, 10);
		if (*end || n < 0 || n > 100000) {
			fl_httpd_respond_error(resp, 400,
					       "tail: must be a number of lines from 0 to 100000");
			return;
		}
	}
	fl_logstore_tail(ctl->logs, fn->name, (size_t)n, tail_line, &tb);
	if (f && (strcmp(f, "1") == 0 || strcmp(f, "true") == 0)) {
		struct follow *fw = fl_xcalloc(1, sizeof(*fw));
		fl_httpd_stream_begin(resp, 200, "text/plain; charset=utf-8");
		if (tb.b.len)
			fl_httpd_stream_write(resp, tb.b.p, tb.b.len);
		fl_buf_free(&tb.b);
		fw->ctl = ctl;
		fw->resp = resp;
		fw->f = fl_logstore_follow(ctl->logs, fn->name, follow_line, fw);
		fl_httpd_on_close(resp, follow_closed, fw);
		return;
	}
	fl_httpd_respond(resp, 200, "text/plain; charset=utf-8", tb.b.p ? tb.b.p : "", tb.b.len);
	fl_buf_free(&tb.b);
}

static void post_blob(fl_ctl *ctl, fl_httpd_req *req, fl_httpd_resp *resp)
{
	char digest[FL_DIGEST_LEN + 1];
	int created = 0, r;
	json_t *j;

	if (req->body_len == 0) {
		fl_httpd_respond_error(resp, 400,
				       "the body must be a tar.gz of the function's directory");
		return;
	}
	r = fl_blob_put(ctl->data_dir, req->body, req->body_len, digest, &created);
	if (r < 0) {
		fl_httpd_respond_error(resp, 500, "cannot store the upload: %s", strerror(-r));
		return;
	}
	j = json_object();
	json_object_set_new(j, "digest", json_string(digest));
	json_object_set_new(j, "size", json_integer((json_int_t)req->body_len));
	json_object_set_new(j, "created", json_boolean(created));
	fl_httpd_respond_json(resp, 200, j);
}

static void info(fl_ctl *ctl, fl_httpd_resp *resp)
{
	json_t *j = json_object();
	int n = 0;
	fl_list *l;

	for (l = ctl->fns.next; l != &ctl->fns; l = l->next)
		n += !fl_container_of(l, ctl_fn, link)->deleted;
	json_object_set_new(j, "version", json_string(FLINT_VERSION));
	json_object_set_new(j, "data_dir", json_string(ctl->data_dir));
	json_object_set_new(j, "gateway", json_string(ctl->listen));
	json_object_set_new(j, "admin", json_string(ctl->admin));
	json_object_set_new(j, "domain", json_string(ctl->domain));
	json_object_set_new(j, "threads", json_integer(ctl->threads));
	json_object_set_new(j, "functions", json_integer(n));
	json_object_set_new(j, "instances", json_integer(ctl_count_instances(ctl)));
	json_object_set_new(j, "pid", json_integer(getpid()));
	json_object_set_new(j, "started_ms", json_integer((json_int_t)ctl->started_ms));
	{
		char sandbox[1024];
		fl_sandbox_describe(sandbox, sizeof(sandbox));
		json_object_set_new(j, "sandbox", json_string(sandbox));
	}
	fl_httpd_respond_json(resp, 200, j);
}

static int authorized(fl_ctl *ctl, fl_httpd_req *req)
{
	const char *h = fl_httpd_header(req, "authorization");

	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	return fl_consttime_eq(h + 7, ctl->token);
}

static int is(const fl_httpd_req *req, const char *m)
{
	return strcmp(req->method, m) == 0;
}

void ctl_admin_handle(void *ctx, fl_httpd_req *req, fl_httpd_resp *resp)
{
	fl_ctl *ctl = ctx;
	const char *p = req->path;
	char name[128];
	const char *rest;
	ctl_fn *fn;

	if (strcmp(p, "/healthz") == 0) {
		fl_httpd_respond(resp, 200, "application/json", "{\"ok\": true}\n", 13);
		return;
	}
	if (!authorized(ctl, req)) {
		fl_httpd_respond_error(resp, 401,
				       "missing or wrong admin token: send Authorization: Bearer "
				       "<the token in %s/token>",
				       ctl->data_dir);
		return;
	}
	if (ctl->stopping) {
		fl_httpd_respond_error(resp, 503, "flint is shutting down");
		return;
	}
	if (strcmp(p, "/v1/info") == 0) {
		if (!is(req, "GET"))
			goto method;
		info(ctl, resp);
		return;
	}
	if (strcmp(p, "/v1/functions") == 0) {
		json_t *arr, *j;
		fl_list *l;
		if (!is(req, "GET"))
			goto method;
		arr = json_array();
		j = json_object();
		/* Sorted by name: collect, then sort. */
		for (l = ctl->fns.next; l != &ctl->fns; l = l->next) {
			ctl_fn *f = fl_container_of(l, ctl_fn, link);
			size_t i;
			if (f->deleted)
				continue;
			for (i = 0; i < json_array_size(arr); i++)
				if (strcmp(json_string_value(
					       json_object_get(json_array_get(arr, i), "name")),
					   f->name) > 0)
					break;
			json_array_insert_new(arr, i, fn_summary(f));
		}
		json_object_set_new(j, "functions", arr);
		fl_httpd_respond_json(resp, 200, j);
		return;
	}
	if (strcmp(p, "/v1/blobs") == 0) {
		if (!is(req, "POST"))
			goto method;
		post_blob(ctl, req, resp);
		return;
	}
	if (strncmp(p, "/v1/blobs/", 10) == 0) {
		int r;
		if (!is(req, "HEAD") && !is(req, "GET"))
			goto method;
		r = fl_blob_exists(ctl->data_dir, p + 10);
		if (r < 0)
			fl_httpd_respond_error(resp, 400,
					       "'%s' is not a digest like sha256:<64 hex>", p + 10);
		else if (r == 0)
			fl_httpd_respond_error(resp, 404, "no blob %s", p + 10);
		else
			fl_httpd_respond(resp, 200, "application/json", "{}\n", 3);
		return;
	}
	if (strcmp(p, "/v1/secrets") == 0 || strncmp(p, "/v1/secrets/", 12) == 0) {
		ctl_secrets_admin(ctl, req, resp);
		return;
	}
	/* Async requests and triggers (events/async_api.c). */
	if (strncmp(p, "/v1/requests", 12) == 0 || strcmp(p, "/v1/triggers") == 0) {
		fl_async_admin(ctl->async, req, resp);
		return;
	}
	if (strncmp(p, "/v1/functions/", 14) != 0)
		goto notfound;
	rest = strchr(p + 14, '/');
	{
		size_t nl = rest ? (size_t)(rest - (p + 14)) : strlen(p + 14);
		if (nl == 0 || nl >= sizeof(name))
			goto notfound;
		memcpy(name, p + 14, nl);
		name[nl] = '\0';
	}
	if (rest == NULL && is(req, "PUT")) {
		put_function(ctl, name, req, resp);
		return;
	}
	fn = ctl_fn_find(ctl, name);
	if (fn == NULL) {
		fl_httpd_respond_error(resp, 404, "no function named %s", name);
		return;
	}
	if (rest == NULL) {
		if (is(req, "GET")) {
			fl_httpd_respond_json(resp, 200, fn_detail(ctl, fn));
		} else if (is(req, "DELETE")) {
			json_t *j = json_object();
			if (fl_registry_delete(ctl->reg, name) < 0) {
				fl_httpd_respond_error(resp, 500,
						       "cannot delete %s from the registry", name);
				return;
			}
			ctl_fn_remove(ctl, fn);
			json_object_set_new(j, "deleted", json_string(name));
			fl_httpd_respond_json(resp, 200, j);
		} else {
			goto method;
		}
		return;
	}
	if (strcmp(rest, "/scale") == 0) {
		if (!is(req, "POST") && !is(req, "PUT"))
			goto method;
		scale_function(ctl, fn, req, resp);
		return;
	}
	if (strcmp(rest, "/versions") == 0) {
		if (!is(req, "GET"))
			goto method;
		ctl_versions_api(ctl, fn, req, resp, 0);
		return;
	}
	if (strcmp(rest, "/traffic") == 0) {
		if (!is(req, "GET") && !is(req, "PUT") && !is(req, "POST"))
			goto method;
		ctl_versions_api(ctl, fn, req, resp, is(req, "GET") ? 1 : 2);
		return;
	}
	if (strcmp(rest, "/rollback") == 0) {
		if (!is(req, "POST"))
			goto method;
		ctl_versions_api(ctl, fn, req, resp, 3);
		return;
	}
	if (strcmp(rest, "/instances") == 0) {
		json_t *arr, *j;
		fl_list *l;
		if (!is(req, "GET"))
			goto method;
		arr = json_array();
		j = json_object();
		for (l = fn->insts.next; l != &fn->insts; l = l->next) {
			ctl_inst *in = fl_container_of(l, ctl_inst, link);
			if (!in->job)
				json_array_append_new(arr, inst_json(in));
		}
		json_object_set_new(j, "instances", arr);
		fl_httpd_respond_json(resp, 200, j);
		return;
	}
	if (strcmp(rest, "/logs") == 0) {
		if (!is(req, "GET"))
			goto method;
		logs(ctl, fn, req, resp);
		return;
	}
notfound:
	fl_httpd_respond_error(resp, 404, "no such API path: %s %s (see docs/api.md)", req->method,
			       p);
	return;
method:
	fl_httpd_respond_error(resp, 405, "%s is not allowed on %s", req->method, p);
}
