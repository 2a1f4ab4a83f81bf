/* buf.h -- a growable byte buffer. */
#ifndef FL_BUF_H
#define FL_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct fl_buf {
	char *p;    /* NUL-terminated whenever len < cap; may be NULL while cap == 0 */
	size_t len; /* bytes used */
	size_t cap; /* bytes allocated */
} fl_buf;

#define FL_BUF_INIT                                                                                \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}

/* Ensures room for `more` bytes beyond len (plus a NUL). Returns 0 or -ENOMEM. */
int fl_buf_reserve(fl_buf *b, size_t more);
/* Appends n bytes. Returns 0 or -ENOMEM; on error the buffer is unchanged. */
int fl_buf_append(fl_buf *b, const void *p, size_t n);
/* Appends a NUL-terminated string. */
int fl_buf_puts(fl_buf *b, const char *s);
/* Appends printf-formatted text. Returns 0 or -ENOMEM. */
int fl_buf_printf(fl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int fl_buf_vprintf(fl_buf *b, const char *fmt, va_list ap);
/* Drops the first n bytes, moving the rest to the front. */
void fl_buf_consume(fl_buf *b, size_t n);
/* Empties the buffer but keeps its memory. */
void fl_buf_reset(fl_buf *b);
/* Frees the memory held by the buffer, not the struct itself; the buffer is empty after. */
void fl_buf_free(fl_buf *b);
/* Hands the bytes to the caller (who frees them with free()) and empties the buffer.
 * Never returns NULL: an empty buffer yields an allocated "". */
char *fl_buf_steal(fl_buf *b);

#endif
