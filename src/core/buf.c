/* buf.c -- a growable byte buffer. */
#include "core/buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fl_buf_reserve(fl_buf *b, size_t more)
{
	size_t need = b->len + more + 1;
	size_t cap;
	char *p;

	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	p = realloc(b->p, cap);
	if (p == NULL)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

int fl_buf_append(fl_buf *b, const void *p, size_t n)
{
	if (fl_buf_reserve(b, n) < 0)
		return -ENOMEM;
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int fl_buf_puts(fl_buf *b, const char *s)
{
	return fl_buf_append(b, s, strlen(s));
}

int fl_buf_vprintf(fl_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return -EINVAL;
	if (fl_buf_reserve(b, (size_t)n) < 0)
		return -ENOMEM;
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int fl_buf_printf(fl_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = fl_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void fl_buf_consume(fl_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->p, b->p + n, b->len - n);
		b->len -= n;
	}
	if (b->p)
		b->p[b->len] = '\0';
}

void fl_buf_reset(fl_buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

void fl_buf_free(fl_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

char *fl_buf_steal(fl_buf *b)
{
	char *p = b->p;

	if (p == NULL)
		p = strdup("");
	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}
