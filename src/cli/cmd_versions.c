/* cmd_versions.c -- flint versions, flint rollback, flint traffic. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/client.h"

static const char versions_help[] =
    "usage: flint versions NAME [-o json]\n\n"
    "Lists every version of a function, oldest first: its number, when it was made,\n"
    "its code digest, whether it is current and its share of the traffic.\n";

static const char rollback_help[] =
    "usage: flint rollback NAME [VERSION]\n\n"
    "Deploys an older version again (the version before the current one when\n"
    "VERSION is not given). This makes a new version with the old spec and code,\n"
    "and it takes all the traffic.\n";

static const char traffic_help[] =
    "usage: flint traffic NAME [vN=WEIGHT ...]\n\n"
    "Without weights, shows how a function's traffic is split between versions.\n"
    "With them, splits it: `flint traffic api v3=90 v4=10` sends 90 of every 100\n"
    "requests to version 3 and 10 to version 4 (weights are relative). Versions\n"
    "other than the current one run beside it. A request may pin a version with\n"
    "the header X-Flint-Version: 4. `flint traffic api v4=100` ends the split.\n";

static const fl_cli__opt out_opts[] = {{"output", 'o', 1, 1}, {NULL, 0, 0, 0}};
static const fl_cli__opt no_opts[] = {{NULL, 0, 0, 0}};

/* Reads NAME and up to max further positional arguments. */
static int positional(fl_cli__ctx *c, int argc, char **argv, const fl_cli__opt *opts,
		      const char *help, const char **pos, int max, int *npos, int *json)
{
	fl_cli__args a;
	const char *v;
	int id;

	*npos = 0;
	fl_cli__args_init(&a, c, argc, argv, opts);
	while ((id = fl_cli__next_opt(&a, &v)) != FL_CLI_ARG_END) {
		if (id == FL_CLI_ARG_ERR)
			return FL_CLI_USAGE;
		if (id == FL_CLI_ARG_HELP) {
			fputs(help, stdout);
			return -1;
		}
		if (id == 1) {
			if (strcmp(v, "json") != 0)
				return fl_cli__usage_err(c, "-o takes json, not \"%s\"", v);
			*json = 1;
			continue;
		}
		if (*npos == max)
			return fl_cli__usage_err(c, "too many arguments (\"%s\")", v);
		pos[(*npos)++] = v;
	}
	if (*npos == 0)
		return fl_cli__usage_err(c, "which function? give its NAME");
	fl_cli__ctx_finish(c);
	return FL_CLI_OK;
}

int fl_cli__versions(fl_cli__ctx *c, int argc, char **argv)
{
	const char *pos[1];
	char path[512], *esc;
	json_t *out = NULL, *vs, *v;
	int n, json = 0, rc;
	size_t i;

	if ((rc = positional(c, argc, argv, out_opts, versions_help, pos, 1, &n, &json)) != 0)
		return rc < 0 ? FL_CLI_OK : rc;
	esc = fl_cli__escape(pos[0]);
	snprintf(path, sizeof(path), "/v1/functions/%s/versions", esc);
	free(esc);
	if (fl_cli__admin_json(c, "GET", path, NULL, &out) != 0)
		return FL_CLI_FAIL;
	if (json) {
		fl_cli__print_json(out);
		json_decref(out);
		return FL_CLI_OK;
	}
	vs = json_object_get(out, "versions");
	printf("%-8s %-20s %-8s %-7s %s\n", "VERSION", "CREATED", "CURRENT", "TRAFFIC", "CODE");
	json_array_foreach(vs, i, v)
	{
		char when[32];
		const char *code = fl_cli__str(v, "code", "-");
		fl_cli__fmt_time(fl_cli__int(v, "created_ms", 0), when, sizeof(when));
		printf("%-8lld %-20s %-8s %6lld%% %.19s\n", fl_cli__int(v, "version", 0), when,
		       json_is_true(json_object_get(v, "current")) ? "yes" : "",
		       fl_cli__int(v, "weight", 0), code);
	}
	json_decref(out);
	return FL_CLI_OK;
}

int fl_cli__rollback(fl_cli__ctx *c, int argc, char **argv)
{
	const char *pos[2];
	char path[512], *esc, *end;
	json_t *body = json_object(), *out = NULL;
	int n, json = 0, rc;

	if ((rc = positional(c, argc, argv, no_opts, rollback_help, pos, 2, &n, &json)) != 0) {
		json_decref(body);
		return rc < 0 ? FL_CLI_OK : rc;
	}
	if (n == 2) {
		const char *v = pos[1][0] == 'v' ? pos[1] + 1 : pos[1];
		long long ver = strtoll(v, &end, 10);
		if (*v == '\0' || *end || ver < 1) {
			json_decref(body);
			return fl_cli__usage_err(c,
						 "VERSION must be a version number like 3 or v3");
		}
		json_object_set_new(body, "version", json_integer(ver));
	}
	esc = fl_cli__escape(pos[0]);
	snprintf(path, sizeof(path), "/v1/functions/%s/rollback", esc);
	free(esc);
	rc = fl_cli__admin_json(c, "POST", path, body, &out);
	json_decref(body);
	if (rc != 0)
		return FL_CLI_FAIL;
	printf("rolled %s back to version %lld: now version %lld\n", pos[0],
	       fl_cli__int(out, "rolled_back_to", 0), fl_cli__int(out, "version", 0));
	json_decref(out);
	return FL_CLI_OK;
}

int fl_cli__traffic(fl_cli__ctx *c, int argc, char **argv)
{
	const char *pos[9];
	char path[512], *esc;
	json_t *weights = json_object(), *body, *out = NULL, *w, *v;
	const char *k;
	int n, json = 0, rc, i;

	if ((rc = positional(c, argc, argv, out_opts, traffic_help, pos, 9, &n, &json)) != 0) {
		json_decref(weights);
		return rc < 0 ? FL_CLI_OK : rc;
	}
	for (i = 1; i < n; i++) {
		const char *eq = strchr(pos[i], '=');
		char key[32], *end;
		long long wt;
		if (eq == NULL || eq == pos[i] || (size_t)(eq - pos[i]) >= sizeof(key)) {
			json_decref(weights);
			return fl_cli__usage_err(c, "weights look like v3=90, not \"%s\"", pos[i]);
		}
		wt = strtoll(eq + 1, &end, 10);
		if (eq[1] == '\0' || *end || wt < 0) {
			json_decref(weights);
			return fl_cli__usage_err(c, "the weight in \"%s\" must be a whole number",
						 pos[i]);
		}
		snprintf(key, sizeof(key), "%.*s", (int)(eq - pos[i]), pos[i]);
		json_object_set_new(weights, key, json_integer(wt));
	}
	esc = fl_cli__escape(pos[0]);
	snprintf(path, sizeof(path), "/v1/functions/%s/traffic", esc);
	free(esc);
	if (n > 1) {
		body = json_pack("{s:o}", "weights", weights);
		rc = fl_cli__admin_json(c, "PUT", path, body, &out);
		json_decref(body);
	} else {
		json_decref(weights);
		rc = fl_cli__admin_json(c, "GET", path, NULL, &out);
	}
	if (rc != 0)
		return FL_CLI_FAIL;
	if (json)
		return fl_cli__print_json(out), json_decref(out), FL_CLI_OK;
	w = json_object_get(out, "weights");
	{
		long long total = 0;
		json_object_foreach(w, k, v) total += json_integer_value(v);
		printf("%-8s %s\n", "VERSION", "TRAFFIC");
		json_object_foreach(w, k, v)
		{
			printf("v%-7s %5.1f%%%s\n", k,
			       total ? 100.0 * (double)json_integer_value(v) / (double)total : 0.0,
			       atoll(k) == fl_cli__int(out, "current", 0) ? "  (current)" : "");
		}
	}
	json_decref(out);
	return FL_CLI_OK;
}
