/* cmd_logs.c -- `flint logs NAME [-f] [--tail N]`: streams a function's log lines. */
#include "cli/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char logs_help[] =
    "usage: flint logs NAME [-f] [--tail N] [--admin URL] [--data DIR]\n\n"
    "Prints a function's log lines (TIME i-ID STREAM text), oldest first.\n"
    "  -f, --follow   keep printing new lines as they are written, until Ctrl-C\n"
    "  --tail N       start with the last N lines\n";

/* Lines go out as they arrive: a follower piping into grep must not wait for
 * a 4 KiB stdio buffer to fill. */
static int to_stdout(const char *p, size_t n, void *arg)
{
	if (fwrite(p, 1, n, stdout) != n || fflush(stdout) != 0)
		return -1;
	return 0;
}

int fl_cli__logs(fl_cli__ctx *c, int argc, char **argv)
{
	static const fl_cli__opt opts[] = {
	    {"follow", 'f', 0, 'f'},
	    {"tail", 'n', 1, 'n'},
	    {NULL, 0, 0, 0},
	};
	fl_cli__args a;
	const char *name = NULL, *v;
	long long tail = -1;
	int follow = 0, id, rc = FL_CLI_FAIL;

	fl_cli__args_init(&a, c, argc, argv, opts);
	while ((id = fl_cli__next_opt(&a, &v)) != FL_CLI_ARG_END) {
		if (id == FL_CLI_ARG_ERR)
			return FL_CLI_USAGE;
		if (id == FL_CLI_ARG_HELP) {
			fputs(logs_help, stdout);
			return FL_CLI_OK;
		}
		if (id == FL_CLI_ARG_POS) {
			if (name)
				return fl_cli__usage_err(c, "unexpected argument \"%s\"", v);
			name = v;
		} else if (id == 'f') {
			follow = 1;
		} else if (id == 'n') {
			if ((tail = fl_cli__num_opt(c, "--tail", v)) < 0)
				return FL_CLI_USAGE;
		}
	}
	if (a.rest)
		return fl_cli__usage_err(c, "takes no command after --");
	if (name == NULL)
		return fl_cli__usage_err(c, "which function? Give its NAME");
	fl_cli__ctx_finish(c);

	char *en = fl_cli__escape(name);
	fl_buf path = FL_BUF_INIT, resp = FL_BUF_INIT;
	fl_buf_printf(&path, "/v1/functions/%s/logs", en);
	char sep = '?';
	if (tail >= 0) {
		fl_buf_printf(&path, "%ctail=%lld", sep, tail);
		sep = '&';
	}
	if (follow)
		fl_buf_printf(&path, "%cfollow=1", sep);

	long st = fl_cli__admin_stream(c, path.p, to_stdout, NULL, &resp);
	if (st < 0)
		goto out;
	if (st < 200 || st >= 300) {
		fl_cli__report(c, st, &resp);
		goto out;
	}
	rc = FL_CLI_OK;
out:
	fl_buf_free(&path);
	fl_buf_free(&resp);
	free(en);
	return rc;
}
