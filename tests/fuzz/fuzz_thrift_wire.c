/* fuzz_thrift_wire.c -- libFuzzer target: Thrift framing, THeader/TTHeader headers and the
 * exception replies built from what was parsed, on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/thrift_wire.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every string the parser returns must lie inside the frame it was given. */
static void check_span(const uint8_t *p, size_t n, const char *s, size_t len)
{
	if (s == NULL)
		return;
	if ((const uint8_t *)s < p || (const uint8_t *)s + len > p + n)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fl_tw_msg m;
	const char *why = NULL;
	fl_buf out = FL_BUF_INIT;
	long fs;
	int f = fl_tw_sniff(data, size);

	if (f < -1 || f > FL_TW_TTHEADER)
		abort();
	fs = fl_tw_frame_size(data, size, 1 << 20);
	if (fs > 0 && (size_t)fs > size)
		abort();
	/* The gateway parses exactly one frame; also try the whole input as one. */
	if (fl_tw_parse(data, fs > 0 ? (size_t)fs : size, &m, &why) == 0) {
		size_t n = fs > 0 ? (size_t)fs : size;
		check_span(data, n, m.method, m.method_len);
		check_span(data, n, m.to_service, m.to_service_len);
		check_span(data, n, m.to_method, m.to_method_len);
		check_span(data, n, m.isn, m.isn_len);
		if (fl_tw_mux_service(&m) > m.method_len)
			abort();
		if (fl_tw_exception(&m, 1, "no such method", &out) == 0) {
			struct fl_tw_msg r;
			long rs = fl_tw_frame_size((const uint8_t *)out.p, out.len, 1 << 30);
			/* The reply must read back as one whole frame of the same framing. */
			if (m.framing != FL_TW_UNFRAMED_BINARY &&
			    m.framing != FL_TW_UNFRAMED_COMPACT && rs != (long)out.len)
				abort();
			/* (Kitex protobuf payloads carry no message header flint reads.) */
			if (rs > 0 &&
			    fl_tw_parse((const uint8_t *)out.p, (size_t)rs, &r, &why) == 0 &&
			    r.proto != FL_TW_PROTOBUF && r.type != 3)
				abort();
		}
		fl_buf_free(&out);
	} else if (why == NULL) {
		abort();
	}
	return 0;
}
