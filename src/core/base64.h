/* base64.h -- standard base64 (RFC 4648 section 4, with padding): HTTP basic
 * authentication and binary secret values in JSON. */
#ifndef FL_BASE64_H
#define FL_BASE64_H

#include <stddef.h>

/* Encodes n bytes of p into a new NUL-terminated string (padded); the caller
 * frees it. Aborts on exhaustion like fl_xmalloc. */
char *fl_base64_encode(const void *p, size_t n);

/* Decodes the n characters of s (padding optional, no whitespace) into a new
 * buffer with a NUL after the data, its length in *out_len; the caller frees it.
 * Returns NULL for anything that is not base64. */
unsigned char *fl_base64_decode(const char *s, size_t n, size_t *out_len);

#endif
