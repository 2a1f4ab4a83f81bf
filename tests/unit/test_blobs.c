/* test_blobs.c -- content-addressed blobs: put, exists, unpack, and refusal of unsafe archives. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "control/blobs.c"

struct env {
	char root[64];	/* scratch directory of this test */
	char data[128]; /* the data directory */
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return -1;
	strcpy(e->root, "/tmp/flint-test-blobs-XXXXXX");
	if (mkdtemp(e->root) == NULL)
		return -1;
	snprintf(e->data, sizeof(e->data), "%s/data", e->root);
	if (fl_blobs_init(e->data) != 0)
		return -1;
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->root);
	free(e);
	return system(cmd) == 0 ? 0 : -1;
}

/* Runs a shell command in the test's scratch directory; fails the test if it fails. */
static void sh(struct env *e, const char *fmt, ...)
{
	char cmd[1024], full[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "cd '%s' && %s", e->root, cmd);
	if (system(full) != 0)
		fail_msg("command failed: %s", full);
}

static char *slurp(struct env *e, const char *name, size_t *len)
{
	char path[256];
	char *p;

	snprintf(path, sizeof(path), "%s/%s", e->root, name);
	p = fl_read_file(path, len);
	if (p == NULL)
		fail_msg("cannot read %s", path);
	return p;
}

static void test_put_exists_unpack(void **state)
{
	struct env *e = *state;
	char digest[FL_DIGEST_LEN + 1], digest2[FL_DIGEST_LEN + 1], hex[65], err[512], path[512];
	char *data, *dir = NULL, *dir2 = NULL, *content;
	size_t len;
	int created = -1;
	struct stat st;

	sh(e, "mkdir -p src/sub && printf '#!/bin/sh\\necho hi\\n' > src/run.sh && "
	      "chmod 755 src/run.sh && echo data > src/sub/file.txt && "
	      "tar -czf code.tgz -C src .");
	data = slurp(e, "code.tgz", &len);

	assert_int_equal(fl_blob_put(e->data, data, len, digest, &created), 0);
	assert_int_equal(created, 1);
	fl_sha256_hex(data, len, hex);
	assert_int_equal(strlen(digest), FL_DIGEST_LEN);
	assert_memory_equal(digest, "sha256:", 7);
	assert_string_equal(digest + 7, hex);
	assert_int_equal(fl_blob_exists(e->data, digest), 1);

	/* The stored file holds exactly the bytes, and no temporary is left behind. */
	snprintf(path, sizeof(path), "%s/blobs/%s", e->data, hex);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, len);
	sh(e, "test $(ls -A data/blobs | wc -l) -eq 1");

	assert_int_equal(fl_blob_put(e->data, data, len, digest2, &created), 0);
	assert_int_equal(created, 0);
	assert_string_equal(digest, digest2);

	assert_int_equal(fl_blob_unpack(e->data, digest, &dir, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/code/%s", e->data, hex);
	assert_string_equal(dir, path);
	snprintf(path, sizeof(path), "%s/run.sh", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_mode & S_IXUSR);
	snprintf(path, sizeof(path), "%s/sub/file.txt", dir);
	content = fl_read_file(path, &len);
	assert_non_null(content);
	assert_string_equal(content, "data\n");
	free(content);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0755);

	/* A second unpack finds the finished tree; no temporary directories remain. */
	assert_int_equal(fl_blob_unpack(e->data, digest, &dir2, err, sizeof(err)), 0);
	assert_string_equal(dir, dir2);
	sh(e, "test $(ls -A data/code | wc -l) -eq 1");
	free(dir);
	free(dir2);
	free(data);
}

static void test_unsafe_archives(void **state)
{
	struct env *e = *state;
	char digest[FL_DIGEST_LEN + 1], err[512];
	char *data, *dir = (char *)0x1;
	size_t len;
	int created;

	/* -P keeps "../" and leading "/" in member names, as a hostile client would. */
	sh(e, "mkdir -p w/a && echo x > w/a/f && cd w/a && tar -czPf ../../dotdot.tgz ../a/f");
	data = slurp(e, "dotdot.tgz", &len);
	assert_int_equal(fl_blob_put(e->data, data, len, digest, &created), 0);
	assert_int_equal(fl_blob_unpack(e->data, digest, &dir, err, sizeof(err)), -EPERM);
	assert_null(dir);
	assert_non_null(strstr(err, "\"..\""));
	assert_non_null(strstr(err, "../a/f"));
	free(data);

	sh(e, "tar -czPf abs.tgz \"$PWD/w/a/f\"");
	data = slurp(e, "abs.tgz", &len);
	assert_int_equal(fl_blob_put(e->data, data, len, digest, &created), 0);
	assert_int_equal(fl_blob_unpack(e->data, digest, &dir, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "absolute path"));
	free(data);

	/* Refused before anything was extracted. */
	sh(e, "test $(ls -A data/code | wc -l) -eq 0");
}

/* Names that merely contain dots are fine. */
static void test_check_listing(void **state)
{
	char err[256], ok[] = "./a..b\n..c/d\nx/...\n", bad[] = "a/b/../../c\n", bad2[] = "..\n";

	assert_int_equal(check_listing(ok, "d", err, sizeof(err)), 0);
	assert_int_equal(check_listing(bad, "d", err, sizeof(err)), -EPERM);
	assert_int_equal(check_listing(bad2, "d", err, sizeof(err)), -EPERM);
}

static void test_errors(void **state)
{
	struct env *e = *state;
	char digest[FL_DIGEST_LEN + 1], err[512], *dir = NULL;
	int created;

	assert_int_equal(fl_blob_exists(e->data, "sha256:abc"), -EINVAL);
	assert_int_equal(fl_blob_exists(e->data, "md5:0123"), -EINVAL);
	assert_int_equal(fl_blob_unpack(e->data, "nope", &dir, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a code digest"));

	assert_int_equal(fl_blob_exists(e->data, "sha256:0000000000000000000000000000000000000000"
						 "000000000000000000000000"),
			 0);
	assert_int_equal(fl_blob_unpack(e->data,
					"sha256:00000000000000000000000000000000000000000000000000"
					"00000000000000",
					&dir, err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "has not been uploaded"));

	/* Not a tar.gz at all: tar's complaint is passed on. */
	assert_int_equal(fl_blob_put(e->data, "hello", 5, digest, &created), 0);
	assert_int_equal(created, 1);
	assert_int_equal(fl_blob_unpack(e->data, digest, &dir, err, sizeof(err)), -EINVAL);
	assert_null(dir);
	assert_non_null(strstr(err, "could not be read as a tar.gz"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_put_exists_unpack, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unsafe_archives, setup, teardown),
	    cmocka_unit_test(test_check_listing),
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
