/* test_registry.c -- the SQLite registry: versions, get, list, update, delete, reopen. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "control/registry.c"

struct collected {
	int n;
	char names[8][32];
	uint64_t versions[8];
	char specs[8][64];
	uint64_t created[8], updated[8];
};

static void collect(void *ctx, const struct fl_registry_row *row)
{
	struct collected *c = ctx;

	assert_true(c->n < 8);
	snprintf(c->names[c->n], sizeof(c->names[0]), "%s", row->name);
	snprintf(c->specs[c->n], sizeof(c->specs[0]), "%s", row->spec_json);
	c->versions[c->n] = row->version;
	c->created[c->n] = row->created_ms;
	c->updated[c->n] = row->updated_ms;
	c->n++;
}

static int setup(void **state)
{
	char *dir = strdup("/tmp/flint-test-registry-XXXXXX");

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

static fl_registry *open_ok(const char *dir)
{
	char err[256];
	fl_registry *r = NULL;

	if (fl_registry_open(dir, &r, err, sizeof(err)) != 0)
		fail_msg("open %s: %s", dir, err);
	return r;
}

static void test_versions(void **state)
{
	const char *dir = *state;
	fl_registry *r = open_ok(dir);
	struct collected c = {0};
	uint64_t v = 0;
	char *spec = NULL;
	uint64_t before = fl_wall_ms();

	assert_int_equal(fl_registry_get(r, "api", &v, &spec), -ENOENT);
	assert_int_equal(fl_registry_versions(r, "api", collect, &c), -ENOENT);

	assert_int_equal(fl_registry_put(r, "api", "{\"v\":1}", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(fl_registry_put(r, "api", "{\"v\":2}", &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(fl_registry_put(r, "hello", "{\"h\":1}", &v), 0);
	assert_int_equal(v, 1);

	v = 0;
	assert_int_equal(fl_registry_get(r, "api", &v, &spec), 0);
	assert_int_equal(v, 2);
	assert_string_equal(spec, "{\"v\":2}");
	free(spec);

	assert_int_equal(fl_registry_versions(r, "api", collect, &c), 0);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.versions[0], 1);
	assert_string_equal(c.specs[0], "{\"v\":1}");
	assert_int_equal(c.versions[1], 2);
	assert_string_equal(c.specs[1], "{\"v\":2}");
	assert_true(c.created[0] >= before && c.created[0] <= fl_wall_ms());
	assert_true(c.updated[1] >= c.created[0]);

	/* list: current versions only, sorted by name. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(fl_registry_list(r, collect, &c), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.names[0], "api");
	assert_int_equal(c.versions[0], 2);
	assert_string_equal(c.specs[0], "{\"v\":2}");
	assert_string_equal(c.names[1], "hello");
	assert_int_equal(c.versions[1], 1);
	fl_registry_close(r);
}

static void test_update_current(void **state)
{
	fl_registry *r = open_ok(*state);
	struct collected c = {0};
	uint64_t v;
	char *spec;

	assert_int_equal(fl_registry_update_current(r, "nope", "{}"), -ENOENT);
	assert_int_equal(fl_registry_put(r, "api", "{\"max\":1}", &v), 0);
	assert_int_equal(fl_registry_put(r, "api", "{\"max\":2}", &v), 0);
	assert_int_equal(fl_registry_update_current(r, "api", "{\"max\":50}"), 0);
	assert_int_equal(fl_registry_get(r, "api", &v, &spec), 0);
	assert_int_equal(v, 2);
	assert_string_equal(spec, "{\"max\":50}");
	free(spec);
	/* The older version is untouched and no new version appeared. */
	assert_int_equal(fl_registry_versions(r, "api", collect, &c), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.specs[0], "{\"max\":1}");
	assert_string_equal(c.specs[1], "{\"max\":50}");
	fl_registry_close(r);
}

static void test_delete(void **state)
{
	fl_registry *r = open_ok(*state);
	struct collected c = {0};
	uint64_t v;
	char *spec = NULL;

	assert_int_equal(fl_registry_delete(r, "api"), -ENOENT);
	assert_int_equal(fl_registry_put(r, "api", "{}", &v), 0);
	assert_int_equal(fl_registry_put(r, "api", "{}", &v), 0);
	assert_int_equal(fl_registry_put(r, "keep", "{}", &v), 0);
	assert_int_equal(fl_registry_delete(r, "api"), 0);
	assert_int_equal(fl_registry_get(r, "api", &v, &spec), -ENOENT);
	assert_null(spec);
	assert_int_equal(fl_registry_versions(r, "api", collect, &c), -ENOENT);
	assert_int_equal(fl_registry_delete(r, "api"), -ENOENT);
	assert_int_equal(fl_registry_list(r, collect, &c), 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.names[0], "keep");
	/* Created again, it starts over at version 1. */
	assert_int_equal(fl_registry_put(r, "api", "{}", &v), 0);
	assert_int_equal(v, 1);
	fl_registry_close(r);
}

static void test_reopen(void **state)
{
	fl_registry *r = open_ok(*state);
	uint64_t v;
	char *spec;

	assert_int_equal(fl_registry_put(r, "api", "{\"a\":1}", &v), 0);
	assert_int_equal(fl_registry_put(r, "api", "{\"a\":2}", &v), 0);
	{
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(r->db, "PRAGMA journal_mode", -1, &st, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
		sqlite3_finalize(st);
	}
	fl_registry_close(r);

	r = open_ok(*state);
	assert_int_equal(fl_registry_get(r, "api", &v, &spec), 0);
	assert_int_equal(v, 2);
	assert_string_equal(spec, "{\"a\":2}");
	free(spec);
	assert_int_equal(fl_registry_put(r, "api", "{\"a\":3}", &v), 0);
	assert_int_equal(v, 3);
	fl_registry_close(r);
}

/* A database from a newer flint is refused with a sentence, not misread. */
static void test_newer_schema(void **state)
{
	fl_registry *r = open_ok(*state);
	char err[256];

	assert_int_equal(sqlite3_exec(r->db, "PRAGMA user_version = 99", NULL, NULL, NULL),
			 SQLITE_OK);
	fl_registry_close(r);
	r = NULL;
	assert_int_equal(fl_registry_open(*state, &r, err, sizeof(err)), -EPROTO);
	assert_null(r);
	assert_non_null(strstr(err, "newer flint"));
}

/* An unusable data directory gives an error sentence, not a crash. */
static void test_bad_dir(void **state)
{
	fl_registry *r = NULL;
	char err[256] = "";

	assert_int_equal(fl_registry_open("/proc/flint-no-such/dir", &r, err, sizeof(err)) < 0, 1);
	assert_null(r);
	assert_non_null(strstr(err, "/proc/flint-no-such/dir"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_update_current, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newer_schema, setup, teardown),
	    cmocka_unit_test(test_bad_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
