/* cmd_top.c -- `flint top`: a live view of the functions, refreshed every second. */
#include "cli/client.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"

#define TOP_BUCKETS 15 /* FL_HIST_BUCKETS bounds plus one past them */

static const char top_help[] =
    "usage: flint top [--once] [--admin URL] [--data DIR]\n\n"
    "A live view of every function, refreshed every second: state, instances ready,\n"
    "starting and draining, requests per second, the 99th percentile of request time\n"
    "over the last second, cold starts and 5xx answers (totals), requests held.\n"
    "q or Ctrl-C quits. When stdout is not a terminal (or with --once) it prints one\n"
    "view, measured over one second, and exits.\n";

/* What the previous reading said about one function. */
struct top_prev {
	char name[64];
	long long requests;
	long long counts[TOP_BUCKETS];
};

static struct termios top_saved;
static int top_raw;

static void top_restore(void)
{
	if (top_raw) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &top_saved);
		fputs("\033[?25h", stdout); /* the cursor again */
		fflush(stdout);
		top_raw = 0;
	}
}

static void top_on_signal(int sig)
{
	top_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Raw mode: keys arrive one at a time, unechoed; Ctrl-C arrives as a byte (ISIG off)
 * so that the terminal is always restored on the way out. */
static int top_enter_raw(void)
{
	struct termios t;

	if (tcgetattr(STDIN_FILENO, &top_saved) < 0)
		return -1;
	t = top_saved;
	t.c_lflag &= ~(tcflag_t)(ICANON | ECHO | ISIG);
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) < 0)
		return -1;
	top_raw = 1;
	atexit(top_restore);
	signal(SIGTERM, top_on_signal);
	signal(SIGHUP, top_on_signal);
	fputs("\033[?25l", stdout);
	return 0;
}

static struct top_prev *top_find(struct top_prev *prev, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(prev[i].name, name) == 0)
			return &prev[i];
	return NULL;
}

/* The p99 over the interval, from the per-bucket count deltas, as text. */
static void top_p99(json_t *lat, const struct top_prev *p, char *out, size_t outlen)
{
	json_t *le = json_object_get(lat, "le"), *counts = json_object_get(lat, "counts");
	long long d[TOP_BUCKETS], total = 0, cum = 0;
	size_t i, nb = json_array_size(counts);

	snprintf(out, outlen, "-");
	if (p == NULL || nb == 0 || nb > TOP_BUCKETS)
		return;
	for (i = 0; i < nb; i++) {
		d[i] = json_integer_value(json_array_get(counts, i)) - p->counts[i];
		total += d[i] > 0 ? d[i] : 0;
	}
	if (total == 0)
		return;
	for (i = 0; i < nb; i++) {
		cum += d[i] > 0 ? d[i] : 0;
		if (cum * 100 >= total * 99)
			break;
	}
	if (i >= json_array_size(le)) {
		snprintf(out, outlen, ">%gs", json_real_value(json_array_get(le, nb - 2)));
		return;
	}
	double s = json_real_value(json_array_get(le, i));
	if (s < 1)
		snprintf(out, outlen, "<=%gms", s * 1000);
	else
		snprintf(out, outlen, "<=%gs", s);
}

/* Prints one view (unless !show) from r (GET /v1/functions) and the previous reading dt
 * seconds ago; then remembers r as the previous reading. */
static void top_print(json_t *r, struct top_prev **prev, int *nprev, double dt, int tty, int show)
{
	json_t *fns = json_object_get(r, "functions"), *f;
	struct top_prev *next;
	char clock[16], p99[24];
	time_t now = time(NULL);
	struct tm tm;
	size_t i, n = json_array_size(fns);

	localtime_r(&now, &tm);
	strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
	if (!show)
		goto remember;
	if (tty)
		fputs("\033[H\033[2J", stdout);
	printf("flint top - %s - %zu function%s%s\n\n", clock, n, n == 1 ? "" : "s",
	       tty ? " - q to quit" : "");
	printf("%-24s %-9s %5s %5s %5s %9s %10s %6s %7s %6s\n", "NAME", "STATE", "READY", "START",
	       "DRAIN", "REQ/S", "P99", "COLD", "5XX", "HELD");
remember:
	next = fl_xcalloc(n ? n : 1, sizeof(*next));
	json_array_foreach(fns, i, f)
	{
		const char *name = fl_cli__str(f, "name", "?");
		json_t *inst = json_object_get(f, "instances"),
		       *lat = json_object_get(f, "latency");
		struct top_prev *p = top_find(*prev, *nprev, name);
		long long req = fl_cli__int(f, "requests", 0);
		char rate[24];

		if (p && dt > 0)
			snprintf(rate, sizeof(rate), "%.1f",
				 (double)(req - p->requests > 0 ? req - p->requests : 0) / dt);
		else
			snprintf(rate, sizeof(rate), "-");
		top_p99(lat, p, p99, sizeof(p99));
		if (show)
			printf("%-24.24s %-9.9s %5lld %5lld %5lld %9s %10s %6lld %7lld %6lld\n",
			       name, fl_cli__str(f, "state", "?"), fl_cli__int(inst, "ready", 0),
			       fl_cli__int(inst, "starting", 0), fl_cli__int(inst, "draining", 0),
			       rate, p99, fl_cli__int(f, "cold_starts", 0),
			       fl_cli__int(f, "errors", 0), fl_cli__int(f, "queued", 0));
		snprintf(next[i].name, sizeof(next[i].name), "%s", name);
		next[i].requests = req;
		for (size_t b = 0;
		     b < TOP_BUCKETS && b < json_array_size(json_object_get(lat, "counts")); b++)
			next[i].counts[b] =
			    json_integer_value(json_array_get(json_object_get(lat, "counts"), b));
	}
	if (show && n == 0)
		printf("(no functions yet; deploy one with `flint deploy DIR`)\n");
	fflush(stdout);
	free(*prev);
	*prev = next;
	*nprev = (int)n;
}

/* GET /v1/functions; NULL after printing why. */
static json_t *top_fetch(fl_cli__ctx *c)
{
	json_t *r = NULL;

	if (fl_cli__admin_json(c, "GET", "/v1/functions", NULL, &r) != 0)
		return NULL;
	return r;
}

int fl_cli__top(fl_cli__ctx *c, int argc, char **argv)
{
	static const fl_cli__opt opts[] = {
	    {"once", 0, 0, '1'},
	    {NULL, 0, 0, 0},
	};
	struct top_prev *prev = NULL;
	fl_cli__args a;
	const char *v;
	int id, once = 0, nprev = 0, rc = FL_CLI_FAIL, tty;
	uint64_t last;
	json_t *r;

	fl_cli__args_init(&a, c, argc, argv, opts);
	while ((id = fl_cli__next_opt(&a, &v)) != FL_CLI_ARG_END) {
		if (id == FL_CLI_ARG_ERR)
			return FL_CLI_USAGE;
		if (id == FL_CLI_ARG_HELP) {
			fputs(top_help, stdout);
			return FL_CLI_OK;
		}
		if (id == FL_CLI_ARG_POS)
			return fl_cli__usage_err(c, "unexpected argument \"%s\"", v);
		once = 1;
	}
	if (a.rest)
		return fl_cli__usage_err(c, "takes no command after --");
	fl_cli__ctx_finish(c);
	tty = !once && isatty(STDOUT_FILENO) && isatty(STDIN_FILENO);

	/* A first reading to compute rates from. */
	if ((r = top_fetch(c)) == NULL)
		return FL_CLI_FAIL;
	last = fl_now_ms();
	if (!tty) {
		top_print(r, &prev, &nprev, 0, 0, 0);
		json_decref(r);
		sleep(1);
		if ((r = top_fetch(c)) == NULL)
			goto out;
		/* Only the second view is printed: the first one set the baseline. */
		top_print(r, &prev, &nprev, (double)(fl_now_ms() - last) / 1000.0, 0, 1);
		json_decref(r);
		rc = FL_CLI_OK;
		goto out;
	}
	if (top_enter_raw() < 0) {
		fl_cli__err("cannot put the terminal in raw mode: %s", strerror(errno));
		json_decref(r);
		goto out;
	}
	top_print(r, &prev, &nprev, 0, 1, 1);
	json_decref(r);
	for (;;) {
		struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
		uint64_t now = fl_now_ms();
		int wait = now - last >= 1000 ? 0 : (int)(1000 - (now - last));
		char ch;

		if (poll(&pfd, 1, wait) > 0) {
			if (read(STDIN_FILENO, &ch, 1) == 1 && (ch == 'q' || ch == 'Q' || ch == 3))
				break;
			continue;
		}
		now = fl_now_ms();
		if ((r = top_fetch(c)) == NULL) {
			top_restore();
			goto out;
		}
		top_print(r, &prev, &nprev, (double)(now - last) / 1000.0, 1, 1);
		json_decref(r);
		last = now;
	}
	rc = FL_CLI_OK;
out:
	top_restore();
	free(prev);
	return rc;
}
