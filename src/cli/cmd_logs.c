/* cmd_logs.c -- `flint logs NAME [-f] [--tail N] [--since D]`: streams a function's log lines. */
#include "cli/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"

static const char logs_help[] =
    "usage: flint logs NAME [-f] [--tail N] [--admin URL] [--data DIR]\n\n"
    "Prints a function's log lines (TIME i-ID STREAM text), oldest first.\n"
    "  -f, --follow   keep printing new lines as they are written, until Ctrl-C\n"
    "  --tail N       start with the last N lines\n"
    "  --since D      only lines from the last D (10m, 1h, 30s); with --tail, the last N\n"
    "                 of those\n";

/* Lines go out as they arrive: a follower piping into grep must not wait for
 * a 4 KiB stdio buffer to fill. */
static int to_stdout(const char *p, size_t n, void *arg)
{
	if (fwrite(p, 1, n, stdout) != n || fflush(stdout) != 0)
		return -1;
	return 0;
}

/* --since: lines are cut at newlines and kept when their leading time is recent enough;
 * a line without a time (none should exist) follows the fate of the line before. */
struct since {
	uint64_t from_ms;
	fl_buf part; /* an incomplete line */
	int keep;
};

/* The wall time (ms) of a line starting "2026-11-21T23:59:00.123Z ", or 0. */
static uint64_t line_time(const char *p, size_t n)
{
	char head[32];
	struct tm tm;
	const char *end;
	long ms = 0;

	if (n < 20)
		return 0;
	memcpy(head, p, n < sizeof(head) - 1 ? n : sizeof(head) - 1);
	head[n < sizeof(head) - 1 ? n : sizeof(head) - 1] = '\0';
	memset(&tm, 0, sizeof(tm));
	end = strptime(head, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end == NULL)
		return 0;
	if (*end == '.')
		ms = strtol(end + 1, NULL, 10) % 1000;
	return (uint64_t)timegm(&tm) * 1000 + (uint64_t)ms;
}

static int since_line(struct since *s, const char *p, size_t n)
{
	uint64_t t = line_time(p, n);

	if (t)
		s->keep = t >= s->from_ms;
	if (s->keep && (fwrite(p, 1, n, stdout) != n))
		return -1;
	return 0;
}

static int to_stdout_since(const char *p, size_t n, void *arg)
{
	struct since *s = arg;
	const char *nl;

	while (n && (nl = memchr(p, '\n', n)) != NULL) {
		size_t len = (size_t)(nl - p) + 1;
		int r;
		if (s->part.len) {
			fl_buf_append(&s->part, p, len);
			r = since_line(s, s->part.p, s->part.len);
			fl_buf_reset(&s->part);
		} else {
			r = since_line(s, p, len);
		}
		if (r < 0)
			return -1;
		p += len;
		n -= len;
	}
	if (n)
		fl_buf_append(&s->part, p, n);
	return fflush(stdout) != 0 ? -1 : 0;
}

int fl_cli__logs(fl_cli__ctx *c, int argc, char **argv)
{
	static const fl_cli__opt opts[] = {
	    {"follow", 'f', 0, 'f'},
	    {"tail", 'n', 1, 'n'},
	    {"since", 0, 1, 's'},
	    {NULL, 0, 0, 0},
	};
	struct since since = {0, FL_BUF_INIT, 0};
	uint64_t since_ms = 0;
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
		} else if (id == 's') {
			if (fl_parse_duration(v, &since_ms) < 0 || since_ms == 0)
				return fl_cli__usage_err(
				    c, "--since takes a duration like 10m, 1h or 30s, not \"%s\"",
				    v);
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
	if (since_ms && tail < 0)
		tail = 100000; /* every line the daemon keeps; the time filter is applied here */
	if (tail >= 0) {
		fl_buf_printf(&path, "%ctail=%lld", sep, tail);
		sep = '&';
	}
	if (follow)
		fl_buf_printf(&path, "%cfollow=1", sep);

	long st;
	if (since_ms) {
		since.from_ms = fl_wall_ms() - since_ms;
		st = fl_cli__admin_stream(c, path.p, to_stdout_since, &since, &resp);
		if (since.part.len)
			since_line(&since, since.part.p, since.part.len);
		fflush(stdout);
	} else {
		st = fl_cli__admin_stream(c, path.p, to_stdout, NULL, &resp);
	}
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
	fl_buf_free(&since.part);
	free(en);
	return rc;
}
