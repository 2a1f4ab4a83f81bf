/* test_router.c -- unit tests for request routing by path and Host (src/gateway/router.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "gateway/router.c"

static struct fl_route r;

/* Routes url with an optional Host header under domain; returns the kind. */
static enum fl_route_kind route(const char *url, const char *host, const char *domain)
{
	memset(&r, 0xa5, sizeof(r)); /* every field must be set by the router */
	return fl_route_request(url, strlen(url), host, host ? strlen(host) : 0, domain, &r);
}

/* Asserts a counted string equals a C string, printing both on failure. */
static void expect_counted(const char *what, const char *p, size_t n, const char *want)
{
	if (n != strlen(want) || (n && memcmp(p, want, n) != 0))
		fail_msg("%s is \"%.*s\" (%zu bytes), want \"%s\"", what, (int)n, p ? p : "", n,
			 want);
}

/* Asserts a path-routed function result. */
static void expect_fn(const char *url, const char *name, const char *target, int slash,
		      const char *prefix)
{
	if (route(url, NULL, NULL) != FL_ROUTE_FUNCTION)
		fail_msg("%s: kind %d, want a function", url, r.kind);
	assert_int_equal(r.kind, FL_ROUTE_FUNCTION);
	expect_counted("name", r.name, r.name_len, name);
	expect_counted("target", r.target, r.target_len, target);
	expect_counted("prefix", r.prefix, r.prefix_len, prefix);
	if (r.target_slash != slash)
		fail_msg("%s: target_slash %d, want %d", url, r.target_slash, slash);
}

static void test_path_routing(void **state)
{
	expect_fn("/function/hello", "hello", "", 1, "/function/hello");
	expect_fn("/function/hello/", "hello", "/", 0, "/function/hello");
	expect_fn("/function/hello/a/b?x=1", "hello", "/a/b?x=1", 0, "/function/hello");
	expect_fn("/function/hello?x=1", "hello", "?x=1", 1, "/function/hello");
	expect_fn("/function/hello-c/x", "hello-c", "/x", 0, "/function/hello-c");
	expect_fn("/function/a", "a", "", 1, "/function/a");
	/* The query is the instance's business, even when it contains slashes. */
	expect_fn("/function/hello?next=/a/b", "hello", "?next=/a/b", 1, "/function/hello");

	/* The strings point into the caller's URL: no copies. */
	{
		const char *url = "/function/echo/path";
		assert_int_equal(fl_route_request(url, strlen(url), NULL, 0, NULL, &r),
				 FL_ROUTE_FUNCTION);
		assert_ptr_equal(r.prefix, url);
		assert_ptr_equal(r.name, url + 10);
		assert_ptr_equal(r.target, url + 14);
	}
	/* The URL is counted: bytes past url_len are not looked at. */
	{
		const char *url = "/function/hello/more";
		assert_int_equal(fl_route_request(url, 15, NULL, 0, NULL, &r), FL_ROUTE_FUNCTION);
		expect_counted("name", r.name, r.name_len, "hello");
		assert_int_equal(r.target_len, 0);
		assert_int_equal(r.target_slash, 1);
	}
}

static void test_bad_names(void **state)
{
	static const char *bad[] = {
	    "/function/",	 "/function/?x=1", "/function//x",	     "/function/UPPER",
	    "/function/Hello/x", "/function/-x",   "/function/x-",	     "/function/a_b",
	    "/function/a.b",	 "/function/%41",  "/function/h\xc3\xa9llo",
	};
	char long_name[200];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (route(bad[i], NULL, NULL) != FL_ROUTE_BADNAME)
			fail_msg("%s: kind %d, want BADNAME", bad[i], r.kind);

	/* 63 characters is the longest name (a DNS label), 64 is too long. */
	snprintf(long_name, sizeof(long_name), "/function/%.63s/x",
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(route(long_name, NULL, NULL), FL_ROUTE_FUNCTION);
	assert_int_equal(r.name_len, 63);
	snprintf(long_name, sizeof(long_name), "/function/%.64s/x",
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(route(long_name, NULL, NULL), FL_ROUTE_BADNAME);

	/* Not the /function/ prefix at all: not found rather than a bad name. */
	assert_int_equal(route("/function", NULL, NULL), FL_ROUTE_NOTFOUND);
	assert_int_equal(route("/functions/x", NULL, NULL), FL_ROUTE_NOTFOUND);
	assert_int_equal(route("/Function/x", NULL, NULL), FL_ROUTE_NOTFOUND);
}

/* Asserts a Host-routed function result. */
static void expect_host_fn(const char *url, const char *host, const char *name, const char *target,
			   int slash)
{
	if (route(url, host, "localhost") != FL_ROUTE_FUNCTION)
		fail_msg("%s with Host %s: kind %d, want a function", url, host, r.kind);
	expect_counted("name", r.name, r.name_len, name);
	expect_counted("target", r.target, r.target_len, target);
	expect_counted("prefix", r.prefix, r.prefix_len, "");
	if (r.target_slash != slash)
		fail_msg("%s with Host %s: target_slash %d, want %d", url, host, r.target_slash,
			 slash);
}

static void test_host_routing(void **state)
{
	expect_host_fn("/", "api.localhost", "api", "/", 0);
	expect_host_fn("/x/y?z=1", "api.localhost", "api", "/x/y?z=1", 0);
	expect_host_fn("/", "api.localhost:8080", "api", "/", 0);
	expect_host_fn("/", "api.localhost.", "api", "/", 0); /* fully qualified */
	expect_host_fn("/", "api.localhost.:8080", "api", "/", 0);
	expect_host_fn("/", "api.LOCALHOST", "api", "/", 0); /* the domain is case-insensitive */
	expect_host_fn("/metrics", "api.localhost", "api", "/metrics", 0); /* the function's own */

	/* Host names are case-insensitive, so an upper-case label still routes;
	 * the name is handed back as received and the caller folds it (router.h). */
	expect_host_fn("/", "API.localhost", "API", "/", 0);
	assert_true(r.name_len == 3 && strncasecmp(r.name, "api", 3) == 0);
	expect_host_fn("/", "Hello-C.localhost", "Hello-C", "/", 0);

	/* The domain alone, nested labels, bad labels and other domains are not functions. */
	static const char *not_fn[] = {
	    "localhost",       "localhost:8080", ".localhost",	   "a.b.localhost",  "-x.localhost",
	    "x-.localhost",    "a_b.localhost",	 "api.localhostx", "api.xlocalhost", "apilocalhost",
	    "api.example.com", "[::1]:8080",	 "127.0.0.1:8080", ":8080",
	};
	size_t i;
	for (i = 0; i < sizeof(not_fn) / sizeof(not_fn[0]); i++)
		if (route("/", not_fn[i], "localhost") != FL_ROUTE_NOTFOUND)
			fail_msg("Host %s: kind %d, want NOTFOUND", not_fn[i], r.kind);
	assert_int_equal(route("/healthz", "localhost:8080", "localhost"), FL_ROUTE_HEALTH);

	/* A 64-character label is not a name. */
	{
		char host[128];
		snprintf(host, sizeof(host), "%.64s.localhost",
			 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
		assert_int_equal(route("/", host, "localhost"), FL_ROUTE_NOTFOUND);
		snprintf(host, sizeof(host), "%.63s.localhost",
			 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
		assert_int_equal(route("/", host, "localhost"), FL_ROUTE_FUNCTION);
		assert_int_equal(r.name_len, 63);
	}

	/* A multi-label domain. */
	assert_int_equal(route("/", "api.fn.example.com", "fn.example.com"), FL_ROUTE_FUNCTION);
	expect_counted("name", r.name, r.name_len, "api");
	assert_int_equal(route("/", "api.example.com", "fn.example.com"), FL_ROUTE_NOTFOUND);
}

static void test_host_routing_off(void **state)
{
	assert_int_equal(route("/", "api.localhost", NULL), FL_ROUTE_NOTFOUND);
	assert_int_equal(route("/", "api.localhost", ""), FL_ROUTE_NOTFOUND);
	assert_int_equal(route("/metrics", "api.localhost", NULL), FL_ROUTE_METRICS);
	/* No Host header at all, or an empty one. */
	assert_int_equal(route("/", NULL, "localhost"), FL_ROUTE_NOTFOUND);
	assert_int_equal(route("/", "", "localhost"), FL_ROUTE_NOTFOUND);
}

static void test_path_wins_over_host(void **state)
{
	assert_int_equal(route("/function/other/x", "api.localhost", "localhost"),
			 FL_ROUTE_FUNCTION);
	expect_counted("name", r.name, r.name_len, "other");
	expect_counted("target", r.target, r.target_len, "/x");
	expect_counted("prefix", r.prefix, r.prefix_len, "/function/other");
	/* A bad path name is reported, not silently sent to the Host's function. */
	assert_int_equal(route("/function/BAD", "api.localhost", "localhost"), FL_ROUTE_BADNAME);
}

static void test_gateway_paths(void **state)
{
	assert_int_equal(route("/metrics", NULL, NULL), FL_ROUTE_METRICS);
	assert_int_equal(route("/metrics?name[]=x", NULL, NULL), FL_ROUTE_METRICS);
	assert_int_equal(route("/healthz", NULL, NULL), FL_ROUTE_HEALTH);
	assert_int_equal(route("/healthz?verbose=1", NULL, "localhost"), FL_ROUTE_HEALTH);
	assert_int_equal(route("/healthz", "localhost", "localhost"), FL_ROUTE_HEALTH);

	assert_int_equal(route("/metrics/", NULL, NULL), FL_ROUTE_NOTFOUND);
	assert_int_equal(route("/metricsx", NULL, NULL), FL_ROUTE_NOTFOUND);
	assert_int_equal(route("/healthz/x", NULL, NULL), FL_ROUTE_NOTFOUND);
	assert_int_equal(route("/health", NULL, NULL), FL_ROUTE_NOTFOUND);
	assert_int_equal(route("/", NULL, NULL), FL_ROUTE_NOTFOUND);
	assert_int_equal(route("/anything/else", NULL, "localhost"), FL_ROUTE_NOTFOUND);
	assert_int_equal(route("", NULL, NULL), FL_ROUTE_NOTFOUND);
	assert_int_equal(route("*", NULL, NULL), FL_ROUTE_NOTFOUND);
	/* A not-found result carries no function. */
	assert_int_equal(r.name_len, 0);
	assert_int_equal(r.target_len, 0);
	assert_int_equal(r.prefix_len, 0);
	assert_non_null(r.prefix);
}

static void test_absolute_form(void **state)
{
	/* The authority in the request-target is the host. */
	assert_int_equal(route("http://api.localhost/x", NULL, "localhost"), FL_ROUTE_FUNCTION);
	expect_counted("name", r.name, r.name_len, "api");
	expect_counted("target", r.target, r.target_len, "/x");
	assert_int_equal(r.target_slash, 0);

	/* ... and it takes precedence over a Host header. */
	assert_int_equal(route("http://api.localhost:8080/x?q=1", "other.localhost", "localhost"),
			 FL_ROUTE_FUNCTION);
	expect_counted("name", r.name, r.name_len, "api");
	expect_counted("target", r.target, r.target_len, "/x?q=1");

	/* No path at all means "/". */
	assert_int_equal(route("http://api.localhost", NULL, "localhost"), FL_ROUTE_FUNCTION);
	expect_counted("target", r.target, r.target_len, "/");

	/* The scheme is case-insensitive; path routing still works inside. */
	assert_int_equal(route("HTTP://127.0.0.1:8080/function/hello/a", NULL, "localhost"),
			 FL_ROUTE_FUNCTION);
	expect_counted("name", r.name, r.name_len, "hello");
	expect_counted("target", r.target, r.target_len, "/a");
	expect_counted("prefix", r.prefix, r.prefix_len, "/function/hello");

	assert_int_equal(route("http://127.0.0.1/metrics", NULL, "localhost"), FL_ROUTE_METRICS);
	assert_int_equal(route("http://127.0.0.1/", NULL, "localhost"), FL_ROUTE_NOTFOUND);
	assert_int_equal(route("http://localhost/x", "api.localhost", "localhost"),
			 FL_ROUTE_NOTFOUND);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_path_routing),	cmocka_unit_test(test_bad_names),
	    cmocka_unit_test(test_host_routing),	cmocka_unit_test(test_host_routing_off),
	    cmocka_unit_test(test_path_wins_over_host), cmocka_unit_test(test_gateway_paths),
	    cmocka_unit_test(test_absolute_form),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
