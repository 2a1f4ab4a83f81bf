/* fuzz_http1_head.c -- libFuzzer target: HTTP/1.1 request heads as the gateway reads them.
 *
 * The gateway's parser state lives in per-connection structures of proto/http1.c that
 * cannot be built without a libuv loop and sockets, so this drives llhttp with the same
 * settings (strict, paused at the end of every message, input split across two reads)
 * and applies what http1.c adds on top: the RFC 9110 tchar check on header names (a
 * copy of http1.c's tchar(), keep the two equal), the 100-header and 32 KiB head caps,
 * and the router on the URL and Host. Properties checked: an accepted head never has
 * both Content-Length and chunked framing, and never a header name outside tchar. */
#include <llhttp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "gateway/router.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEAD_MAX    (32 * 1024)
#define MAX_HEADERS 100

struct st {
	fl_buf url, host, field;
	int in_value, is_host, nh;
	size_t head;
};

/* Copy of proto/http1.c tchar(). */
static int tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static int too_big(struct st *s, size_t len)
{
	s->head += len;
	return s->head > HEAD_MAX;
}

static int on_begin(llhttp_t *p)
{
	struct st *s = p->data;

	fl_buf_reset(&s->url);
	fl_buf_reset(&s->host);
	fl_buf_reset(&s->field);
	s->in_value = s->is_host = s->nh = 0;
	s->head = 0;
	return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
	struct st *s = p->data;

	if (too_big(s, len))
		return -1;
	return fl_buf_append(&s->url, at, len) < 0 ? -1 : 0;
}

static int on_field(llhttp_t *p, const char *at, size_t len)
{
	struct st *s = p->data;
	size_t i;

	for (i = 0; i < len; i++)
		if (!tchar((unsigned char)at[i]))
			return -1;
	if (s->in_value || s->nh == 0) {
		if (++s->nh > MAX_HEADERS)
			return -1;
		s->in_value = 0;
		fl_buf_reset(&s->field);
	}
	if (too_big(s, len))
		return -1;
	return fl_buf_append(&s->field, at, len) < 0 ? -1 : 0;
}

static int on_value(llhttp_t *p, const char *at, size_t len)
{
	struct st *s = p->data;

	if (!s->in_value) {
		s->in_value = 1;
		s->is_host = s->field.len == 4 && strncasecmp(s->field.p, "host", 4) == 0;
		if (s->is_host)
			fl_buf_reset(&s->host);
	}
	if (too_big(s, len))
		return -1;
	if (s->is_host && fl_buf_append(&s->host, at, len) < 0)
		return -1;
	return 0;
}

static int on_headers_complete(llhttp_t *p)
{
	struct st *s = p->data;
	struct fl_route r;
	size_t i;

	/* Smuggling: llhttp (strict) must have refused both framings at once. */
	if ((p->flags & F_CONTENT_LENGTH) && (p->flags & F_CHUNKED))
		abort();
	for (i = 0; i < s->field.len; i++)
		if (!tchar((unsigned char)s->field.p[i]))
			abort();
	fl_route_request(s->url.p ? s->url.p : "", s->url.len, s->host.p, s->host.len, "localhost",
			 &r);
	if ((r.kind == FL_ROUTE_FUNCTION || r.kind == FL_ROUTE_ASYNC) && r.name_len == 0)
		abort();
	return 0;
}

static int on_complete(llhttp_t *p)
{
	return HPE_PAUSED;
}

/* Feeds n bytes, resuming after every paused message (pipelining); 0 or -1 on error. */
static int feed(llhttp_t *p, const char *b, size_t n)
{
	while (n > 0) {
		llhttp_errno_t e = llhttp_execute(p, b, n);
		size_t used;

		if (e == HPE_OK)
			return 0;
		if (e != HPE_PAUSED)
			return -1;
		used = (size_t)(llhttp_get_error_pos(p) - b);
		if (used > n)
			abort();
		llhttp_resume(p);
		b += used;
		n -= used;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static llhttp_settings_t set;
	static int init;
	struct st s = {FL_BUF_INIT, FL_BUF_INIT, FL_BUF_INIT, 0, 0, 0, 0};
	llhttp_t p;
	size_t cut;
	char *a, *b;

	if (size < 1)
		return 0;
	if (!init) {
		llhttp_settings_init(&set);
		set.on_message_begin = on_begin;
		set.on_url = on_url;
		set.on_header_field = on_field;
		set.on_header_value = on_value;
		set.on_headers_complete = on_headers_complete;
		set.on_message_complete = on_complete;
		init = 1;
	}
	/* The first byte says where the input is split into two reads. */
	cut = size > 1 ? data[0] % size : 0;
	data++;
	size--;
	if (cut > size)
		cut = size;
	a = malloc(cut ? cut : 1);
	b = malloc(size - cut ? size - cut : 1);
	memcpy(a, data, cut);
	memcpy(b, data + cut, size - cut);
	llhttp_init(&p, HTTP_REQUEST, &set);
	p.data = &s;
	if (feed(&p, a, cut) == 0)
		feed(&p, b, size - cut);
	free(a);
	free(b);
	fl_buf_free(&s.url);
	fl_buf_free(&s.host);
	fl_buf_free(&s.field);
	return 0;
}
