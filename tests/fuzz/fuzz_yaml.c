/* fuzz_yaml.c -- libFuzzer target: flint.yaml text to JSON (libyaml and flint's mapping of
 * scalars to JSON types). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/yaml.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	json_t *j;

	err[0] = 'x';
	j = fl_yaml_to_json((const char *)data, size, err, sizeof(err));
	if (j == NULL) {
		if (err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		return 0;
	}
	free(json_dumps(j, JSON_ENCODE_ANY));
	json_decref(j);
	return 0;
}
