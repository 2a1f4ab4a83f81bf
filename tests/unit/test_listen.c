/* test_listen.c -- unit tests for net/listen.c: address forms, listener errors, port picking. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>

#include "net/listen.c"

static void check_v4(const char *s, const char *ip, int port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	socklen_t len = 0;
	char got[INET_ADDRSTRLEN];

	assert_int_equal(fl_parse_addr(s, &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, got, sizeof(got)));
	assert_string_equal(got, ip);
	assert_int_equal(ntohs(sin->sin_port), port);
}

static void test_parse_ipv4_forms(void **state)
{
	(void)state;
	check_v4("127.0.0.1:8080", "127.0.0.1", 8080);
	check_v4(":8081", "0.0.0.0", 8081);
	check_v4("8082", "0.0.0.0", 8082);
	check_v4("*:80", "0.0.0.0", 80);
	check_v4("10.1.2.3:0", "10.1.2.3", 0);
	check_v4("0.0.0.0:65535", "0.0.0.0", 65535);
}

static void test_parse_ipv6(void **state)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len = 0;
	char got[INET6_ADDRSTRLEN];

	(void)state;
	assert_int_equal(fl_parse_addr("[::1]:8080", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, got, sizeof(got)));
	assert_string_equal(got, "::1");
	assert_int_equal(ntohs(sin6->sin6_port), 8080);
}

static void test_parse_localhost(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;

	(void)state;
	assert_int_equal(fl_parse_addr("localhost:8080", &ss, &len), 0);
	assert_true(ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
	if (ss.ss_family == AF_INET)
		assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8080);
	else
		assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 8080);
}

static void test_parse_invalid(void **state)
{
	static const char *bad[] = {
	    "",		  ":",	      "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536",
	    "1.2.3.4:8x", "::1:8080", "[::1]8080", "[::1]:",	 "[nothost]:80",
	    "[]:80",	  "123456",   "host:-1",   ":80:80",	 "a b:80",
	};
	struct sockaddr_storage ss;
	socklen_t len;
	size_t i;

	(void)state;
	assert_int_equal(fl_parse_addr(NULL, &ss, &len), -EINVAL);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = fl_parse_addr(bad[i], &ss, &len);

		if (rc != -EINVAL)
			fail_msg("\"%s\" parsed (rc %d) but should be rejected", bad[i], rc);
	}
}

/* A free port whose neighbours are free too (the wrap test needs three), in
 * 30000-32000: below the kernel's ephemeral range and above flint's default
 * instance ports, so other programs on a shared machine rarely take them. */
static int pick(void)
{
	int cursor = 30000 + getpid() % 2000, tries;

	for (tries = 0; tries < 200; tries++) {
		int port = fl_pick_port(30001, 31999, &cursor), c1 = port - 1, c2 = port + 1;
		assert_true(port >= 30001);
		if (fl_pick_port(port - 1, port - 1, &c1) == port - 1 &&
		    fl_pick_port(port + 1, port + 1, &c2) == port + 1)
			return port;
	}
	fail_msg("no three free ports in a row in 30000-32000");
	return -1;
}

static void test_listen_and_conflict(void **state)
{
	char addr[64], err[256] = "";
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int port = pick(), fd, fd2, fd3, flags;

	(void)state;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	fd = fl_listen_tcp(addr, 0, 16, err, sizeof(err));
	assert_true(fd >= 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	assert_int_equal(ntohs(sin.sin_port), port);
	flags = fcntl(fd, F_GETFL);
	assert_true(flags & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);

	/* A second listener on the same port fails with a readable sentence. */
	fd2 = fl_listen_tcp(addr, 0, 16, err, sizeof(err));
	assert_int_equal(fd2, -EADDRINUSE);
	snprintf(addr, sizeof(addr), "cannot listen on 127.0.0.1:%d: %s", port,
		 strerror(EADDRINUSE));
	assert_string_equal(err, addr);
	close(fd);

	/* With SO_REUSEPORT on both, two listeners share the port. */
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	fd2 = fl_listen_tcp(addr, 1, 16, err, sizeof(err));
	assert_true(fd2 >= 0);
	fd3 = fl_listen_tcp(addr, 1, 16, err, sizeof(err));
	assert_true(fd3 >= 0);
	close(fd2);
	close(fd3);
}

static void test_listen_bad_address(void **state)
{
	char err[256] = "";

	(void)state;
	assert_int_equal(fl_listen_tcp("nowhere", 0, 16, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "invalid listen address \"nowhere\""));
}

static void test_pick_port_skips_busy_and_wraps(void **state)
{
	char addr[64], err[256];
	int port = pick(), fd, cursor, got;

	(void)state;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	fd = fl_listen_tcp(addr, 0, 16, err, sizeof(err));
	assert_true(fd >= 0);

	/* The only port in range is busy. */
	cursor = 0;
	assert_int_equal(fl_pick_port(port, port, &cursor), -EADDRINUSE);

	/* Starting after the busy port's predecessor skips it. */
	cursor = port - 1;
	got = fl_pick_port(port - 1, port + 1, &cursor);
	assert_int_equal(got, port + 1);
	assert_int_equal(cursor, port + 1);

	/* From the end of the range the search wraps to the start. */
	got = fl_pick_port(port - 1, port + 1, &cursor);
	assert_int_equal(got, port - 1);
	assert_int_equal(cursor, port - 1);
	close(fd);

	assert_int_equal(fl_pick_port(10, 5, &cursor), -EADDRINUSE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_ipv4_forms),
	    cmocka_unit_test(test_parse_ipv6),
	    cmocka_unit_test(test_parse_localhost),
	    cmocka_unit_test(test_parse_invalid),
	    cmocka_unit_test(test_listen_and_conflict),
	    cmocka_unit_test(test_listen_bad_address),
	    cmocka_unit_test(test_pick_port_skips_busy_and_wraps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
