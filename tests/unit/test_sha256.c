/* test_sha256.c -- FIPS 180-4 test vectors for SHA-256. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* sha256.o is part of the unit-test base, so the header (not the .c) is included. */
#include "core/sha256.h"

static void hex_of_ctx(fl_sha256 *c, char hex[65])
{
	uint8_t d[32];
	fl_sha256_final(c, d);
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", d[i]);
}

static void test_empty(void **state)
{
	char hex[65];
	fl_sha256_hex("", 0, hex);
	assert_string_equal(hex,
			    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_abc(void **state)
{
	char hex[65];
	fl_sha256_hex("abc", 3, hex);
	assert_string_equal(hex,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_448_bits(void **state)
{
	const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	char hex[65];
	fl_sha256_hex(m, strlen(m), hex);
	assert_string_equal(hex,
			    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_896_bits(void **state)
{
	const char *m = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
			"ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
	char hex[65];
	fl_sha256_hex(m, strlen(m), hex);
	assert_string_equal(hex,
			    "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

/* A million 'a', fed in uneven pieces so the partial-block path is exercised. */
static void test_million_a(void **state)
{
	const char *want = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
	char *m = malloc(1000000), hex[65];
	fl_sha256 c;
	size_t off = 0, step = 1;

	assert_non_null(m);
	memset(m, 'a', 1000000);
	fl_sha256_hex(m, 1000000, hex);
	assert_string_equal(hex, want);

	fl_sha256_init(&c);
	while (off < 1000000) {
		size_t n = step < 1000000 - off ? step : 1000000 - off;
		fl_sha256_update(&c, m + off, n);
		off += n;
		step = step * 3 % 257 + 1;
	}
	hex_of_ctx(&c, hex);
	assert_string_equal(hex, want);
	free(m);
}

/* Lengths around the 55/56/64-byte padding boundaries, checked against one-shot hashing
 * split at every position. */
static void test_boundaries(void **state)
{
	char m[130], a[65], b[65];
	memset(m, 'x', sizeof(m));
	for (size_t n = 50; n <= 130; n++) {
		fl_sha256_hex(m, n, a);
		for (size_t cut = 0; cut <= n; cut += 7) {
			fl_sha256 c;
			fl_sha256_init(&c);
			fl_sha256_update(&c, m, cut);
			fl_sha256_update(&c, m + cut, n - cut);
			hex_of_ctx(&c, b);
			assert_string_equal(a, b);
		}
	}
	/* The padding edge cases against values computed by coreutils' sha256sum. */
	fl_sha256_hex(m, 55, a);
	assert_string_equal(a, "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072");
	fl_sha256_hex(m, 56, a);
	assert_string_equal(a, "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e");
	fl_sha256_hex(m, 64, a);
	assert_string_equal(a, "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty),     cmocka_unit_test(test_abc),
	    cmocka_unit_test(test_448_bits),  cmocka_unit_test(test_896_bits),
	    cmocka_unit_test(test_million_a), cmocka_unit_test(test_boundaries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
