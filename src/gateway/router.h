/* router.h -- which function a request head is for: `/function/NAME[/rest]`,
 * or Host `NAME.<domain>`, or one of the gateway's own paths. Pure functions of
 * the head: no allocation, results point into the caller's strings. */
#ifndef FL_ROUTER_H
#define FL_ROUTER_H

#include <stddef.h>

enum fl_route_kind {
	FL_ROUTE_FUNCTION, /* name, target and prefix are set */
	FL_ROUTE_METRICS,  /* GET /metrics */
	FL_ROUTE_HEALTH,   /* GET /healthz */
	FL_ROUTE_NOTFOUND, /* nothing matched */
	FL_ROUTE_ASYNC,	   /* /async-function/NAME[/rest]: like FUNCTION, queued */
	FL_ROUTE_REQUESTS, /* /requests[/...]: the async queue's requests */
	FL_ROUTE_SYSTEM,   /* /system[/...]: the OpenFaaS-compatible API */
	FL_ROUTE_BADNAME,  /* /function/ with an empty or invalid name */
};

struct fl_route {
	enum fl_route_kind kind;
	const char *name; /* function name (not NUL-terminated); from a Host header it
			   * may be in upper case: the caller folds it */
	size_t name_len;
	const char *target; /* what the instance sees: path and query, after the prefix */
	size_t target_len;
	int target_slash;   /* 1: "/" must be written before target (it was empty or "?q") */
	const char *prefix; /* "/function/NAME" when path-routed, else "" (X-Forwarded-Prefix) */
	size_t prefix_len;
};

/* Routes a request: `/function/NAME[/rest]`, `/async-function/NAME[/rest]`
 * and `/requests...` first, then Host, then the gateway's own paths. url is the request-target as
 * received (origin-form
 * "/p?q", or absolute-form "http://h/p?q"); host is the Host header value
 * (may be NULL); domain is the routing domain for Host `NAME.<domain>` (NULL or
 * "" turns Host routing off). Always fills *out; returns out->kind. */
enum fl_route_kind fl_route_request(const char *url, size_t url_len, const char *host,
				    size_t host_len, const char *domain, struct fl_route *out);

#endif
