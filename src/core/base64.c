/* base64.c -- standard base64 encoding and strict decoding. */
#include "core/base64.h"

#include <stdlib.h>

#include "core/util.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *fl_base64_encode(const void *p, size_t n)
{
	const unsigned char *in = p;
	char *out = fl_xmalloc((n + 2) / 3 * 4 + 1), *o = out;
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		*o++ = b64_alphabet[in[i] >> 2];
		*o++ = b64_alphabet[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		*o++ = b64_alphabet[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		*o++ = b64_alphabet[in[i + 2] & 63];
	}
	if (i < n) {
		*o++ = b64_alphabet[in[i] >> 2];
		if (i + 1 < n) {
			*o++ = b64_alphabet[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
			*o++ = b64_alphabet[(in[i + 1] & 15) << 2];
		} else {
			*o++ = b64_alphabet[(in[i] & 3) << 4];
			*o++ = '=';
		}
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

unsigned char *fl_base64_decode(const char *s, size_t n, size_t *out_len)
{
	unsigned char *out, *o;
	unsigned acc = 0;
	size_t i;
	int bits = 0, v;

	/* Padding is optional, but when present it must complete the last group. */
	if (n % 4 == 0 && n >= 1 && s[n - 1] == '=')
		n -= (n >= 2 && s[n - 2] == '=') ? 2 : 1;
	if (n % 4 == 1)
		return NULL;
	out = o = fl_xmalloc(n / 4 * 3 + 3 + 1);
	for (i = 0; i < n; i++) {
		if ((v = b64_value(s[i])) < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			*o++ = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	*o = '\0';
	*out_len = (size_t)(o - out);
	return out;
}
