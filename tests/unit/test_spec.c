/* test_spec.c -- spec validation, defaults, error messages and the JSON round trip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control/spec.c"
#include "events/cron.c"
#include "events/trigger_spec.c"

/* Parses text (which must be valid JSON); returns the result code, *out and err filled. */
static int parse_text(const char *text, fl_spec **out, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);
	int rc;

	if (j == NULL)
		fail_msg("bad test JSON: %s: %s", text, jerr.text);
	rc = fl_spec_parse(j, out, err, errlen);
	json_decref(j);
	return rc;
}

static fl_spec *parse_ok(const char *text)
{
	char err[256];
	fl_spec *s = NULL;

	if (parse_text(text, &s, err, sizeof(err)) != 0)
		fail_msg("expected %s to parse, got: %s", text, err);
	assert_non_null(s);
	return s;
}

static void test_defaults(void **state)
{
	fl_spec *s = parse_ok("{\"name\": \"hello\", \"command\": [\"./hello\"]}");

	assert_string_equal(s->name, "hello");
	assert_int_equal(s->argc, 1);
	assert_string_equal(s->argv[0], "./hello");
	assert_null(s->argv[1]);
	assert_string_equal(s->protocol, "http");
	assert_int_equal(s->nenv, 0);
	assert_non_null(s->env);
	assert_null(s->env[0]);
	assert_null(s->workdir);
	assert_null(s->code);
	assert_null(s->build);
	assert_int_equal(s->min, 0);
	assert_int_equal(s->max, 10);
	assert_int_equal(s->concurrency, 0);
	assert_int_equal(s->target, 100);
	assert_int_equal(s->idle_timeout_ms, 60000);
	assert_int_equal(s->timeout_ms, 60000);
	assert_int_equal(s->max_body, 64 << 20);
	assert_int_equal(s->health_type, FL_HEALTH_TCP);
	assert_null(s->health_path);
	assert_int_equal(s->startup_timeout_ms, 30000);
	assert_int_equal(s->queue_max, 1000);
	assert_int_equal(s->queue_timeout_ms, 30000);
	fl_spec_free(s);
}

static const char *full_spec =
    "{\"name\": \"api\","
    " \"command\": [\"gunicorn\", \"-b\", \"127.0.0.1:$PORT\", \"app:app\"],"
    " \"protocol\": \"http\","
    " \"env\": {\"WORKERS\": 4, \"DEBUG\": false, \"RATIO\": 1.5, \"_x1\": \"a=b c\"},"
    " \"workdir\": \"/srv/api\","
    " \"code\": \"sha256:"
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
    " \"build\": \"pip install -r requirements.txt\","
    " \"scale\": {\"min\": 1, \"max\": 50, \"concurrency\": 8, \"target\": 6,"
    "             \"idle_timeout\": \"2m\"},"
    " \"limits\": {\"timeout\": 1.5, \"max_body\": \"1m\"},"
    " \"health\": {\"path\": \"/healthz\", \"startup_timeout\": \"500ms\"},"
    " \"queue\": {\"max\": 0, \"timeout\": 10}}";

static void test_full(void **state)
{
	fl_spec *s = parse_ok(full_spec);

	assert_int_equal(s->argc, 4);
	assert_string_equal(s->argv[2], "127.0.0.1:$PORT");
	assert_int_equal(s->nenv, 4);
	assert_string_equal(s->env[0], "WORKERS=4");
	assert_string_equal(s->env[1], "DEBUG=false");
	assert_string_equal(s->env[2], "RATIO=1.5");
	assert_string_equal(s->env[3], "_x1=a=b c");
	assert_null(s->env[4]);
	assert_string_equal(s->workdir, "/srv/api");
	assert_string_equal(s->code + 7,
			    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	assert_string_equal(s->build, "pip install -r requirements.txt");
	assert_int_equal(s->min, 1);
	assert_int_equal(s->max, 50);
	assert_int_equal(s->concurrency, 8);
	assert_int_equal(s->target, 6);
	assert_int_equal(s->idle_timeout_ms, 120000);
	assert_int_equal(s->timeout_ms, 1500);
	assert_int_equal(s->max_body, 1 << 20);
	assert_int_equal(s->health_type, FL_HEALTH_HTTP);
	assert_string_equal(s->health_path, "/healthz");
	assert_int_equal(s->startup_timeout_ms, 500);
	assert_int_equal(s->queue_max, 0);
	assert_int_equal(s->queue_timeout_ms, 10000);
	fl_spec_free(s);
}

static void test_string_command(void **state)
{
	fl_spec *s = parse_ok("{\"name\": \"sh\", \"command\": \"exec ./srv --port $PORT\"}");
	json_t *j;

	assert_int_equal(s->argc, 3);
	assert_string_equal(s->argv[0], "/bin/sh");
	assert_string_equal(s->argv[1], "-c");
	assert_string_equal(s->argv[2], "exec ./srv --port $PORT");
	assert_null(s->argv[3]);
	j = fl_spec_to_json(s);
	assert_true(json_is_string(json_object_get(j, "command")));
	assert_string_equal(json_string_value(json_object_get(j, "command")),
			    "exec ./srv --port $PORT");
	json_decref(j);
	fl_spec_free(s);
}

static void test_target_follows_concurrency(void **state)
{
	fl_spec *s =
	    parse_ok("{\"name\": \"a\", \"command\": [\"x\"], \"scale\": {\"concurrency\": 4}}");
	assert_int_equal(s->target, 4);
	fl_spec_free(s);
	/* null counts as absent, as an empty YAML key produces it. */
	s = parse_ok("{\"name\": \"a\", \"command\": [\"x\"], \"build\": null, \"scale\": null}");
	assert_null(s->build);
	assert_int_equal(s->max, 10);
	fl_spec_free(s);
}

static void assert_specs_equal(const fl_spec *a, const fl_spec *b)
{
	assert_string_equal(a->name, b->name);
	assert_int_equal(a->argc, b->argc);
	for (int i = 0; i < a->argc; i++)
		assert_string_equal(a->argv[i], b->argv[i]);
	assert_string_equal(a->protocol, b->protocol);
	assert_int_equal(a->nenv, b->nenv);
	for (int i = 0; i < a->nenv; i++)
		assert_string_equal(a->env[i], b->env[i]);
	assert_true((a->workdir == NULL) == (b->workdir == NULL));
	if (a->workdir)
		assert_string_equal(a->workdir, b->workdir);
	assert_true((a->code == NULL) == (b->code == NULL));
	if (a->code)
		assert_string_equal(a->code, b->code);
	assert_true((a->build == NULL) == (b->build == NULL));
	if (a->build)
		assert_string_equal(a->build, b->build);
	assert_int_equal(a->min, b->min);
	assert_int_equal(a->max, b->max);
	assert_int_equal(a->concurrency, b->concurrency);
	assert_int_equal(a->target, b->target);
	assert_int_equal(a->idle_timeout_ms, b->idle_timeout_ms);
	assert_int_equal(a->timeout_ms, b->timeout_ms);
	assert_int_equal(a->max_body, b->max_body);
	assert_int_equal(a->health_type, b->health_type);
	assert_true((a->health_path == NULL) == (b->health_path == NULL));
	if (a->health_path)
		assert_string_equal(a->health_path, b->health_path);
	assert_int_equal(a->startup_timeout_ms, b->startup_timeout_ms);
	assert_int_equal(a->liveness_interval_ms, b->liveness_interval_ms);
	assert_int_equal(a->liveness_timeout_ms, b->liveness_timeout_ms);
	assert_int_equal(a->liveness_failures, b->liveness_failures);
	assert_int_equal(a->queue_max, b->queue_max);
	assert_int_equal(a->queue_timeout_ms, b->queue_timeout_ms);
	assert_int_equal(a->memory, b->memory);
	assert_int_equal(a->cpu_millis, b->cpu_millis);
	assert_int_equal(a->pids, b->pids);
	assert_int_equal(a->sandbox, b->sandbox);
	assert_true((a->rootfs == NULL) == (b->rootfs == NULL));
	if (a->rootfs)
		assert_string_equal(a->rootfs, b->rootfs);
	assert_true((a->image == NULL) == (b->image == NULL));
	if (a->image)
		assert_string_equal(a->image, b->image);
}

/* parse -> to_json -> parse gives an equal spec, and to_json is then a fixed point. */
static void round_trip(const char *text)
{
	char err[256];
	fl_spec *a = parse_ok(text), *b = NULL;
	json_t *ja = fl_spec_to_json(a), *jb;

	if (fl_spec_parse(ja, &b, err, sizeof(err)) != 0) {
		char *dump = json_dumps(ja, 0);
		fail_msg("normalized form %s does not parse: %s", dump, err);
	}
	assert_specs_equal(a, b);
	jb = fl_spec_to_json(b);
	assert_true(json_equal(ja, jb));
	json_decref(ja);
	json_decref(jb);
	fl_spec_free(a);
	fl_spec_free(b);
}

static void test_round_trip(void **state)
{
	fl_spec *s;
	json_t *j;

	round_trip(full_spec);
	round_trip("{\"name\": \"hello\", \"command\": [\"./hello\"]}");
	round_trip("{\"name\": \"x9\", \"command\": \"echo hi\", \"limits\": {\"max_body\": 0},"
		   " \"health\": {\"tcp\": true, \"startup_timeout\": 0.25}}");

	/* The normalized form writes durations as strings and sizes as integers. */
	s = parse_ok(full_spec);
	j = fl_spec_to_json(s);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(j, "limits"), "timeout")), "1500ms");
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(j, "limits"), "max_body")), 1 << 20);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(j, "scale"), "idle_timeout")), "2m");
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "env"), "DEBUG")),
			    "false");
	json_decref(j);
	fl_spec_free(s);
}

static void test_liveness(void **state)
{
	fl_spec *s = parse_ok("{\"name\": \"a\", \"command\": [\"x\"]}");
	json_t *j, *l;

	/* Off unless asked for. */
	assert_int_equal(s->liveness_interval_ms, 0);
	j = fl_spec_to_json(s);
	assert_null(json_object_get(json_object_get(j, "health"), "liveness"));
	json_decref(j);
	fl_spec_free(s);

	/* An empty object takes the defaults. */
	s = parse_ok("{\"name\": \"a\", \"command\": [\"x\"], \"health\": {\"liveness\": {}}}");
	assert_int_equal(s->liveness_interval_ms, 10000);
	assert_int_equal(s->liveness_failures, 3);
	assert_int_equal(s->liveness_timeout_ms, 1000);
	fl_spec_free(s);

	s = parse_ok(
	    "{\"name\": \"a\", \"command\": [\"x\"], \"health\": {\"path\": \"/h\", "
	    "\"liveness\": {\"interval\": \"500ms\", \"failures\": 2, \"timeout\": 0.2}}}");
	assert_int_equal(s->health_type, FL_HEALTH_HTTP);
	assert_int_equal(s->liveness_interval_ms, 500);
	assert_int_equal(s->liveness_failures, 2);
	assert_int_equal(s->liveness_timeout_ms, 200);
	j = fl_spec_to_json(s);
	l = json_object_get(json_object_get(j, "health"), "liveness");
	assert_string_equal(json_string_value(json_object_get(l, "interval")), "500ms");
	assert_int_equal(json_integer_value(json_object_get(l, "failures")), 2);
	assert_string_equal(json_string_value(json_object_get(l, "timeout")), "200ms");
	json_decref(j);
	fl_spec_free(s);
	round_trip("{\"name\": \"a\", \"command\": [\"x\"], \"health\": {\"liveness\": "
		   "{\"interval\": \"3s\", \"failures\": 5}}}");
}

static void test_limits_and_sandbox(void **state)
{
	fl_spec *s = parse_ok("{\"name\": \"a\", \"command\": [\"x\"]}");
	json_t *j, *l;

	/* Defaults: sandboxed, no resource limit; the normalized form says so. */
	assert_int_equal(s->sandbox, 1);
	assert_int_equal(s->memory, 0);
	assert_int_equal(s->cpu_millis, 0);
	assert_int_equal(s->pids, 0);
	assert_int_equal(s->net_isolated, 0);
	j = fl_spec_to_json(s);
	assert_true(json_is_true(json_object_get(j, "sandbox")));
	assert_string_equal(json_string_value(json_object_get(j, "network")), "host");
	l = json_object_get(j, "limits");
	assert_null(json_object_get(l, "memory"));
	assert_null(json_object_get(l, "cpu"));
	assert_null(json_object_get(l, "pids"));
	json_decref(j);
	fl_spec_free(s);

	s = parse_ok("{\"name\": \"a\", \"command\": [\"x\"], \"network\": \"isolated\"}");
	assert_int_equal(s->net_isolated, 1);
	j = fl_spec_to_json(s);
	assert_string_equal(json_string_value(json_object_get(j, "network")), "isolated");
	json_decref(j);
	fl_spec_free(s);

	s = parse_ok("{\"name\": \"a\", \"command\": [\"x\"], \"sandbox\": false,"
		     " \"limits\": {\"memory\": \"64m\", \"cpu\": 0.2, \"pids\": 32}}");
	assert_int_equal(s->sandbox, 0);
	assert_int_equal(s->memory, 64 << 20);
	assert_int_equal(s->cpu_millis, 200);
	assert_int_equal(s->pids, 32);
	j = fl_spec_to_json(s);
	assert_true(json_is_false(json_object_get(j, "sandbox")));
	l = json_object_get(j, "limits");
	assert_int_equal(json_integer_value(json_object_get(l, "memory")), 64 << 20);
	assert_string_equal(json_string_value(json_object_get(l, "cpu")), "200m");
	assert_int_equal(json_integer_value(json_object_get(l, "pids")), 32);
	json_decref(j);
	fl_spec_free(s);

	s = parse_ok("{\"name\": \"a\", \"command\": [\"x\"], \"limits\": {\"cpu\": \"1500m\"}}");
	assert_int_equal(s->cpu_millis, 1500);
	fl_spec_free(s);
	s = parse_ok("{\"name\": \"a\", \"command\": [\"x\"], \"limits\": {\"cpu\": 2,"
		     " \"memory\": 0, \"pids\": 0}}");
	assert_int_equal(s->cpu_millis, 2000);
	assert_int_equal(s->memory, 0);
	fl_spec_free(s);

	round_trip("{\"name\": \"a\", \"command\": [\"x\"], \"sandbox\": false,"
		   " \"limits\": {\"memory\": \"1g\", \"cpu\": 0.25, \"pids\": 100}}");
	round_trip("{\"name\": \"a\", \"command\": [\"x\"], \"limits\": {\"cpu\": 3}}");
}

struct bad {
	const char *json;
	const char *error; /* the exact message */
};

static const struct bad bad_specs[] = {
    {"[]", "the spec must be a JSON object"},
    {"{\"command\": [\"x\"]}", "name: is required"},
    {"{\"name\": \"Api\", \"command\": [\"x\"]}",
     "name: must be 1 to 63 characters of lowercase letters, digits and '-', not starting or "
     "ending with '-'"},
    {"{\"name\": \"a\"}",
     "command: is required (the program to run, as a list of strings or a shell string)"},
    {"{\"name\": \"a\", \"command\": []}",
     "command: must be a non-empty list of strings or a string"},
    {"{\"name\": \"a\", \"command\": \"\"}",
     "command: must be a non-empty list of strings or a string"},
    {"{\"name\": \"a\", \"command\": [\"x\", 3]}",
     "command[1]: must be a string (in YAML, quote numbers: \"8\")"},
    {"{\"name\": \"a\", \"command\": [\"x\", true]}", "command[1]: must be a string"},
    {"{\"name\": \"a\", \"command\": [\"\"]}", "command[0]: the program to run must not be empty"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"scael\": {}}",
     "unknown field \"scael\" (did you mean \"scale\"?)"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"replicas\": 3}", "unknown field \"replicas\""},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"scale\": {\"mxa\": 3}}",
     "scale: unknown field \"mxa\" (did you mean \"max\"?)"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"protocol\": \"tcp\"}",
     "protocol: must be \"http\", \"http2\", \"grpc\" or \"thrift\" (\"tcp\" is planned)"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"thrift\": {\"port\": 9190}}",
     "thrift: only a function with protocol \"thrift\" takes Thrift settings"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"protocol\": \"thrift\", \"thrift\": "
     "{\"port\": 80}}",
     "thrift.port: must be an integer between 1024 and 65535"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"grpc\": {\"services\": [\"a.B\"]}}",
     "grpc.services: only a function with protocol \"grpc\" serves gRPC"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"protocol\": \"grpc\", \"grpc\": "
     "{\"services\": [\"a/B\"]}}",
     "grpc.services[0]: must be a full service name like \"helloworld.Greeter\" (letters, digits, "
     "'_' and '.')"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"protocol\": \"grpc\", \"grpc\": {\"svc\": []}}",
     "grpc: unknown field \"svc\""},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"env\": {\"PORT\": \"1\"}}",
     "env.PORT: is set by flint and cannot be overridden"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"env\": {\"1X\": \"1\"}}",
     "env.1X: names must start with a letter or '_' and contain only letters, digits and '_'"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"env\": {\"X\": [1]}}",
     "env.X: must be a string, a number or a boolean"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"env\": [\"X=1\"]}",
     "env: must be an object of NAME: value pairs"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"workdir\": \"srv\"}",
     "workdir: must be an absolute path (starting with '/')"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"code\": \"sha256:ABC\"}",
     "code: must be \"sha256:\" followed by 64 lowercase hex digits, as returned by an upload"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"build\": 3}", "build: must be a non-empty string"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"scale\": 3}", "scale: must be an object"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"scale\": {\"max\": 0}}",
     "scale.max: must be an integer between 1 and 10000"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"scale\": {\"max\": 10001}}",
     "scale.max: must be an integer between 1 and 10000"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"scale\": {\"max\": \"5\"}}",
     "scale.max: must be an integer between 1 and 10000"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"scale\": {\"min\": -1}}",
     "scale.min: must be an integer between 0 and 10000"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"scale\": {\"min\": 5, \"max\": 2}}",
     "scale.min: must not be greater than scale.max (5 > 2)"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"scale\": {\"min\": 20}}",
     "scale.min: must not be greater than scale.max (20 > 10, the default)"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"scale\": {\"concurrency\": 2, \"target\": 3}}",
     "scale.target: must not exceed scale.concurrency (3 > 2)"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"scale\": {\"idle_timeout\": \"500ms\"}}",
     "scale.idle_timeout: must be at least 1s"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"scale\": {\"idle_timeout\": \"soon\"}}",
     "scale.idle_timeout: must be a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\", or a "
     "number of seconds"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"limits\": {\"timeout\": 0}}",
     "limits.timeout: must be at least 1ms"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"limits\": {\"timeout\": -1}}",
     "limits.timeout: must be a non-negative number of seconds"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"limits\": {\"timeout\": true}}",
     "limits.timeout: must be a duration string (\"30s\") or a number of seconds"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"limits\": {\"max_body\": \"64q\"}}",
     "limits.max_body: must be a size such as \"64m\", \"512k\" or \"1g\", or a number of "
     "bytes"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"limits\": {\"max_body\": -5}}",
     "limits.max_body: must be a size such as \"64m\", \"512k\" or \"1g\", or a number of "
     "bytes"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"limits\": {\"memory\": \"1m\"}}",
     "limits.memory: must be at least \"4m\" (0 = no limit)"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"limits\": {\"memory\": \"lots\"}}",
     "limits.memory: must be a size such as \"64m\", \"512k\" or \"1g\", or a number of "
     "bytes"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"limits\": {\"cpu\": 0.001}}",
     "limits.cpu: must be a number of CPUs between 0.01 and 1024 (such as 0.5 or 2) or "
     "millicpus as a string such as \"500m\"; 0 = no limit"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"limits\": {\"cpu\": \"half\"}}",
     "limits.cpu: must be a number of CPUs between 0.01 and 1024 (such as 0.5 or 2) or "
     "millicpus as a string such as \"500m\"; 0 = no limit"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"limits\": {\"cpu\": -1}}",
     "limits.cpu: must be a number of CPUs between 0.01 and 1024 (such as 0.5 or 2) or "
     "millicpus as a string such as \"500m\"; 0 = no limit"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"limits\": {\"pids\": 2}}",
     "limits.pids: must be at least 4 (0 = no limit)"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"limits\": {\"pids\": \"32\"}}",
     "limits.pids: must be an integer between 0 and 4194304"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"limits\": {\"memroy\": \"64m\"}}",
     "limits: unknown field \"memroy\" (did you mean \"memory\"?)"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"sandbox\": \"yes\"}",
     "sandbox: must be true or false"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"health\": {\"liveness\": true}}",
     "health.liveness: must be an object such as {\"interval\": \"10s\", \"failures\": 3}"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"health\": {\"liveness\": {\"failures\": 0}}}",
     "health.liveness.failures: must be an integer between 1 and 100"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"health\": {\"liveness\": {\"interval\": "
     "\"10ms\"}}}",
     "health.liveness.interval: must be at least 100ms"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"health\": {\"liveness\": {\"interval\": \"1s\", "
     "\"timeout\": \"2s\"}}}",
     "health.liveness.timeout: must not be longer than the interval (2000 ms > 1000 ms)"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"health\": {\"liveness\": {\"every\": \"1s\"}}}",
     "health.liveness: unknown field \"every\""},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"health\": {\"path\": \"healthz\"}}",
     "health.path: must be a string starting with '/'"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"health\": {\"path\": \"/h\", \"tcp\": true}}",
     "health: set either \"tcp\": true or \"path\", not both"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"health\": {\"tcp\": false}}",
     "health: with \"tcp\": false a \"path\" to check is required"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"health\": {\"tcp\": 1}}",
     "health.tcp: must be true or false"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"queue\": {\"max\": 1000001}}",
     "queue.max: must be an integer between 0 and 1000000"},
    {"{\"name\": \"a\", \"command\": [\"x\"], \"queue\": {\"timeout\": \"0s\"}}",
     "queue.timeout: must be at least 1ms"},
};

static void test_errors(void **state)
{
	for (size_t i = 0; i < sizeof(bad_specs) / sizeof(bad_specs[0]); i++) {
		char err[512];
		fl_spec *s = (fl_spec *)0x1;
		int rc = parse_text(bad_specs[i].json, &s, err, sizeof(err));
		if (rc != -EINVAL)
			fail_msg("%s: expected -EINVAL, got %d", bad_specs[i].json, rc);
		assert_null(s);
		if (strcmp(err, bad_specs[i].error) != 0)
			fail_msg("%s:\n  got      %s\n  expected %s", bad_specs[i].json, err,
				 bad_specs[i].error);
	}
}

/* An embedded NUL would silently cut the C string, so it is refused. */
static void test_nul_refused(void **state)
{
	char err[256];
	fl_spec *s = NULL;
	json_t *j = json_pack("{s:s, s:[s%]}", "name", "a", "command", "ab\0c", (size_t)4);

	assert_int_equal(fl_spec_parse(j, &s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "command[0]: must be a string");
	json_decref(j);
}

/* A short error buffer still gets a terminated (truncated) message. */
static void test_short_err(void **state)
{
	char err[8];
	fl_spec *s = NULL;

	memset(err, 'z', sizeof(err));
	assert_int_equal(parse_text("{\"command\": [\"x\"]}", &s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "name: i");
}

/* Writes an empty file dir/name. */
static void touch(const char *dir, const char *name)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "w");
	assert_non_null(f);
	fclose(f);
}

/* Parses text with every "@" replaced by dir and expects the error want (NULL: success,
 * returning the spec). */
static fl_spec *parse_with_dir(const char *text, const char *dir, const char *want)
{
	char json[1024], err[512];
	fl_spec *s = NULL;
	size_t o = 0;
	int rc;

	for (const char *p = text; *p && o < sizeof(json) - 200; p++) {
		if (*p == '@')
			o += (size_t)snprintf(json + o, sizeof(json) - o, "%s", dir);
		else
			json[o++] = *p;
	}
	json[o] = '\0';
	rc = parse_text(json, &s, err, sizeof(err));
	if (want == NULL && rc != 0)
		fail_msg("%s: expected success, got: %s", json, err);
	if (want != NULL && (rc != -EINVAL || strcmp(err, want) != 0))
		fail_msg("%s:\n  got      %s\n  expected %s", json, rc ? err : "success", want);
	return s;
}

/* rootfs: and image: name trees on this host; image makes command optional. */
static void test_root_filesystems(void **state)
{
	char dir[] = "/tmp/flint-test-spec-XXXXXX", layout[64], want[512];
	fl_spec *s;
	json_t *j;

	assert_non_null(mkdtemp(dir));
	snprintf(layout, sizeof(layout), "%s/oci", dir);
	assert_int_equal(mkdir(layout, 0755), 0);

	s = parse_with_dir("{\"name\": \"a\", \"command\": \"x\", \"rootfs\": \"@\"}", dir, NULL);
	assert_string_equal(s->rootfs, dir);
	assert_null(s->image);
	j = fl_spec_to_json(s);
	assert_string_equal(json_string_value(json_object_get(j, "rootfs")), dir);
	json_decref(j);
	fl_spec_free(s);

	/* Not yet a layout: no oci-layout file. */
	snprintf(want, sizeof(want),
		 "image: %s is not an OCI image layout directory (it needs an oci-layout file and "
		 "an index.json, as `skopeo copy ... oci:DIR:TAG` writes)",
		 layout);
	s = parse_with_dir("{\"name\": \"a\", \"image\": \"@/oci:v1\"}", dir, want);
	touch(layout, "oci-layout");
	touch(layout, "index.json");

	/* Without a command, the image's entrypoint runs: nothing is written back. */
	s = parse_with_dir("{\"name\": \"a\", \"image\": \"@/oci:v1\"}", dir, NULL);
	assert_null(s->argv);
	assert_int_equal(s->argc, 0);
	j = fl_spec_to_json(s);
	assert_null(json_object_get(j, "command"));
	snprintf(want, sizeof(want), "%s:v1", layout);
	assert_string_equal(json_string_value(json_object_get(j, "image")), want);
	json_decref(j);
	fl_spec_free(s);
	snprintf(want, sizeof(want), "{\"name\": \"a\", \"image\": \"%s\"}", layout);
	round_trip(want);
	snprintf(want, sizeof(want), "{\"name\": \"a\", \"command\": [\"x\"], \"image\": \"%s:t\"}",
		 layout);
	round_trip(want);
	s = parse_with_dir("{\"name\": \"a\", \"command\": [\"sh\"], \"image\": \"@/oci\"}", dir,
			   NULL);
	assert_string_equal(s->argv[0], "sh");
	fl_spec_free(s);

	parse_with_dir("{\"name\": \"a\", \"image\": \"@/oci:\"}", dir,
		       "image: the tag after ':' must not be empty");
	parse_with_dir("{\"name\": \"a\", \"image\": \"oci:v1\"}", dir,
		       "image: must be an absolute path to an OCI image layout directory, "
		       "optionally followed by \":TAG\"");
	parse_with_dir("{\"name\": \"a\", \"image\": \"@/oci\", \"rootfs\": \"@\"}", dir,
		       "rootfs: set either \"rootfs\" or \"image\", not both");
	parse_with_dir("{\"name\": \"a\", \"image\": \"@/oci\", \"sandbox\": false}", dir,
		       "image: needs \"sandbox\": true (the function runs inside the tree through "
		       "the sandbox's own mount namespace)");
	parse_with_dir(
	    "{\"name\": \"a\", \"command\": \"x\", \"rootfs\": \"@\", \"sandbox\": false}", dir,
	    "rootfs: needs \"sandbox\": true (the function runs inside the tree through "
	    "the sandbox's own mount namespace)");
	parse_with_dir("{\"name\": \"a\", \"command\": \"x\", \"rootfs\": \"rel/dir\"}", dir,
		       "rootfs: must be an absolute path (starting with '/')");
	snprintf(want, sizeof(want), "rootfs: %s/missing is not a directory on this host", dir);
	parse_with_dir("{\"name\": \"a\", \"command\": \"x\", \"rootfs\": \"@/missing\"}", dir,
		       want);
	snprintf(want, sizeof(want), "rootfs: %s/oci/index.json is not a directory on this host",
		 dir);
	parse_with_dir("{\"name\": \"a\", \"command\": \"x\", \"rootfs\": \"@/oci/index.json\"}",
		       dir, want);
	parse_with_dir("{\"name\": \"a\", \"command\": \"x\", \"rootfs\": 7}", dir,
		       "rootfs: must be a non-empty string");
	/* Without an image the command is still required. */
	parse_with_dir("{\"name\": \"a\", \"rootfs\": \"@\"}", dir,
		       "command: is required (the program to run, as a list of strings or a shell "
		       "string)");

	snprintf(want, sizeof(want), "%s/index.json", layout);
	unlink(want);
	snprintf(want, sizeof(want), "%s/oci-layout", layout);
	unlink(want);
	rmdir(layout);
	rmdir(dir);
}

/* async: and triggers: are parsed, defaulted, refused with the field named, and written back. */
static void test_async_and_triggers(void **state)
{
	static const struct {
		const char *json, *error;
	} bad[] = {
	    {"{\"name\":\"a\",\"command\":\"x\",\"async\":{\"retries\":-1}}",
	     "async.retries: must be an integer between 0 and 1000"},
	    {"{\"name\":\"a\",\"command\":\"x\",\"async\":{\"retrys\":1}}",
	     "async: unknown field \"retrys\" (did you mean \"retries\"?)"},
	    {"{\"name\":\"a\",\"command\":\"x\",\"async\":{\"backoff_min\":\"10s\","
	     "\"backoff_max\":\"1s\"}}",
	     "async.backoff_min: must not be longer than async.backoff_max"},
	    {"{\"name\":\"a\",\"command\":\"x\",\"triggers\":{}}", "triggers: must be a list"},
	    {"{\"name\":\"a\",\"command\":\"x\",\"triggers\":[{\"cron\":\"* *\"}]}",
	     "triggers[0].cron: a cron expression has 5 fields (minute hour day month weekday) or "
	     "6 (seconds first), got 2"},
	    {"{\"name\":\"a\",\"command\":\"x\",\"triggers\":[{\"cron\":\"@daily\","
	     "\"missed\":\"no\"}]}",
	     "triggers[0].missed: must be \"skip\" or \"run-once\""},
	    {"{\"name\":\"a\",\"command\":\"x\",\"triggers\":[{\"redis\":{\"url\":"
	     "\"http://x\",\"stream\":\"s\"}}]}",
	     "triggers[0].redis.url: must be a URL starting with redis://"},
	    {"{\"name\":\"a\",\"command\":\"x\",\"triggers\":[{\"nats\":{}}]}",
	     "triggers[0].nats.subject: is required"},
	    {"{\"name\":\"a\",\"command\":\"x\",\"triggers\":[{\"cron\":\"@daily\","
	     "\"nats\":{}}]}",
	     "triggers[0]: must have exactly one of \"cron\", \"redis\" or \"nats\""},
	};
	char err[256];
	fl_spec *s = NULL;
	json_t *j;
	size_t i;

	(void)state;
	s = parse_ok("{\"name\":\"a\",\"command\":\"x\"}");
	assert_int_equal(s->async_retries, 3);
	assert_int_equal(s->async_backoff_min_ms, 1000);
	assert_int_equal(s->async_concurrency, 10);
	assert_null(s->triggers);
	fl_spec_free(s);
	s = parse_ok("{\"name\":\"a\",\"command\":\"x\",\"async\":{\"retries\":0,"
		     "\"timeout\":\"2h\",\"max_age\":\"1h\",\"concurrency\":2},"
		     "\"triggers\":[{\"cron\":\"*/10 * * * * *\",\"tz\":\"Asia/Shanghai\","
		     "\"payload\":{\"k\":1}}]}");
	assert_int_equal(s->async_retries, 0);
	assert_int_equal(s->async_timeout_ms, 7200000);
	assert_int_equal(s->async_max_age_ms, 3600000);
	assert_int_equal(s->async_concurrency, 2);
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(s->triggers, 0), "missed")), "skip");
	j = fl_spec_to_json(s);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(j, "async"), "timeout")), "2h");
	assert_true(json_equal(json_object_get(j, "triggers"), s->triggers));
	json_decref(j);
	fl_spec_free(s);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s = NULL;
		if (parse_text(bad[i].json, &s, err, sizeof(err)) != -EINVAL)
			fail_msg("%s: expected -EINVAL", bad[i].json);
		if (strcmp(err, bad[i].error) != 0)
			fail_msg("%s:\n  got      %s\n  expected %s", bad[i].json, err,
				 bad[i].error);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_full),
	    cmocka_unit_test(test_string_command),
	    cmocka_unit_test(test_target_follows_concurrency),
	    cmocka_unit_test(test_limits_and_sandbox),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_nul_refused),
	    cmocka_unit_test(test_short_err),
	    cmocka_unit_test(test_async_and_triggers),
	    cmocka_unit_test(test_root_filesystems),
	    cmocka_unit_test(test_liveness),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
