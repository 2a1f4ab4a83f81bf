/* test_base64.c -- base64 encoding and strict decoding (core/base64.c), and the secret
 * store's key rules and files (control/secrets.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control/secrets.c"
#include "core/base64.c"

static void test_rfc4648_vectors(void **state)
{
	static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const enc[] = {"",	      "Zg==",	  "Zm8=",    "Zm9v",
					  "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	(void)state;
	for (size_t i = 0; i < 7; i++) {
		char *e = fl_base64_encode(plain[i], strlen(plain[i]));
		size_t n;
		unsigned char *d;
		assert_string_equal(e, enc[i]);
		d = fl_base64_decode(e, strlen(e), &n);
		assert_non_null(d);
		assert_int_equal(n, strlen(plain[i]));
		assert_memory_equal(d, plain[i], n);
		free(d);
		free(e);
	}
}

static void test_decode_refuses_garbage(void **state)
{
	size_t n;
	unsigned char *d;

	(void)state;
	assert_null(fl_base64_decode("Zm9v!", 5, &n));
	assert_null(fl_base64_decode("Z", 1, &n));
	assert_null(fl_base64_decode("Zm 9v", 5, &n));
	/* Padding is optional. */
	d = fl_base64_decode("Zm8", 3, &n);
	assert_non_null(d);
	assert_int_equal(n, 2);
	free(d);
}

static void test_binary_roundtrip(void **state)
{
	unsigned char in[256], *d;
	char *e;
	size_t n;

	(void)state;
	for (int i = 0; i < 256; i++)
		in[i] = (unsigned char)(255 - i);
	e = fl_base64_encode(in, sizeof(in));
	d = fl_base64_decode(e, strlen(e), &n);
	assert_int_equal(n, sizeof(in));
	assert_memory_equal(d, in, n);
	free(d);
	free(e);
}

static void test_secret_keys_and_store(void **state)
{
	char tmpl[] = "/tmp/flint-secret-test-XXXXXX", path[512];
	struct fl_secret_kv kv[2] = {{"password", (const unsigned char *)"pw", 2},
				     {"tls.key", (const unsigned char *)"\0\1", 2}};
	struct stat st;
	json_t *keys;
	int created = -1;

	(void)state;
	assert_true(fl_secret_valid_key("tls.key"));
	assert_false(fl_secret_valid_key(".hidden"));
	assert_false(fl_secret_valid_key("a/b"));
	assert_false(fl_secret_valid_key(""));
	assert_non_null(mkdtemp(tmpl));
	assert_int_equal(fl_secret_put(tmpl, "db", kv, 2, &created), 0);
	assert_int_equal(created, 1);
	assert_int_equal(fl_secret_exists(tmpl, "db"), 1);
	snprintf(path, sizeof(path), "%s/secrets/db/password", tmpl);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	keys = fl_secret_keys(tmpl, "db");
	assert_int_equal(json_array_size(keys), 2);
	assert_string_equal(json_string_value(json_array_get(keys, 0)), "password");
	json_decref(keys);
	/* Replacing keeps only the new keys. */
	assert_int_equal(fl_secret_put(tmpl, "db", kv + 1, 1, &created), 0);
	assert_int_equal(created, 0);
	assert_int_not_equal(stat(path, &st), 0);
	keys = fl_secret_names(tmpl);
	assert_int_equal(json_array_size(keys), 1); /* no leftover .new/.old directories */
	json_decref(keys);
	assert_int_equal(fl_secret_remove(tmpl, "db"), 0);
	assert_int_equal(fl_secret_remove(tmpl, "db"), -ENOENT);
	snprintf(path, sizeof(path), "%s/secrets", tmpl);
	rmdir(path);
	rmdir(tmpl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc4648_vectors),
	    cmocka_unit_test(test_decode_refuses_garbage),
	    cmocka_unit_test(test_binary_roundtrip),
	    cmocka_unit_test(test_secret_keys_and_store),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
