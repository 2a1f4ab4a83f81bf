/* sha256.h -- SHA-256 (FIPS 180-4), for content addressing. */
#ifndef FL_SHA256_H
#define FL_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct fl_sha256 {
	uint32_t h[8];
	uint64_t len;
	uint8_t buf[64];
	size_t nbuf;
} fl_sha256;

void fl_sha256_init(fl_sha256 *c);
void fl_sha256_update(fl_sha256 *c, const void *data, size_t n);
void fl_sha256_final(fl_sha256 *c, uint8_t out[32]);
/* One call: writes 64 lowercase hex chars and a NUL into hex. */
void fl_sha256_hex(const void *data, size_t n, char hex[65]);

#endif
