/* fuzz_cron.c -- libFuzzer target: cron expressions (and their next fire time) and TZif
 * time zone images, the two parsers of events/cron.c. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "events/cron.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	char *expr = malloc(size + 1);
	struct fl_cron c;
	fl_tz *z = NULL;
	const int64_t t0 = 1700000000000LL; /* 2023-11-14 */

	memcpy(expr, data, size);
	expr[size] = '\0';
	if (fl_tz_parse(data, size, &z) == 0) {
		fl_tz_offset(z, 0);
		fl_tz_offset(z, t0 / 1000);
		fl_tz_offset(z, INT64_MIN / 2);
		fl_tz_offset(z, INT64_MAX / 2);
	} else {
		z = NULL;
	}
	err[0] = 'x';
	if (fl_cron_parse(expr, &c, err, sizeof(err)) == 0) {
		int64_t next = fl_cron_next(&c, z, t0);
		if (next != -1 && next <= t0)
			abort();
	} else if (err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL) {
		abort();
	}
	fl_tz_free(z);
	free(expr);
	return 0;
}
