/* test_logstore.c -- line splitting, ring and file tails, followers, restart and removal. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "control/logstore.c"

#define PREFIX_LEN 24 /* "2026-11-21T23:59:00.123Z" */

struct lines {
	size_t n;
	char *line[64];
	size_t len[64];
};

static void collect(void *ctx, const char *line, size_t len)
{
	struct lines *l = ctx;

	assert_true(l->n < 64);
	l->line[l->n] = fl_xstrndup(line, len);
	l->len[l->n] = len;
	l->n++;
}

static void lines_free(struct lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->line[i]);
	memset(l, 0, sizeof(*l));
}

/* Checks the timestamp shape and returns what follows it ("i-3 stdout text"). */
static const char *after_time(const char *line)
{
	assert_true(strlen(line) > PREFIX_LEN);
	assert_int_equal(line[4], '-');
	assert_int_equal(line[10], 'T');
	assert_int_equal(line[19], '.');
	assert_int_equal(line[23], 'Z');
	assert_int_equal(line[24], ' ');
	return line + PREFIX_LEN + 1;
}

static int setup(void **state)
{
	char *dir = strdup("/tmp/flint-test-logstore-XXXXXX");

	if (dir == NULL || mkdtemp(dir) == NULL)
		return -1;
	*state = dir;
	return 0;
}

static int teardown(void **state)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", (char *)*state);
	free(*state);
	return system(cmd) == 0 ? 0 : -1;
}

static char *log_path(const char *dir, const char *fn)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/logs/%s.log", dir, fn);
	return path;
}

static fl_logstore *new_store(const char *dir, size_t ring)
{
	char sub[512];
	fl_logstore *ls;

	snprintf(sub, sizeof(sub), "%s/logs", dir);
	ls = fl_logstore_new(sub, ring);
	assert_non_null(ls);
	return ls;
}

static void test_split_and_partials(void **state)
{
	fl_logstore *ls = new_store(*state, 16);
	struct lines l = {0};

	fl_logstore_feed(ls, "api", 3, "stdout", "hel", 3);
	fl_logstore_feed(ls, "api", 3, "stderr", "oops", 4);
	fl_logstore_tail(ls, "api", 10, collect, &l);
	assert_int_equal(l.n, 0); /* nothing complete yet */

	fl_logstore_feed(ls, "api", 4, "stdout", "other\n", 6);
	fl_logstore_feed(ls, "api", 3, "stdout", "lo\nworld\n\npart", 14);
	fl_logstore_flush(ls, "api", 3, "stderr");
	fl_logstore_flush(ls, "api", 3, "stderr"); /* nothing left: no second line */
	fl_logstore_tail(ls, "api", 10, collect, &l);
	assert_int_equal(l.n, 5);
	assert_string_equal(after_time(l.line[0]), "i-4 stdout other");
	assert_string_equal(after_time(l.line[1]), "i-3 stdout hello");
	assert_string_equal(after_time(l.line[2]), "i-3 stdout world");
	assert_string_equal(after_time(l.line[3]), "i-3 stdout ");
	assert_string_equal(after_time(l.line[4]), "i-3 stderr oops");
	lines_free(&l);

	/* "part" is still held; the file has exactly the five lines. */
	{
		size_t len;
		char *text = fl_read_file(log_path(*state, "api"), &len);
		size_t nl = 0;
		assert_non_null(text);
		for (size_t i = 0; i < len; i++)
			nl += text[i] == '\n';
		assert_int_equal(nl, 5);
		assert_null(strstr(text, "part"));
		free(text);
	}
	fl_logstore_flush(ls, "api", 3, "stdout");
	fl_logstore_tail(ls, "api", 1, collect, &l);
	assert_int_equal(l.n, 1);
	assert_string_equal(after_time(l.line[0]), "i-3 stdout part");
	lines_free(&l);
	fl_logstore_free(ls);
}

static void test_long_lines(void **state)
{
	fl_logstore *ls = new_store(*state, 16);
	struct lines l = {0};
	size_t n = 40000, prefix = strlen("i-1 stdout ") + PREFIX_LEN + 1;
	char *big = malloc(n + 1);

	memset(big, 'x', n);
	big[n] = '\n';
	/* Fed in uneven pieces so the cut happens inside a held partial line. */
	fl_logstore_feed(ls, "big", 1, "stdout", big, 1000);
	fl_logstore_feed(ls, "big", 1, "stdout", big + 1000, 20000);
	fl_logstore_feed(ls, "big", 1, "stdout", big + 21000, n + 1 - 21000);
	fl_logstore_tail(ls, "big", 10, collect, &l);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.len[0], prefix + 16384);
	assert_int_equal(l.len[1], prefix + 16384);
	assert_int_equal(l.len[2], prefix + 40000 - 2 * 16384);
	lines_free(&l);

	/* Exactly the limit followed by its newline is one line, not one plus an empty one. */
	fl_logstore_feed(ls, "edge", 1, "stdout", big, 16384);
	fl_logstore_feed(ls, "edge", 1, "stdout", "\nnext\n", 6);
	fl_logstore_tail(ls, "edge", 10, collect, &l);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.len[0], prefix + 16384);
	assert_string_equal(after_time(l.line[1]), "i-1 stdout next");
	lines_free(&l);
	free(big);
	fl_logstore_free(ls);
}

static void test_ring_file_and_restart(void **state)
{
	fl_logstore *ls = new_store(*state, 3);
	struct lines l = {0};
	char msg[32];

	for (int i = 1; i <= 5; i++) {
		int n = snprintf(msg, sizeof(msg), "line %d\n", i);
		fl_logstore_feed(ls, "api", 7, "stdout", msg, (size_t)n);
	}
	/* The ring holds the last three... */
	assert_int_equal(find(ls, "api")->count, 3);
	fl_logstore_tail(ls, "api", 2, collect, &l);
	assert_int_equal(l.n, 2);
	assert_string_equal(after_time(l.line[0]), "i-7 stdout line 4");
	assert_string_equal(after_time(l.line[1]), "i-7 stdout line 5");
	lines_free(&l);
	/* ...and a longer tail comes from the file. */
	fl_logstore_tail(ls, "api", 10, collect, &l);
	assert_int_equal(l.n, 5);
	assert_string_equal(after_time(l.line[0]), "i-7 stdout line 1");
	lines_free(&l);
	fl_logstore_free(ls);

	/* After a restart the ring is empty and the file answers. */
	ls = new_store(*state, 3);
	fl_logstore_tail(ls, "api", 2, collect, &l);
	assert_int_equal(l.n, 2);
	assert_string_equal(after_time(l.line[0]), "i-7 stdout line 4");
	assert_string_equal(after_time(l.line[1]), "i-7 stdout line 5");
	lines_free(&l);
	fl_logstore_note(ls, "api", "instance i-%d exited with status %d", 7, 1);
	fl_logstore_tail(ls, "api", 3, collect, &l);
	assert_int_equal(l.n, 3);
	assert_string_equal(after_time(l.line[0]), "i-7 stdout line 4");
	assert_string_equal(after_time(l.line[2]), "i-0 flint instance i-7 exited with status 1");
	lines_free(&l);
	fl_logstore_tail(ls, "nothing-here", 3, collect, &l);
	assert_int_equal(l.n, 0);
	fl_logstore_free(ls);
}

struct self_unfollow {
	fl_logstore *ls;
	fl_log_follower *me, *other;
	struct lines got;
};

static void unfollow_cb(void *ctx, const char *line, size_t len)
{
	struct self_unfollow *s = ctx;

	collect(&s->got, line, len);
	fl_logstore_unfollow(s->ls, s->me);
	if (s->other) {
		fl_logstore_unfollow(s->ls, s->other);
		s->other = NULL;
	}
}

static void test_followers(void **state)
{
	fl_logstore *ls = new_store(*state, 8);
	struct lines a = {0}, b = {0};
	struct self_unfollow s = {.ls = ls};
	fl_log_follower *fa, *fb;

	fl_logstore_feed(ls, "api", 1, "stdout", "before\n", 7);
	fa = fl_logstore_follow(ls, "api", collect, &a);
	fb = fl_logstore_follow(ls, "api", collect, &b);
	fl_logstore_feed(ls, "api", 1, "stdout", "one\ntw", 6);
	fl_logstore_feed(ls, "other", 1, "stdout", "elsewhere\n", 10);
	assert_int_equal(a.n, 1);
	assert_string_equal(after_time(a.line[0]), "i-1 stdout one");
	fl_logstore_unfollow(ls, fb);
	fl_logstore_feed(ls, "api", 1, "stdout", "o\n", 2);
	assert_int_equal(a.n, 2);
	assert_string_equal(after_time(a.line[1]), "i-1 stdout two");
	assert_int_equal(b.n, 1);

	/* A callback may unfollow itself and another follower while lines are delivered. */
	s.me = fl_logstore_follow(ls, "api", unfollow_cb, &s);
	s.other = fa;
	fl_logstore_feed(ls, "api", 1, "stdout", "three\n", 6);
	fl_logstore_feed(ls, "api", 1, "stdout", "four\n", 5);
	assert_int_equal(s.got.n, 1);
	assert_null(find(ls, "api")->followers);
	lines_free(&a);
	lines_free(&b);
	lines_free(&s.got);
	fl_logstore_free(ls);
}

static void test_remove(void **state)
{
	fl_logstore *ls = new_store(*state, 8);
	struct lines l = {0};
	fl_log_follower *f;

	fl_logstore_feed(ls, "api", 1, "stdout", "x\n", 2);
	f = fl_logstore_follow(ls, "api", collect, &l);
	assert_int_equal(access(log_path(*state, "api"), F_OK), 0);
	fl_logstore_remove(ls, "api");
	assert_int_equal(access(log_path(*state, "api"), F_OK), -1);
	assert_null(find(ls, "api"));
	fl_logstore_tail(ls, "api", 10, collect, &l);
	assert_int_equal(l.n, 0);
	/* A function of the same name starts afresh; the old follower hears nothing. */
	fl_logstore_feed(ls, "api", 2, "stdout", "new\n", 4);
	assert_int_equal(l.n, 0);
	fl_logstore_unfollow(ls, f);
	fl_logstore_tail(ls, "api", 10, collect, &l);
	assert_int_equal(l.n, 1);
	assert_string_equal(after_time(l.line[0]), "i-2 stdout new");
	lines_free(&l);
	/* Removing an unknown function is harmless. */
	fl_logstore_remove(ls, "never");
	fl_logstore_free(ls);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_split_and_partials, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_lines, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ring_file_and_restart, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_followers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
