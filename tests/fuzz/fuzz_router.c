/* fuzz_router.c -- libFuzzer target: routing a request-target and Host header. The input
 * is "URL\nHOST" (no newline: no Host header); each part gets an exact-size copy so any
 * read past its end is caught. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/router.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Results point into the caller's strings, except the "/" the router supplies for an
 * absolute-form target without a path ("http://host"). */
static void inside(const char *base, size_t n, const char *s, size_t len)
{
	if (len == 0 || (len == 1 && s[0] == '/'))
		return;
	if (s < base || s + len > base + n)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t ul = nl ? (size_t)(nl - data) : size;
	size_t hl = nl ? size - ul - 1 : 0;
	char *url = malloc(ul ? ul : 1);
	char *host = nl ? malloc(hl ? hl : 1) : NULL;
	struct fl_route r;
	enum fl_route_kind k;

	memcpy(url, data, ul);
	if (host)
		memcpy(host, nl + 1, hl);
	k = fl_route_request(url, ul, host, hl, "localhost", &r);
	if (k != r.kind)
		abort();
	if (k == FL_ROUTE_FUNCTION || k == FL_ROUTE_ASYNC) {
		if (r.name_len == 0)
			abort();
		/* The name comes from the URL or from the Host header, never elsewhere. */
		if (!(r.name >= url && r.name + r.name_len <= url + ul) &&
		    !(host && r.name >= host && r.name + r.name_len <= host + hl))
			abort();
		inside(url, ul, r.target, r.target_len);
		inside(url, ul, r.prefix, r.prefix_len);
	}
	/* Host routing off must never route by Host. */
	k = fl_route_request(url, ul, host, hl, NULL, &r);
	if ((k == FL_ROUTE_FUNCTION || k == FL_ROUTE_ASYNC) && host && r.name >= host &&
	    r.name < host + hl)
		abort();
	free(url);
	free(host);
	return 0;
}
