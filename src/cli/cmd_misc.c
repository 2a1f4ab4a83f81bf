/* cmd_misc.c -- verb dispatch and the small verbs: ls, describe, rm, scale, info. */
#include "cli/cli.h"
#include "cli/client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

typedef struct verb {
	const char *name;
	int (*run)(fl_cli__ctx *c, int argc, char **argv);
	const char *synopsis;
	const char *summary;
} verb;

static const verb verbs[] = {
    {"deploy", fl_cli__deploy, "deploy DIR", "create or update a function from DIR/flint.yaml"},
    {"deploy", fl_cli__deploy, "deploy --name N -- CMD...", "create or update a command"},
    {"ls", fl_cli__ls, "ls", "list functions"},
    {"describe", fl_cli__describe, "describe NAME", "show a function, its instances and events"},
    {"logs", fl_cli__logs, "logs NAME [-f]", "print (and follow) a function's logs"},
    {"invoke", fl_cli__invoke, "invoke NAME [-d DATA]", "call a function through the gateway"},
    {"scale", fl_cli__scale, "scale NAME --min N --max M", "change a function's instance bounds"},
    {"rm", fl_cli__rm, "rm NAME", "delete a function"},
    {"versions", fl_cli__versions, "versions NAME", "list a function's versions"},
    {"rollback", fl_cli__rollback, "rollback NAME [V]", "deploy an older version again"},
    {"traffic", fl_cli__traffic, "traffic NAME [vN=W ...]", "split traffic between versions"},
    {"info", fl_cli__info, "info", "show facts about the running daemon"},
    {"top", fl_cli__top, "top", "live view: instances, requests/s, p99, errors"},
    {"secret", fl_cli__secret, "secret create NAME --from-literal K=V", "store a secret"},
    {"secret", fl_cli__secret, "secret ls | secret rm NAME", "list or delete secrets"},
    {"requests", fl_cli__requests, "requests [ID] [--dead]", "list async requests or show one"},
    {"requests", fl_cli__requests, "requests retry ID", "queue a dead request again"},
    {"triggers", fl_cli__triggers, "triggers ls", "list the functions' triggers"},
    {"new", fl_cli__new, "new NAME -l LANG [--dir D]", "create a handler function from a template"},
    {"templates", fl_cli__templates, "templates", "list the languages flint new knows"},
    {"completion", fl_cli__completion, "completion bash", "print a bash completion script"},
    {NULL, NULL, NULL, NULL},
};

void fl_cli_usage(void)
{
	printf("usage: flint VERB [OPTIONS]\n\n  %-28s%s\n", "serve",
	       "run the platform (gateway and admin API)");
	for (const verb *v = verbs; v->name; v++)
		printf("  %-28s%s\n", v->synopsis, v->summary);
	printf("\nEvery verb takes --help, --admin URL and --data DIR; see docs/cli.md.\n");
}

int fl_cli_main(int argc, char **argv)
{
	if (argc < 1)
		return -1;
	const verb *v = verbs;
	while (v->name && strcmp(v->name, argv[0]) != 0)
		v++;
	if (v->name == NULL)
		return -1;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		fl_cli__err("cannot initialize libcurl");
		return FL_CLI_FAIL;
	}
	fl_cli__ctx c = {.verb = v->name};
	int rc = v->run(&c, argc, argv);
	fl_cli__ctx_free(&c);
	curl_global_cleanup();
	return rc;
}

/* The loop every small verb runs: one positional NAME (if want_name), the
 * -o json flag (if json is not NULL), then the context is completed. Returns
 * -1 to go on, or an exit status (help shown, bad usage). */
static int parse_simple(fl_cli__ctx *c, int argc, char **argv, const fl_cli__opt *opts,
			const char *help, int want_name, const char **name, int *json,
			int (*on_opt)(fl_cli__ctx *, int id, const char *val, void *), void *arg)
{
	fl_cli__args a;
	const char *val;
	int id;

	fl_cli__args_init(&a, c, argc, argv, opts);
	while ((id = fl_cli__next_opt(&a, &val)) != FL_CLI_ARG_END) {
		if (id == FL_CLI_ARG_ERR)
			return FL_CLI_USAGE;
		if (id == FL_CLI_ARG_HELP) {
			fputs(help, stdout);
			return FL_CLI_OK;
		}
		if (id == FL_CLI_ARG_POS) {
			if (!want_name || *name)
				return fl_cli__usage_err(c, "unexpected argument \"%s\"", val);
			*name = val;
		} else if (id == 'o') {
			if (strcmp(val, "json") != 0 && strcmp(val, "text") != 0)
				return fl_cli__usage_err(c, "-o takes json or text, not \"%s\"",
							 val);
			*json = strcmp(val, "json") == 0;
		} else {
			int rc = on_opt(c, id, val, arg);
			if (rc >= 0)
				return rc;
		}
	}
	if (a.rest)
		return fl_cli__usage_err(c, "takes no command after --");
	if (want_name && *name == NULL)
		return fl_cli__usage_err(c, "which function? Give its NAME");
	fl_cli__ctx_finish(c);
	return -1;
}

static const fl_cli__opt output_opts[] = {
    {"output", 'o', 1, 'o'},
    {NULL, 0, 0, 0},
};

/* ---- ls ---- */

static const char ls_help[] = "usage: flint ls [-o json] [--admin URL] [--data DIR]\n\n"
			      "Lists the functions: name, version, state, instances ready and\n"
			      "starting, min and max instances, requests served.\n";

int fl_cli__ls(fl_cli__ctx *c, int argc, char **argv)
{
	int json = 0, rc;
	json_t *r = NULL;

	rc = parse_simple(c, argc, argv, output_opts, ls_help, 0, NULL, &json, NULL, NULL);
	if (rc >= 0)
		return rc;
	if ((rc = fl_cli__admin_json(c, "GET", "/v1/functions", NULL, &r)) != 0)
		return rc;
	if (json) {
		fl_cli__print_json(r);
		json_decref(r);
		return FL_CLI_OK;
	}

	json_t *fns = json_object_get(r, "functions");
	size_t i, n = json_array_size(fns);
	if (n == 0) {
		fprintf(stderr, "no functions yet; deploy one with `flint deploy DIR`\n");
		json_decref(r);
		return FL_CLI_OK;
	}
	int wname = 4, wstate = 5;
	json_t *f;
	json_array_foreach(fns, i, f)
	{
		int l = (int)strlen(fl_cli__str(f, "name", "?"));
		wname = l > wname ? l : wname;
		l = (int)strlen(fl_cli__str(f, "state", "?"));
		wstate = l > wstate ? l : wstate;
	}
	printf("%-*s  %7s  %-*s  %14s  %4s  %5s  %8s\n", wname, "NAME", "VERSION", wstate, "STATE",
	       "READY/STARTING", "MIN", "MAX", "REQUESTS");
	json_array_foreach(fns, i, f)
	{
		json_t *inst = json_object_get(f, "instances");
		char rs[48];
		snprintf(rs, sizeof rs, "%lld/%lld", fl_cli__int(inst, "ready", 0),
			 fl_cli__int(inst, "starting", 0));
		printf("%-*s  %7lld  %-*s  %14s  %4lld  %5lld  %8lld\n", wname,
		       fl_cli__str(f, "name", "?"), fl_cli__int(f, "version", 0), wstate,
		       fl_cli__str(f, "state", "?"), rs, fl_cli__int(f, "min", 0),
		       fl_cli__int(f, "max", 0), fl_cli__int(f, "requests", 0));
	}
	json_decref(r);
	return FL_CLI_OK;
}

/* ---- describe ---- */

static const char describe_help[] =
    "usage: flint describe NAME [-o json] [--admin URL] [--data DIR]\n\n"
    "Shows a function: its spec, state (and why it failed), instances, recent\n"
    "events and last log lines.\n";

/* Renders a JSON value on one line: strings bare, objects as "k v, k v". */
static void put_value(fl_buf *b, json_t *v)
{
	const char *k;
	json_t *x;
	size_t i;
	int first = 1;

	switch (json_typeof(v)) {
	case JSON_STRING:
		fl_buf_puts(b, json_string_value(v));
		break;
	case JSON_OBJECT:
		json_object_foreach(v, k, x)
		{
			fl_buf_printf(b, "%s%s ", first ? "" : ", ", k);
			put_value(b, x);
			first = 0;
		}
		break;
	case JSON_ARRAY:
		json_array_foreach(v, i, x)
		{
			if (i)
				fl_buf_puts(b, " ");
			/* Quote words with spaces so an argv reads unambiguously. */
			if (json_is_string(x) && strpbrk(json_string_value(x), " \t'\"")) {
				char *s = json_dumps(x, JSON_ENCODE_ANY);
				fl_buf_puts(b, s);
				free(s);
			} else {
				put_value(b, x);
			}
		}
		break;
	default: {
		char *s = json_dumps(v, JSON_ENCODE_ANY);
		fl_buf_puts(b, s ? s : "?");
		free(s);
	}
	}
}

static void print_field(const char *label, json_t *v)
{
	if (v == NULL || json_is_null(v))
		return;
	fl_buf b = FL_BUF_INIT;
	put_value(&b, v);
	printf("%-13s%s\n", label, b.p ? b.p : "");
	fl_buf_free(&b);
}

static void print_detail(json_t *d)
{
	json_t *spec = json_object_get(d, "spec");
	json_t *inst = json_object_get(d, "instances");
	const char *key;
	json_t *v;
	size_t i;
	char t1[32], t2[32];

	printf("%-13s%s\n", "name:", fl_cli__str(d, "name", "?"));
	printf("%-13s%lld\n", "version:", fl_cli__int(d, "version", 0));
	printf("%-13s%s\n", "state:", fl_cli__str(d, "state", "?"));
	print_field("reason:", json_object_get(d, "reason"));
	printf("%-13s%lld ready, %lld starting, %lld draining\n",
	       "instances:", fl_cli__int(inst, "ready", 0), fl_cli__int(inst, "starting", 0),
	       fl_cli__int(inst, "draining", 0));
	printf("%-13s%lld served, %lld queued\n", "requests:", fl_cli__int(d, "requests", 0),
	       fl_cli__int(d, "queued", 0));
	fl_cli__fmt_time(fl_cli__int(d, "created_ms", 0), t1, sizeof t1);
	fl_cli__fmt_time(fl_cli__int(d, "updated_ms", 0), t2, sizeof t2);
	printf("%-13s%s, updated %s\n", "created:", t1, t2);

	/* The spec is shown field by field as the daemon normalized it, so new
	 * fields appear here without a change to the CLI. env shows only names:
	 * values may be secrets. */
	if (json_is_object(spec)) {
		printf("\nspec:\n");
		json_object_foreach(spec, key, v)
		{
			if (strcmp(key, "name") == 0 || json_is_null(v))
				continue;
			char label[64];
			snprintf(label, sizeof label, "  %s:", key);
			if (strcmp(key, "env") == 0 && json_is_object(v)) {
				fl_buf b = FL_BUF_INIT;
				const char *ek;
				json_t *ev;
				json_object_foreach(v, ek, ev)
				    fl_buf_printf(&b, "%s%s", b.len ? " " : "", ek);
				if (b.len)
					printf("%-13s%s\n", label, b.p);
				fl_buf_free(&b);
				continue;
			}
			print_field(label, v);
		}
	}

	json_t *insts = json_object_get(d, "instances_detail");
	if (json_array_size(insts)) {
		printf("\n  %-8s %-8s %-6s %-9s %8s %11s %8s\n", "ID", "PID", "PORT", "STATE",
		       "INFLIGHT", "COLD START", "RESTARTS");
		json_array_foreach(insts, i, v)
		{
			char id[32], cold[32];
			snprintf(id, sizeof id, "i-%lld", fl_cli__int(v, "id", 0));
			json_t *cs = json_object_get(v, "cold_start_ms");
			if (json_is_number(cs))
				snprintf(cold, sizeof cold, "%.1f ms", json_number_value(cs));
			else
				snprintf(cold, sizeof cold, "-");
			printf("  %-8s %-8lld %-6lld %-9s %8lld %11s %8lld\n", id,
			       fl_cli__int(v, "pid", 0), fl_cli__int(v, "port", 0),
			       fl_cli__str(v, "state", "?"), fl_cli__int(v, "inflight", 0), cold,
			       fl_cli__int(v, "restarts", 0));
		}
	}

	json_t *events = json_object_get(d, "events");
	if (json_array_size(events)) {
		printf("\nevents:\n");
		json_array_foreach(events, i, v)
		{
			fl_cli__fmt_time(fl_cli__int(v, "time_ms", 0), t1, sizeof t1);
			printf("  %s  %s\n", t1, fl_cli__str(v, "what", ""));
		}
	}

	json_t *logs = json_object_get(d, "last_logs");
	if (json_array_size(logs)) {
		printf("\nlast logs:\n");
		json_array_foreach(logs, i, v)
		    printf("  %s\n", json_string_value(v) ? json_string_value(v) : "");
	}
}

int fl_cli__describe(fl_cli__ctx *c, int argc, char **argv)
{
	const char *name = NULL;
	int json = 0, rc;
	json_t *r = NULL;

	rc = parse_simple(c, argc, argv, output_opts, describe_help, 1, &name, &json, NULL, NULL);
	if (rc >= 0)
		return rc;
	char *en = fl_cli__escape(name);
	fl_buf path = FL_BUF_INIT;
	fl_buf_printf(&path, "/v1/functions/%s", en);
	rc = fl_cli__admin_json(c, "GET", path.p, NULL, &r);
	if (rc == 0) {
		if (json)
			fl_cli__print_json(r);
		else
			print_detail(r);
	}
	json_decref(r);
	fl_buf_free(&path);
	free(en);
	return rc;
}

/* ---- rm ---- */

static const char rm_help[] = "usage: flint rm NAME [--admin URL] [--data DIR]\n\n"
			      "Deletes a function; its instances are drained and stopped.\n";

int fl_cli__rm(fl_cli__ctx *c, int argc, char **argv)
{
	static const fl_cli__opt none[] = {{NULL, 0, 0, 0}};
	const char *name = NULL;
	int rc = parse_simple(c, argc, argv, none, rm_help, 1, &name, NULL, NULL, NULL);
	if (rc >= 0)
		return rc;
	char *en = fl_cli__escape(name);
	fl_buf path = FL_BUF_INIT;
	fl_buf_printf(&path, "/v1/functions/%s", en);
	rc = fl_cli__admin_json(c, "DELETE", path.p, NULL, NULL);
	if (rc == 0)
		printf("deleted %s\n", name);
	fl_buf_free(&path);
	free(en);
	return rc;
}

/* ---- scale ---- */

static const char scale_help[] =
    "usage: flint scale NAME [--min N] [--max N] [--admin URL] [--data DIR]\n\n"
    "Changes how many instances a function may have. --min instances are kept\n"
    "running even without traffic; --max caps scaling up.\n";

struct scale_args {
	long long min, max;
};

static int scale_opt(fl_cli__ctx *c, int id, const char *val, void *arg)
{
	struct scale_args *s = arg;
	long long v = fl_cli__num_opt(c, id == 'm' ? "--min" : "--max", val);
	if (v < 0)
		return FL_CLI_USAGE;
	if (id == 'm')
		s->min = v;
	else
		s->max = v;
	return -1;
}

int fl_cli__scale(fl_cli__ctx *c, int argc, char **argv)
{
	static const fl_cli__opt opts[] = {
	    {"min", 0, 1, 'm'},
	    {"max", 0, 1, 'M'},
	    {NULL, 0, 0, 0},
	};
	struct scale_args s = {-1, -1};
	const char *name = NULL;
	json_t *r = NULL;
	int rc = parse_simple(c, argc, argv, opts, scale_help, 1, &name, NULL, scale_opt, &s);
	if (rc >= 0)
		return rc;
	if (s.min < 0 && s.max < 0)
		return fl_cli__usage_err(c, "give --min, --max or both");

	json_t *body = json_object();
	if (s.min >= 0)
		json_object_set_new(body, "min", json_integer(s.min));
	if (s.max >= 0)
		json_object_set_new(body, "max", json_integer(s.max));
	char *en = fl_cli__escape(name);
	fl_buf path = FL_BUF_INIT;
	fl_buf_printf(&path, "/v1/functions/%s/scale", en);
	rc = fl_cli__admin_json(c, "POST", path.p, body, &r);
	if (rc == 0)
		printf("scaled %s: min %lld, max %lld\n", name, fl_cli__int(r, "min", s.min),
		       fl_cli__int(r, "max", s.max));
	json_decref(r);
	json_decref(body);
	fl_buf_free(&path);
	free(en);
	return rc;
}

/* ---- info ---- */

static const char info_help[] = "usage: flint info [-o json] [--admin URL] [--data DIR]\n\n"
				"Shows facts about the running daemon: version, addresses, data\n"
				"directory, threads, functions, instances, pid and uptime.\n";

static void format_uptime(long long s, char *out, size_t n)
{
	if (s >= 86400)
		snprintf(out, n, "%lldd %lldh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(out, n, "%lldh %lldm", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(out, n, "%lldm %llds", s / 60, s % 60);
	else
		snprintf(out, n, "%llds", s);
}

int fl_cli__info(fl_cli__ctx *c, int argc, char **argv)
{
	int json = 0, rc;
	json_t *r = NULL;
	const char *key;
	json_t *v;

	rc = parse_simple(c, argc, argv, output_opts, info_help, 0, NULL, &json, NULL, NULL);
	if (rc >= 0)
		return rc;
	if ((rc = fl_cli__admin_json(c, "GET", "/v1/info", NULL, &r)) != 0)
		return rc;
	if (json) {
		fl_cli__print_json(r);
		json_decref(r);
		return FL_CLI_OK;
	}
	json_object_foreach(r, key, v)
	{
		char label[64];
		if (strcmp(key, "started_ms") == 0 && json_is_integer(v)) {
			char t[32], up[32];
			long long ms = json_integer_value(v);
			long long now = (long long)fl_wall_ms();
			fl_cli__fmt_time(ms, t, sizeof t);
			format_uptime(now > ms ? (now - ms) / 1000 : 0, up, sizeof up);
			printf("%-13s%s (up %s)\n", "started:", t, up);
			continue;
		}
		snprintf(label, sizeof label, "%s:", key);
		print_field(label, v);
	}
	json_decref(r);
	return FL_CLI_OK;
}
