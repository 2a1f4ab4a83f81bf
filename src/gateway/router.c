/* router.c -- which function a request head is for. */
#include "gateway/router.h"

#include <string.h>
#include <strings.h>

static int name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* Host names are case-insensitive, paths are not: fold says which. */
static int valid_name(const char *s, size_t n, int fold)
{
	size_t i;

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (i = 0; i < n; i++)
		if (!name_char(fold && s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]))
			return 0;
	return 1;
}

/* "/function/NAME[/rest]" and "/async-function/NAME[/rest]": plen is the
 * length of the prefix up to NAME. */
static enum fl_route_kind by_prefix(const char *url, size_t url_len, size_t plen,
				    enum fl_route_kind kind, struct fl_route *out)
{
	const char *name = url + plen;
	size_t i = 0;

	while (plen + i < url_len && name[i] != '/' && name[i] != '?')
		i++;
	if (!valid_name(name, i, 0))
		return out->kind = FL_ROUTE_BADNAME;
	out->kind = kind;
	out->name = name;
	out->name_len = i;
	out->prefix = url;
	out->prefix_len = plen + i;
	out->target = name + i;
	out->target_len = url_len - plen - i;
	out->target_slash = out->target_len == 0 || out->target[0] == '?';
	return out->kind;
}

/* Is path (up to '?') exactly p? */
static int path_is(const char *url, size_t len, const char *p)
{
	size_t n = strlen(p);

	return len >= n && memcmp(url, p, n) == 0 && (len == n || url[n] == '?');
}

/* The host part of a Host header: strips ":port" and a trailing dot. */
static void host_part(const char *h, size_t n, size_t *out)
{
	size_t i;

	if (n > 0 && h[0] == '[') { /* IPv6 literal: never a function name */
		*out = 0;
		return;
	}
	for (i = 0; i < n && h[i] != ':'; i++)
		;
	if (i > 0 && h[i - 1] == '.')
		i--;
	*out = i;
}

enum fl_route_kind fl_route_request(const char *url, size_t url_len, const char *host,
				    size_t host_len, const char *domain, struct fl_route *out)
{
	static const char fprefix[] = "/function/", aprefix[] = "/async-function/";
	const size_t fplen = sizeof(fprefix) - 1, aplen = sizeof(aprefix) - 1;

	memset(out, 0, sizeof(*out));
	out->prefix = "";

	/* absolute-form: take the authority as the host, the rest as the path. */
	if (url_len > 7 && strncasecmp(url, "http://", 7) == 0) {
		const char *a = url + 7;
		size_t alen = 0;
		const char *slash;
		while (alen < url_len - 7 && a[alen] != '/' && a[alen] != '?')
			alen++;
		slash = alen < url_len - 7 ? a + alen : NULL;
		host = a;
		host_len = alen;
		url = slash ? slash : "/";
		url_len = slash ? url_len - 7 - alen : 1;
	}

	if (url_len >= fplen && memcmp(url, fprefix, fplen) == 0)
		return by_prefix(url, url_len, fplen, FL_ROUTE_FUNCTION, out);
	if (url_len >= aplen && memcmp(url, aprefix, aplen) == 0)
		return by_prefix(url, url_len, aplen, FL_ROUTE_ASYNC, out);
	if (url_len >= 9 && memcmp(url, "/requests", 9) == 0 &&
	    (url_len == 9 || url[9] == '/' || url[9] == '?'))
		return out->kind = FL_ROUTE_REQUESTS;
	if (url_len >= 7 && memcmp(url, "/system", 7) == 0 &&
	    (url_len == 7 || url[7] == '/' || url[7] == '?'))
		return out->kind = FL_ROUTE_SYSTEM;

	if (domain && *domain && host && host_len) {
		size_t hl, dl = strlen(domain);
		host_part(host, host_len, &hl);
		if (hl > dl + 1 && host[hl - dl - 1] == '.' &&
		    strncasecmp(host + hl - dl, domain, dl) == 0) {
			size_t nl = hl - dl - 1;
			if (valid_name(host, nl, 1)) {
				out->kind = FL_ROUTE_FUNCTION;
				out->name = host;
				out->name_len = nl;
				out->target = url;
				out->target_len = url_len;
				out->target_slash = url_len == 0 || url[0] != '/';
				return out->kind;
			}
		}
	}

	if (path_is(url, url_len, "/metrics"))
		return out->kind = FL_ROUTE_METRICS;
	if (path_is(url, url_len, "/healthz"))
		return out->kind = FL_ROUTE_HEALTH;
	return out->kind = FL_ROUTE_NOTFOUND;
}
