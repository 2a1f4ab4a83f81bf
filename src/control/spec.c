/* spec.c -- validates a function's JSON spec, fills in defaults, and writes it back. */
#include "control/spec.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"
#include "events/trigger_spec.h"

#define MAX_INSTANCES	10000
#define MAX_CONCURRENCY 1000000
#define MAX_QUEUE	1000000
#define MIN_MEMORY	(4ULL << 20) /* below this not even an interpreter starts */
#define MAX_CPU_MILLIS	1024000	     /* 1024 CPUs */
#define MIN_PIDS	4	     /* the sandbox's init, the command and a little room */
#define MAX_PIDS	4194304	     /* the kernel's own pid_max ceiling */
/* Durations beyond a year are certainly mistakes (and keep the ms arithmetic far from overflow). */
#define MAX_DURATION_MS (366ULL * 24 * 3600 * 1000)

static const char *const top_fields[] = {
    "name",    "command", "protocol",	 "env",	   "workdir", "code",	 "build",    "scale",
    "limits",  "health",  "queue",	 "grpc",   "sandbox", "async",	 "triggers", "thrift",
    "secrets", "labels",  "annotations", "rootfs", "image",   "network", NULL};
static const char *const scale_fields[] = {"min",	   "max",      "concurrency", "target",
					   "idle_timeout", "reserved", NULL};
static const char *const limits_fields[] = {"timeout", "max_body", "memory", "cpu", "pids", NULL};
static const char *const health_fields[] = {"tcp",	"path", "grpc", "startup_timeout",
					    "liveness", NULL};
static const char *const liveness_fields[] = {"interval", "failures", "timeout", NULL};
static const char *const queue_fields[] = {"max", "timeout", NULL};
static const char *const grpc_fields[] = {"services", NULL};
static const char *const thrift_fields[] = {"services", "port", NULL};
static const char *const async_fields[] = {"retries", "backoff_min", "backoff_max", "max_age",
					   "timeout", "concurrency", NULL};

struct ctx {
	char *err;
	size_t errlen;
};

static int reject(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes the error sentence; always returns -EINVAL so callers can `return reject(...)`. */
static int reject(struct ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Edit distance counting a swap of neighbours as one edit (typos like "mxa"), for suggesting a
 * field name; names longer than the table are never suggested. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), d[32][32], i, j;

	if (la >= 32 || lb >= 32)
		return 99;
	for (i = 0; i <= la; i++)
		d[i][0] = i;
	for (j = 0; j <= lb; j++)
		d[0][j] = j;
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	}
	return d[la][lb];
}

/* Rejects keys of obj not in allowed; prefix is "" at the top level or "scale: " etc. */
static int check_fields(struct ctx *c, const json_t *obj, const char *prefix,
			const char *const *allowed)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v)
	{
		const char *guess = NULL;
		size_t i, best = 3;
		for (i = 0; allowed[i]; i++) {
			size_t d;
			if (strcmp(key, allowed[i]) == 0)
				break;
			d = edit_distance(key, allowed[i]);
			if (d < best)
				best = d, guess = allowed[i];
		}
		if (allowed[i])
			continue;
		if (guess)
			return reject(c, "%sunknown field \"%s\" (did you mean \"%s\"?)", prefix,
				      key, guess);
		return reject(c, "%sunknown field \"%s\"", prefix, key);
	}
	return 0;
}

/* A JSON string without embedded NUL bytes (they would silently cut C strings). */
static int plain_string(const json_t *v)
{
	return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

/* Looks up an optional member; JSON null counts as absent so an empty YAML key is harmless. */
static json_t *member(const json_t *obj, const char *key)
{
	json_t *v = obj ? json_object_get(obj, key) : NULL;
	return json_is_null(v) ? NULL : v;
}

/* An optional nested object: 0 with *out (NULL if absent), or an error. */
static int get_object(struct ctx *c, const json_t *j, const char *key, json_t **out)
{
	*out = member(j, key);
	if (*out && !json_is_object(*out))
		return reject(c, "%s: must be an object", key);
	return 0;
}

static int get_uint(struct ctx *c, const json_t *obj, const char *path, const char *key,
		    uint32_t lo, uint32_t hi, uint32_t *out)
{
	json_t *v = member(obj, key);
	json_int_t n;

	if (v == NULL)
		return 0;
	n = json_is_integer(v) ? json_integer_value(v) : -1;
	if (!json_is_integer(v) || n < (json_int_t)lo || n > (json_int_t)hi)
		return reject(c, "%s.%s: must be an integer between %u and %u", path, key, lo, hi);
	*out = (uint32_t)n;
	return 0;
}

/* A duration: a string for fl_parse_duration() or a number of seconds. */
static int get_duration(struct ctx *c, const json_t *obj, const char *path, const char *key,
			uint64_t min_ms, const char *min_text, uint64_t *out)
{
	json_t *v = member(obj, key);
	uint64_t ms;

	if (v == NULL)
		return 0;
	if (json_is_string(v)) {
		if (!plain_string(v) || fl_parse_duration(json_string_value(v), &ms) < 0)
			return reject(
			    c,
			    "%s.%s: must be a duration such as \"500ms\", \"30s\", \"5m\" or "
			    "\"1h\", or a number of seconds",
			    path, key);
	} else if (json_is_number(v)) {
		double s = json_number_value(v);
		if (!isfinite(s) || s < 0 || s * 1000 > (double)MAX_DURATION_MS)
			return reject(c, "%s.%s: must be a non-negative number of seconds", path,
				      key);
		ms = (uint64_t)llround(s * 1000);
	} else {
		return reject(c,
			      "%s.%s: must be a duration string (\"30s\") or a number of seconds",
			      path, key);
	}
	if (ms < min_ms)
		return reject(c, "%s.%s: must be at least %s", path, key, min_text);
	if (ms > MAX_DURATION_MS)
		return reject(c, "%s.%s: must be at most a year", path, key);
	*out = ms;
	return 0;
}

/* A size: a string for fl_parse_size() or a non-negative integer of bytes. */
static int get_size(struct ctx *c, const json_t *obj, const char *path, const char *key,
		    uint64_t *out)
{
	json_t *v = member(obj, key);

	if (v == NULL)
		return 0;
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (plain_string(v) && fl_parse_size(json_string_value(v), out) == 0)
		return 0;
	return reject(
	    c, "%s.%s: must be a size such as \"64m\", \"512k\" or \"1g\", or a number of bytes",
	    path, key);
}

/* An optional non-empty string field at the top level, copied into *out. */
static int get_string(struct ctx *c, const json_t *j, const char *key, char **out)
{
	json_t *v = member(j, key);

	if (v == NULL)
		return 0;
	if (!plain_string(v) || json_string_length(v) == 0)
		return reject(c, "%s: must be a non-empty string", key);
	*out = fl_xstrdup(json_string_value(v));
	return 0;
}

static int parse_command(struct ctx *c, const json_t *j, fl_spec *s)
{
	json_t *v = member(j, "command"), *e;
	size_t i;

	if (v == NULL && member(j, "image"))
		return 0; /* the image's Entrypoint and Cmd */
	if (v == NULL)
		return reject(c, "command: is required (the program to run, as a list of strings "
				 "or a shell string)");
	if (plain_string(v) && json_string_length(v) > 0) {
		s->argv = fl_xcalloc(4, sizeof(char *));
		s->argv[0] = fl_xstrdup("/bin/sh");
		s->argv[1] = fl_xstrdup("-c");
		s->argv[2] = fl_xstrdup(json_string_value(v));
		s->argc = 3;
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) == 0)
		return reject(c, "command: must be a non-empty list of strings or a string");
	json_array_foreach(v, i, e)
	{
		if (json_is_number(e))
			return reject(
			    c, "command[%zu]: must be a string (in YAML, quote numbers: \"8\")", i);
		if (!plain_string(e))
			return reject(c, "command[%zu]: must be a string", i);
	}
	if (json_string_length(json_array_get(v, 0)) == 0)
		return reject(c, "command[0]: the program to run must not be empty");
	s->argv = fl_xcalloc(json_array_size(v) + 1, sizeof(char *));
	json_array_foreach(v, i, e)
	{
		s->argv[i] = fl_xstrdup(json_string_value(e));
		s->argc++;
	}
	return 0;
}

static int valid_env_key(const char *k)
{
	if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_'))
		return 0;
	for (k++; *k; k++)
		if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') ||
		      (*k >= '0' && *k <= '9') || *k == '_'))
			return 0;
	return 1;
}

static int parse_env(struct ctx *c, const json_t *j, fl_spec *s)
{
	json_t *env = member(j, "env"), *v;
	const char *key;
	size_t n = 0;

	s->env = fl_xcalloc(1, sizeof(char *));
	if (env == NULL)
		return 0;
	if (!json_is_object(env))
		return reject(c, "env: must be an object of NAME: value pairs");
	free(s->env);
	s->env = fl_xcalloc(json_object_size(env) + 1, sizeof(char *));
	json_object_foreach(env, key, v)
	{
		char *text = NULL, *kv;
		size_t len;
		if (!valid_env_key(key))
			return reject(c,
				      "env.%s: names must start with a letter or '_' and contain "
				      "only letters, digits and '_'",
				      key);
		if (strcmp(key, "PORT") == 0)
			return reject(c, "env.PORT: is set by flint and cannot be overridden");
		if (plain_string(v)) {
			text = fl_xstrdup(json_string_value(v));
		} else if (json_is_number(v) || json_is_boolean(v)) {
			/* Numbers and booleans are written as JSON prints them: 8, 1.5, true. */
			text = json_dumps(v, JSON_ENCODE_ANY);
			if (text == NULL)
				return reject(c, "env.%s: could not be converted to text", key);
		} else {
			return reject(c, "env.%s: must be a string, a number or a boolean", key);
		}
		len = strlen(key) + strlen(text) + 2;
		kv = fl_xmalloc(len);
		snprintf(kv, len, "%s=%s", key, text);
		free(text);
		s->env[n++] = kv;
		s->nenv = (int)n;
	}
	return 0;
}

static int valid_digest(const char *d)
{
	if (strncmp(d, "sha256:", 7) != 0 || strlen(d) != 71)
		return 0;
	for (d += 7; *d; d++)
		if (!((*d >= '0' && *d <= '9') || (*d >= 'a' && *d <= 'f')))
			return 0;
	return 1;
}

static int parse_scale(struct ctx *c, const json_t *j, fl_spec *s)
{
	json_t *o;
	uint32_t target = 0;
	int rc;

	if ((rc = get_object(c, j, "scale", &o)) < 0)
		return rc;
	if (o != NULL) {
		if ((rc = check_fields(c, o, "scale: ", scale_fields)) < 0 ||
		    (rc = get_uint(c, o, "scale", "min", 0, MAX_INSTANCES, &s->min)) < 0 ||
		    (rc = get_uint(c, o, "scale", "max", 1, MAX_INSTANCES, &s->max)) < 0 ||
		    (rc = get_uint(c, o, "scale", "concurrency", 0, MAX_CONCURRENCY,
				   &s->concurrency)) < 0 ||
		    (rc = get_uint(c, o, "scale", "target", 0, MAX_CONCURRENCY, &target)) < 0 ||
		    (rc = get_duration(c, o, "scale", "idle_timeout", 1000, "1s",
				       &s->idle_timeout_ms)) < 0 ||
		    (rc = get_uint(c, o, "scale", "reserved", 0, 1000, &s->reserved)) < 0)
			return rc;
	}
	if (s->min > s->max)
		return reject(c, "scale.min: must not be greater than scale.max (%u > %u%s)",
			      s->min, s->max, member(o, "max") ? "" : ", the default");
	if (s->concurrency > 0 && target > s->concurrency)
		return reject(c, "scale.target: must not exceed scale.concurrency (%u > %u)",
			      target, s->concurrency);
	/* target 0 (or absent) means "choose for me": the hard cap if there is one. */
	s->target = target ? target : s->concurrency ? s->concurrency : 100;
	return 0;
}

/* limits.cpu: a number of CPUs (0.2, 2) or millicpus as a string ("200m"); 0 = none. */
static int get_cpu(struct ctx *c, const json_t *obj, uint32_t *out)
{
	json_t *v = member(obj, "cpu");
	double cpus = -1;

	if (v == NULL)
		return 0;
	if (json_is_number(v)) {
		cpus = json_number_value(v);
	} else if (plain_string(v)) {
		const char *t = json_string_value(v);
		char *end;
		double n = strtod(t, &end);
		if (end != t && strcmp(end, "m") == 0)
			cpus = n / 1000;
		else if (end != t && *end == '\0')
			cpus = n;
	}
	if (!isfinite(cpus) || cpus < 0 || cpus * 1000 > MAX_CPU_MILLIS ||
	    (cpus > 0 && cpus < 0.01))
		return reject(
		    c, "limits.cpu: must be a number of CPUs between 0.01 and 1024 (such "
		       "as 0.5 or 2) or millicpus as a string such as \"500m\"; 0 = no limit");
	*out = (uint32_t)llround(cpus * 1000);
	return 0;
}

static int parse_limits(struct ctx *c, const json_t *j, fl_spec *s)
{
	json_t *o;
	int rc;

	if ((rc = get_object(c, j, "limits", &o)) < 0 || o == NULL)
		return rc;
	if ((rc = check_fields(c, o, "limits: ", limits_fields)) < 0 ||
	    (rc = get_duration(c, o, "limits", "timeout", 1, "1ms", &s->timeout_ms)) < 0 ||
	    (rc = get_size(c, o, "limits", "max_body", &s->max_body)) < 0 ||
	    (rc = get_size(c, o, "limits", "memory", &s->memory)) < 0 ||
	    (rc = get_cpu(c, o, &s->cpu_millis)) < 0 ||
	    (rc = get_uint(c, o, "limits", "pids", 0, MAX_PIDS, &s->pids)) < 0)
		return rc;
	if (s->memory > 0 && s->memory < MIN_MEMORY)
		return reject(c, "limits.memory: must be at least \"4m\" (0 = no limit)");
	if (s->pids > 0 && s->pids < MIN_PIDS)
		return reject(c, "limits.pids: must be at least %d (0 = no limit)", MIN_PIDS);
	return 0;
}

/* health.liveness: {interval, failures, timeout}; an empty object takes the defaults. */
static int parse_liveness(struct ctx *c, const json_t *health, fl_spec *s)
{
	json_t *o;
	int rc;

	o = member(health, "liveness");
	if (o == NULL)
		return 0;
	if (!json_is_object(o))
		return reject(c,
			      "health.liveness: must be an object such as {\"interval\": \"10s\", "
			      "\"failures\": 3}");
	s->liveness_interval_ms = 10000;
	s->liveness_failures = 3;
	s->liveness_timeout_ms = 1000;
	if ((rc = check_fields(c, o, "health.liveness: ", liveness_fields)) < 0 ||
	    (rc = get_duration(c, o, "health.liveness", "interval", 100, "100ms",
			       &s->liveness_interval_ms)) < 0 ||
	    (rc = get_duration(c, o, "health.liveness", "timeout", 1, "1ms",
			       &s->liveness_timeout_ms)) < 0 ||
	    (rc = get_uint(c, o, "health.liveness", "failures", 1, 100, &s->liveness_failures)) < 0)
		return rc;
	/* Checks never overlap: one that is still waiting when the next is due has failed. */
	if (s->liveness_timeout_ms > s->liveness_interval_ms)
		return reject(c,
			      "health.liveness.timeout: must not be longer than the interval "
			      "(%llu ms > %llu ms)",
			      (unsigned long long)s->liveness_timeout_ms,
			      (unsigned long long)s->liveness_interval_ms);
	return 0;
}

static int parse_health(struct ctx *c, const json_t *j, fl_spec *s)
{
	json_t *o, *tcp, *path;
	int rc;

	if ((rc = get_object(c, j, "health", &o)) < 0 || o == NULL)
		return rc;
	if ((rc = check_fields(c, o, "health: ", health_fields)) < 0 ||
	    (rc = get_duration(c, o, "health", "startup_timeout", 1, "1ms",
			       &s->startup_timeout_ms)) < 0)
		return rc;
	tcp = member(o, "tcp");
	path = member(o, "path");
	if (tcp && !json_is_boolean(tcp))
		return reject(c, "health.tcp: must be true or false");
	if (path) {
		if (!plain_string(path) || json_string_value(path)[0] != '/')
			return reject(c, "health.path: must be a string starting with '/'");
		if (strpbrk(json_string_value(path), " \t\r\n"))
			return reject(c, "health.path: must not contain spaces or line breaks");
		if (json_is_true(tcp))
			return reject(c, "health: set either \"tcp\": true or \"path\", not both");
		s->health_type = FL_HEALTH_HTTP;
		s->health_path = fl_xstrdup(json_string_value(path));
	} else if (json_is_false(tcp)) {
		return reject(c, "health: with \"tcp\": false a \"path\" to check is required");
	}
	if ((path = member(o, "grpc")) != NULL) {
		if (!json_is_boolean(path))
			return reject(c, "health.grpc: must be true or false");
		if (json_is_true(path)) {
			if (s->health_type == FL_HEALTH_HTTP || json_is_true(tcp))
				return reject(
				    c, "health: choose one of \"tcp\", \"path\" and \"grpc\"");
			s->health_type = FL_HEALTH_GRPC;
		}
	}
	return parse_liveness(c, o, s);
}

/* A gRPC service name as it appears in :path: "pkg.Service". */
static int valid_service(const char *v)
{
	size_t n = strlen(v), i;

	if (n == 0 || n > 200 || v[0] == '.' || v[n - 1] == '.')
		return 0;
	for (i = 0; i < n; i++)
		if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') ||
		      (v[i] >= '0' && v[i] <= '9') || v[i] == '_' || v[i] == '.'))
			return 0;
	return 1;
}

/* grpc: {services} or thrift: {services, port}: the services a function serves. */
static int parse_services(struct ctx *c, const json_t *j, const char *key, fl_spec *s)
{
	json_t *o, *a, *v;
	size_t i;
	int rc, thrift = strcmp(key, "thrift") == 0;
	char prefix[16];

	if ((rc = get_object(c, j, key, &o)) < 0 || o == NULL)
		return rc;
	snprintf(prefix, sizeof(prefix), "%s: ", key);
	if ((rc = check_fields(c, o, prefix, thrift ? thrift_fields : grpc_fields)) < 0)
		return rc;
	if (thrift && (rc = get_uint(c, o, "thrift", "port", 1024, 65535, &s->thrift_port)) < 0)
		return rc;
	a = json_object_get(o, "services");
	if (a == NULL || json_is_null(a))
		return 0;
	if (s->services)
		return reject(c, "%s.services: a function serves either gRPC or Thrift", key);
	if (!json_is_array(a) || json_array_size(a) > 64)
		return reject(c, "%s.services: must be a list of at most 64 service names", key);
	s->services = fl_xcalloc(json_array_size(a) + 1, sizeof(char *));
	json_array_foreach(a, i, v)
	{
		if (!plain_string(v) || !valid_service(json_string_value(v)))
			return reject(c,
				      "%s.services[%zu]: must be a full service name like \"%s\" "
				      "(letters, digits, '_' and '.')",
				      key, i, thrift ? "EchoService" : "helloworld.Greeter");
		s->services[s->nservices++] = fl_xstrdup(json_string_value(v));
	}
	return 0;
}

/* secrets: a list of distinct secret names (function-name rules), at most FL_SPEC_MAX_SECRETS. */
static int parse_secrets(struct ctx *c, const json_t *j, fl_spec *s)
{
	json_t *arr = member(j, "secrets"), *v;
	size_t i, k;

	if (arr == NULL)
		return 0;
	if (!json_is_array(arr))
		return reject(c, "secrets: must be a list of secret names");
	if (json_array_size(arr) > FL_SPEC_MAX_SECRETS)
		return reject(c, "secrets: at most %d secrets", FL_SPEC_MAX_SECRETS);
	s->secrets = fl_xcalloc(json_array_size(arr) + 1, sizeof(char *));
	json_array_foreach(arr, i, v)
	{
		if (!plain_string(v) || !fl_valid_name(json_string_value(v)))
			return reject(c,
				      "secrets[%zu]: must be a secret name (1 to 63 characters of "
				      "lowercase letters, digits and '-')",
				      i);
		for (k = 0; k < i; k++)
			if (strcmp(s->secrets[k], json_string_value(v)) == 0)
				return reject(c, "secrets[%zu]: %s is listed twice", i,
					      json_string_value(v));
		s->secrets[i] = fl_xstrdup(json_string_value(v));
		s->nsecrets = (int)i + 1;
	}
	return 0;
}

/* Whether path names an existing directory (following symbolic links) and, if file is not
 * NULL, holds a regular file of that name. */
static int dir_with(const char *path, const char *file)
{
	char p[4200];
	struct stat st;

	if (!fl_is_dir(path))
		return 0;
	if (file == NULL)
		return 1;
	snprintf(p, sizeof(p), "%s/%s", path, file);
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* rootfs: an existing absolute directory; image: an absolute OCI image layout directory,
 * optionally ":TAG" (a ':' after the last '/' starts the tag). Both are checked on the host
 * now, so a typo is refused at deploy rather than at the first start. */
static int parse_root(struct ctx *c, const json_t *j, fl_spec *s)
{
	char *colon, *path;
	int rc, ok;

	if ((rc = get_string(c, j, "rootfs", &s->rootfs)) < 0 ||
	    (rc = get_string(c, j, "image", &s->image)) < 0)
		return rc;
	if (s->rootfs && s->image)
		return reject(c, "rootfs: set either \"rootfs\" or \"image\", not both");
	if (s->rootfs) {
		if (s->rootfs[0] != '/')
			return reject(c, "rootfs: must be an absolute path (starting with '/')");
		if (strlen(s->rootfs) > 1024)
			return reject(c, "rootfs: must be at most 1024 characters");
		if (!dir_with(s->rootfs, NULL))
			return reject(c, "rootfs: %s is not a directory on this host", s->rootfs);
	}
	if (s->image == NULL)
		return 0;
	if (s->image[0] != '/')
		return reject(c,
			      "image: must be an absolute path to an OCI image layout directory, "
			      "optionally followed by \":TAG\"");
	if (strlen(s->image) > 1024)
		return reject(c, "image: must be at most 1024 characters");
	colon = strrchr(s->image, ':');
	if (colon && strchr(colon, '/'))
		colon = NULL;
	if (colon && colon[1] == '\0')
		return reject(c, "image: the tag after ':' must not be empty");
	path = colon ? fl_xstrndup(s->image, (size_t)(colon - s->image)) : fl_xstrdup(s->image);
	ok = dir_with(path, "oci-layout") && dir_with(path, "index.json");
	if (!ok)
		rc =
		    reject(c,
			   "image: %s is not an OCI image layout directory (it needs an oci-layout "
			   "file and an index.json, as `skopeo copy ... oci:DIR:TAG` writes)",
			   path);
	free(path);
	return ok ? 0 : rc;
}

/* labels, annotations: free metadata, an object of string values (kept as given). */
static int parse_meta(struct ctx *c, const json_t *j, const char *key, json_t **out)
{
	json_t *o = member(j, key), *v;
	const char *k;

	if (o == NULL)
		return 0;
	if (!json_is_object(o))
		return reject(c, "%s: must be an object of NAME: text pairs", key);
	json_object_foreach((json_t *)o, k, v)
	{
		if (!json_is_string(v))
			return reject(c, "%s.%s: must be a string", key, k);
		if (strlen(k) == 0 || strlen(k) > 253)
			return reject(c, "%s: names must be 1 to 253 characters", key);
	}
	if (json_object_size(o))
		*out = json_deep_copy(o);
	return 0;
}

static int parse_queue(struct ctx *c, const json_t *j, fl_spec *s)
{
	json_t *o;
	int rc;

	if ((rc = get_object(c, j, "queue", &o)) < 0 || o == NULL)
		return rc;
	if ((rc = check_fields(c, o, "queue: ", queue_fields)) < 0 ||
	    (rc = get_uint(c, o, "queue", "max", 0, MAX_QUEUE, &s->queue_max)) < 0 ||
	    (rc = get_duration(c, o, "queue", "timeout", 1, "1ms", &s->queue_timeout_ms)) < 0)
		return rc;
	return 0;
}

static int parse_async(struct ctx *c, const json_t *j, fl_spec *s)
{
	json_t *o;
	int rc;

	if ((rc = get_object(c, j, "async", &o)) < 0 || o == NULL)
		return rc;
	if ((rc = check_fields(c, o, "async: ", async_fields)) < 0 ||
	    (rc = get_uint(c, o, "async", "retries", 0, 1000, &s->async_retries)) < 0 ||
	    (rc = get_duration(c, o, "async", "backoff_min", 1, "1ms", &s->async_backoff_min_ms)) <
		0 ||
	    (rc = get_duration(c, o, "async", "backoff_max", 1, "1ms", &s->async_backoff_max_ms)) <
		0 ||
	    (rc = get_duration(c, o, "async", "max_age", 1000, "1s", &s->async_max_age_ms)) < 0 ||
	    (rc = get_duration(c, o, "async", "timeout", 1, "1ms", &s->async_timeout_ms)) < 0 ||
	    (rc = get_uint(c, o, "async", "concurrency", 1, MAX_CONCURRENCY,
			   &s->async_concurrency)) < 0)
		return rc;
	if (s->async_backoff_min_ms > s->async_backoff_max_ms)
		return reject(c, "async.backoff_min: must not be longer than async.backoff_max");
	return 0;
}

/* triggers: [...] is validated by the events module, which runs them. */
static int parse_triggers(struct ctx *c, const json_t *j, fl_spec *s)
{
	json_t *v = member(j, "triggers");

	if (v == NULL)
		return 0;
	return fl_trigger_spec_parse(v, &s->triggers, c->err, c->errlen);
}

int fl_spec_parse(const json_t *j, fl_spec **out, char *err, size_t errlen)
{
	struct ctx c = {err, errlen};
	fl_spec *s = fl_xcalloc(1, sizeof(*s));
	json_t *v;
	int rc;

	if (errlen > 0)
		err[0] = '\0';
	*out = NULL;
	s->max = 10;
	s->idle_timeout_ms = 60000;
	s->timeout_ms = 60000;
	s->max_body = 64ULL << 20;
	s->health_type = FL_HEALTH_TCP;
	s->startup_timeout_ms = 30000;
	s->queue_max = 1000;
	s->queue_timeout_ms = 30000;
	s->sandbox = 1;
	s->async_retries = 3;
	s->async_backoff_min_ms = 1000;
	s->async_backoff_max_ms = 300000;
	s->async_max_age_ms = 86400000;
	s->async_concurrency = 10;

	if (!json_is_object(j)) {
		rc = reject(&c, "the spec must be a JSON object");
		goto fail;
	}
	if ((rc = check_fields(&c, j, "", top_fields)) < 0)
		goto fail;

	v = member(j, "name");
	if (v == NULL) {
		rc = reject(&c, "name: is required");
		goto fail;
	}
	if (!plain_string(v) || !fl_valid_name(json_string_value(v))) {
		rc = reject(
		    &c, "name: must be 1 to 63 characters of lowercase letters, digits and '-', "
			"not starting or ending with '-'");
		goto fail;
	}
	s->name = fl_xstrdup(json_string_value(v));

	if ((rc = parse_command(&c, j, s)) < 0)
		goto fail;

	v = member(j, "protocol");
	if (v && (!plain_string(v) || (strcmp(json_string_value(v), "http") != 0 &&
				       strcmp(json_string_value(v), "http2") != 0 &&
				       strcmp(json_string_value(v), "grpc") != 0 &&
				       strcmp(json_string_value(v), "thrift") != 0))) {
		rc = reject(&c, "protocol: must be \"http\", \"http2\", \"grpc\" or \"thrift\" "
				"(\"tcp\" is planned)");
		goto fail;
	}
	s->protocol = fl_xstrdup(v ? json_string_value(v) : "http");
	if ((rc = parse_services(&c, j, "grpc", s)) < 0)
		goto fail;
	if (s->nservices && strcmp(s->protocol, "grpc") != 0) {
		rc =
		    reject(&c, "grpc.services: only a function with protocol \"grpc\" serves gRPC");
		goto fail;
	}
	if (member(j, "thrift") && strcmp(s->protocol, "thrift") != 0) {
		rc = reject(
		    &c, "thrift: only a function with protocol \"thrift\" takes Thrift settings");
		goto fail;
	}
	if ((rc = parse_services(&c, j, "thrift", s)) < 0)
		goto fail;

	if ((rc = parse_env(&c, j, s)) < 0 || (rc = get_string(&c, j, "workdir", &s->workdir)) < 0)
		goto fail;
	if (s->workdir && s->workdir[0] != '/') {
		rc = reject(&c, "workdir: must be an absolute path (starting with '/')");
		goto fail;
	}
	if ((rc = get_string(&c, j, "code", &s->code)) < 0)
		goto fail;
	if (s->code && !valid_digest(s->code)) {
		rc = reject(&c, "code: must be \"sha256:\" followed by 64 lowercase hex digits, as "
				"returned by an upload");
		goto fail;
	}
	if ((rc = get_string(&c, j, "build", &s->build)) < 0 || (rc = parse_scale(&c, j, s)) < 0 ||
	    (rc = parse_limits(&c, j, s)) < 0 || (rc = parse_health(&c, j, s)) < 0 ||
	    (rc = parse_queue(&c, j, s)) < 0 || (rc = parse_async(&c, j, s)) < 0 ||
	    (rc = parse_triggers(&c, j, s)) < 0)
		goto fail;
	if (s->health_type == FL_HEALTH_GRPC && strcmp(s->protocol, "grpc") != 0) {
		rc = reject(&c,
			    "health.grpc: only a function with protocol \"grpc\" has a gRPC health "
			    "service");
		goto fail;
	}
	v = member(j, "sandbox");
	if (v && !json_is_boolean(v)) {
		rc = reject(&c, "sandbox: must be true or false");
		goto fail;
	}
	if (v)
		s->sandbox = json_is_true(v);
	v = member(j, "network");
	if (v && (!json_is_string(v) || (strcmp(json_string_value(v), "isolated") != 0 &&
					 strcmp(json_string_value(v), "host") != 0))) {
		rc = reject(&c, "network: must be \"host\" (the host's network, the default) or "
				"\"isolated\" (a network of the function's own, reachable only "
				"through flint)");
		goto fail;
	}
	s->net_isolated = v && strcmp(json_string_value(v), "isolated") == 0;
	/* Outside a sandbox the process keeps the privileges to leave any namespace. */
	if (s->net_isolated && !s->sandbox) {
		rc = reject(&c, "network: \"isolated\" needs \"sandbox\": true (an "
				"unsandboxed process could leave the namespace)");
		goto fail;
	}
	if ((rc = parse_secrets(&c, j, s)) < 0 ||
	    (rc = parse_meta(&c, j, "labels", &s->labels)) < 0 ||
	    (rc = parse_meta(&c, j, "annotations", &s->annotations)) < 0)
		goto fail;
	if ((rc = parse_root(&c, j, s)) < 0)
		goto fail;
	/* Only a sandbox can put a function into a tree of its own. */
	if ((s->rootfs || s->image) && !s->sandbox) {
		rc = reject(&c,
			    "%s: needs \"sandbox\": true (the function runs inside the tree "
			    "through the sandbox's own mount namespace)",
			    s->rootfs ? "rootfs" : "image");
		goto fail;
	}
	/* Outside a sandbox there is no private /run/secrets to put them in. */
	if (s->nsecrets && !s->sandbox) {
		rc = reject(&c, "secrets: need \"sandbox\": true (secrets are files in the "
				"sandbox's private /run/secrets)");
		goto fail;
	}
	*out = s;
	return 0;
fail:
	fl_spec_free(s);
	return rc;
}

static json_t *duration(uint64_t ms)
{
	char text[32];

	fl_format_duration(ms, text, sizeof(text));
	return json_string(text);
}

/* A string command was stored as sh -c; writing it back as a string keeps the user's form. */
static json_t *command_json(const fl_spec *s)
{
	json_t *a;

	if (s->argc == 3 && strcmp(s->argv[0], "/bin/sh") == 0 && strcmp(s->argv[1], "-c") == 0)
		return json_string(s->argv[2]);
	a = json_array();
	for (int i = 0; i < s->argc; i++)
		json_array_append_new(a, json_string(s->argv[i]));
	return a;
}

json_t *fl_spec_to_json(const fl_spec *s)
{
	json_t *j = json_object(), *env = json_object(), *limits, *health;

	json_object_set_new(j, "name", json_string(s->name));
	if (s->argv)
		json_object_set_new(j, "command", command_json(s));
	json_object_set_new(j, "protocol", json_string(s->protocol ? s->protocol : "http"));
	for (int i = 0; i < s->nenv; i++) {
		const char *eq = strchr(s->env[i], '=');
		char *k = fl_xstrndup(s->env[i], (size_t)(eq - s->env[i]));
		json_object_set_new(env, k, json_string(eq + 1));
		free(k);
	}
	json_object_set_new(j, "env", env);
	if (s->workdir)
		json_object_set_new(j, "workdir", json_string(s->workdir));
	if (s->code)
		json_object_set_new(j, "code", json_string(s->code));
	if (s->build)
		json_object_set_new(j, "build", json_string(s->build));
	if (s->nservices || s->thrift_port) {
		json_t *svcs = json_array(), *o;
		for (int i = 0; i < s->nservices; i++)
			json_array_append_new(svcs, json_string(s->services[i]));
		o = json_pack("{s:o}", "services", svcs);
		if (s->thrift_port)
			json_object_set_new(o, "port", json_integer(s->thrift_port));
		json_object_set_new(j, strcmp(s->protocol, "thrift") == 0 ? "thrift" : "grpc", o);
	}
	json_object_set_new(j, "scale",
			    json_pack("{s:I, s:I, s:I, s:I, s:o, s:I}", "min", (json_int_t)s->min,
				      "max", (json_int_t)s->max, "concurrency",
				      (json_int_t)s->concurrency, "target", (json_int_t)s->target,
				      "idle_timeout", duration(s->idle_timeout_ms), "reserved",
				      (json_int_t)s->reserved));
	limits = json_pack("{s:o, s:I}", "timeout", duration(s->timeout_ms), "max_body",
			   (json_int_t)s->max_body);
	/* Resource limits appear only when set, like workdir: absent means none. */
	if (s->memory)
		json_object_set_new(limits, "memory", json_integer((json_int_t)s->memory));
	/* Whole CPUs as a number, else millicpus as a string: exact, unlike 0.2 in binary. */
	if (s->cpu_millis % 1000 == 0 && s->cpu_millis)
		json_object_set_new(limits, "cpu", json_integer(s->cpu_millis / 1000));
	else if (s->cpu_millis) {
		char text[16];
		snprintf(text, sizeof(text), "%um", s->cpu_millis);
		json_object_set_new(limits, "cpu", json_string(text));
	}
	if (s->pids)
		json_object_set_new(limits, "pids", json_integer(s->pids));
	json_object_set_new(j, "limits", limits);
	if (s->health_type == FL_HEALTH_HTTP)
		health = json_pack("{s:s}", "path", s->health_path);
	else if (s->health_type == FL_HEALTH_GRPC)
		health = json_pack("{s:b}", "grpc", 1);
	else
		health = json_pack("{s:b}", "tcp", 1);
	json_object_set_new(health, "startup_timeout", duration(s->startup_timeout_ms));
	if (s->liveness_interval_ms)
		json_object_set_new(health, "liveness",
				    json_pack("{s:o,s:i,s:o}", "interval",
					      duration(s->liveness_interval_ms), "failures",
					      (json_int_t)s->liveness_failures, "timeout",
					      duration(s->liveness_timeout_ms)));
	json_object_set_new(j, "health", health);
	json_object_set_new(j, "queue",
			    json_pack("{s:I, s:o}", "max", (json_int_t)s->queue_max, "timeout",
				      duration(s->queue_timeout_ms)));
	json_object_set_new(j, "sandbox", json_boolean(s->sandbox));
	json_object_set_new(j, "network", json_string(s->net_isolated ? "isolated" : "host"));
	json_object_set_new(
	    j, "async",
	    json_pack("{s:I, s:o, s:o, s:o, s:I}", "retries", (json_int_t)s->async_retries,
		      "backoff_min", duration(s->async_backoff_min_ms), "backoff_max",
		      duration(s->async_backoff_max_ms), "max_age", duration(s->async_max_age_ms),
		      "concurrency", (json_int_t)s->async_concurrency));
	if (s->async_timeout_ms)
		json_object_set_new(json_object_get(j, "async"), "timeout",
				    duration(s->async_timeout_ms));
	if (s->triggers)
		json_object_set_new(j, "triggers", json_deep_copy(s->triggers));
	/* Like workdir, these appear only when set. */
	if (s->nsecrets) {
		json_t *a = json_array();
		for (int i = 0; i < s->nsecrets; i++)
			json_array_append_new(a, json_string(s->secrets[i]));
		json_object_set_new(j, "secrets", a);
	}
	if (s->labels)
		json_object_set_new(j, "labels", json_deep_copy(s->labels));
	if (s->annotations)
		json_object_set_new(j, "annotations", json_deep_copy(s->annotations));
	if (s->rootfs)
		json_object_set_new(j, "rootfs", json_string(s->rootfs));
	if (s->image)
		json_object_set_new(j, "image", json_string(s->image));
	return j;
}

static void free_strv(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

void fl_spec_free(fl_spec *s)
{
	if (s == NULL)
		return;
	free(s->name);
	free_strv(s->argv);
	free(s->protocol);
	free_strv(s->env);
	free(s->workdir);
	free(s->code);
	free(s->build);
	free(s->health_path);
	free_strv(s->services);
	json_decref(s->triggers);
	free_strv(s->secrets);
	json_decref(s->labels);
	json_decref(s->annotations);
	free(s->rootfs);
	free(s->image);
	free(s);
}
