/* fuzz_spec.c -- libFuzzer target: the spec validator. Input is a JSON document; when it
 * validates, its normalized form must validate again and normalize to itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/spec.c"
#include "events/cron.c"
#include "events/trigger_spec.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256], err2[256];
	json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
	fl_spec *s = NULL, *s2 = NULL;
	json_t *n1, *n2;

	if (j == NULL)
		return 0;
	err[0] = 'x';
	if (fl_spec_parse(j, &s, err, sizeof(err)) < 0) {
		/* Every refusal names what was wrong. */
		if (err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		json_decref(j);
		return 0;
	}
	n1 = fl_spec_to_json(s);
	if (fl_spec_parse(n1, &s2, err2, sizeof(err2)) < 0) {
		fprintf(stderr, "normalized spec refused: %s\n", err2);
		abort();
	}
	n2 = fl_spec_to_json(s2);
	if (!json_equal(n1, n2)) {
		char *a = json_dumps(n1, JSON_SORT_KEYS), *b = json_dumps(n2, JSON_SORT_KEYS);
		fprintf(stderr, "normalization is not stable:\n%s\n%s\n", a, b);
		abort();
	}
	json_decref(n2);
	json_decref(n1);
	fl_spec_free(s2);
	fl_spec_free(s);
	json_decref(j);
	return 0;
}
