/* test_cron.c -- cron expressions, TZif zones and next fire times. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "events/cron.c"

/* 2024-03-09 12:00:00 UTC, a Saturday. */
#define T0 1709985600000LL

static int64_t next(const char *expr, const char *tz, int64_t after)
{
	struct fl_cron c;
	fl_tz *z = NULL;
	char err[256];
	int64_t r;

	assert_int_equal(fl_cron_parse(expr, &c, err, sizeof(err)), 0);
	assert_int_equal(fl_tz_load(tz, &z, err, sizeof(err)), 0);
	r = fl_cron_next(&c, z, after);
	fl_tz_free(z);
	return r;
}

static void test_parse_errors(void **state)
{
	struct fl_cron c;
	char err[256];

	(void)state;
	assert_int_equal(fl_cron_parse("* * *", &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "5 fields"));
	assert_int_equal(fl_cron_parse("60 * * * * *", &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "seconds"));
	assert_int_equal(fl_cron_parse("* * * 13 *", &c, err, sizeof(err)), -EINVAL);
	assert_int_equal(fl_cron_parse("*/0 * * * *", &c, err, sizeof(err)), -EINVAL);
	assert_int_equal(fl_cron_parse("@every 500ms", &c, err, sizeof(err)), -EINVAL);
	assert_int_equal(fl_cron_parse("@sometimes", &c, err, sizeof(err)), -EINVAL);
	assert_int_equal(fl_cron_parse("5-1 * * * *", &c, err, sizeof(err)), -EINVAL);
	assert_int_equal(fl_cron_parse("0 9 * * MON-FRI", &c, err, sizeof(err)), 0);
	assert_int_equal(c.dow, 0x3e);
	assert_int_equal(fl_cron_parse("0 0 * * 7", &c, err, sizeof(err)), 0);
	assert_int_equal(c.dow, 1); /* 7 is Sunday */
}

static void test_next_utc(void **state)
{
	(void)state;
	assert_int_equal(next("*/2 * * * * *", "UTC", T0), T0 + 2000);
	assert_int_equal(next("*/2 * * * * *", "UTC", T0 + 1), T0 + 2000);
	assert_int_equal(next("* * * * *", "UTC", T0), T0 + 60000);
	assert_int_equal(next("@hourly", "UTC", T0), T0 + 3600000);
	assert_int_equal(next("@daily", "UTC", T0), T0 + 12 * 3600000LL);
	/* Next Monday 09:00 after Saturday noon. */
	assert_int_equal(next("0 9 * * MON", "UTC", T0), T0 + (2 * 24 - 3) * 3600000LL);
	/* Day of month and day of week both set: either matches (the 10th is a Sunday). */
	assert_int_equal(next("0 0 10 * 1", "UTC", T0), T0 + 12 * 3600000LL);
	assert_int_equal(next("@every 10s", "UTC", T0 + 123), T0 + 10123);
	assert_int_equal(next("@yearly", "UTC", T0), 1735689600000LL);
	assert_int_equal(next("0 0 30 2 *", "UTC", T0), -1);
}

static void test_next_zones(void **state)
{
	(void)state;
	/* Shanghai is UTC+8 all year: local midnight is 16:00 UTC. */
	assert_int_equal(next("@daily", "Asia/Shanghai", T0), T0 + 4 * 3600000LL);
	/* New York springs forward on 2024-03-10 at 02:00 EST: 02:30 does not exist
	 * that day, so the next 02:30 is on the 11th, at EDT (UTC-4). */
	assert_int_equal(next("0 30 2 * * *", "America/New_York", T0),
			 1710138600000LL /* 2024-03-11 06:30 UTC */);
	/* 09:00 local on the 10th is after the change: 13:00 UTC. */
	assert_int_equal(next("0 0 9 * * *", "America/New_York", T0 + 12 * 3600000LL),
			 1710075600000LL);
	/* Falling back on 2024-11-03: 01:30 happens twice and fires once (the first, EDT). */
	assert_int_equal(next("0 30 1 * * *", "America/New_York", 1730592000000LL),
			 1730611800000LL /* 05:30 UTC */);
	assert_int_equal(next("0 30 1 * * *", "America/New_York", 1730611800000LL),
			 1730701800000LL /* the next day, 06:30 UTC (EST) */);
}

static void test_zone_offsets_and_errors(void **state)
{
	fl_tz *z = NULL;
	char err[256];

	(void)state;
	assert_int_equal(fl_tz_load("Europe/Berlin", &z, err, sizeof(err)), 0);
	assert_int_equal(fl_tz_offset(z, 1704067200), 3600);		  /* January: CET */
	assert_int_equal(fl_tz_offset(z, 1719792000), 7200);		  /* July: CEST */
	assert_int_equal(fl_tz_offset(z, 4102444800LL + 15552000), 7200); /* 2100: footer rule */
	fl_tz_free(z);
	assert_int_equal(fl_tz_load("Australia/Sydney", &z, err, sizeof(err)), 0);
	assert_int_equal(fl_tz_offset(z, 4102444800LL), 39600); /* 2100-01-01: AEDT */
	fl_tz_free(z);
	assert_int_equal(fl_tz_load("Nowhere/Atlantis", &z, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "unknown time zone"));
	assert_int_equal(fl_tz_load("../etc/passwd", &z, err, sizeof(err)), -EINVAL);
	assert_int_equal(fl_tz_parse((const unsigned char *)"TZif", 4, &z), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_next_utc),
	    cmocka_unit_test(test_next_zones),
	    cmocka_unit_test(test_zone_offsets_and_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
