/* cmd_requests.c -- `flint requests` (async requests, their results, re-drive)
 * and `flint triggers ls`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/client.h"
#include "core/util.h"

static const char requests_help[] =
    "usage: flint requests [ID] [--dead] [--fn NAME] [--status S] [-o json]\n"
    "       flint requests retry ID\n\n"
    "Lists async requests, newest first (ID, function, status, attempts, code,\n"
    "created), or shows one request with its result. --dead lists the dead letter;\n"
    "`retry ID` queues a dead or failed request again with its attempts reset.\n";

enum { OPT_DEAD = 1, OPT_FN, OPT_STATUS, OPT_OUT, OPT_LIMIT };

static const fl_cli__opt requests_opts[] = {
    {"dead", 0, 0, OPT_DEAD},	 {"fn", 0, 1, OPT_FN},	     {"status", 0, 1, OPT_STATUS},
    {"output", 'o', 1, OPT_OUT}, {"limit", 0, 1, OPT_LIMIT}, {NULL, 0, 0, 0},
};

static void print_one(json_t *r)
{
	char t[64];
	const char *k;
	json_t *v;

	printf("id:          %s\n", fl_cli__str(r, "id", "-"));
	printf("function:    %s\n", fl_cli__str(r, "function", "-"));
	printf("source:      %s\n", fl_cli__str(r, "source", "-"));
	printf("request:     %s %s\n", fl_cli__str(r, "method", "-"), fl_cli__str(r, "path", "-"));
	printf("status:      %s\n", fl_cli__str(r, "status", "-"));
	printf("attempts:    %lld\n", fl_cli__int(r, "attempts", 0));
	fl_cli__fmt_time(fl_cli__int(r, "created_ms", 0), t, sizeof(t));
	printf("created:     %s\n", t);
	if (json_object_get(r, "next_attempt_ms")) {
		fl_cli__fmt_time(fl_cli__int(r, "next_attempt_ms", 0), t, sizeof(t));
		printf("next try:    %s\n", t);
	}
	if (json_object_get(r, "finished_ms")) {
		fl_cli__fmt_time(fl_cli__int(r, "finished_ms", 0), t, sizeof(t));
		printf("finished:    %s\n", t);
	}
	if (json_object_get(r, "code"))
		printf("code:        %lld\n", fl_cli__int(r, "code", 0));
	if (json_object_get(r, "error"))
		printf("error:       %s\n", fl_cli__str(r, "error", ""));
	if (json_object_get(r, "callback"))
		printf("callback:    %s (%s)\n", fl_cli__str(r, "callback", ""),
		       fl_cli__str(r, "callback_state", "-"));
	json_object_foreach(json_object_get(r, "headers"), k, v)
	    printf("header:      %s: %s\n", k, json_string_value(v));
	if (json_object_get(r, "result_size"))
		printf("result:      %lld bytes%s (GET /requests/%s/result on the gateway)\n",
		       fl_cli__int(r, "result_size", 0),
		       json_is_true(json_object_get(r, "truncated")) ? ", truncated" : "",
		       fl_cli__str(r, "id", ""));
}

static int retry(fl_cli__ctx *c, int argc, char **argv)
{
	fl_cli__args a;
	const char *val, *id = NULL;
	char path[256];
	json_t *out = NULL;
	int opt;

	fl_cli__args_init(&a, c, argc, argv, requests_opts);
	while ((opt = fl_cli__next_opt(&a, &val)) != FL_CLI_ARG_END) {
		if (opt == FL_CLI_ARG_ERR)
			return FL_CLI_USAGE;
		if (opt == FL_CLI_ARG_HELP) {
			fputs(requests_help, stdout);
			return FL_CLI_OK;
		}
		if (opt != FL_CLI_ARG_POS || id)
			return fl_cli__usage_err(c, "retry takes one request ID");
		id = val;
	}
	if (id == NULL)
		return fl_cli__usage_err(c, "which request? Give its ID: flint requests retry ID");
	fl_cli__ctx_finish(c);
	{
		char *e = fl_cli__escape(id);
		snprintf(path, sizeof(path), "/v1/requests/%s/retry", e);
		free(e);
	}
	if (fl_cli__admin_json(c, "POST", path, NULL, &out) != 0)
		return FL_CLI_FAIL;
	printf("request %s queued again\n", id);
	json_decref(out);
	return FL_CLI_OK;
}

int fl_cli__requests(fl_cli__ctx *c, int argc, char **argv)
{
	fl_cli__args a;
	const char *val, *id = NULL, *fn = NULL, *status = NULL, *limit = NULL;
	int opt, json = 0, dead = 0, rc;
	fl_buf path = FL_BUF_INIT;
	json_t *out = NULL, *arr, *r;
	size_t i;

	if (argc > 1 && strcmp(argv[1], "retry") == 0)
		return retry(c, argc - 1, argv + 1);
	fl_cli__args_init(&a, c, argc, argv, requests_opts);
	while ((opt = fl_cli__next_opt(&a, &val)) != FL_CLI_ARG_END) {
		switch (opt) {
		case FL_CLI_ARG_ERR:
			return FL_CLI_USAGE;
		case FL_CLI_ARG_HELP:
			fputs(requests_help, stdout);
			return FL_CLI_OK;
		case FL_CLI_ARG_POS:
			if (id)
				return fl_cli__usage_err(c, "unexpected argument \"%s\"", val);
			id = val;
			break;
		case OPT_DEAD:
			dead = 1;
			break;
		case OPT_FN:
			fn = val;
			break;
		case OPT_STATUS:
			status = val;
			break;
		case OPT_LIMIT:
			if (fl_cli__num_opt(c, "--limit", val) < 0)
				return FL_CLI_USAGE;
			limit = val;
			break;
		case OPT_OUT:
			if (strcmp(val, "json") != 0 && strcmp(val, "text") != 0)
				return fl_cli__usage_err(c, "-o takes json or text, not \"%s\"",
							 val);
			json = strcmp(val, "json") == 0;
			break;
		}
	}
	fl_cli__ctx_finish(c);
	if (id) {
		char *e = fl_cli__escape(id);
		fl_buf_printf(&path, "/v1/requests/%s", e);
		free(e);
	} else {
		char *e;
		fl_buf_printf(&path, "/v1/requests?limit=%s", limit ? limit : "100");
		if (dead)
			fl_buf_puts(&path, "&dead=1");
		if (fn) {
			e = fl_cli__escape(fn);
			fl_buf_printf(&path, "&fn=%s", e);
			free(e);
		}
		if (status) {
			e = fl_cli__escape(status);
			fl_buf_printf(&path, "&status=%s", e);
			free(e);
		}
	}
	rc = fl_cli__admin_json(c, "GET", path.p, NULL, &out);
	fl_buf_free(&path);
	if (rc != 0)
		return FL_CLI_FAIL;
	if (json) {
		fl_cli__print_json(out);
		json_decref(out);
		return FL_CLI_OK;
	}
	if (id) {
		print_one(out);
		json_decref(out);
		return FL_CLI_OK;
	}
	arr = json_object_get(out, "requests");
	printf("%-34s %-20s %-10s %-8s %-5s %s\n", "ID", "FUNCTION", "STATUS", "ATTEMPTS", "CODE",
	       "CREATED");
	json_array_foreach(arr, i, r)
	{
		char t[64], code[16] = "-";
		fl_cli__fmt_time(fl_cli__int(r, "created_ms", 0), t, sizeof(t));
		if (json_object_get(r, "code"))
			snprintf(code, sizeof(code), "%lld", fl_cli__int(r, "code", 0));
		printf("%-34s %-20s %-10s %-8lld %-5s %s\n", fl_cli__str(r, "id", "-"),
		       fl_cli__str(r, "function", "-"), fl_cli__str(r, "status", "-"),
		       fl_cli__int(r, "attempts", 0), code, t);
	}
	json_decref(out);
	return FL_CLI_OK;
}

static const char triggers_help[] = "usage: flint triggers ls [-o json]\n\n"
				    "Lists every function's triggers: function, type, schedule or\n"
				    "source, state, events so far and the next fire time.\n";

static const fl_cli__opt triggers_opts[] = {
    {"output", 'o', 1, OPT_OUT},
    {NULL, 0, 0, 0},
};

int fl_cli__triggers(fl_cli__ctx *c, int argc, char **argv)
{
	fl_cli__args a;
	const char *val;
	int opt, json = 0, sub = 0;
	json_t *out = NULL, *t;
	size_t i;

	fl_cli__args_init(&a, c, argc, argv, triggers_opts);
	while ((opt = fl_cli__next_opt(&a, &val)) != FL_CLI_ARG_END) {
		if (opt == FL_CLI_ARG_ERR)
			return FL_CLI_USAGE;
		if (opt == FL_CLI_ARG_HELP) {
			fputs(triggers_help, stdout);
			return FL_CLI_OK;
		}
		if (opt == FL_CLI_ARG_POS) {
			if (sub || strcmp(val, "ls") != 0)
				return fl_cli__usage_err(c, "the only subcommand is ls, not \"%s\"",
							 val);
			sub = 1;
		} else if (opt == OPT_OUT) {
			if (strcmp(val, "json") != 0 && strcmp(val, "text") != 0)
				return fl_cli__usage_err(c, "-o takes json or text, not \"%s\"",
							 val);
			json = strcmp(val, "json") == 0;
		}
	}
	fl_cli__ctx_finish(c);
	if (fl_cli__admin_json(c, "GET", "/v1/triggers", NULL, &out) != 0)
		return FL_CLI_FAIL;
	if (json) {
		fl_cli__print_json(out);
		json_decref(out);
		return FL_CLI_OK;
	}
	printf("%-20s %-6s %-36s %-10s %-8s %s\n", "FUNCTION", "TYPE", "SCHEDULE", "STATE",
	       "EVENTS", "NEXT");
	json_array_foreach(json_object_get(out, "triggers"), i, t)
	{
		char next[64] = "-";
		if (json_object_get(t, "next_ms"))
			fl_cli__fmt_time(fl_cli__int(t, "next_ms", 0), next, sizeof(next));
		printf("%-20s %-6s %-36s %-10s %-8lld %s\n", fl_cli__str(t, "function", "-"),
		       fl_cli__str(t, "type", "-"), fl_cli__str(t, "schedule", "-"),
		       fl_cli__str(t, "state", "-"), fl_cli__int(t, "fired", 0), next);
	}
	json_decref(out);
	return FL_CLI_OK;
}
