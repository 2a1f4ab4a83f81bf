/* fuzz_sniff.c -- libFuzzer target: every codec's sniff on a connection's first bytes.
 * At most one codec may claim them, and nothing that starts like an HTTP/1 request
 * line may be taken away from HTTP/1.1 except the HTTP/2 preface. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gw.h"
#include "proto/thrift_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct fl_codec *const codecs[] = {&fl_codec_h2, &fl_codec_thrift};
	char *p = malloc(size ? size : 1);
	int claimed = 0, h2 = 0;
	size_t i;

	memcpy(p, data, size);
	for (i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++) {
		int r = codecs[i]->sniff(p, size);
		if (r != 0 && r != 1)
			abort();
		claimed += r;
		if (i == 0)
			h2 = r;
	}
	if (claimed > 1)
		abort();
	if (size > 0 && data[0] >= 'A' && data[0] <= 'Z' && claimed && !h2)
		abort();
	if (h2 != fl_h2_is_preface(p, size))
		abort();
	free(p);
	return 0;
}
