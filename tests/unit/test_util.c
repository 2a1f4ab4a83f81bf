/* test_util.c -- unit tests for durations, sizes, names, randomness, files (src/core/util.c)
 * and the growable buffer (src/core/buf.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/util.h"

/* Parses s as a duration, which must succeed with exactly want milliseconds. */
static void expect_duration(const char *s, uint64_t want)
{
	uint64_t ms = 12345;
	int rc = fl_parse_duration(s, &ms);

	if (rc != 0)
		fail_msg("duration \"%s\" was rejected (%d)", s, rc);
	if (ms != want)
		fail_msg("duration \"%s\" gave %llu ms, want %llu", s, (unsigned long long)ms,
			 (unsigned long long)want);
}

/* Parses s as a duration, which must fail with -EINVAL and leave *ms alone. */
static void expect_bad_duration(const char *s)
{
	uint64_t ms = 12345;
	int rc = fl_parse_duration(s, &ms);

	if (rc != -EINVAL)
		fail_msg("duration \"%s\" should be rejected, gave rc %d ms %llu", s ? s : "(null)",
			 rc, (unsigned long long)ms);
	assert_int_equal(ms, 12345);
}

static void expect_size(const char *s, uint64_t want)
{
	uint64_t b = 777;
	int rc = fl_parse_size(s, &b);

	if (rc != 0)
		fail_msg("size \"%s\" was rejected (%d)", s, rc);
	if (b != want)
		fail_msg("size \"%s\" gave %llu bytes, want %llu", s, (unsigned long long)b,
			 (unsigned long long)want);
}

static void expect_bad_size(const char *s)
{
	uint64_t b = 777;
	int rc = fl_parse_size(s, &b);

	if (rc != -EINVAL)
		fail_msg("size \"%s\" should be rejected, gave rc %d bytes %llu", s ? s : "(null)",
			 rc, (unsigned long long)b);
	assert_int_equal(b, 777);
}

static void test_parse_duration(void **state)
{
	expect_duration("60", 60000);
	expect_duration("0", 0);
	expect_duration("500ms", 500);
	expect_duration("1.5s", 1500);
	expect_duration("30s", 30000);
	expect_duration("2m", 120000);
	expect_duration("1h", 3600000);
	expect_duration("0.5m", 30000);
	expect_duration("1.6ms", 2); /* rounded to the nearest millisecond */

	expect_bad_duration(NULL);
	expect_bad_duration("");
	expect_bad_duration("-1");
	expect_bad_duration("+1");
	expect_bad_duration("10x");
	expect_bad_duration("s");
	expect_bad_duration("ms");
	expect_bad_duration(" 5");
	expect_bad_duration("5 s");
	expect_bad_duration("5s ");
	expect_bad_duration("5S");
	expect_bad_duration("1d");
	expect_bad_duration("inf");
	expect_bad_duration("nan");
	expect_bad_duration("1e300h"); /* finite but far too large */
}

static void test_parse_size(void **state)
{
	expect_size("100", 100);
	expect_size("100b", 100);
	expect_size("0", 0);
	expect_size("512k", 512 * 1024);
	expect_size("10m", 10ull * 1024 * 1024);
	expect_size("1g", 1024ull * 1024 * 1024);
	expect_size("64MiB", 64ull * 1024 * 1024);
	expect_size("64mb", 64ull * 1024 * 1024);
	expect_size("2KB", 2048);
	expect_size("1.5k", 1536);

	expect_bad_size(NULL);
	expect_bad_size("");
	expect_bad_size("-1");
	expect_bad_size("10q");
	expect_bad_size("k");
	expect_bad_size("10kx");
	expect_bad_size("10bb");
	expect_bad_size("10kib ");
	expect_bad_size(" 10");
	expect_bad_size("1e30g");
}

/* Every formatted duration parses back to the same number of milliseconds. */
static void test_format_duration_round_trip(void **state)
{
	static const struct {
		uint64_t ms;
		const char *text;
	} cases[] = {
	    {0, "0s"},	       {1, "1ms"},	   {999, "999ms"},     {1000, "1s"},
	    {1500, "1500ms"},  {59000, "59s"},	   {60000, "1m"},      {90000, "90s"},
	    {120000, "2m"},    {3600000, "1h"},	   {5400000, "90m"},   {7200000, "2h"},
	    {86400000, "24h"}, {3601000, "3601s"}, {61001, "61001ms"},
	};
	char out[32];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t back = 0;
		fl_format_duration(cases[i].ms, out, sizeof(out));
		assert_string_equal(out, cases[i].text);
		assert_int_equal(fl_parse_duration(out, &back), 0);
		assert_int_equal(back, cases[i].ms);
	}
	/* A pseudo-random sweep: whatever the shape, parse(format(x)) == x. */
	for (i = 0; i < 2000; i++) {
		uint64_t ms = (uint64_t)i * i * 7919 % 100000000, back = 0;
		fl_format_duration(ms, out, sizeof(out));
		assert_int_equal(fl_parse_duration(out, &back), 0);
		assert_int_equal(back, ms);
	}
	/* A short buffer truncates but stays terminated. */
	fl_format_duration(1500, out, 4);
	assert_string_equal(out, "150");
}

static void test_valid_name(void **state)
{
	char n63[64], n64[65];

	memset(n63, 'a', 63);
	n63[63] = '\0';
	memset(n64, 'a', 64);
	n64[64] = '\0';

	assert_true(fl_valid_name("hello"));
	assert_true(fl_valid_name("a"));
	assert_true(fl_valid_name("0"));
	assert_true(fl_valid_name("hello-c"));
	assert_true(fl_valid_name("a-b-c-1"));
	assert_true(fl_valid_name("9lives"));
	assert_true(fl_valid_name("a--b"));
	assert_true(fl_valid_name(n63));

	assert_false(fl_valid_name(NULL));
	assert_false(fl_valid_name(""));
	assert_false(fl_valid_name(n64));
	assert_false(fl_valid_name("-hello"));
	assert_false(fl_valid_name("hello-"));
	assert_false(fl_valid_name("-"));
	assert_false(fl_valid_name("Hello"));
	assert_false(fl_valid_name("HELLO"));
	assert_false(fl_valid_name("hello_world"));
	assert_false(fl_valid_name("hello.world"));
	assert_false(fl_valid_name("hello world"));
	assert_false(fl_valid_name("a/b"));
	assert_false(fl_valid_name("caf\xc3\xa9"));
}

static void test_consttime_eq(void **state)
{
	assert_true(fl_consttime_eq("secret", "secret"));
	assert_true(fl_consttime_eq("", ""));
	assert_false(fl_consttime_eq("secreT", "secret"));
	assert_false(fl_consttime_eq("secre", "secret"));
	assert_false(fl_consttime_eq("secrets", "secret"));
	assert_false(fl_consttime_eq("", "secret"));
	assert_false(fl_consttime_eq("secret", ""));
	/* A prefix padded with what the loop pads with must still differ. */
	assert_false(fl_consttime_eq("a", "a\x01"));
}

static int is_lower_hex(const char *s)
{
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return 0;
	return 1;
}

static void test_random_hex(void **state)
{
	char a[41], b[41], big[2 * 37 + 2];
	size_t i;

	memset(a, 'Z', sizeof(a));
	fl_random_hex(a, 20);
	assert_int_equal(strlen(a), 40);
	assert_true(is_lower_hex(a));
	fl_random_hex(b, 20);
	assert_int_equal(strlen(b), 40);
	assert_true(is_lower_hex(b));
	assert_string_not_equal(a, b);

	/* Lengths that are not a multiple of the generator's 8 bytes; and the
	 * byte after the terminator is not touched. */
	big[2 * 37 + 1] = 'Q';
	fl_random_hex(big, 37);
	assert_int_equal(strlen(big), 74);
	assert_true(is_lower_hex(big));
	assert_int_equal(big[75], 'Q');

	fl_random_hex(a, 0);
	assert_string_equal(a, "");

	/* Every hex digit shows up over many draws: no stuck nibble. */
	{
		int seen[16] = {0}, all = 1;
		for (i = 0; i < 64; i++) {
			const char *p;
			fl_random_hex(a, 20);
			for (p = a; *p; p++)
				seen[*p <= '9' ? *p - '0' : *p - 'a' + 10] = 1;
		}
		for (i = 0; i < 16; i++)
			all &= seen[i];
		assert_true(all);
	}

	{
		unsigned char r1[16] = {0}, r2[16] = {0};
		assert_int_equal(fl_random_bytes(r1, sizeof(r1)), 0);
		assert_int_equal(fl_random_bytes(r2, sizeof(r2)), 0);
		assert_memory_not_equal(r1, r2, sizeof(r1));
	}
}

static void test_strncaseeq(void **state)
{
	assert_true(fl_strncaseeq("Content-Length", 14, "content-length"));
	assert_true(fl_strncaseeq("HOSTxxx", 4, "host"));
	assert_false(fl_strncaseeq("hos", 3, "host"));
	assert_false(fl_strncaseeq("hosts", 5, "host"));
}

static void test_buf(void **state)
{
	fl_buf b = FL_BUF_INIT;
	char *s;
	int i;

	/* An empty buffer steals as an allocated "". */
	s = fl_buf_steal(&b);
	assert_non_null(s);
	assert_string_equal(s, "");
	free(s);

	assert_int_equal(fl_buf_append(&b, "hello", 5), 0);
	assert_int_equal(b.len, 5);
	assert_true(b.cap > b.len);
	assert_string_equal(b.p, "hello");
	assert_int_equal(fl_buf_append(&b, NULL, 0), 0);
	assert_int_equal(b.len, 5);
	assert_int_equal(fl_buf_puts(&b, ", "), 0);
	assert_int_equal(fl_buf_printf(&b, "%s %d%c", "world", 42, '!'), 0);
	assert_string_equal(b.p, "hello, world 42!");
	assert_int_equal(b.len, strlen("hello, world 42!"));

	/* Binary data with NULs is kept by length. */
	assert_int_equal(fl_buf_append(&b, "\0x", 2), 0);
	assert_int_equal(b.len, 18);
	assert_memory_equal(b.p + 16, "\0x", 2);
	assert_int_equal(b.p[18], '\0');

	fl_buf_consume(&b, 7);
	assert_int_equal(b.len, 11);
	assert_memory_equal(b.p, "world 42!\0x", 11);
	fl_buf_consume(&b, 100);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.p, "");

	/* Growth across many reallocations keeps the content. */
	for (i = 0; i < 1000; i++)
		assert_int_equal(fl_buf_printf(&b, "%04d,", i), 0);
	assert_int_equal(b.len, 5000);
	assert_memory_equal(b.p, "0000,0001,", 10);
	assert_memory_equal(b.p + 4995, "0999,", 5);
	assert_int_equal(b.p[5000], '\0');

	/* A large single printf (past the first vsnprintf guess). */
	fl_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_int_equal(fl_buf_printf(&b, "%3000s|", "x"), 0);
	assert_int_equal(b.len, 3001);
	assert_int_equal(b.p[2999], 'x');
	assert_int_equal(b.p[3000], '|');

	assert_int_equal(fl_buf_reserve(&b, 100000), 0);
	assert_true(b.cap >= b.len + 100000 + 1);

	s = fl_buf_steal(&b);
	assert_int_equal(strlen(s), 3001);
	assert_null(b.p);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	free(s);

	/* Consume and reset on a buffer that never allocated must not crash. */
	fl_buf_consume(&b, 3);
	fl_buf_reset(&b);
	assert_int_equal(fl_buf_puts(&b, "again"), 0);
	assert_string_equal(b.p, "again");
	fl_buf_free(&b);
	assert_null(b.p);
	assert_int_equal(b.len, 0);
	fl_buf_free(&b);
}

static void test_mkdirs_and_read_file(void **state)
{
	char tmpl[] = "/tmp/fl-test-util-XXXXXX";
	char path[512], file[600];
	char *dir = mkdtemp(tmpl), *got, *big;
	size_t len = 99, i;
	struct stat st;
	int fd;

	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	assert_int_equal(fl_mkdirs(path, 0755), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	/* Existing directories are fine, and a trailing slash too. */
	assert_int_equal(fl_mkdirs(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/a/b/c/", dir);
	assert_int_equal(fl_mkdirs(path, 0755), 0);
	assert_true(fl_mkdirs("", 0755) < 0);

	/* A file in the way is reported, not papered over. */
	snprintf(file, sizeof(file), "%s/a/f", dir);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(fl_write_all(fd, "line one\nline two\n", 18), 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/a/f/sub", dir);
	assert_int_equal(fl_mkdirs(path, 0755), -ENOTDIR);

	got = fl_read_file(file, &len);
	assert_non_null(got);
	assert_int_equal(len, 18);
	assert_string_equal(got, "line one\nline two\n");
	free(got);

	/* Empty file: "" with length 0; len may be NULL. */
	snprintf(file, sizeof(file), "%s/a/empty", dir);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	close(fd);
	got = fl_read_file(file, &len);
	assert_non_null(got);
	assert_int_equal(len, 0);
	assert_string_equal(got, "");
	free(got);
	got = fl_read_file(file, NULL);
	assert_non_null(got);
	free(got);

	/* Larger than the first 4 KiB read, with binary bytes. */
	big = malloc(20000);
	assert_non_null(big);
	for (i = 0; i < 20000; i++)
		big[i] = (char)(i * 31 + 7);
	snprintf(file, sizeof(file), "%s/a/big", dir);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(fl_write_all(fd, big, 20000), 0);
	close(fd);
	got = fl_read_file(file, &len);
	assert_non_null(got);
	assert_int_equal(len, 20000);
	assert_memory_equal(got, big, 20000);
	assert_int_equal(got[20000], '\0');
	free(got);
	free(big);

	snprintf(file, sizeof(file), "%s/a/missing", dir);
	errno = 0;
	assert_null(fl_read_file(file, &len));
	assert_int_equal(errno, ENOENT);

	/* Writing to a closed descriptor reports the errno. */
	assert_int_equal(fl_write_all(-1, "x", 1), -EBADF);

	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	assert_int_equal(system(path), 0);
}

static void test_clocks(void **state)
{
	uint64_t a = fl_now_ns(), b = fl_now_ns();

	assert_true(b >= a);
	assert_true(fl_now_ms() >= a / 1000000);
	/* After 2020-01-01 in epoch milliseconds. */
	assert_true(fl_wall_ms() > 1577836800000ull);
}

static void test_request_id(void **state)
{
	char id[72], id2[72];

	(void)state;
	fl_request_id("abc-1.2:x_Y", 11, id, sizeof(id));
	assert_string_equal(id, "abc-1.2:x_Y");
	fl_request_id("bad id", 6, id, sizeof(id)); /* a space: a new one */
	assert_int_equal(strlen(id), 16);
	fl_request_id(NULL, 0, id2, sizeof(id2));
	assert_int_equal(strlen(id2), 16);
	assert_string_not_equal(id, id2);
	fl_request_id("0123456789abcdef0123", 20, id, 17); /* too long for out */
	assert_int_equal(strlen(id), 16);
	assert_string_not_equal(id, "0123456789abcdef");
}

static void test_ascii_lower(void **state)
{
	char s[] = "Hello-WORLD.9Z";

	(void)state;
	fl_ascii_lower(s, 5);
	assert_string_equal(s, "hello-WORLD.9Z");
	fl_ascii_lower(s, strlen(s));
	assert_string_equal(s, "hello-world.9z");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_id),
	    cmocka_unit_test(test_ascii_lower),
	    cmocka_unit_test(test_parse_duration),
	    cmocka_unit_test(test_parse_size),
	    cmocka_unit_test(test_format_duration_round_trip),
	    cmocka_unit_test(test_valid_name),
	    cmocka_unit_test(test_consttime_eq),
	    cmocka_unit_test(test_random_hex),
	    cmocka_unit_test(test_strncaseeq),
	    cmocka_unit_test(test_buf),
	    cmocka_unit_test(test_mkdirs_and_read_file),
	    cmocka_unit_test(test_clocks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
