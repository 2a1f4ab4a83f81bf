/* openfaas.c -- the OpenFaaS-compatible API on the gateway port (/system/...), with
 * OpenFaaS's JSON field names, mapped onto flint's own specs (docs/openfaas.md). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control/ctl.h"
#include "core/base64.h"
#include "core/buf.h"
#include "core/util.h"
#include "gateway/gateway.h"

#define OF_VERSION   "0.1.0"
#define OF_NAMESPACE "openfaas-fn"
#define OF_IMAGE     "flint/native" /* what flint reports, and the one image it takes */

static void of_answer(const struct ctl_sysreq *r, int status, json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;

	fl_gateway_offload_done(r->thread, r->cookie, status,
				text ? "application/json" : "text/plain", text ? text : "",
				text ? strlen(text) : 0, NULL);
	free(text);
	json_decref(j);
}

static void of_error(const struct ctl_sysreq *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void of_error(const struct ctl_sysreq *r, int status, const char *fmt, ...)
{
	char msg[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	of_answer(r, status, json_pack("{s:s, s:i}", "error", msg, "status", status));
}

/* The value of header name in the raw "Name: value\r\n" lines, copied into out. */
static int of_header(const struct ctl_sysreq *r, const char *name, char *out, size_t outlen)
{
	const char *p = r->headers, *end = r->headers + r->headers_len;
	size_t nl = strlen(name);

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p)), *v;
		size_t len;
		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - p) > nl && p[nl] == ':' && fl_strncaseeq(p, nl, name)) {
			for (v = p + nl + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
				;
			len = (size_t)(eol - v);
			while (len && (v[len - 1] == '\r' || v[len - 1] == ' '))
				len--;
			if (len >= outlen)
				return 0;
			memcpy(out, v, len);
			out[len] = '\0';
			return 1;
		}
		p = eol + 1;
	}
	return 0;
}

/* Basic authentication as OpenFaaS does it: user "admin", the admin token as password. */
static int of_authorized(fl_ctl *ctl, const struct ctl_sysreq *r)
{
	char h[512];
	unsigned char *dec;
	size_t n;
	int ok;

	if (!of_header(r, "authorization", h, sizeof(h)) || strncasecmp(h, "Basic ", 6) != 0)
		return 0;
	dec = fl_base64_decode(h + 6, strlen(h + 6), &n);
	if (dec == NULL)
		return 0;
	ok = n > 6 && memcmp(dec, "admin:", 6) == 0 && strlen((char *)dec) == n &&
	     fl_consttime_eq((char *)dec + 6, ctl->token);
	explicit_bzero(dec, n);
	free(dec);
	return ok;
}

/* Functions the API shows: not deleted, not an older version kept for a traffic split. */
static int of_visible(const ctl_fn *fn)
{
	return !fn->deleted && strchr(fn->name, '@') == NULL;
}

static ctl_fn *of_find(fl_ctl *ctl, const char *name)
{
	ctl_fn *fn = ctl_fn_find(ctl, name);

	return fn && of_visible(fn) ? fn : NULL;
}

/* The spec's command as one string (OpenFaaS's envProcess). */
static void of_command(const fl_spec *s, fl_buf *b)
{
	int i;

	if (s->argc == 3 && strcmp(s->argv[0], "/bin/sh") == 0 && strcmp(s->argv[1], "-c") == 0) {
		fl_buf_puts(b, s->argv[2]);
		return;
	}
	for (i = 0; i < s->argc; i++)
		fl_buf_printf(b, "%s%s", i ? " " : "", s->argv[i]);
}

static json_t *of_status(ctl_fn *fn)
{
	json_t *j = json_object(), *env = json_object(), *lim = json_object();
	fl_buf cmd = FL_BUF_INIT;
	int ready = 0, i;
	fl_list *l;
	char when[40];
	time_t t = (time_t)(fn->created_ms / 1000);
	struct tm tm;

	for (l = fn->insts.next; l != &fn->insts; l = l->next) {
		ctl_inst *in = fl_container_of(l, ctl_inst, link);
		ready += !in->job && in->state == I_READY;
	}
	of_command(fn->spec, &cmd);
	json_object_set_new(j, "name", json_string(fn->name));
	json_object_set_new(j, "image", json_string(OF_IMAGE));
	json_object_set_new(j, "namespace", json_string(OF_NAMESPACE));
	json_object_set_new(j, "envProcess", json_string(cmd.p ? cmd.p : ""));
	fl_buf_free(&cmd);
	for (i = 0; i < fn->spec->nenv; i++) {
		const char *eq = strchr(fn->spec->env[i], '=');
		char *k = fl_xstrndup(fn->spec->env[i], (size_t)(eq - fn->spec->env[i]));
		json_object_set_new(env, k, json_string(eq + 1));
		free(k);
	}
	json_object_set_new(j, "envVars", env);
	json_object_set_new(j, "labels",
			    fn->spec->labels ? json_deep_copy(fn->spec->labels) : json_object());
	json_object_set_new(j, "annotations",
			    fn->spec->annotations ? json_deep_copy(fn->spec->annotations)
						  : json_object());
	{
		json_t *sec = json_array();
		for (i = 0; i < fn->spec->nsecrets; i++)
			json_array_append_new(sec, json_string(fn->spec->secrets[i]));
		json_object_set_new(j, "secrets", sec);
	}
	if (fn->spec->memory) {
		char m[32];
		snprintf(m, sizeof(m), "%lluMi", (unsigned long long)(fn->spec->memory >> 20));
		if (fn->spec->memory & ((1u << 20) - 1))
			snprintf(m, sizeof(m), "%llu", (unsigned long long)fn->spec->memory);
		json_object_set_new(lim, "memory", json_string(m));
	}
	if (fn->spec->cpu_millis) {
		char c[32];
		snprintf(c, sizeof(c), "%um", fn->spec->cpu_millis);
		json_object_set_new(lim, "cpu", json_string(c));
	}
	if (json_object_size(lim))
		json_object_set_new(j, "limits", lim);
	else
		json_decref(lim);
	json_object_set_new(j, "readOnlyRootFilesystem", json_boolean(fn->spec->sandbox));
	json_object_set_new(j, "invocationCount",
			    json_integer((json_int_t)atomic_load(&fn->stats->requests)));
	json_object_set_new(j, "replicas",
			    json_integer(fn->want > fn->spec->min ? fn->want : fn->spec->min));
	json_object_set_new(j, "availableReplicas", json_integer(ready));
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(j, "createdAt", json_string(when));
	/* flint's own view, for whoever looks further. */
	json_object_set_new(j, "flint",
			    json_pack("{s:I, s:s}", "version", (json_int_t)fn->version, "state",
				      ctl_fn_state_name(fn->state)));
	return j;
}

static void of_list(fl_ctl *ctl, const struct ctl_sysreq *r)
{
	json_t *arr = json_array();
	fl_list *l;

	for (l = ctl->fns.next; l != &ctl->fns; l = l->next) {
		ctl_fn *fn = fl_container_of(l, ctl_fn, link);
		size_t i;
		if (!of_visible(fn))
			continue;
		for (i = 0; i < json_array_size(arr); i++)
			if (strcmp(
				json_string_value(json_object_get(json_array_get(arr, i), "name")),
				fn->name) > 0)
				break;
		json_array_insert_new(arr, i, of_status(fn));
	}
	of_answer(r, 200, arr);
}

/* A Kubernetes quantity ("128Mi", "1G", "512k", "1048576") as a flint size in bytes. */
static int of_memory(const char *q, json_int_t *out)
{
	char *end;
	double v = strtod(q, &end);
	static const struct {
		const char *suf;
		double mul;
	} units[] = {{"", 1},	       {"Ki", 1024.0},	   {"Mi", 1048576.0}, {"Gi", 1073741824.0},
		     {"k", 1e3},       {"K", 1e3},	   {"M", 1e6},	      {"G", 1e9},
		     {"m", 1048576.0}, {"g", 1073741824.0}};

	if (end == q || v <= 0)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(end, units[i].suf) == 0) {
			*out = (json_int_t)(v * units[i].mul);
			return 0;
		}
	return -1;
}

/* Copies OpenFaaS's limits {memory, cpu} into the spec's limits. */
static int of_limits(const json_t *lim, json_t *spec, char *err, size_t errlen)
{
	json_t *l, *v;

	if (lim == NULL || json_is_null(lim))
		return 0;
	if (!json_is_object(lim)) {
		snprintf(err, errlen, "limits: must be an object {\"memory\", \"cpu\"}");
		return -1;
	}
	l = json_object_get(spec, "limits");
	if (!json_is_object(l)) {
		l = json_object();
		json_object_set_new(spec, "limits", l);
	}
	if ((v = json_object_get(lim, "memory")) != NULL && !json_is_null(v) &&
	    !(json_is_string(v) && json_string_length(v) == 0)) {
		json_int_t bytes;
		if (!json_is_string(v) || of_memory(json_string_value(v), &bytes) < 0) {
			snprintf(err, errlen,
				 "limits.memory: must be a quantity like \"128Mi\" or \"1Gi\"");
			return -1;
		}
		json_object_set_new(l, "memory", json_integer(bytes));
	}
	if ((v = json_object_get(lim, "cpu")) != NULL && !json_is_null(v) &&
	    !(json_is_string(v) && json_string_length(v) == 0)) {
		const char *c = json_is_string(v) ? json_string_value(v) : NULL;
		char *end;
		double d;
		if (c == NULL) {
			snprintf(err, errlen,
				 "limits.cpu: must be a string like \"500m\" or \"1\"");
			return -1;
		}
		/* "500m" is what flint takes as it is; "0.5" becomes a number of CPUs. */
		d = strtod(c, &end);
		if (end != c && *end == '\0')
			json_object_set_new(l, "cpu", json_real(d));
		else
			json_object_set_new(l, "cpu", json_string(c));
	}
	return 0;
}

static int of_string_map(const json_t *o, const char *field, char *err, size_t errlen)
{
	const char *k;
	json_t *v;

	if (o == NULL || json_is_null(o))
		return 0;
	if (!json_is_object(o)) {
		snprintf(err, errlen, "%s: must be an object of string values", field);
		return -1;
	}
	json_object_foreach((json_t *)o, k, v)
	{
		if (!json_is_string(v)) {
			snprintf(err, errlen, "%s.%s: must be a string", field, k);
			return -1;
		}
	}
	return 0;
}

/* Builds (or, for an update, amends base, a copy of the stored spec) a flint spec
 * from an OpenFaaS FunctionDeployment. Returns the spec, or NULL with err set. */
static json_t *of_to_spec(const json_t *d, json_t *base, char *name, size_t namelen, char *err,
			  size_t errlen)
{
	json_t *spec = base ? base : json_object(), *v, *labels;
	const char *s;

	v = json_object_get(d, "service");
	if (!json_is_string(v) || json_string_length(v) == 0) {
		snprintf(err, errlen, "service: the function's name is required");
		goto fail;
	}
	snprintf(name, namelen, "%s", json_string_value(v));
	v = json_object_get(d, "namespace");
	if (v && !json_is_null(v) &&
	    !(json_is_string(v) &&
	      (json_string_length(v) == 0 || strcmp(json_string_value(v), OF_NAMESPACE) == 0))) {
		snprintf(err, errlen, "namespace: flint has one namespace, \"%s\"", OF_NAMESPACE);
		goto fail;
	}
	v = json_object_get(d, "image");
	s = json_is_string(v) ? json_string_value(v) : "";
	if ((v && !json_is_null(v) && !json_is_string(v)) || (s[0] && strcmp(s, OF_IMAGE) != 0)) {
		snprintf(err, errlen,
			 "image: flint runs native commands, not container images: leave image "
			 "empty (or \"%s\") and give the command in envProcess",
			 OF_IMAGE);
		goto fail;
	}
	v = json_object_get(d, "envProcess");
	if (v && !json_is_null(v) && !json_is_string(v)) {
		snprintf(err, errlen, "envProcess: must be a string (run with /bin/sh -c)");
		goto fail;
	}
	if (json_is_string(v) && json_string_length(v))
		json_object_set_new(spec, "command", json_string(json_string_value(v)));
	else if (base == NULL) {
		snprintf(err, errlen,
			 "envProcess: the command to run is required (a server listening on "
			 "127.0.0.1:$PORT, run with /bin/sh -c)");
		goto fail;
	}
	json_object_set_new(spec, "name", json_string(name));
	v = json_object_get(d, "envVars");
	if (of_string_map(v, "envVars", err, errlen) < 0)
		goto fail;
	json_object_set_new(spec, "env", json_is_object(v) ? json_deep_copy(v) : json_object());
	labels = json_object_get(d, "labels");
	if (of_string_map(labels, "labels", err, errlen) < 0 ||
	    of_string_map(json_object_get(d, "annotations"), "annotations", err, errlen) < 0)
		goto fail;
	json_object_del(spec, "labels");
	json_object_del(spec, "annotations");
	if (json_object_size(labels))
		json_object_set_new(spec, "labels", json_deep_copy(labels));
	if (json_object_size(json_object_get(d, "annotations")))
		json_object_set_new(spec, "annotations",
				    json_deep_copy(json_object_get(d, "annotations")));
	/* OpenFaaS's scaling labels set the bounds. */
	{
		static const char *const keys[2] = {"com.openfaas.scale.min",
						    "com.openfaas.scale.max"};
		for (int i = 0; i < 2; i++) {
			json_t *lv = json_object_get(labels, keys[i]), *sc;
			char *end;
			long n;
			if (!json_is_string(lv))
				continue;
			n = strtol(json_string_value(lv), &end, 10);
			if (*end || end == json_string_value(lv) || n < 0) {
				snprintf(err, errlen, "labels.%s: must be a whole number", keys[i]);
				goto fail;
			}
			sc = json_object_get(spec, "scale");
			if (!json_is_object(sc)) {
				sc = json_object();
				json_object_set_new(spec, "scale", sc);
			}
			json_object_set_new(sc, i ? "max" : "min", json_integer(n));
		}
	}
	json_object_del(spec, "secrets");
	v = json_object_get(d, "secrets");
	if (v && !json_is_null(v)) {
		if (!json_is_array(v)) {
			snprintf(err, errlen, "secrets: must be a list of secret names");
			goto fail;
		}
		if (json_array_size(v))
			json_object_set_new(spec, "secrets", json_deep_copy(v));
	}
	if (base) {
		/* What OpenFaaS's fields do not carry stays as it was, except limits it sets. */
		json_t *l = json_object_get(spec, "limits");
		if (json_is_object(l)) {
			json_object_del(l, "memory");
			json_object_del(l, "cpu");
		}
	}
	if (of_limits(json_object_get(d, "limits"), spec, err, errlen) < 0)
		goto fail;
	return spec;
fail:
	json_decref(spec);
	return NULL;
}

static void of_deploy(fl_ctl *ctl, const struct ctl_sysreq *r, int update)
{
	json_error_t jerr;
	json_t *d = json_loadb(r->body, r->body_len, 0, &jerr), *spec, *base = NULL;
	char name[128], err[600];
	uint64_t version;
	int created, st;
	ctl_fn *fn;

	if (d == NULL || !json_is_object(d)) {
		json_decref(d);
		of_error(r, 400,
			 "the body must be a JSON FunctionDeployment like {\"service\": "
			 "\"NAME\", \"envProcess\": \"COMMAND\"}");
		return;
	}
	{
		json_t *sv = json_object_get(d, "service");
		fn = json_is_string(sv) ? of_find(ctl, json_string_value(sv)) : NULL;
	}
	if (update && fn == NULL && json_is_string(json_object_get(d, "service"))) {
		of_error(r, 404, "no function named %s",
			 json_string_value(json_object_get(d, "service")));
		json_decref(d);
		return;
	}
	if (!update && fn) {
		of_error(r, 409, "function %s already exists: update it with PUT /system/functions",
			 fn->name);
		json_decref(d);
		return;
	}
	if (update && fn)
		base = json_loads(fn->spec_json, 0, &jerr);
	spec = of_to_spec(d, base, name, sizeof(name), err, sizeof(err));
	json_decref(d);
	if (spec == NULL) {
		of_error(r, 400, "%s", err);
		return;
	}
	st = ctl_put_spec(ctl, name, spec, &version, &created, err, sizeof(err));
	json_decref(spec);
	if (st != 0) {
		of_error(r, st, "%s", err);
		return;
	}
	of_answer(r, 202, NULL);
}

static void of_delete(fl_ctl *ctl, const struct ctl_sysreq *r)
{
	json_error_t jerr;
	json_t *d = json_loadb(r->body, r->body_len, 0, &jerr), *v;
	ctl_fn *fn;

	v = d ? json_object_get(d, "functionName") : NULL;
	if (!json_is_string(v) || json_string_length(v) == 0) {
		json_decref(d);
		of_error(r, 400, "the body must be {\"functionName\": \"NAME\"}");
		return;
	}
	fn = of_find(ctl, json_string_value(v));
	if (fn == NULL) {
		of_error(r, 404, "no function named %s", json_string_value(v));
		json_decref(d);
		return;
	}
	json_decref(d);
	if (fl_registry_delete(ctl->reg, fn->name) < 0) {
		of_error(r, 500, "cannot delete %s from the registry", fn->name);
		return;
	}
	ctl_fn_remove(ctl, fn);
	of_answer(r, 202, NULL);
}

/* replicas N becomes min = N and max = max(N, the current max): OpenFaaS's replicas is
 * a floor the autoscaler may exceed, and 0 allows scaling to zero. */
static void of_scale(fl_ctl *ctl, const struct ctl_sysreq *r, const char *name)
{
	json_error_t jerr;
	json_t *d = json_loadb(r->body, r->body_len, 0, &jerr), *v;
	char err[512];
	long long n, mx;
	ctl_fn *fn = of_find(ctl, name);
	int st;

	if (fn == NULL) {
		json_decref(d);
		of_error(r, 404, "no function named %s", name);
		return;
	}
	v = d ? json_object_get(d, "replicas") : NULL;
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 10000) {
		json_decref(d);
		of_error(r, 400, "replicas: must be a whole number from 0 to 10000");
		return;
	}
	n = json_integer_value(v);
	v = json_object_get(d, "serviceName");
	if (json_is_string(v) && json_string_length(v) && strcmp(json_string_value(v), name) != 0) {
		of_error(r, 400, "serviceName: the body says %s but the path says %s",
			 json_string_value(v), name);
		json_decref(d);
		return;
	}
	json_decref(d);
	mx = n > (long long)fn->spec->max ? n : (long long)fn->spec->max;
	st = ctl_set_scale(ctl, fn, n, mx, err, sizeof(err));
	if (st != 0) {
		of_error(r, st, "%s", err);
		return;
	}
	of_answer(r, 202, NULL);
}

static void of_info(const struct ctl_sysreq *r)
{
	of_answer(r, 200,
		  json_pack("{s:{s:s, s:s, s:{s:s, s:s}}, s:{s:s, s:s, s:s}, s:s}", "provider",
			    "provider", "flint", "orchestration", "flint", "version", "sha", "",
			    "release", OF_VERSION, "version", "commit_message", "", "sha", "",
			    "release", OF_VERSION, "arch",
#if defined(__x86_64__)
			    "x86_64"
#elif defined(__aarch64__)
			    "arm64"
#else
			    "unknown"
#endif
			    ));
}

static int is(const struct ctl_sysreq *r, const char *m)
{
	return strcmp(r->method, m) == 0;
}

void ctl_openfaas(fl_ctl *ctl, const struct ctl_sysreq *r)
{
	char path[256];
	size_t n = strcspn(r->target, "?");

	if (!of_authorized(ctl, r)) {
		static const char msg[] =
		    "{\"error\": \"the OpenFaaS API needs basic authentication: "
		    "user admin, the admin token as password\", \"status\": "
		    "401}";
		fl_gateway_offload_done(r->thread, r->cookie, 401, "application/json", msg,
					sizeof(msg) - 1,
					"WWW-Authenticate: Basic realm=\"flint\"\r\n");
		return;
	}
	if (n >= sizeof(path)) {
		of_error(r, 404, "no such path");
		return;
	}
	memcpy(path, r->target, n);
	path[n] = '\0';
	while (n > 1 && path[n - 1] == '/')
		path[--n] = '\0';
	if (strcmp(path, "/system/functions") == 0) {
		if (is(r, "GET"))
			of_list(ctl, r);
		else if (is(r, "POST"))
			of_deploy(ctl, r, 0);
		else if (is(r, "PUT"))
			of_deploy(ctl, r, 1);
		else if (is(r, "DELETE"))
			of_delete(ctl, r);
		else
			of_error(r, 405, "%s is not allowed on %s", r->method, path);
		return;
	}
	if (strncmp(path, "/system/function/", 17) == 0 && strchr(path + 17, '/') == NULL) {
		ctl_fn *fn = of_find(ctl, path + 17);
		if (!is(r, "GET"))
			of_error(r, 405, "%s is not allowed on %s", r->method, path);
		else if (fn == NULL)
			of_error(r, 404, "no function named %s", path + 17);
		else
			of_answer(r, 200, of_status(fn));
		return;
	}
	if (strncmp(path, "/system/scale-function/", 23) == 0 && strchr(path + 23, '/') == NULL) {
		if (!is(r, "POST"))
			of_error(r, 405, "%s is not allowed on %s", r->method, path);
		else
			of_scale(ctl, r, path + 23);
		return;
	}
	if (strcmp(path, "/system/info") == 0) {
		if (!is(r, "GET"))
			of_error(r, 405, "%s is not allowed on %s", r->method, path);
		else
			of_info(r);
		return;
	}
	of_error(r, 404, "%s is not part of flint's OpenFaaS-compatible API (see docs/openfaas.md)",
		 path);
}
